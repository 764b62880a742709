//! Writing outcomes: `complete` (batched acks, retries, dead letters) and `extend`.
//!
//! Every completion is fenced by its lease: a row changes only if its `id` AND `lease_token`
//! match and it is still leased (`state = 2`). Runs of consecutive successes/drops — the common
//! case — are applied with one statement per chunk:
//!
//! ```sql
//! DELETE FROM tasks WHERE seq IN (
//!   SELECT t.seq FROM (VALUES (?1,?2),(?3,?4)…) AS v CROSS JOIN tasks AS t
//!   WHERE t.id = v.column1 AND t.lease_token = v.column2 AND t.state = 2)
//! RETURNING id, lease_token
//! ```
//!
//! `CROSS JOIN` pins the join order (SQLite never reorders it): without statistics the planner
//! would otherwise scan `tasks` and probe the batch. Plan: `SCAN <n>-ROW VALUES CLAUSE` then
//! `SEARCH t USING INDEX tasks_id (id=?)` per entry, so the cost
//! is the batch size, independent of how many tasks the store holds or has ever held. Their
//! results go in first, with one `INSERT OR REPLACE INTO results SELECT …` over the same fenced
//! join, and both statements travel to SQLite's thread as one command. Retries, defers and dead
//! letters (rarer) are one statement each, by `tasks_id`. `extend` uses the same join.
//!
//! All effects of a batch share the writer's transaction, so a completion and its follow-up
//! envelopes are committed together or not at all.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{Row, SqliteConnection};

use queue_core::clock::duration_millis;
use queue_core::storage::rows::{Ending, Settlement};
use queue_core::{AckStatus, Envelope, Lease, Result, TaskId};

use crate::enqueue::{insert_tasks, NewTask};
use crate::error::Context;
use crate::fetch::{bury, Grave};
use crate::sql::{bucket, padded, values, Shapes, MAX_CHUNK};
use crate::writer::{Effects, Work};

pub(crate) static FINISH: Shapes = Shapes::new(|n| {
    format!(
        "DELETE FROM tasks WHERE seq IN (SELECT t.seq FROM (VALUES {}) AS v \
         CROSS JOIN tasks AS t \
         WHERE t.id = v.column1 AND t.lease_token = v.column2 AND t.state = 2) \
         RETURNING id, lease_token",
        values(n, 2)
    )
});

/// The results of the completions whose lease still holds (the same fenced join as
/// [`FINISH`]), written before the rows go.
pub(crate) static RESULTS: Shapes = Shapes::new(|n| {
    format!(
        "INSERT OR REPLACE INTO results (id, value, expires_at) \
         SELECT v.column1, v.column3, v.column4 FROM (VALUES {}) AS v \
         CROSS JOIN tasks AS t \
         WHERE t.id = v.column1 AND t.lease_token = v.column2 AND t.state = 2",
        values(n, 4)
    )
});

/// [`RESULTS`] then [`FINISH`] as one command to SQLite's thread (anonymous parameters run on
/// from one statement to the next: the result rows' four per completion, then FINISH's two).
pub(crate) static RESULTS_AND_FINISH: Shapes =
    Shapes::new(|n| format!("{}; {}", RESULTS.get(n), FINISH.get(n)));

pub(crate) static EXTEND: Shapes = Shapes::new(|n| {
    format!(
        "UPDATE tasks SET wake_at = ? WHERE seq IN (SELECT t.seq FROM (VALUES {}) AS v \
         CROSS JOIN tasks AS t \
         WHERE t.id = v.column1 AND t.lease_token = v.column2 AND t.state = 2) \
         RETURNING id, lease_token",
        values(n, 2)
    )
});

pub(crate) const LATER: &str = "UPDATE tasks SET state = CASE WHEN ?1 <= ?2 THEN 0 ELSE 1 END, \
     run_at = ?1, wake_at = ?1, lease_token = NULL, attempts = attempts + ?3, \
     deliveries = max(deliveries - ?4, 0) \
     WHERE id = ?5 AND lease_token = ?6 AND state = 2";

const TAKE: &str = "DELETE FROM tasks WHERE id = ?1 AND lease_token = ?2 AND state = 2 \
     RETURNING seq, queue, raw";

fn token(lease: &Lease) -> i64 {
    i64::try_from(lease.token.0).unwrap_or(-1)
}

/// `complete(batch)`.
pub(crate) struct Complete(pub(crate) Vec<Settlement>);

#[async_trait]
impl Work for Complete {
    type Output = Vec<AckStatus>;

    async fn run(
        &mut self,
        conn: &mut SqliteConnection,
        now: i64,
        fx: &mut Effects,
    ) -> Result<Vec<AckStatus>> {
        let batch = &self.0;
        let mut status = vec![AckStatus::Stale; batch.len()];
        let mut i = 0;
        while i < batch.len() {
            let end = (i..batch.len())
                .find(|&j| !matches!(batch[j].ending, Ending::Finish { .. }))
                .unwrap_or(batch.len());
            if end > i {
                finish_run(conn, &batch[i..end], &mut status[i..end], now).await?;
                i = end;
            } else {
                status[i] = one(conn, &batch[i], now, fx).await?;
                i += 1;
            }
        }
        forget_revocations(conn, batch, &status).await?;
        let follow_ups: Vec<&NewTask> = batch
            .iter()
            .zip(&status)
            .filter(|(_, s)| **s == AckStatus::Acked)
            .flat_map(|(p, _)| p.follow_ups.iter())
            .collect();
        if !follow_ups.is_empty() {
            insert_tasks(conn, &follow_ups, now, fx).await?;
        }
        fx.results = true;
        Ok(status)
    }
}

