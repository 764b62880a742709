//! Skiff's embedded store: the [`Storage`](queue_core::Storage) contract on one SQLite file.
//!
//! ```no_run
//! use std::sync::Arc;
//! use queue_core::{Queue, Storage};
//! use queue_sqlite::SqliteStorage;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> queue_core::Result<()> {
//! let store: Arc<dyn Storage> = Arc::new(SqliteStorage::connect("sqlite://skiff.db").await?);
//! let queue = Queue::new(store);
//! # let _ = queue;
//! # Ok(()) }
//! ```
//!
//! # How it works
//!
//! * **File and schema** are created on first use; the schema is versioned (embedded
//!   migrations, `skiff_meta.schema_version`) and a store written by a newer Skiff is refused
//!   with [`Error::NewerSchema`](queue_core::Error::NewerSchema).
//! * **WAL** journal, `synchronous=NORMAL` (or FULL, see [`SqliteOptions::synchronous`]), a
//!   generous busy timeout, and `BEGIN IMMEDIATE` for every write transaction: several worker
//!   and producer processes can share one file without "database is locked" failures.
//! * **Group commit**: all writes of a store go through one writer task that commits whatever
//!   is queued in one transaction (see the `writer` module). Concurrent `enqueue` calls from
//!   many Tokio tasks become a few transactions and a few multi-row `INSERT`s. A lone
//!   single-task `enqueue` (a web handler's) instead runs its `INSERT` on the calling thread,
//!   on a connection of its own (see [`SqliteOptions::direct_enqueue`]): no thread hop.
//! * **Leases**: `fetch` claims a batch in one `UPDATE … WHERE seq IN (SELECT … ORDER BY
//!   priority DESC, seq LIMIT n) RETURNING …`, served by the partial index `tasks_ready`; due
//!   etas and expired leases are promoted in the same transaction from `tasks_timer`. Every
//!   hot statement is checked with `EXPLAIN QUERY PLAN` ([`SqliteStorage::explain`]) so its cost
//!   depends on the batch size, not on the backlog or the history.
//! * **Wake-ups**: within a process, writes wake waiting consumers and result waiters at once
//!   (watch channels). Across processes, a file-change watch on the database's directory
//!   (inotify on Linux; see the `files` module) wakes them when another process commits, and
//!   they then run a cheap indexed probe; without the watch
//!   ([`watch_files`](SqliteOptions::watch_files)) they probe every
//!   [`poll_interval`](SqliteOptions::poll_interval) (25 ms by default). They sleep no longer
//!   than until the next eta or lease expiry.
//! * **Checkpoints** of the WAL run in the background every 250 ms on a read connection
//!   (`PRAGMA wal_checkpoint(PASSIVE)`), never inside a commit, so no enqueue or claim waits
//!   for the copy and its fsync.
//! * **Revocation checks** (once per fetched batch) cost nothing while no revocation exists:
//!   each claim also reads whether any does (a column of its `RETURNING`), so a revocation
//!   written by any process before a batch is claimed applies to it.
//! * **Transactional enqueue**: [`EnqueueIn`] stores tasks with the application's own
//!   transaction on the same file (`call.enqueue_in(&mut tx, &queue)`), so a task exists if
//!   and only if that transaction commits.
//! * **Time** comes from the store's [`Clock`](queue_core::Clock), bound into SQL as
//!   milliseconds; SQLite's own clock is never read.

#![doc(test(attr(deny(warnings))))]

mod admin;
mod checkpoint;
mod complete;
mod control;
mod direct;
mod enqueue;
mod error;
mod explain;
mod fetch;
mod files;
mod options;
mod plane;
mod schema;
mod sql;
mod storage;
mod tx;
mod wait;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use sqlx::SqlitePool;

use queue_core::{Result, TaskId};

pub use explain::QueryPlan;
pub use options::{SqliteOptions, Synchronous};
pub use schema::migrate::SCHEMA_VERSION;
pub use tx::EnqueueIn;

use control::{Arg, Exec};
use schema::TempFile;
use writer::{Shared, Writer};

/// Skiff's SQLite store. See the [crate docs](crate).
///
/// Dropping the store stops its writer task once queued writes are done; every write whose
/// call returned `Ok` is already committed.
#[derive(Debug)]
pub struct SqliteStorage {
    shared: Arc<Shared>,
    writer: Writer,
    pool: SqlitePool,
    poll: Duration,
    path: PathBuf,
    /// The `-wal` file, watched by idle waits (see the `wait` module).
    wal: PathBuf,
    _temp: Option<TempFile>,
}

/// Counters of the group-commit writer ([`SqliteStorage::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriterStats {
    /// Write transactions committed.
    pub transactions: u64,
    /// Write operations (enqueue calls, fetches, completion batches…) they carried.
    pub operations: u64,
    /// Times a write met a busy database and was tried again.
    pub busy_retries: u64,
    /// Single enqueues run on their caller's thread, each its own transaction (see
    /// [`SqliteOptions::direct_enqueue`]); counted in `transactions` and `operations` too.
    pub direct_enqueues: u64,
}

