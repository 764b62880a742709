//! Waiting for work and for results without hot loops.
//!
//! `wait_for_work` first probes the queue with one indexed read ([`PROBE`]: `SEARCH tasks USING
//! COVERING INDEX tasks_ready (queue=?)` for "anything ready?", and the first entry of
//! `tasks_timer (queue=?)` for "when is the next eta or lease expiry?"). If nothing is due it
//! sleeps on the store's `work` watch channel — bumped by this process's enqueues, retries,
//! defers, reschedules, requeues and follow-ups — with a timer of
//! `min(poll_interval, time to the next timer, time left)`. When the timer fires it probes
//! again, so work written by another process is seen within one poll interval, while an idle
//! consumer costs one cheap read per interval. It returns when work may be there or the
//! timeout has passed; never at once, again and again, while nothing is due.
//!
//! `wait_result` works the same way on the `results` channel and a primary-key read.

use std::time::Duration;

use sqlx::SqlitePool;
use tokio::sync::watch;
use tokio::time::Instant;

use queue_core::{Result, StoredResult, TaskId};

use crate::error::Context;

/// Is anything ready, and when is the next timer? (one round trip, two index seeks)
pub(crate) const PROBE: &str =
    "SELECT EXISTS (SELECT 1 FROM tasks WHERE queue = ?1 AND state = 0), \
     (SELECT wake_at FROM tasks WHERE queue = ?1 AND state <> 0 ORDER BY wake_at LIMIT 1)";

pub(crate) const GET_RESULT: &str =
    "SELECT value FROM results WHERE id = ?1 AND (expires_at IS NULL OR expires_at > ?2)";

/// `(ready now, next timer in ms)`.
pub(crate) async fn probe(pool: &SqlitePool, queue: &str) -> Result<(bool, Option<i64>)> {
    sqlx::query_as(PROBE)
        .bind(queue)
        .fetch_one(pool)
        .await
        .ctx("probe a queue")
}

pub(crate) async fn get_result(
    pool: &SqlitePool,
    id: TaskId,
    now: i64,
) -> Result<Option<StoredResult>> {
    let value: Option<Vec<u8>> = sqlx::query_scalar(GET_RESULT)
        .bind(id.as_bytes().as_slice())
        .bind(now)
        .fetch_optional(pool)
        .await
        .ctx("read a result")?;
    value.map(|v| StoredResult::decode(&v)).transpose()
}

/// Waits as described in the [module docs](self).
pub(crate) async fn for_work(
    pool: &SqlitePool,
    work: &watch::Sender<u64>,
    now: impl Fn() -> i64,
    queue: &str,
    timeout: Duration,
    poll: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut rx = work.subscribe();
    loop {
        rx.borrow_and_update();
        let (ready, next) = probe(pool, queue).await?;
        let now = now();
        if ready || next.is_some_and(|n| n <= now) {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        let mut wait = left.min(poll);
        if let Some(n) = next {
            wait = wait.min(Duration::from_millis(u64::try_from(n - now).unwrap_or(0)));
        }
        if tokio::time::timeout(wait, rx.changed()).await.is_ok() {
            return Ok(());
        }
    }
}

/// Waits for a result as described in the [module docs](self).
pub(crate) async fn for_result(
    pool: &SqlitePool,
    results: &watch::Sender<u64>,
    now: impl Fn() -> i64,
    id: TaskId,
    timeout: Duration,
    poll: Duration,
) -> Result<Option<StoredResult>> {
    let deadline = Instant::now() + timeout;
    let mut rx = results.subscribe();
    loop {
        rx.borrow_and_update();
        if let Some(r) = get_result(pool, id, now()).await? {
            return Ok(Some(r));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        let _ = tokio::time::timeout(left.min(poll), rx.changed()).await;
    }
}
