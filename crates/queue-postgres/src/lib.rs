//! Skiff's PostgreSQL store: [`PostgresStorage`], the [`Storage`](queue_core::Storage)
//! contract on the database most services already run, and **transactional enqueue**: a task
//! stored inside the application's own transaction exists if and only if that transaction
//! commits ([`EnqueueIn`]).
//!
//! ```no_run
//! # #![allow(dead_code)]
//! use std::sync::Arc;
//! use queue_core::{Queue, Storage};
//! use queue_postgres::{PostgresOptions, PostgresStorage};
//!
//! # async fn demo() -> queue_core::Result<()> {
//! // The simple way: defaults, tables in schema `skiff`.
//! let _simple = PostgresStorage::connect("postgres://app:secret@localhost/app").await?;
//! // Or with options.
//! let store = PostgresStorage::open(
//!     PostgresOptions::new("postgres://app:secret@db.internal/app?sslmode=require")?
//!         .schema("jobs")?
//!         .pool_size(16),
//! )
//! .await?;
//! let queue = Queue::new(Arc::new(store) as Arc<dyn Storage>);
//! # let _ = queue; Ok(()) }
//! ```
//!
//! # How it works
//!
//! * **Schema.** Every table lives in one schema (`skiff` by default, see
//!   [`PostgresOptions::schema`]), created at connect by embedded, versioned migrations under an
//!   advisory lock, so any number of workers may start at once; a schema written by a newer
//!   Skiff is refused (see the `schema` module). Tables: `tasks` (pending work only), `results`,
//!   `dead`, `locks`, `rates`, `revocations`, `skiff_meta`, `skiff_migrations`. Times are
//!   milliseconds since the epoch from the store's [`Clock`](queue_core::Clock).
//! * **Claims** are one statement: `FOR UPDATE SKIP LOCKED` on the partial index
//!   `tasks_ready (queue, priority DESC, seq) WHERE state = 0`, with due etas and expired
//!   leases taken in the same statement (see the `fetch` module). Fetchers in any number of
//!   processes never wait for each other and never share a task. The read of ready tasks runs
//!   in the schema's function `claim_ready`, planned with sorting off: statistics taken while a
//!   queue was nearly empty cannot make a claim read and sort the whole of a later backlog. The
//!   function names its schema (set when it was created), so a store's schema cannot be
//!   renamed; a role that uses a store it does not own needs `EXECUTE` on the function (PUBLIC
//!   has it unless the database's default privileges take it away).
//! * **Enqueues** of tasks that cannot clash (fresh ids, no unique key) are plain `INSERT`s; a
//!   clash fails the statement as a whole and the `ON CONFLICT` statement runs instead (see the
//!   `enqueue` module). An application's transaction always gets the `ON CONFLICT` statement.
//! * **Completions** of a batch are one statement too (two when a result row clashes, see the
//!   `complete` module), fenced by each delivery's lease token:
//!   results, retries, dead letters and follow-ups (next pipeline stages, chord callbacks)
//!   commit together or not at all (see the `complete` module). Finished tasks are deleted from
//!   `tasks` (results live in their own table), so the hot table and its indexes hold pending
//!   work only and autovacuum keeps up with a few percent of churn.
//! * **Batches travel as arrays** (`unnest($1::uuid[], …)`): one statement text per
//!   operation, whatever the batch size, prepared once per connection.
//! * **Wake-ups** by `LISTEN/NOTIFY`: one listener connection per store wakes its waits; while
//!   it is down they poll. An application's transaction notifies in its own statement
//!   (delivered at commit); the store's own writes notify after their commit, from the
//!   notifier's connection, and only queues and results that another store registered a wait
//!   on (see the `notify`, `notifier` and `wait` modules).
//! * **Pool.** [`PostgresOptions::pool_size`] connections (10 by default) plus the listener's;
//!   a call that finds none free within [`PostgresOptions::acquire_timeout`] fails with an error
//!   that says whether the pool was exhausted or the server unreachable. After a server restart
//!   the pool reconnects on its own; calls made while it is down fail with
//!   [`Error::Storage`](queue_core::Error::Storage) (transient), and leased tasks come back when
//!   their leases run out: nothing is lost.
//! * **Dead connections.** Every call fails after [`PostgresOptions::query_timeout`] (30 s by
//!   default) without an answer, and the listener checks its `LISTEN` connection with a round
//!   trip after 5 s without a notification, reconnecting if it does not answer within that
//!   bound. sqlx sets no read timeout, so without these a connection that died silently (a
//!   network partition after which a NAT or firewall forgot it) would keep a call, or the
//!   wake-ups, waiting forever. After a call has timed out, the connections idle in the pool
//!   since before it are replaced when next taken, not pinged first (each ping would wait out
//!   the bound again; see the `timeout` module).
//! * **TLS** as in libpq URLs: `?sslmode=require` (or `verify-ca`, `verify-full`, with
//!   `sslrootcert=…`), through rustls.
//! * **Secrets.** No error message, log line or `Debug` output shows the URL's password (see
//!   [`redact_url`]).
//!
//! # Transactional enqueue
//!
//! ```no_run
//! # #![allow(dead_code)]
//! use std::time::Duration;
//! use queue_core::{Queue, Task};
//! use queue_postgres::EnqueueIn;
//! # use queue_core::{TaskContext, TaskError};
//! # use futures::future::BoxFuture;
//! # struct SendReceipt;
//! # impl Task for SendReceipt {
//! #     const NAME: &'static str = "send_receipt";
//! #     type Args = (i64,);
//! #     type Output = ();
//! #     fn run(_: TaskContext, _: (i64,)) -> BoxFuture<'static, Result<(), TaskError>> {
//! #         Box::pin(async { Ok(()) })
//! #     }
//! # }
//!
//! # async fn demo(queue: Queue, app: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
//! let mut tx = app.begin().await?;
//! let order_id: i64 = sqlx::query_scalar("INSERT INTO orders (total) VALUES (42) RETURNING id")
//!     .fetch_one(&mut *tx)
//!     .await?;
//! // Stored in the same transaction as the order: both commit, or neither does.
//! let receipt = SendReceipt::call((order_id,)).enqueue_in(&mut tx, &queue).await?;
//! tx.commit().await?;
//! receipt.get(Duration::from_secs(30)).await?;
//! # Ok(()) }
//! ```

