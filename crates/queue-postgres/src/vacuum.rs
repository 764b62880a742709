//! Vacuuming the task table from the store, so that claims do not slow down as tasks are
//! processed ([`PostgresOptions::vacuum_every`]).
//!
//! A claim moves a row out of the ready state and a completion deletes it; the entries of the
//! partial index `tasks_ready` that pointed at them stay until a vacuum removes them, and the
//! claim's index scan starts at the head of the queue, where they are. Autovacuum with its
//! defaults (a look every minute, a table vacuumed once a fifth of it is dead) lets hundreds of
//! thousands of them gather: with 1,000,000 tasks waiting, the claim's cost per row grew from
//! 14 µs to 80–100 µs over a run of 1,000,000 tasks (BENCHMARKS.md, "Decay"). So the store
//! counts the tasks it finishes and, every `vacuum_every` of them, runs
//! `VACUUM (SKIP_LOCKED) tasks` on a pool connection in the background: never two at once
//! from one store, and none while another session vacuums the table.
//!
//! `VACUUM` needs the table's owner (the role that ran the migrations). A role that may not
//! vacuum gets one warning, and the store stops trying.
//!
//! [`PostgresOptions::vacuum_every`]: crate::PostgresOptions::vacuum_every

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::sql::{q, Sql};

/// The longest a background vacuum may run before the store stops waiting for it (the
/// server carries on; the store's next vacuum waits for the count again).
const VACUUM_TIMEOUT: Duration = Duration::from_secs(600);

/// See the [module docs](self).
#[derive(Debug)]
pub(crate) struct Vacuum {
    /// Finished tasks between two vacuums; 0: never.
    every: u64,
    /// Finished since the last vacuum started.
    since: AtomicU64,
    running: AtomicBool,
    /// Set when the server refused (the role does not own the table): stop asking.
    refused: AtomicBool,
}

impl Vacuum {
    pub(crate) fn new(every: u64) -> Arc<Self> {
        Arc::new(Self {
            every,
            since: AtomicU64::new(0),
            running: AtomicBool::new(false),
            refused: AtomicBool::new(false),
        })
    }

    /// Counts `finished` tasks; starts a vacuum in the background when they reach the
    /// threshold and none is running.
    pub(crate) fn count(self: &Arc<Self>, finished: u64, pool: &PgPool, sql: &Arc<Sql>) {
        if self.every == 0 || finished == 0 || self.refused.load(Ordering::Relaxed) {
            return;
        }
        let since = self.since.fetch_add(finished, Ordering::Relaxed) + finished;
        if since < self.every || self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        self.since.store(0, Ordering::Relaxed);
        let (this, pool, sql) = (self.clone(), pool.clone(), sql.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let ran = tokio::time::timeout(
                VACUUM_TIMEOUT,
                sqlx::query(q(&sql.vacuum_tasks)).execute(&pool),
            )
            .await;
            match ran {
                Ok(Ok(_)) => tracing::debug!(took = ?started.elapsed(), "vacuumed the task table"),
                Ok(Err(err)) if is_refusal(&err) => {
                    this.refused.store(true, Ordering::Relaxed);
                    tracing::warn!(error = %err,
                        "the store may not vacuum its task table (the role does not own it); claims slow down as tasks are processed unless autovacuum keeps up: see PostgresOptions::vacuum_every");
                }
                Ok(Err(err)) => tracing::warn!(error = %err, "could not vacuum the task table"),
                Err(_) => tracing::warn!(
                    timeout = ?VACUUM_TIMEOUT,
                    "vacuuming the task table took too long; the store stopped waiting"
                ),
            }
            this.running.store(false, Ordering::Release);
        });
    }
}

/// Whether the server refused the vacuum for want of privilege (SQLSTATE 42501), which a
/// retry would not change. PostgreSQL 15 answers a warning instead ("only table or database
/// owner can vacuum it") and skips the table: that case costs one statement per vacuum.
fn is_refusal(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "42501")
}
