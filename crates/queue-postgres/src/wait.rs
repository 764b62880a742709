//! Waiting for work and for results without hot loops.
//!
//! `wait_for_work` subscribes to its queue's wake-ups (see the `notify` module), then probes
//! the queue with one indexed read ([`PROBE`]: "anything ready?" from `tasks_ready`, and "when
//! is the next eta or lease expiry?" from the head of `tasks_timer`). If nothing is due, it
//! sleeps until a wake-up, the next timer, or the timeout — and, while the `LISTEN` connection
//! is down, no longer than the poll interval before it probes again. Subscribing before
//! probing means a notification that arrives between the probe and the sleep is not missed.
//!
//! Writers of other processes notify only queues that someone registered a wait on (see the
//! `notify` module), so before its first sleep a wait registers its queue in `work_waits`
//! ([`REGISTER_WORK_WAIT`], for the wait's length plus [`REGISTRATION_SLACK`]; the statement
//! announces the registration, which tells writers to read for the queue: see the `notifier`
//! module) and probes once more; later waits of this process on the same queue reuse the registration while it
//! holds, so an idle consumer writes it about every half minute, not on every wait. One sleep
//! lasts at most [`LONGEST_WORK_SLEEP`] (a day), so a wait of any length registers again,
//! and is announced again, within that.
//!
//! `wait_result` works the same way on its task id ([`REGISTER_RESULT_WAIT`]) and a
//! primary-key read of `results`. A writer deletes a result wait's registration as it notifies
//! it, so a wait woken without finding the result (its id was enqueued again meanwhile)
//! registers again before it sleeps.

use std::sync::Arc;
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

/// Registers a wait on queue `$1` for `$2` ms (server clock; never shortens a registration),
/// and announces it on channel `$3` as made by store `$4` (`a<store>:<ms>:<queue>`), so that
/// writers of other processes read for this queue after their commits (see the `notifier`
/// module).
pub(crate) const REGISTER_WORK_WAIT: &str = "\
WITH reg AS (
    INSERT INTO {s}.work_waits (queue, until) VALUES ($1, now() + $2 * interval '1 millisecond')
    ON CONFLICT (queue) DO UPDATE SET until = greatest({s}.work_waits.until, excluded.until)
    RETURNING 1
)
SELECT pg_notify($3, 'a' || $4 || ':' || $2::text || ':' || $1) FROM reg";

/// Registers a wait on the result of task `$1` for `$2` ms, and drops a few expired
/// registrations (of tasks that never finished while someone waited).
pub(crate) const REGISTER_RESULT_WAIT: &str = "\
WITH old AS (
    DELETE FROM {s}.result_waits WHERE id = ANY (ARRAY (
        SELECT id FROM {s}.result_waits WHERE until < now() AND id <> $1 ORDER BY until LIMIT 16))
)
INSERT INTO {s}.result_waits (id, until) VALUES ($1, now() + $2 * interval '1 millisecond')
ON CONFLICT (id) DO UPDATE SET until = greatest({s}.result_waits.until, excluded.until)";

/// How much longer than the wait itself a registration holds, so that an idle consumer's
/// next waits find it still in place.
pub(crate) const REGISTRATION_SLACK: Duration = Duration::from_secs(30);

/// The longest a work wait sleeps before it probes again, and so the longest it registers
/// for: other stores keep a registration they heard for at most a year (`notifier.rs`), so a
/// wait of more than a year (a consumer polling with `Duration::MAX`) must announce itself
/// again well within that.
pub(crate) const LONGEST_WORK_SLEEP: Duration = Duration::from_secs(24 * 3600);

/// The result of task `$1`, unless expired at `$2` or left by an earlier run of an id that is
/// pending again (see [`ENQUEUE_PLAIN`](crate::enqueue::ENQUEUE_PLAIN)).
pub(crate) const GET_RESULT: &str = "\
SELECT value FROM {s}.results
WHERE id = $1 AND (expires_at IS NULL OR expires_at > $2)
  AND NOT EXISTS (SELECT 1 FROM {s}.tasks WHERE id = $1)";

/// Deletes the result of task `$1`, unless its id is pending again (then there is no result to
/// delete: see [`GET_RESULT`]).
pub(crate) const DELETE_RESULT: &str = "\
DELETE FROM {s}.results WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM {s}.tasks WHERE id = $1)";

/// What waits need of the store.
pub(crate) struct Ctx<'a> {
    pub(crate) pool: &'a PgPool,
    pub(crate) info: &'a PoolInfo,
    pub(crate) sql: &'a Sql,
    pub(crate) waiters: &'a Waiters,
    pub(crate) now: &'a (dyn Fn() -> i64 + Send + Sync),
    pub(crate) poll: Duration,
    /// The bound on each statement (`PostgresOptions::query_timeout`).
    pub(crate) bound: &'a crate::timeout::Bound,
    /// The store's channel, on which work registrations are announced.
    pub(crate) channel: &'a str,
}

