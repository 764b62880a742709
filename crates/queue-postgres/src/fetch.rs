//! Leasing due tasks: ONE statement claims a batch ([`CLAIM`]).
//!
//! ```text
//! ready  = the first n ready tasks of the queue, by priority desc, seq   } FOR UPDATE
//! due    = the first k timers that are due (scheduled etas, expired leases) } SKIP LOCKED
//! pick   = the first n of ready ∪ due, by priority desc, seq
//! claim  = UPDATE pick: state leased, new lease token, lease expiry, deliveries + 1, RETURNING
//! promote= UPDATE due rows not picked: state ready
//! ```
//!
//! * `FOR UPDATE SKIP LOCKED` makes concurrent fetchers (any number of processes) take
//!   disjoint rows without waiting on each other; rows another statement has locked are simply
//!   not candidates this time.
//! * The candidate queries are `MATERIALIZED` CTEs, so each runs once with its `LIMIT` (a
//!   locking subquery the planner re-runs per row could lock and claim more than `n`).
//! * `ready` reads the partial index `tasks_ready (queue, priority DESC, seq) WHERE state = 0`
//!   in delivery order and stops after `n` rows (in the function `claim_ready`, planned with
//!   sorting off, so that statistics that make a new backlog look tiny cannot turn it into a
//!   read and sort of every ready row: migration 5; being a volatile function, it reads with
//!   a snapshot of its own, a little newer than the statement's, so a task committed in between
//!   can be locked there and not claimed — it stays ready for the next claim, and a claim that
//!   comes back empty only sends the fetcher to its wait, which looks again); `due` reads `tasks_timer (queue, wake_at)
//!   WHERE state <> 0` up to the first timer in the future. Neither visits finished work (it
//!   is deleted) or the rest of the backlog, so the claim's cost is the batch size.
//! * The updates find their rows by primary key (`id = ANY (ARRAY (…))`: an index scan for
//!   the batch, whatever the planner estimates for the candidates).
//! * The lease token of each row is `base XOR seq`, with a fresh random `base` per fetch (bit
//!   61 set, so tokens are positive and never zero).
//!
//! Each claimed row is then checked here: an envelope that does not decode (or is newer than
//! this build), or a task past its delivery limit, is dead-lettered with the reason through the
//! completion statement, and the claim is repeated for the shortfall (bounded).

use std::time::Duration;

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use queue_core::clock::duration_millis;
use queue_core::storage::rows::{ClaimedRow, Settlement};
use queue_core::storage::DEAD_RESULT_TTL;
use queue_core::{Delivery, Envelope, LeaseToken, Result, TaskId};

use crate::complete::complete;
use crate::error::Context;
use crate::sql::{q, Sql};

/// The most due timers one fetch promotes.
pub(crate) const PROMOTE_LIMIT: i64 = 1024;

pub(crate) const CLAIM: &str = "\
WITH ready AS MATERIALIZED (
    SELECT id, priority, seq FROM {s}.claim_ready($1, $2)
), due AS MATERIALIZED (
    SELECT id, priority, seq FROM {s}.tasks
    WHERE queue = $1 AND state <> 0 AND wake_at <= $3
      AND NOT EXISTS (SELECT 1 FROM {s}.paused_queues WHERE queue = $1)
    ORDER BY wake_at
    LIMIT $6
    FOR UPDATE SKIP LOCKED
), pick AS MATERIALIZED (
    SELECT id FROM (SELECT * FROM ready UNION ALL SELECT * FROM due) c
    ORDER BY priority DESC, seq
    LIMIT $2
), promoted AS (
    UPDATE {s}.tasks t SET state = 0, lease_token = NULL
    WHERE t.id = ANY (ARRAY (SELECT id FROM due WHERE id NOT IN (SELECT id FROM pick)))
), claimed AS (
    UPDATE {s}.tasks t
    SET state = 2, lease_token = $5 # t.seq, wake_at = $4, deliveries = t.deliveries + 1
    WHERE t.id = ANY (ARRAY (SELECT id FROM pick))
    RETURNING t.id, t.seq, t.priority, t.deliveries, t.attempts, t.max_deliveries,
              t.lease_token, t.raw
)
SELECT c.*, EXISTS (SELECT 1 FROM {s}.revocations) FROM claimed c";

