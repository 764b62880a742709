//! WAL checkpoints off the hot path.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses the threshold: that commit
//! copies the WAL into the database file and, with `synchronous=NORMAL`, waits for an fsync of
//! each, so one task in a few hundred would wait milliseconds for its enqueue, claim or
//! completion. Here the writer's automatic checkpoint is set far out (a backstop only,
//! [`BACKSTOP_PAGES`]) and a background task runs `PRAGMA wal_checkpoint(PASSIVE)` on a read
//! connection every [`EVERY`] when something was committed. A passive checkpoint never blocks
//! the writer: it copies what no reader still needs, and the writer keeps appending meanwhile.
//!
//! The task holds only a weak reference to the store, and ends once the store is dropped.

use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::Duration;

use sqlx::SqlitePool;

use crate::writer::Shared;

/// How often the checkpointer looks for new commits.
pub(crate) const EVERY: Duration = Duration::from_millis(250);

/// The writer's own automatic checkpoint threshold, in pages: only reached if the background
/// checkpointer cannot keep up (or is not running).
pub(crate) const BACKSTOP_PAGES: u32 = 16_384;

/// Starts the checkpointer for the store whose shared state is `shared`.
pub(crate) fn spawn(pool: SqlitePool, shared: Weak<Shared>) {
    tokio::spawn(async move {
        let mut seen = 0;
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let commits = shared.counters.transactions.load(Ordering::Relaxed);
            drop(shared);
            if commits == seen {
                continue;
            }
            seen = commits;
            if let Err(err) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                tracing::debug!(error = %err, "SQLite WAL checkpoint failed; trying again later");
            }
        }
    });
}
