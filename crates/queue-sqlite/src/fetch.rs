//! Leasing due tasks: promote due timers, then claim a batch in one statement.
//!
//! A fetch runs in the writer's transaction:
//!
//! 1. **Promote** (bounded): scheduled tasks whose eta has come and leased tasks whose lease ran
//!    out become ready (`state = 0`, lease token cleared). Plan:
//!    `SEARCH tasks USING INDEX tasks_timer (queue=? AND wake_at<?)` — it visits only rows that
//!    are due, never the backlog.
//! 2. **Claim**: `UPDATE tasks SET state = 2, … WHERE seq IN (SELECT seq FROM tasks WHERE
//!    queue = ? AND state = 0 ORDER BY priority DESC, seq LIMIT ?) RETURNING …`. Plan:
//!    `SEARCH tasks USING COVERING INDEX tasks_ready (queue=?)` with no temp b-tree: the index
//!    is already in delivery order, so the cost is the batch size, whatever the backlog.
//! 3. **Check** each claimed row in Rust: an envelope that does not decode (or is newer than
//!    this build) or a task past its delivery limit is moved to the dead-letter queue with the
//!    reason, and the claim is repeated for the shortfall.
//!
//! Steps 1 and 2 go to SQLite's thread as one command ([`PROMOTE_AND_CLAIM`]): every command
//! is a hop between threads, and the hops, not SQLite, set the pace of a busy store.
//!
//! Each row gets its own lease token (`base XOR seq`, with a fresh random base per fetch).
//!
//! Limits are written `LIMIT +?n`, not `LIMIT ?n`: SQLite plans a bare `LIMIT ?n` with the
//! value bound at the time, and so marks the statement to be prepared again whenever that
//! parameter is bound again — on every call, which cost a busy store's SQLite thread about a
//! quarter of its statement time. The unary plus keeps the value out of the plan (which does
//! not depend on it: the index is read in order and stops after the batch).

use std::time::Duration;

use async_trait::async_trait;
use sqlx::{Row, SqliteConnection};

use queue_core::clock::duration_millis;
use queue_core::storage::rows::ClaimedRow;
use queue_core::{Delivery, Envelope, LeaseToken, Result, StoredResult, TaskFailure, TaskId};

use crate::error::Context;
use crate::writer::{Effects, Work};

/// The most due timers one fetch promotes.
const PROMOTE_LIMIT: i64 = 1024;

pub(crate) const PROMOTE: &str = "UPDATE tasks SET state = 0, lease_token = NULL \
     WHERE seq IN (SELECT seq FROM tasks WHERE queue = ?1 AND state <> 0 AND wake_at <= ?2 \
     ORDER BY wake_at LIMIT +?3)";

/// Claims up to `?4` ready tasks of queue `?3`. Its last column says whether any revocation
/// exists (`kind >= 0` holds for every row: a search of the primary key, stopped at the first).
pub(crate) const CLAIM: &str = "UPDATE tasks SET state = 2, \
     lease_token = (?1 | seq) - (?1 & seq), wake_at = ?2, deliveries = deliveries + 1 \
     WHERE seq IN (SELECT seq FROM tasks WHERE queue = ?3 AND state = 0 \
     ORDER BY priority DESC, seq LIMIT +?4) \
     RETURNING seq, id, priority, deliveries, attempts, max_deliveries, lease_token, raw, \
     (SELECT EXISTS (SELECT 1 FROM revocations WHERE kind >= 0))";

