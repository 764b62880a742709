//! A single enqueue run on its caller's thread (see [`SqliteOptions::direct_enqueue`]).
//!
//! sqlx runs every statement of a connection on a thread of its own and hands rows back over
//! a channel: one `enqueue` of one task crosses threads twice, and on a machine with few cores
//! those hops cost more than SQLite's work (an `INSERT` and its WAL append, 20–40 µs). Here a
//! second write connection (rusqlite, on the same SQLite library as sqlx) runs that `INSERT`
//! where it is called.
//!
//! The writer and this connection never write at once within a process: a caller uses it only
//! while it holds the writer's connection (see `Writer::enqueue`), so the writer is idle
//! meanwhile. Another process's write may hold SQLite's lock: this connection does not wait for
//! it (`busy_timeout` 0); the call answers `None` having written nothing, and the enqueue
//! takes the writer's path, which waits and retries.
//!
//! The connection opens at first use with the writer's settings (`synchronous`, the WAL
//! checkpoint backstop). After an error other than busy (which leaves nothing written: the
//! `INSERT` is one statement in its own transaction) it is closed and the writer's path serves
//! single enqueues for [`REST`]; then a new connection is opened. The statements are the writer's own ([`INSERT`] for one row, the duplicate
//! lookups), so both paths store and answer the same.
//!
//! [`SqliteOptions::direct_enqueue`]: crate::SqliteOptions::direct_enqueue

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension};

use queue_core::{EnqueueOutcome, TaskId};

use crate::enqueue::{NewTask, INSERT};
use crate::options::Synchronous;

/// How long the direct path rests after an error other than busy (the writer's path serves
/// meanwhile), so a connection that cannot work is not tried on every call.
const REST: Duration = Duration::from_secs(1);

/// The connection for direct enqueues, opened at first use.
#[derive(Debug)]
pub(crate) struct Direct {
    path: PathBuf,
    synchronous: &'static str,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    conn: Option<Connection>,
    /// After an error: no direct enqueue before this.
    resting_until: Option<Instant>,
}

impl Direct {
    /// For the store at `path`; `synchronous` as the writer's (`None`: a temporary store, OFF).
    pub(crate) fn new(path: PathBuf, synchronous: Option<Synchronous>) -> Self {
        let synchronous = match synchronous {
            None => "OFF",
            Some(Synchronous::Normal) => "NORMAL",
            Some(Synchronous::Full) => "FULL",
        };
        Self {
            path,
            synchronous,
            state: Mutex::new(State::default()),
        }
    }

    /// Stores `task` (due at `now` unless it has an eta), blocking this thread for SQLite's
    /// work; the caller holds the writer's connection. `None` when nothing was written: the
    /// database was busy, or the connection failed (logged; it is closed, and the direct path
    /// rests for [`REST`]). The caller then takes the writer's path.
    pub(crate) fn enqueue(&self, task: &NewTask, now: i64) -> Option<EnqueueOutcome> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.resting_until.is_some_and(|t| Instant::now() < t) {
            return None;
        }
        let result = match state.conn.take() {
            Some(conn) => Ok(conn),
            None => self.open(),
        }
        .and_then(|conn| {
            let outcome = insert(&conn, task, now);
            state.conn = Some(conn);
            outcome
        });
        match result {
            Ok(outcome) => Some(outcome),
            Err(err) if is_busy(&err) => None,
            Err(err) => {
                tracing::warn!(
                    error = %err,
                    "SQLite direct enqueue failed; the writer takes single enqueues for a second"
                );
                state.conn = None;
                state.resting_until = Some(Instant::now() + REST);
                None
            }
        }
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::ZERO)?;
        conn.execute_batch(&format!(
            "PRAGMA synchronous = {}; PRAGMA foreign_keys = OFF; PRAGMA temp_store = MEMORY; \
             PRAGMA cache_size = -2048; PRAGMA wal_autocheckpoint = {};",
            self.synchronous,
            crate::checkpoint::BACKSTOP_PAGES,
        ))?;
        Ok(conn)
    }
}

/// The writer's one-row `INSERT`, then, if nothing was inserted, the holder of the id or key.
fn insert(conn: &Connection, t: &NewTask, now: i64) -> rusqlite::Result<EnqueueOutcome> {
    let run_at = t.eta.unwrap_or(now);
    let inserted = {
        let mut stmt = conn.prepare_cached(INSERT.get(1))?;
        let mut rows = stmt.query(params![
            t.id.as_bytes().as_slice(),
            t.queue,
            t.priority,
            if run_at <= now { 0_i64 } else { 1 },
            run_at,
            run_at,
            i64::from(t.deliveries),
            i64::from(t.attempts),
            i64::from(t.limit),
            t.unique_key,
            t.raw,
        ])?;
        let mut inserted = false;
        // Stepped to the end, so the statement (and its transaction) is done before the
        // answer.
        while rows.next()?.is_some() {
            inserted = true;
        }
        inserted
    };
    if inserted {
        return Ok(EnqueueOutcome::Enqueued(t.id));
    }
    Ok(EnqueueOutcome::Duplicate(holder(conn, t)?))
}

/// The id of the pending task that made `t` a duplicate (as `enqueue::holder`).
fn holder(conn: &Connection, t: &NewTask) -> rusqlite::Result<TaskId> {
    let same_id = conn
        .prepare_cached("SELECT 1 FROM tasks WHERE id = ?1")?
        .query_row([t.id.as_bytes().as_slice()], |_| Ok(()))
        .optional()?;
    if same_id.is_some() {
        return Ok(t.id);
    }
    if let Some(key) = &t.unique_key {
        let other: Option<Vec<u8>> = conn
            .prepare_cached("SELECT id FROM tasks WHERE unique_key = ?1")?
            .query_row([key.as_str()], |row| row.get(0))
            .optional()?;
        if let Some(bytes) = other {
            return TaskId::from_slice(&bytes).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, e.into())
            });
        }
    }
    Ok(t.id)
}

fn is_busy(err: &rusqlite::Error) -> bool {
    err.sqlite_error_code()
        .is_some_and(|c| matches!(c, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}