/// A revocation by id goes with its task: removed for every task this batch finished
/// (success, drop, dead letter). One index probe per batch while no revocation by id exists.
async fn forget_revocations(
    conn: &mut SqliteConnection,
    batch: &[Settlement],
    status: &[AckStatus],
) -> Result<()> {
    let any: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM revocations WHERE kind = 0)")
        .fetch_one(&mut *conn)
        .await
        .ctx("look for revocations")?;
    if !any {
        return Ok(());
    }
    for (p, s) in batch.iter().zip(status) {
        if *s == AckStatus::Acked && !matches!(p.ending, Ending::Later { .. }) {
            sqlx::query("DELETE FROM revocations WHERE kind = 0 AND target = ?1")
                .bind(p.lease.id.to_string())
                .execute(&mut *conn)
                .await
                .ctx("remove a finished task's revocation")?;
        }
    }
    Ok(())
}

/// Successes and drops: per chunk, one command with the result INSERT and the DELETE.
async fn finish_run(
    conn: &mut SqliteConnection,
    run: &[Settlement],
    status: &mut [AckStatus],
    now: i64,
) -> Result<()> {
    let mut gone: HashSet<(TaskId, i64)> = HashSet::with_capacity(run.len());
    for chunk in run.chunks(MAX_CHUNK) {
        let size = bucket(chunk.len());
        let mut q = sqlx::query(RESULTS_AND_FINISH.get(size));
        for p in padded(chunk, size) {
            let value: &[u8] = match &p.ending {
                Ending::Finish { result } => result,
                _ => &[],
            };
            q = q
                .bind(p.lease.id.as_bytes().as_slice())
                .bind(token(&p.lease))
                .bind(value)
                .bind(p.result_expires(now));
        }
        for p in padded(chunk, size) {
            q = q
                .bind(p.lease.id.as_bytes().as_slice())
                .bind(token(&p.lease));
        }
        for row in q.fetch_all(&mut *conn).await.ctx("complete tasks")? {
            let id: &[u8] = row.try_get(0).ctx("read a completed id")?;
            let tok: i64 = row.try_get(1).ctx("read a completed token")?;
            gone.insert((TaskId::from_slice(id)?, tok));
        }
    }
    for (p, s) in run.iter().zip(status.iter_mut()) {
        if gone.remove(&(p.lease.id, token(&p.lease))) {
            *s = AckStatus::Acked;
        }
    }
    Ok(())
}

/// A retry, defer or dead letter.
async fn one(
    conn: &mut SqliteConnection,
    p: &Settlement,
    now: i64,
    fx: &mut Effects,
) -> Result<AckStatus> {
    let id = p.lease.id.as_bytes().as_slice();
    match &p.ending {
        Ending::Later { eta, retry } => {
            let done = sqlx::query(LATER)
                .bind(*eta)
                .bind(now)
                .bind(i64::from(*retry))
                .bind(i64::from(!*retry))
                .bind(id)
                .bind(token(&p.lease))
                .execute(&mut *conn)
                .await
                .ctx("requeue a task")?;
            if done.rows_affected() == 0 {
                return Ok(AckStatus::Stale);
            }
            fx.work = true;
        }
        Ending::Dead { failure } => {
            let row = sqlx::query(TAKE)
                .bind(id)
                .bind(token(&p.lease))
                .fetch_optional(&mut *conn)
                .await
                .ctx("take a dead task")?;
            let Some(row) = row else {
                return Ok(AckStatus::Stale);
            };
            let seq: i64 = row.try_get(0).ctx("read a dead task")?;
            let queue: String = row.try_get(1).ctx("read a dead task")?;
            let raw: Vec<u8> = row.try_get(2).ctx("read a dead task")?;
            let task = Envelope::decode(&raw)
                .map(|e| e.task)
                .unwrap_or_else(|_| "?".into());
            let grave = Grave {
                seq,
                id: p.lease.id,
                queue: &queue,
                task: &task,
                raw: &raw,
            };
            bury(conn, &grave, failure, now, p.result_expires(now), fx).await?;
        }
        Ending::Finish { .. } => return Ok(AckStatus::Stale),
    }
    Ok(AckStatus::Acked)
}

/// `extend(leases, lease)`.
pub(crate) struct Extend {
    pub(crate) leases: Vec<Lease>,
    pub(crate) lease: Duration,
}

#[async_trait]
impl Work for Extend {
    type Output = Vec<AckStatus>;

    async fn run(
        &mut self,
        conn: &mut SqliteConnection,
        now: i64,
        _fx: &mut Effects,
    ) -> Result<Vec<AckStatus>> {
        let expires = now.saturating_add(duration_millis(self.lease));
        let mut held: HashSet<(TaskId, i64)> = HashSet::with_capacity(self.leases.len());
        for chunk in self.leases.chunks(MAX_CHUNK) {
            let size = bucket(chunk.len());
            let mut q = sqlx::query(EXTEND.get(size)).bind(expires);
            for l in padded(chunk, size) {
                q = q.bind(l.id.as_bytes().as_slice()).bind(token(l));
            }
            for row in q.fetch_all(&mut *conn).await.ctx("extend leases")? {
                let id: &[u8] = row.try_get(0).ctx("read an extended id")?;
                let tok: i64 = row.try_get(1).ctx("read an extended token")?;
                held.insert((TaskId::from_slice(id)?, tok));
            }
        }
        Ok(self
            .leases
            .iter()
            .map(|l| {
                if held.contains(&(l.id, token(l))) {
                    AckStatus::Acked
                } else {
                    AckStatus::Stale
                }
            })
            .collect())
    }
}