/// [`PROMOTE`] then [`CLAIM`], sent to SQLite's thread as one command (its statements run in
/// order; numbered parameters are shared): `?3` queue, `?5` now, `?6` promote limit.
pub(crate) const PROMOTE_AND_CLAIM: &str = "UPDATE tasks SET state = 0, lease_token = NULL \
     WHERE seq IN (SELECT seq FROM tasks WHERE queue = ?3 AND state <> 0 AND wake_at <= ?5 \
     ORDER BY wake_at LIMIT +?6); \
     UPDATE tasks SET state = 2, \
     lease_token = (?1 | seq) - (?1 & seq), wake_at = ?2, deliveries = deliveries + 1 \
     WHERE seq IN (SELECT seq FROM tasks WHERE queue = ?3 AND state = 0 \
     ORDER BY priority DESC, seq LIMIT +?4) \
     RETURNING seq, id, priority, deliveries, attempts, max_deliveries, lease_token, raw, \
     (SELECT EXISTS (SELECT 1 FROM revocations WHERE kind >= 0))";

/// `fetch(queue, max, lease)`.
pub(crate) struct Fetch {
    pub(crate) queue: String,
    pub(crate) max: usize,
    pub(crate) lease: Duration,
}

struct Claimed {
    seq: i64,
    id: Vec<u8>,
    priority: i64,
    deliveries: i64,
    attempts: i64,
    limit: i64,
    token: i64,
    raw: Vec<u8>,
    /// Whether any revocation exists (the same for every row of a claim).
    revocations: bool,
}

/// What a fetch hands out, and whether any revocation existed when it claimed them (`None`
/// when it claimed nothing), so that `check_revoked` right after it needs no read of its own.
pub(crate) struct Fetched {
    pub(crate) deliveries: Vec<Delivery>,
    pub(crate) revocations: Option<bool>,
}

#[async_trait]
impl Work for Fetch {
    type Output = Fetched;

    async fn run(
        &mut self,
        conn: &mut SqliteConnection,
        now: i64,
        fx: &mut Effects,
    ) -> Result<Fetched> {
        let mut out = Vec::with_capacity(self.max);
        let mut revocations = None;
        if self.max == 0 || crate::plane::is_paused(conn, &self.queue).await? {
            return Ok(Fetched {
                deliveries: out,
                revocations,
            });
        }
        let expires = now.saturating_add(duration_millis(self.lease));
        // The first claim carries the promotion (one round trip to SQLite's thread for both).
        let mut promote = Some(Promote {
            now,
            limit: PROMOTE_LIMIT.max(i64::try_from(self.max).unwrap_or(i64::MAX)),
        });
        // Rows looked at, garbage included: bounds the work of one call.
        let mut budget = self.max.saturating_mul(4).saturating_add(64);
        while out.len() < self.max && budget > 0 {
            let want = (self.max - out.len()).min(budget);
            budget -= want;
            let claimed = claim(conn, &self.queue, want, expires, promote.take()).await?;
            if claimed.is_empty() {
                break;
            }
            revocations = Some(claimed.iter().any(|c| c.revocations));
            for c in claimed {
                if let Some(d) = check(conn, c, &self.queue, now, expires, fx).await? {
                    out.push(d);
                }
            }
        }
        Ok(Fetched {
            deliveries: out,
            revocations,
        })
    }
}

/// The promotion that runs before the first claim of a fetch.
struct Promote {
    now: i64,
    limit: i64,
}

async fn claim(
    conn: &mut SqliteConnection,
    queue: &str,
    n: usize,
    expires: i64,
    promote: Option<Promote>,
) -> Result<Vec<Claimed>> {
    // 61 random bits with bit 61 set: XOR with any seq < 2^61 is positive and never zero.
    let base = i64::try_from(LeaseToken::random().0 >> 2).unwrap_or(0) | (1 << 61);
    let sql = if promote.is_some() {
        PROMOTE_AND_CLAIM
    } else {
        CLAIM
    };
    let mut q = sqlx::query(sql)
        .bind(base)
        .bind(expires)
        .bind(queue)
        .bind(i64::try_from(n).unwrap_or(i64::MAX));
    if let Some(p) = promote {
        q = q.bind(p.now).bind(p.limit);
    }
    let rows = q.fetch_all(&mut *conn).await.ctx("claim tasks")?;
    let mut claimed = rows
        .into_iter()
        .map(|r| {
            Ok(Claimed {
                seq: r.try_get(0)?,
                id: r.try_get(1)?,
                priority: r.try_get(2)?,
                deliveries: r.try_get(3)?,
                attempts: r.try_get(4)?,
                limit: r.try_get(5)?,
                token: r.try_get(6)?,
                raw: r.try_get(7)?,
                revocations: r.try_get(8)?,
            })
        })
        .collect::<std::result::Result<Vec<_>, sqlx::Error>>()
        .ctx("read claimed tasks")?;
    // RETURNING does not promise the subquery's order.
    claimed.sort_unstable_by_key(|c| (std::cmp::Reverse(c.priority), c.seq));
    Ok(claimed)
}