#![doc(test(attr(deny(warnings))))]

mod admin;
mod complete;
mod control;
mod enqueue;
mod error;
mod explain;
mod fetch;
mod notifier;
mod notify;
mod options;
mod plane;
mod redact;
mod schema;
mod single;
mod sql;
mod storage;
#[cfg(feature = "testing")]
pub mod testing;
mod timeout;
mod tx;
mod vacuum;
mod wait;

use std::sync::Arc;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres};
use tokio_util::sync::{CancellationToken, DropGuard};

use queue_core::storage::RevocationCache;
use queue_core::{Clock, Error, Result, TaskId};

pub(crate) use error::PoolInfo;
pub use explain::QueryPlan;
pub use options::{
    PostgresOptions, DEFAULT_QUERY_TIMEOUT, DEFAULT_SCHEMA, DEFAULT_VACUUM_EVERY, MAX_SCHEMA_LEN,
};
pub use redact::redact_url;
pub use schema::SCHEMA_VERSION;
pub use tx::EnqueueIn;

use crate::notify::Waiters;
use crate::sql::Sql;

/// Skiff's PostgreSQL store. See the [crate docs](crate).
///
/// Dropping the store stops its listener task and lets its pool close once the calls in flight
/// are done.
pub struct PostgresStorage {
    pool: PgPool,
    info: PoolInfo,
    sql: Arc<Sql>,
    schema: String,
    channel: String,
    clock: Arc<dyn Clock>,
    waiters: Arc<Waiters>,
    poll: Duration,
    /// The longest one call waits for PostgreSQL's answers (`PostgresOptions::query_timeout`).
    bound: Arc<timeout::Bound>,
    /// "No revocation exists" as last read (see `check_revoked`).
    revocations: RevocationCache,
    /// Counts finished tasks and vacuums the task table every so many (see `vacuum`).
    vacuum: Arc<vacuum::Vacuum>,
    /// The connection kept for single-task enqueues (see the `single` module).
    single: single::SingleConn,
    /// Tells other processes' waits about committed writes (see the `notifier` module).
    notifier: notifier::Notifier,
    _listener: Option<DropGuard>,
}

impl std::fmt::Debug for PostgresStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStorage")
            .field("target", &self.info.target)
            .field("schema", &self.schema)
            .field("pool_size", &self.info.size)
            .finish_non_exhaustive()
    }
}