impl SqliteStorage {
    /// Opens (creating if needed) the store at a `sqlite:` URL: `sqlite://relative.db`,
    /// `sqlite:///abs/path.db`, `sqlite::memory:`, with optional parameters such as
    /// `?synchronous=full` (see [`SqliteOptions::from_url`]).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`](queue_core::Error::InvalidInput) for a bad URL, a missing
    /// directory or a file that is not a SQLite database;
    /// [`Error::NewerSchema`](queue_core::Error::NewerSchema) for a store written by a newer
    /// Skiff; [`Error::Storage`](queue_core::Error::Storage) when SQLite refuses the file.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> queue_core::Result<()> {
    /// use queue_core::Storage;
    /// use queue_sqlite::SqliteStorage;
    ///
    /// let store = SqliteStorage::connect("sqlite::memory:").await?;
    /// assert_eq!(store.backend(), "sqlite");
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<Self> {
        Self::open(SqliteOptions::from_url(url)?).await
    }

    /// Opens (creating if needed) the store described by `options`.
    ///
    /// Must be called within a Tokio runtime: it starts the store's writer task (outside one
    /// it returns [`Error::InvalidInput`](queue_core::Error::InvalidInput)).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> queue_core::Result<()> {
    /// use std::sync::Arc;
    /// use queue_core::{ManualClock, Storage};
    /// use queue_sqlite::{SqliteOptions, SqliteStorage};
    ///
    /// let clock = ManualClock::new();
    /// let store = SqliteStorage::open(SqliteOptions::in_memory().clock(Arc::new(clock.clone()))).await?;
    /// assert_eq!(store.clock().now(), queue_core::Clock::now(&clock));
    /// # Ok(()) }
    /// ```
    pub async fn open(options: SqliteOptions) -> Result<Self> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(queue_core::Error::InvalidInput(
                "the SQLite store must be opened inside a Tokio runtime (it runs a writer task)"
                    .into(),
            ));
        }
        let opened = schema::open(&options).await?;
        let wal = wait::wal_path(&opened.path);
        // A store in a temp file (`sqlite::memory:`) has no other process to hear from.
        let watched = options.watch_files && opened.temp.is_none();
        let shared = Arc::new(if watched {
            Shared::watching(options.clock.clone(), wal.clone())
        } else {
            Shared::new(options.clock.clone())
        });
        if watched {
            // The watch lives in `shared`; it is on while some wait holds it.
            let _ = files::spawn(&opened.path, &shared);
        }
        let direct = options.direct_enqueue.then(|| {
            let synchronous = opened.temp.is_none().then_some(options.synchronous);
            direct::Direct::new(opened.path.clone(), synchronous)
        });
        let writer = Writer::spawn(opened.writer, shared.clone(), options.max_batch, direct);
        checkpoint::spawn(opened.pool.clone(), Arc::downgrade(&shared));
        Ok(Self {
            shared,
            writer,
            pool: opened.pool,
            poll: options.poll_interval,
            wal,
            path: opened.path,
            _temp: opened.temp,
        })
    }

    /// A pool of connections to the store's file, for an application's own queries on it, such
    /// as the transaction that [`EnqueueIn`] stores tasks in. It is the pool the store reads
    /// with; its writes wait for the store's writer like any other process's.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = queue_sqlite::SqliteStorage::connect("sqlite::memory:").await?;
    /// let tx = store.pool().begin_with("BEGIN IMMEDIATE").await?;
    /// // … the application's writes and `call.enqueue_in(&mut tx, &queue)` …
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The database file (a temporary file for `sqlite::memory:`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The writer's counters so far.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> queue_core::Result<()> {
    /// let store = queue_sqlite::SqliteStorage::connect("sqlite::memory:").await?;
    /// assert_eq!(store.stats().transactions, 0);
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> WriterStats {
        let c = &self.shared.counters;
        WriterStats {
            transactions: c.transactions.load(Ordering::Relaxed),
            operations: c.operations.load(Ordering::Relaxed),
            busy_retries: c.busy_retries.load(Ordering::Relaxed),
            direct_enqueues: c.direct_enqueues.load(Ordering::Relaxed),
        }
    }

    /// Stores `raw` as a ready task of `queue` without decoding it, the way a corrupted or
    /// foreign row would look. For tests of how consumers deal with garbage: `fetch`
    /// dead-letters it with the reason.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> queue_core::Result<()> {
    /// use std::time::Duration;
    /// use queue_core::{Storage, TaskId};
    ///
    /// let store = queue_sqlite::SqliteStorage::connect("sqlite::memory:").await?;
    /// store.insert_raw("default", TaskId::new(), b"not msgpack".to_vec()).await?;
    /// assert!(store.fetch("default", 10, Duration::from_secs(30)).await?.is_empty());
    /// assert_eq!(store.counts(None).await?.dead, 1);
    /// # Ok(()) }
    /// ```
    pub async fn insert_raw(&self, queue: &str, id: TaskId, raw: Vec<u8>) -> Result<()> {
        let limit = i64::from(queue_core::DELIVERY_MARGIN + 1);
        let exec = Exec::new(
            "INSERT OR REPLACE INTO tasks (id, queue, priority, state, run_at, wake_at, deliveries, \
             attempts, max_deliveries, unique_key, raw) VALUES (?1, ?2, 0, 0, ?3, ?3, 0, 0, ?4, NULL, ?5)",
            vec![Arg::id(id), Arg::Text(queue.to_owned()), Arg::Now, Arg::Int(limit), Arg::Blob(raw)],
        )
        .waking();
        self.writer.call(exec).await.map(|_| ())
    }

    fn now(&self) -> i64 {
        self.shared.now()
    }
}