/// Hands out a claimed row, or dead-letters it (garbage, newer format, poison). A row whose
/// id does not read is garbage too; it is dead-lettered under an id derived from its `seq`.
async fn check(
    conn: &mut SqliteConnection,
    c: Claimed,
    queue: &str,
    now: i64,
    expires: i64,
    fx: &mut Effects,
) -> Result<Option<Delivery>> {
    let read_id = TaskId::from_slice(&c.id);
    let id = read_id
        .as_ref()
        .map_or_else(|_| TaskId::derived(&format!("seq:{}", c.seq)), |id| *id);
    let envelope = read_id.and_then(|_| Envelope::decode(&c.raw));
    let row = ClaimedRow {
        id,
        token: c.token,
        deliveries: c.deliveries,
        attempts: c.attempts,
        max_deliveries: c.limit,
        priority: c.priority,
    };
    match row.deliver(envelope, queue, expires) {
        Ok(delivery) => Ok(Some(delivery)),
        Err(rejected) => {
            let grave = Grave {
                seq: c.seq,
                id,
                queue,
                task: &rejected.task,
                raw: &c.raw,
            };
            let expires = now.saturating_add(dead_result_ttl_ms());
            bury(conn, &grave, &rejected.failure, now, Some(expires), fx).await?;
            Ok(None)
        }
    }
}

/// [`DEAD_RESULT_TTL`](queue_core::storage::DEAD_RESULT_TTL) in milliseconds.
fn dead_result_ttl_ms() -> i64 {
    i64::try_from(queue_core::storage::DEAD_RESULT_TTL.as_millis()).unwrap_or(i64::MAX)
}

/// A task row on its way to the dead-letter queue.
pub(crate) struct Grave<'a> {
    pub(crate) seq: i64,
    pub(crate) id: TaskId,
    pub(crate) queue: &'a str,
    pub(crate) task: &'a str,
    pub(crate) raw: &'a [u8],
}

/// Moves a task row to the dead-letter queue and stores its failure as its result.
pub(crate) async fn bury(
    conn: &mut SqliteConnection,
    grave: &Grave<'_>,
    failure: &TaskFailure,
    now: i64,
    result_expires: Option<i64>,
    fx: &mut Effects,
) -> Result<()> {
    let encoded = StoredResult::Failure(failure.clone()).encode()?;
    sqlx::query("DELETE FROM tasks WHERE seq = ?1")
        .bind(grave.seq)
        .execute(&mut *conn)
        .await
        .ctx("remove a dead task")?;
    sqlx::query(
        "INSERT OR REPLACE INTO dead (id, queue, task, kind, failure, failed_at, raw) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .bind(grave.id.as_bytes().as_slice())
    .bind(grave.queue)
    .bind(grave.task)
    .bind(failure.kind.to_string())
    .bind(encoded.as_slice())
    .bind(now)
    .bind(grave.raw)
    .execute(&mut *conn)
    .await
    .ctx("dead-letter a task")?;
    sqlx::query("INSERT OR REPLACE INTO results (id, value, expires_at) VALUES (?1, ?2, ?3)")
        .bind(grave.id.as_bytes().as_slice())
        .bind(encoded.as_slice())
        .bind(result_expires)
        .execute(&mut *conn)
        .await
        .ctx("store a failure")?;
    fx.results = true;
    Ok(())
}
