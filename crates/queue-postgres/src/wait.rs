//! Waiting for work and for results without hot loops.
//!
//! `wait_for_work` subscribes to its queue's wake-ups (see the `notify` module), then probes
//! the queue with one indexed read ([`PROBE`]: "anything ready?" from `tasks_ready`, and "when
//! is the next eta or lease expiry?" from the head of `tasks_timer`). If nothing is due, it
//! sleeps until a wake-up, the next timer, or the timeout — and, while the `LISTEN` connection
//! is down, no longer than the poll interval before it probes again. Subscribing before
//! probing means a notification that arrives between the probe and the sleep is not missed.
//!
//! `wait_result` works the same way on its task id and a primary-key read of `results`.

use std::time::Duration;

use sqlx::PgPool;
use tokio::time::Instant;
use uuid::Uuid;

use queue_core::{Result, StoredResult};

use crate::error::storage;
use crate::notify::Waiters;
use crate::sql::{q, Sql};
use crate::PoolInfo;

/// Is anything ready, and when is the next timer? (two index reads, one round trip; the first
/// is a scalar subquery in the index's order, not an `EXISTS`, which the planner may answer
/// by scanning the table — the whole table for a queue with no ready row)
/// A paused queue has nothing ready and no timer (a resume notifies its waiters).
pub(crate) const PROBE: &str = "\
SELECT (SELECT seq FROM {s}.tasks WHERE queue = $1 AND state = 0
        ORDER BY priority DESC, seq LIMIT 1) IS NOT NULL AND NOT paused,
       CASE WHEN paused THEN NULL ELSE
       (SELECT min(wake_at) FROM {s}.tasks WHERE queue = $1 AND state <> 0) END
FROM (SELECT EXISTS (SELECT 1 FROM {s}.paused_queues WHERE queue = $1) AS paused) p";

pub(crate) const GET_RESULT: &str =
    "SELECT value FROM {s}.results WHERE id = $1 AND (expires_at IS NULL OR expires_at > $2)";

pub(crate) const DELETE_RESULT: &str = "DELETE FROM {s}.results WHERE id = $1";

/// What waits need of the store.
pub(crate) struct Ctx<'a> {
    pub(crate) pool: &'a PgPool,
    pub(crate) info: &'a PoolInfo,
    pub(crate) sql: &'a Sql,
    pub(crate) waiters: &'a Waiters,
    pub(crate) now: &'a (dyn Fn() -> i64 + Send + Sync),
    pub(crate) poll: Duration,
}

pub(crate) async fn get_result(
    pool: &PgPool,
    info: &PoolInfo,
    sql: &Sql,
    id: Uuid,
    now: i64,
) -> Result<Option<StoredResult>> {
    let value: Option<Vec<u8>> = sqlx::query_scalar(q(&sql.get_result))
        .bind(id)
        .bind(now)
        .fetch_optional(pool)
        .await
        .map_err(|e| storage("read a result", e, Some((pool, info))))?;
    value.map(|v| StoredResult::decode(&v)).transpose()
}

/// Sleeps until `sub` is woken, the listener's state changes, or `wait` has passed. Returns
/// whether it was woken.
async fn sleep_or_wake<K: Eq + std::hash::Hash + Clone>(
    sub: &mut crate::notify::Subscription<'_, K>,
    listening: &mut tokio::sync::watch::Receiver<bool>,
    wait: Duration,
) -> bool {
    tokio::select! {
        () = sub.woken() => true,
        _ = listening.changed() => false,
        () = tokio::time::sleep(wait) => false,
    }
}

/// Waits as described in the [module docs](self).
pub(crate) async fn for_work(ctx: &Ctx<'_>, queue: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut sub = ctx.waiters.work.subscribe(queue.to_owned());
    let mut listening = ctx.waiters.listening.subscribe();
    loop {
        sub.mark_seen();
        let up = *listening.borrow_and_update();
        let (ready, next): (bool, Option<i64>) = sqlx::query_as(q(&ctx.sql.probe))
            .bind(queue)
            .fetch_one(ctx.pool)
            .await
            .map_err(|e| storage("probe a queue", e, Some((ctx.pool, ctx.info))))?;
        if ready {
            return Ok(());
        }
        let now_ms = (ctx.now)();
        if next.is_some_and(|n| n <= now_ms) {
            return Ok(());
        }
        let probed = Instant::now();
        let left = deadline.saturating_duration_since(probed);
        if left.is_zero() {
            return Ok(());
        }
        let timer = next.map(|n| Duration::from_millis(u64::try_from(n - now_ms).unwrap_or(0)));
        let mut wait = left;
        if let Some(timer) = timer {
            wait = wait.min(timer);
        }
        if !up {
            wait = wait.min(ctx.poll);
        }
        if sleep_or_wake(&mut sub, &mut listening, wait).await {
            return Ok(());
        }
        if timer.is_some_and(|t| probed.elapsed() >= t) || Instant::now() >= deadline {
            // A timer came due (work may be there now) or time is up.
            return Ok(());
        }
    }
}

/// Waits for a result as described in the [module docs](self).
pub(crate) async fn for_result(
    ctx: &Ctx<'_>,
    id: Uuid,
    timeout: Duration,
) -> Result<Option<StoredResult>> {
    let deadline = Instant::now() + timeout;
    let mut sub = ctx.waiters.results.subscribe(id);
    let mut listening = ctx.waiters.listening.subscribe();
    loop {
        sub.mark_seen();
        let up = *listening.borrow_and_update();
        if let Some(r) = get_result(ctx.pool, ctx.info, ctx.sql, id, (ctx.now)()).await? {
            return Ok(Some(r));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        let wait = if up { left } else { left.min(ctx.poll) };
        sleep_or_wake(&mut sub, &mut listening, wait).await;
    }
}
