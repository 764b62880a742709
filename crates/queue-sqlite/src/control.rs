//! Small writes: single statements ([`Exec`]), revocation checks, rate limits, purges.
//!
//! Plans of the statements that run often:
//!
//! * lock acquire/release: `SEARCH locks USING PRIMARY KEY (name=?)`;
//! * rate limit upsert: `SEARCH rates USING PRIMARY KEY (key=?)`;
//! * revocation check: `SEARCH revocations USING PRIMARY KEY (kind=? AND target=?)`;
//! * result purge: `SEARCH results USING COVERING INDEX results_expiry (expires_at<?)`, at most
//!   `max` rows per call;
//! * requeue of expired leases: `SEARCH tasks USING INDEX tasks_timer (queue=? AND wake_at<?)`.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::query::Query;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Sqlite, SqliteConnection};

use queue_core::storage::RateWindow;
use queue_core::{RateDecision, Result, RevokeTarget, TaskId};

use crate::error::Context;
use crate::writer::{Effects, Work};

/// A bound value; `Now` and `NowPlus` are filled in with the transaction's time.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
    Null,
    Now,
    NowPlus(i64),
}

impl Arg {
    pub(crate) fn id(id: TaskId) -> Self {
        Self::Blob(id.as_bytes().to_vec())
    }

    pub(crate) fn opt_int(v: Option<i64>) -> Self {
        v.map_or(Self::Null, Self::Int)
    }
}

pub(crate) fn bind_all<'q>(
    mut q: Query<'q, Sqlite, SqliteArguments>,
    args: &'q [Arg],
    now: i64,
) -> Query<'q, Sqlite, SqliteArguments> {
    for a in args {
        q = match a {
            Arg::Int(v) => q.bind(*v),
            Arg::Text(v) => q.bind(v.as_str()),
            Arg::Blob(v) => q.bind(v.as_slice()),
            Arg::Null => q.bind(None::<i64>),
            Arg::Now => q.bind(now),
            Arg::NowPlus(d) => q.bind(now.saturating_add(*d)),
        };
    }
    q
}

/// One statement; returns the rows it changed. Wakes consumers when `wakes` and it changed any.
#[derive(Debug)]
pub(crate) struct Exec {
    pub(crate) sql: &'static str,
    pub(crate) args: Vec<Arg>,
    pub(crate) wakes: bool,
}

impl Exec {
    pub(crate) fn new(sql: &'static str, args: Vec<Arg>) -> Self {
        Self {
            sql,
            args,
            wakes: false,
        }
    }

    pub(crate) fn waking(mut self) -> Self {
        self.wakes = true;
        self
    }
}

#[async_trait]
impl Work for Exec {
    type Output = u64;

    async fn run(
        &mut self,
        conn: &mut SqliteConnection,
        now: i64,
        fx: &mut Effects,
    ) -> Result<u64> {
        let done = bind_all(sqlx::query(self.sql), &self.args, now)
            .execute(&mut *conn)
            .await
            .ctx("write")?;
        if self.wakes && done.rows_affected() > 0 {
            fx.work = true;
        }
        Ok(done.rows_affected())
    }
}

/// The revocation table's key of a target.
pub(crate) fn revoke_key(target: &RevokeTarget) -> (i64, String) {
    match target {
        RevokeTarget::Id(id) => (0, id.to_string()),
        RevokeTarget::Task(name) => (1, name.clone()),
    }
}

/// `check_revoked`: by id first, then by name; a lapsed revocation is removed, a `once` one is
/// used up.
pub(crate) struct CheckRevoked(pub(crate) Vec<(TaskId, String)>);

async fn revoked(conn: &mut SqliteConnection, key: (i64, String), now: i64) -> Result<bool> {
    let row: Option<(Option<i64>, i64)> =
        sqlx::query_as("SELECT until, once FROM revocations WHERE kind = ?1 AND target = ?2")
            .bind(key.0)
            .bind(key.1.as_str())
            .fetch_optional(&mut *conn)
            .await
            .ctx("read a revocation")?;
    let Some((until, once)) = row else {
        return Ok(false);
    };
    let lapsed = until.is_some_and(|u| u <= now);
    if lapsed || once != 0 {
        sqlx::query("DELETE FROM revocations WHERE kind = ?1 AND target = ?2")
            .bind(key.0)
            .bind(key.1.as_str())
            .execute(&mut *conn)
            .await
            .ctx("remove a revocation")?;
    }
    Ok(!lapsed)
}