impl PostgresStorage {
    /// Connects to the database at a `postgres://` or `postgresql://` URL (see
    /// [`PostgresOptions::new`] for its parameters), creating or upgrading the schema.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a bad URL; [`Error::NewerSchema`] for a schema written by a
    /// newer Skiff; [`Error::Storage`] when the server cannot be reached in time, refuses the
    /// login, or the role may not create the schema.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #![allow(dead_code)]
    /// # async fn demo() -> queue_core::Result<()> {
    /// use queue_core::Storage;
    /// use queue_postgres::PostgresStorage;
    ///
    /// let store = PostgresStorage::connect("postgres://app@localhost/app?schema=jobs").await?;
    /// assert_eq!(store.backend(), "postgres");
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<Self> {
        Self::open(PostgresOptions::new(url)?).await
    }

    /// Opens the store described by `options`: connects, migrates, and starts the listener.
    ///
    /// Must be called within a Tokio runtime: it starts the store's listener task (outside one
    /// it returns [`Error::InvalidInput`]).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #![allow(dead_code)]
    /// # async fn demo() -> queue_core::Result<()> {
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use queue_core::ManualClock;
    /// use queue_postgres::{PostgresOptions, PostgresStorage};
    ///
    /// let clock = ManualClock::new();
    /// let options = PostgresOptions::new("postgres://app@localhost/app")?
    ///     .schema("test_jobs")?
    ///     .acquire_timeout(Duration::from_secs(2))
    ///     .clock(Arc::new(clock.clone()));
    /// let store = PostgresStorage::open(options).await?;
    /// assert_eq!(store.schema(), "test_jobs");
    /// # Ok(()) }
    /// ```
    pub async fn open(options: PostgresOptions) -> Result<Self> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::InvalidInput(
                "the PostgreSQL store must be opened inside a Tokio runtime (it runs a listener task)"
                    .into(),
            ));
        }
        let connect = options.connect.clone();
        let info = PoolInfo {
            size: options.pool_size,
            timeout: options.acquire_timeout,
            target: target(&options),
        };
        let bound = timeout::Bound::new(options.query_timeout);
        let pool = bound
            .check_idle(PgPoolOptions::new())
            .max_connections(options.pool_size)
            .min_connections(0)
            .acquire_timeout(options.acquire_timeout)
            .idle_timeout(Duration::from_secs(300))
            .connect_lazy_with(connect.clone());
        let mut may_vacuum = false;
        {
            let mut conn = pool
                .acquire()
                .await
                .map_err(|e| error::storage("connect", e, Some((&pool, &info))))?;
            schema::migrate(&mut conn, &options.schema, options.migrate).await?;
            if options.vacuum_every > 0 {
                let table = format!("{}.tasks", sql::quote_ident(&options.schema));
                let may: Option<bool> = sqlx::query_scalar(vacuum::MAY_VACUUM)
                    .bind(table)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(|e| error::storage("check the right to vacuum", e, None))?;
                may_vacuum = may.unwrap_or(false);
            }
        }
        let inbox = Arc::new(notifier::Inbox::new());
        let waiters = Arc::new(Waiters::new(inbox.clone()));
        let channel = notify::channel(&options.schema);
        let sql = Arc::new(Sql::new(&options.schema));
        let listener = if options.listen {
            let stop = CancellationToken::new();
            let (ready_tx, ready) = tokio::sync::oneshot::channel();
            notify::spawn(
                notify::ListenConfig {
                    connect,
                    acquire_timeout: options.acquire_timeout,
                    timeout: options.query_timeout,
                    bound: bound.clone(),
                    watched_queues: sql.watched_queues.clone(),
                },
                channel.clone(),
                waiters.clone(),
                stop.clone(),
                ready_tx,
            );
            // The first attempt to listen, whatever its outcome: a store that can LISTEN is
            // woken by notifications from its first wait on.
            let _ = ready.await;
            Some(stop.drop_guard())
        } else {
            None
        };
        let notifier = notifier::Notifier::spawn(
            notifier::Config {
                connect: options.connect.clone(),
                connect_timeout: options.acquire_timeout,
                query_timeout: options.query_timeout,
                sql: sql.clone(),
                channel: channel.clone(),
            },
            inbox,
        );
        Ok(Self {
            single: single::SingleConn::new(options.connect.clone(), options.acquire_timeout),
            notifier,
            pool,
            info,
            sql,
            schema: options.schema,
            channel,
            clock: options.clock,
            waiters,
            poll: options.poll_interval,
            bound,
            revocations: RevocationCache::new(),
            vacuum: vacuum::Vacuum::new(options.vacuum_every, may_vacuum),
            _listener: listener,
        })
    }

    /// The schema the store's tables live in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The store's connection pool: for an application's own queries on the same database,
    /// such as the transaction that [`EnqueueIn`] stores tasks in.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #![allow(dead_code)]
    /// # async fn demo(store: queue_postgres::PostgresStorage) -> Result<(), sqlx::Error> {
    /// let tx = store.pool().begin().await?;
    /// // … the application's writes and `call.enqueue_in(&mut tx, &queue)` …
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Whether the store vacuums its task table itself
    /// ([`PostgresOptions::vacuum_every`] is not 0, and its role may vacuum the table: it owns
    /// it or the database, is a superuser, or holds `MAINTAIN` on PostgreSQL 17+). A store
    /// that does not leaves the table to autovacuum, which must then be tuned to keep up.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #![allow(dead_code)]
    /// # async fn demo(store: queue_postgres::PostgresStorage) {
    /// if !store.vacuums_itself() {
    ///     eprintln!("tune autovacuum for {}.tasks", store.schema());
    /// }
    /// # }
    /// ```
    pub fn vacuums_itself(&self) -> bool {
        self.vacuum.active()
    }

    /// Whether the store's `LISTEN` connection is up (waits are woken by notifications rather
    /// than by polling).
    pub fn is_listening(&self) -> bool {
        *self.waiters.listening.borrow()
    }

    /// Stores `raw` as a ready task of `queue` without decoding it, the way a corrupted or
    /// foreign row would look. For tests of how consumers deal with garbage: `fetch`
    /// dead-letters it with the reason.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #![allow(dead_code)]
    /// # async fn demo(store: queue_postgres::PostgresStorage) -> queue_core::Result<()> {
    /// use std::time::Duration;
    /// use queue_core::{Storage, TaskId};
    ///
    /// store.insert_raw("default", TaskId::new(), b"not msgpack".to_vec()).await?;
    /// assert!(store.fetch("default", 10, Duration::from_secs(30)).await?.is_empty());
    /// assert_eq!(store.counts(None).await?.dead, 1);
    /// # Ok(()) }
    /// ```
    pub async fn insert_raw(&self, queue: &str, id: TaskId, raw: Vec<u8>) -> Result<()> {
        error::check_text("queue name", queue)?;
        let limit = i32::try_from(queue_core::DELIVERY_MARGIN + 1).unwrap_or(i32::MAX);
        sqlx::query(sql::q(&self.sql.insert_raw))
            .bind(id.as_uuid())
            .bind(queue)
            .bind(self.now())
            .bind(limit)
            .bind(raw)
            .execute(&self.pool)
            .await
            .map_err(self.fail("insert a raw task"))?;
        self.waiters.work.wake(&queue.to_owned());
        Ok(())
    }

    fn now(&self) -> i64 {
        queue_core::clock::to_millis(self.clock.now())
    }

    /// Runs one call of the store (`what` names it in the error) within the query timeout
    /// (see the `timeout` module).
    fn timed<'a, T: 'a>(
        &'a self,
        what: &'static str,
        call: impl std::future::Future<Output = Result<T>> + 'a,
    ) -> impl std::future::Future<Output = Result<T>> + 'a {
        self.bound.run(what, &self.info, call)
    }

    /// A pooled connection, or an error that says why there is none.
    ///
    /// sqlx's `acquire` future is about 14 KB (it holds the path that opens a connection); it
    /// is boxed here so that it does not make every call's future that large, single-task
    /// enqueues included, which do not take a pooled connection.
    async fn conn(&self, what: &'static str) -> Result<PoolConnection<Postgres>> {
        Box::pin(self.pool.acquire()).await.map_err(self.fail(what))
    }

    /// Maps a sqlx error of doing `what` (with the pool's state for timeouts).
    fn fail(&self, what: &'static str) -> impl FnOnce(sqlx::Error) -> Error + '_ {
        move |e| error::storage(what, e, Some((&self.pool, &self.info)))
    }
}

/// `host:port/database` of the options, for messages.
fn target(options: &PostgresOptions) -> String {
    let c = &options.connect;
    let host = match c.get_socket() {
        Some(socket) => socket.display().to_string(),
        None => c.get_host().to_owned(),
    };
    format!(
        "{host}:{}/{}",
        c.get_port(),
        c.get_database().unwrap_or(c.get_username())
    )
}