/// Runs one statement of a wait (`what` names it in the error) within the query timeout.
fn bounded<'a, T: 'a>(
    ctx: &'a Ctx<'_>,
    what: &'static str,
    call: impl std::future::Future<Output = Result<T>> + 'a,
) -> impl std::future::Future<Output = Result<T>> + 'a {
    ctx.bound.run(what, ctx.info, call)
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
    let deadline = queue_core::clock::deadline(timeout);
    let mut sub = ctx.waiters.work.subscribe(queue.to_owned());
    let mut listening = ctx.waiters.listening.subscribe();
    loop {
        sub.mark_seen();
        let up = *listening.borrow_and_update();
        let probe = async {
            sqlx::query_as(q(&ctx.sql.probe))
                .bind(queue)
                .fetch_one(ctx.pool)
                .await
                .map_err(|e| storage("probe a queue", e, Some((ctx.pool, ctx.info))))
        };
        let (ready, next): (bool, Option<i64>) = bounded(ctx, "probe a queue", probe).await?;
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
        let mut wait = left.min(LONGEST_WORK_SLEEP);
        if let Some(timer) = timer {
            wait = wait.min(timer);
        }
        if !up {
            wait = wait.min(ctx.poll);
        } else if !ctx.waiters.work_registered(queue, probed + wait) {
            // Writers of other processes notify registered queues only: register, then look
            // once more (a write committed before the registration is seen by that look).
            let epoch = ctx.waiters.epoch();
            let announce = Some((ctx.channel, ctx.waiters.inbox.store()));
            let held = register(ctx, &ctx.sql.register_work_wait, queue, wait, announce).await?;
            ctx.waiters.record_work_registration(queue, held, epoch);
            continue;
        }
        if sleep_or_wake(&mut sub, &mut listening, wait).await {
            return Ok(());
        }
        if timer.is_some_and(|t| probed.elapsed() >= t) || Instant::now() >= deadline {
            // A timer came due (work may be there now) or time is up. Otherwise the wait
            // slept its longest, or the listener's state changed: probe again.
            return Ok(());
        }
    }
}

/// Registers a wait on `key` with statement `sql`, holding for `wait` plus
/// [`REGISTRATION_SLACK`], announced on channel `announce.0` as made by store `announce.1`
/// if given; returns until when (local clock, from before the statement was sent, so never
/// later than the server's) the registration holds.
async fn register<K>(
    ctx: &Ctx<'_>,
    sql: &Arc<str>,
    key: K,
    wait: Duration,
    announce: Option<(&str, &str)>,
) -> Result<Instant>
where
    K: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send,
{
    let sent = Instant::now();
    let hold = wait.saturating_add(REGISTRATION_SLACK);
    let write = async {
        let mut query = sqlx::query(q(sql))
            .bind(key)
            .bind(i64::try_from(hold.as_millis()).unwrap_or(i64::MAX));
        if let Some((channel, store)) = announce {
            query = query.bind(channel).bind(store);
        }
        query
            .execute(ctx.pool)
            .await
            .map_err(|e| storage("register a wait", e, Some((ctx.pool, ctx.info))))
    };
    bounded(ctx, "register a wait", write).await?;
    Ok(sent + hold)
}

/// Waits for a result as described in the [module docs](self).
pub(crate) async fn for_result(
    ctx: &Ctx<'_>,
    id: Uuid,
    timeout: Duration,
) -> Result<Option<StoredResult>> {
    let deadline = queue_core::clock::deadline(timeout);
    let mut sub = ctx.waiters.results.subscribe(id);
    let mut listening = ctx.waiters.listening.subscribe();
    // Until when this wait's registration holds, and the listener's epoch it was made in
    // (see the module docs).
    let mut registered: Option<(Instant, u64)> = None;
    loop {
        sub.mark_seen();
        let up = *listening.borrow_and_update();
        let read = get_result(ctx.pool, ctx.info, ctx.sql, id, (ctx.now)());
        if let Some(r) = bounded(ctx, "read a result", read).await? {
            return Ok(Some(r));
        }
        let now = Instant::now();
        let left = deadline.saturating_duration_since(now);
        if left.is_zero() {
            return Ok(None);
        }
        let epoch = ctx.waiters.epoch();
        if up && registered.is_none_or(|(held, e)| held < now + left || e != epoch) {
            let held = register(ctx, &ctx.sql.register_result_wait, id, left, None).await?;
            registered = Some((held, epoch));
            continue;
        }
        let wait = if up { left } else { left.min(ctx.poll) };
        if sleep_or_wake(&mut sub, &mut listening, wait).await {
            // The writer that woke this wait deleted its registration as it notified. If the
            // result is not there after all (the id was enqueued again before this read), the
            // wait registers again before it sleeps, or the new run's result, written by
            // another process, would notify nobody.
            registered = None;
        }
    }
}