/// A row of [`CLAIM`].
struct Claimed {
    row: ClaimedRow,
    seq: i64,
    raw: Vec<u8>,
    /// Whether any revocation exists (the same for every row of a claim).
    revocations: bool,
}

impl Claimed {
    fn from_row(r: &PgRow) -> std::result::Result<Self, sqlx::Error> {
        let row = ClaimedRow {
            id: TaskId::from_uuid(r.try_get(0)?),
            priority: i64::from(r.try_get::<i16, _>(2)?),
            deliveries: i64::from(r.try_get::<i32, _>(3)?),
            attempts: i64::from(r.try_get::<i32, _>(4)?),
            max_deliveries: i64::from(r.try_get::<i32, _>(5)?),
            token: r.try_get(6)?,
        };
        Ok(Self {
            row,
            seq: r.try_get(1)?,
            raw: r.try_get(7)?,
            revocations: r.try_get(8)?,
        })
    }
}

/// What a fetch hands out, and whether any revocation existed when it claimed them (`None`
/// when it claimed nothing), so that `check_revoked` right after it needs no read of its own.
pub(crate) struct Fetched {
    pub(crate) deliveries: Vec<Delivery>,
    pub(crate) revocations: Option<bool>,
    /// Dead-lettered tasks (they got a result).
    pub(crate) buried: Vec<Uuid>,
}

/// `fetch(queue, max, lease)` on `conn`.
pub(crate) async fn fetch(
    conn: &mut PgConnection,
    sql: &Sql,
    queue: &str,
    max: usize,
    lease: Duration,
    now: i64,
) -> Result<Fetched> {
    let mut out = Fetched {
        deliveries: Vec::with_capacity(max.min(1024)),
        revocations: None,
        buried: Vec::new(),
    };
    let expires = now.saturating_add(duration_millis(lease));
    // Rows looked at, garbage included: bounds the work of one call.
    let mut budget = max.saturating_mul(4).saturating_add(64);
    while out.deliveries.len() < max && budget > 0 {
        let want = (max - out.deliveries.len()).min(budget);
        budget -= want;
        // 61 random bits with bit 61 set: XOR with any seq < 2^61 is positive and never zero.
        let base = i64::try_from(LeaseToken::random().0 >> 3).unwrap_or(0) | (1 << 61);
        let rows = sqlx::query(q(&sql.claim))
            .bind(queue)
            .bind(i64::try_from(want).unwrap_or(i64::MAX))
            .bind(now)
            .bind(expires)
            .bind(base)
            .bind(PROMOTE_LIMIT.max(i64::try_from(want).unwrap_or(i64::MAX)))
            .fetch_all(&mut *conn)
            .await
            .ctx("claim tasks")?;
        if rows.is_empty() {
            break;
        }
        let mut claimed = rows
            .iter()
            .map(Claimed::from_row)
            .collect::<std::result::Result<Vec<_>, _>>()
            .ctx("read claimed tasks")?;
        // RETURNING does not promise the claim's order.
        claimed.sort_unstable_by_key(|c| (std::cmp::Reverse(c.row.priority), c.seq));
        out.revocations = Some(claimed.iter().any(|c| c.revocations));
        let mut graves = Vec::new();
        for c in claimed {
            // Garbage, a newer format or poison goes to the dead-letter queue.
            match c.row.deliver(Envelope::decode(&c.raw), queue, expires) {
                Ok(d) => out.deliveries.push(d),
                Err(rejected) => graves.push(Settlement::bury(
                    rejected.lease,
                    rejected.failure,
                    Some(DEAD_RESULT_TTL),
                )),
            }
        }
        if !graves.is_empty() {
            let ids: Vec<Uuid> = graves.iter().map(|g| *g.lease.id.as_uuid()).collect();
            complete(conn, sql, None, graves, now).await?;
            out.buried.extend(ids);
        }
    }
    Ok(out)
}
