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
//! `VACUUM` needs the table's owner (the role that ran the migrations), the database's owner,
//! a superuser, or on PostgreSQL 17 and later the `MAINTAIN` privilege. The store asks the
//! server at open ([`MAY_VACUUM`]); a role that may not vacuum gets one warning and the store
//! never tries (PostgreSQL 15 would answer each attempt with a warning and skip the table).
//!
//! [`PostgresOptions::vacuum_every`]: crate::PostgresOptions::vacuum_every

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::sql::{q, Sql};

/// Whether the connected role may vacuum the table `$1` (schema-qualified, quoted).
pub(crate) const MAY_VACUUM: &str = "\
SELECT pg_has_role(c.relowner, 'USAGE')
    OR pg_has_role((SELECT datdba FROM pg_database WHERE datname = current_database()), 'USAGE')
    OR CASE WHEN current_setting('server_version_num')::int >= 170000
            THEN has_table_privilege(c.oid, 'MAINTAIN') ELSE false END
FROM pg_class c WHERE c.oid = to_regclass($1)";

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
    /// `may_vacuum`: what [`MAY_VACUUM`] answered at open.
    pub(crate) fn new(every: u64, may_vacuum: bool) -> Arc<Self> {
        if every > 0 && !may_vacuum {
            tracing::warn!(
                "the store's role may not vacuum its task table (it does not own it); claims slow down as tasks are processed unless autovacuum keeps up: see PostgresOptions::vacuum_every"
            );
        }
        Arc::new(Self {
            every,
            since: AtomicU64::new(0),
            running: AtomicBool::new(false),
            refused: AtomicBool::new(!may_vacuum),
        })
    }

    /// Whether the store vacuums the table itself: a count set and a role that may.
    pub(crate) fn active(&self) -> bool {
        self.every > 0 && !self.refused.load(Ordering::Relaxed)
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
/// retry would not change (a privilege revoked after the check at open). PostgreSQL 15
/// answers a warning instead ("only table or database owner can vacuum it"), which the check
/// at open ([`MAY_VACUUM`]) spares.
fn is_refusal(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "42501")
}