#[async_trait]
impl Work for CheckRevoked {
    type Output = Vec<bool>;

    async fn run(
        &mut self,
        conn: &mut SqliteConnection,
        now: i64,
        _fx: &mut Effects,
    ) -> Result<Vec<bool>> {
        let mut out = Vec::with_capacity(self.0.len());
        for (id, name) in &self.0 {
            let hit = revoked(conn, revoke_key(&RevokeTarget::Id(*id)), now).await?
                || revoked(conn, (1, name.clone()), now).await?;
            out.push(hit);
        }
        Ok(out)
    }
}

/// `rate_limit(key, limit, window)`: fixed windows aligned to the epoch.
pub(crate) struct RateLimit {
    pub(crate) key: String,
    pub(crate) limit: u32,
    pub(crate) window: Duration,
}

#[async_trait]
impl Work for RateLimit {
    type Output = RateDecision;

    async fn run(
        &mut self,
        conn: &mut SqliteConnection,
        now: i64,
        _fx: &mut Effects,
    ) -> Result<RateDecision> {
        let window = RateWindow::at(now, self.window);
        let counted = if self.limit == 0 {
            0
        } else {
            sqlx::query(
                "INSERT INTO rates (key, window_start, hits, expires_at) VALUES (?1, ?2, 1, ?3) \
                 ON CONFLICT (key) DO UPDATE SET \
                   hits = CASE WHEN window_start = excluded.window_start THEN hits + 1 ELSE 1 END, \
                   window_start = excluded.window_start, expires_at = excluded.expires_at \
                 WHERE excluded.window_start > rates.window_start \
                    OR (excluded.window_start = rates.window_start AND rates.hits < ?4)",
            )
            .bind(self.key.as_str())
            .bind(window.start)
            .bind(window.end)
            .bind(i64::from(self.limit))
            .execute(&mut *conn)
            .await
            .ctx("count a rate-limit hit")?
            .rows_affected()
        };
        Ok(window.decision(counted > 0, now))
    }
}

/// `purge_expired(max)`: expired results and locks (counted), lapsed counters and revocations.
pub(crate) struct PurgeExpired(pub(crate) i64);

pub(crate) const PURGE_RESULTS: &str = "DELETE FROM results WHERE id IN \
     (SELECT id FROM results WHERE expires_at <= ?1 LIMIT +?2)";

/// Expired locks, a bounded number per call (index `locks_expiry`).
pub(crate) const PURGE_LOCKS: &str =
    "DELETE FROM locks WHERE name IN (SELECT name FROM locks WHERE expires_at <= ?1 LIMIT +?2)";

/// Lapsed rate-limit counters (index `rates_expiry`).
pub(crate) const PURGE_RATES: &str =
    "DELETE FROM rates WHERE key IN (SELECT key FROM rates WHERE expires_at <= ?1 LIMIT +?2)";

/// Lapsed revocations (partial index `revocations_until`).
pub(crate) const PURGE_REVOCATIONS: &str = "DELETE FROM revocations WHERE (kind, target) IN \
     (SELECT kind, target FROM revocations WHERE until IS NOT NULL AND until <= ?1 LIMIT +?2)";

#[async_trait]
impl Work for PurgeExpired {
    type Output = u64;

    async fn run(
        &mut self,
        conn: &mut SqliteConnection,
        now: i64,
        _fx: &mut Effects,
    ) -> Result<u64> {
        let mut n = 0;
        for (sql, counted) in [
            (PURGE_RESULTS, true),
            (PURGE_LOCKS, true),
            (PURGE_RATES, false),
            (PURGE_REVOCATIONS, false),
        ] {
            let done = sqlx::query(sql)
                .bind(now)
                .bind(self.0)
                .execute(&mut *conn)
                .await
                .ctx("purge expired entries")?;
            if counted {
                n += done.rows_affected();
            }
        }
        Ok(n)
    }
}
