//! Waiting for work and for results without hot loops.
//!
//! `wait_for_work` first probes the queue with one indexed read ([`PROBE`]: `SEARCH tasks USING
//! COVERING INDEX tasks_ready (queue=?)` for "anything ready?", and the first entry of
//! `tasks_timer (queue=?)` for "when is the next eta or lease expiry?"). If nothing is due it
//! sleeps on the store's `work` watch channel — bumped by this process's enqueues, retries,
//! defers, reschedules, requeues and follow-ups — with a timer of
//! `min(poll_interval, time to the next timer, time left)`. When the timer fires it looks at the
//! database's `-wal` file first: every commit, by any process, changes its size or modification
//! time, so while both stay the same (and no eta or lease expiry is due) nothing new can be
//! there and the probe is skipped — one `stat` call instead of a query. It still probes at least
//! every [`FULL_PROBE_EVERY`]. So work written by another process is seen within one poll
//! interval, while an idle consumer costs a `stat` per interval. Sooner, when the store watches
//! its files (the `files` module): a change to them that this process's writer did not make
//! ends the sleep, and the wait probes at once (the watch is on while some wait holds it). It returns when work may be there or the
//! timeout has passed; never at once, again and again, while nothing is due.
//!
//! `wait_result` works the same way on the `results` channel and a primary-key read, and is
//! woken by the file watch the same way.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sqlx::SqlitePool;
use tokio::time::Instant;

use queue_core::{Result, StoredResult, TaskId};

use crate::error::Context;
use crate::writer::Shared;

/// Is anything ready, and when is the next timer? (one round trip, two index seeks)
/// A paused queue has nothing ready and no timer (its resume wakes waiters in this process).
pub(crate) const PROBE: &str =
    "SELECT EXISTS (SELECT 1 FROM tasks WHERE queue = ?1 AND state = 0) \
     AND NOT EXISTS (SELECT 1 FROM paused_queues WHERE queue = ?1), \
     CASE WHEN EXISTS (SELECT 1 FROM paused_queues WHERE queue = ?1) THEN NULL ELSE \
     (SELECT wake_at FROM tasks WHERE queue = ?1 AND state <> 0 ORDER BY wake_at LIMIT 1) END";

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

/// The longest an idle wait goes without a real probe, whatever the `-wal` file says.
pub(crate) const FULL_PROBE_EVERY: Duration = Duration::from_secs(1);

/// The size and modification time of the database's `-wal` file: they change with every commit.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub(crate) struct WalStamp(Option<(u64, SystemTime)>);

impl WalStamp {
    pub(crate) fn read(wal: &Path) -> Self {
        Self(
            std::fs::metadata(wal)
                .ok()
                .and_then(|m| Some((m.len(), m.modified().ok()?))),
        )
    }
}

/// The `-wal` file of the database at `db`.
pub(crate) fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Waits as described in the [module docs](self). `wal` is the database's `-wal` file.
pub(crate) async fn for_work(
    pool: &SqlitePool,
    shared: &Shared,
    queue: &str,
    wal: &Path,
    timeout: Duration,
    poll: Duration,
) -> Result<()> {
    let deadline = queue_core::clock::deadline(timeout);
    let _watch = shared.hold_watch();
    let mut rx = shared.work.subscribe();
    let mut files = shared.files.subscribe();
    loop {
        rx.borrow_and_update();
        files.borrow_and_update();
        let stamp = WalStamp::read(wal);
        let probed_at = Instant::now();
        let (ready, next) = probe(pool, queue).await?;
        let now_ms = shared.now();
        if ready || next.is_some_and(|n| n <= now_ms) {
            return Ok(());
        }
        // Until the `-wal` file changes, nothing new can be due before `next`.
        let timer_at =
            next.map(|n| probed_at + Duration::from_millis(u64::try_from(n - now_ms).unwrap_or(0)));
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            let mut wait = left.min(poll);
            if let Some(at) = timer_at {
                wait = wait.min(at.saturating_duration_since(Instant::now()));
            }
            tokio::select! {
                biased;
                _ = rx.changed() => return Ok(()),
                _ = files.changed() => {
                    if changed_by_another_process(shared, wal, stamp) {
                        break;
                    }
                    continue;
                }
                () = tokio::time::sleep(wait) => {}
            }
            let timer_due = timer_at.is_some_and(|at| Instant::now() >= at);
            if timer_due || probed_at.elapsed() >= FULL_PROBE_EVERY || WalStamp::read(wal) != stamp
            {
                break;
            }
        }
    }
}

/// After a file-change wake-up: whether the `-wal` file differs from `since` and from how this
/// process's last commit left it (see the `files` module).
fn changed_by_another_process(shared: &Shared, wal: &Path, since: WalStamp) -> bool {
    let now = WalStamp::read(wal);
    now != since && !shared.wal_is_own(now)
}

/// Waits for a result as described in the [module docs](self).
pub(crate) async fn for_result(
    pool: &SqlitePool,
    shared: &Shared,
    wal: &Path,
    id: TaskId,
    timeout: Duration,
    poll: Duration,
) -> Result<Option<StoredResult>> {
    let deadline = queue_core::clock::deadline(timeout);
    let _watch = shared.hold_watch();
    let mut rx = shared.results.subscribe();
    let mut files = shared.files.subscribe();
    loop {
        rx.borrow_and_update();
        files.borrow_and_update();
        let stamp = WalStamp::read(wal);
        if let Some(r) = get_result(pool, id, shared.now()).await? {
            return Ok(Some(r));
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            tokio::select! {
                biased;
                _ = rx.changed() => break,
                _ = files.changed() => {
                    if changed_by_another_process(shared, wal, stamp) {
                        break;
                    }
                }
                () = tokio::time::sleep(left.min(poll)) => break,
            }
        }
    }
}
