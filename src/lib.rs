//! # Skiff
//!
//! An async-first task queue for Tokio: typed tasks with results, delays and etas, retries with
//! backoff, priorities, periodic tasks, pipelines, locks, rate limits and revocation, on an
//! embedded SQLite file (the default), Redis or PostgreSQL. Delivery is at-least-once: a task leaves the
//! store only when its outcome is written, so a worker that dies loses nothing.
//!
//! ```
//! use std::time::Duration;
//! use skiff::prelude::*;
//!
//! #[skiff::task(retries = 3, retry_delay = "1s")]
//! async fn add(a: i64, b: i64) -> Result<i64, TaskError> {
//!     Ok(a + b)
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), skiff::Error> {
//!     let queue = Queue::connect("sqlite::memory:").await?; // or "sqlite://skiff.db", "redis://…"
//!     let handle = add(2, 3).enqueue(&queue).await?;
//!
//!     let consumer = Consumer::builder(queue.clone()).workers(8).register(add).build()?;
//!     let running = consumer.spawn();
//!     assert_eq!(handle.get(Duration::from_secs(5)).await?, 5);
//!     running.shutdown(Duration::from_secs(5)).await?;
//!     Ok(())
//! }
//! ```
//!
//! The crates behind it: `queue-core` (envelope, Storage trait, typed tasks), `queue-runtime`
//! (the consumer), `queue-sqlite`, `queue-redis`, `queue-postgres` and `queue-macros`
//! (`#[task]`).

#![doc(test(attr(deny(warnings))))]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use queue_core::*;
pub use queue_runtime::*;

#[cfg(feature = "macros")]
pub use queue_macros::task;

#[cfg(feature = "dashboard")]
pub mod dashboard;
pub mod metrics;
#[cfg(feature = "worker")]
pub mod worker;
pub use metrics::{health, Health, HealthOptions, Metrics};

/// The SQLite store (feature `sqlite`, on by default).
#[cfg(feature = "sqlite")]
pub use queue_sqlite as sqlite;

/// The Redis store (feature `redis`).
#[cfg(feature = "redis")]
pub use queue_redis as redis;

/// The PostgreSQL store (feature `postgres`), with enqueue inside the application's own
/// transaction ([`postgres::EnqueueIn`]).
#[cfg(feature = "postgres")]
pub use queue_postgres as postgres;

/// The names most programs need: `use skiff::prelude::*;`.
pub mod prelude {
    pub use crate::QueueConnect;
    pub use queue_core::{Queue, Task, TaskContext, TaskError, TaskHandle};
    pub use queue_runtime::{crontab, Consumer, Schedule};

    #[cfg(feature = "macros")]
    pub use queue_macros::task;
}

/// Opens the store at `url` and returns a queue on it.
///
/// * `sqlite://path.db`, `sqlite:///abs/path.db`, `sqlite::memory:` — the embedded store
///   (feature `sqlite`); the file and its schema are created on first use.
/// * `redis://host:port/db`, `rediss://…` — Redis (feature `redis`);
///   `redis+cluster://host:port/` — a Redis Cluster, from a seed node.
/// * `postgres://user:password@host:port/database`, `postgresql://…` — PostgreSQL (feature
///   `postgres`); parameters such as `?sslmode=require&schema=jobs` (see
///   `PostgresOptions::new` in the `postgres` module).
/// * `memory://` — process memory, for tests.
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), skiff::Error> {
/// let queue = skiff::connect("sqlite::memory:").await?;
/// assert_eq!(queue.counts().await?.ready, 0);
/// # Ok(()) }
/// ```
///
/// A network store (Redis, PostgreSQL) that is unreachable or not ready yet (Redis answering
/// `LOADING` while it replays its append-only file, PostgreSQL starting up or in recovery) is
/// tried again with backoff for up to [`DEFAULT_CONNECT_TIMEOUT`], each wait logged with its
/// reason; [`connect_within`] takes another limit. A bad URL or a missing feature fails at once.
pub async fn connect(url: &str) -> Result<Queue> {
    connect_within(url, DEFAULT_CONNECT_TIMEOUT).await
}

/// How long [`connect`] waits for a network store that is unreachable or not ready yet.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// [`connect`], waiting up to `timeout` for a network store that is unreachable or not ready
/// yet (`Duration::ZERO`: one attempt). The error after the last attempt is the store's.
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() {
/// use std::time::Duration;
/// // Nothing listens on port 1: one attempt, then the store's error.
/// let started = std::time::Instant::now();
/// let result = skiff::connect_within("redis://127.0.0.1:1/0", Duration::ZERO).await;
/// assert!(result.is_err());
/// assert!(started.elapsed() < Duration::from_secs(10));
/// # }
/// ```
pub async fn connect_within(url: &str, timeout: Duration) -> Result<Queue> {
    let scheme = url.split(':').next().unwrap_or_default();
    if matches!(
        scheme,
        "redis" | "rediss" | "redis+cluster" | "rediss+cluster" | "postgres" | "postgresql"
    ) {
        retry_connect(url, timeout, || open(url)).await
    } else {
        open(url).await
    }
}

/// Calls `attempt` until it succeeds, fails with an error that is not transient, or
/// `timeout` has passed, waiting between attempts (100 ms, doubling up to 5 s) and logging
/// each wait with its reason. For opening a store at `url` (shown redacted in the log) that
/// may not be reachable or ready yet; [`connect`] uses it.
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), skiff::Error> {
/// use std::time::Duration;
/// let mut tries = 0;
/// let n = skiff::retry_connect("redis://localhost/0", Duration::from_secs(5), || {
///     tries += 1;
///     let now = tries;
///     async move {
///         if now < 3 {
///             Err(skiff::Error::storage_msg("redis", "LOADING"))
///         } else {
///             Ok(now)
///         }
///     }
/// })
/// .await?;
/// assert_eq!(n, 3);
/// # Ok(()) }
/// ```
pub async fn retry_connect<T, F, Fut>(url: &str, timeout: Duration, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut delay = Duration::from_millis(100);
    loop {
        let err = match attempt().await {
            Ok(done) => return Ok(done),
            Err(err) if err.is_transient() => err,
            Err(err) => return Err(err),
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            if !timeout.is_zero() {
                tracing::error!(store = %redact(url), error = %err, ?timeout,
                    "the store did not become reachable and ready in time; giving up");
            }
            return Err(err);
        }
        let wait = delay.min(left);
        tracing::warn!(store = %redact(url), error = %err, retry_in = ?wait,
            "the store is not reachable or not ready yet; waiting for it");
        tokio::time::sleep(wait).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// One attempt at opening the store at `url`.
async fn open(url: &str) -> Result<Queue> {
    let scheme = url.split(':').next().unwrap_or_default();
    let storage: Arc<dyn Storage> = match scheme {
        "memory" => Arc::new(MemoryStorage::new()),
        #[cfg(feature = "sqlite")]
        "sqlite" => Arc::new(queue_sqlite::SqliteStorage::connect(url).await?),
        #[cfg(feature = "redis")]
        "redis" | "rediss" | "redis+cluster" | "rediss+cluster" => {
            Arc::new(queue_redis::RedisStorage::connect(url).await?)
        }
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => Arc::new(queue_postgres::PostgresStorage::connect(url).await?),
        #[cfg(not(feature = "sqlite"))]
        "sqlite" => return Err(missing_feature("sqlite")),
        #[cfg(not(feature = "redis"))]
        "redis" | "rediss" | "redis+cluster" | "rediss+cluster" => {
            return Err(missing_feature("redis"))
        }
        #[cfg(not(feature = "postgres"))]
        "postgres" | "postgresql" => return Err(missing_feature("postgres")),
        _ => {
            return Err(Error::InvalidInput(format!(
                "unsupported store URL `{}`: expected sqlite://PATH, redis://HOST:PORT/DB, rediss://…, postgres://USER@HOST/DATABASE or memory://",
                redact(url)
            )))
        }
    };
    Ok(Queue::new(storage))
}

#[allow(dead_code)]
fn missing_feature(feature: &str) -> Error {
    Error::InvalidInput(format!(
        "`{feature}` URLs need skiff's `{feature}` feature (Cargo.toml: skiff = {{ features = [\"{feature}\"] }})"
    ))
}

/// `Queue::connect(url)`: opens a store from a URL (see [`connect`]).
pub trait QueueConnect: Sized {
    /// Opens the store at `url`.
    fn connect(url: &str) -> impl Future<Output = Result<Self>> + Send;
}

impl QueueConnect for Queue {
    fn connect(url: &str) -> impl Future<Output = Result<Self>> + Send {
        connect(url)
    }
}

/// `url` with any password replaced by `***` (in the user part, and a `password=`
/// parameter as PostgreSQL URLs may carry), for messages and logs.
///
/// # Examples
///
/// ```
/// assert_eq!(skiff::redact("redis://:s3cret@host:6379/0"), "redis://:***@host:6379/0");
/// assert_eq!(
///     skiff::redact("postgresql://app@db/app?sslmode=require&password=s3cret"),
///     "postgresql://app@db/app?sslmode=require&password=***"
/// );
/// ```
pub fn redact(url: &str) -> String {
    queue_core::redact::redact_url(url)
}

/// Used by code that `#[task]` generates. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use queue_core::__private::*;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_passwords() {
        assert_eq!(
            redact("redis://:secret@host:6379/0"),
            "redis://:***@host:6379/0"
        );
        assert_eq!(
            redact("redis://user:secret@host/0"),
            "redis://user:***@host/0"
        );
        assert_eq!(redact("redis://host:6379/0"), "redis://host:6379/0");
        assert_eq!(redact("sqlite://a.db"), "sqlite://a.db");
        assert_eq!(
            redact("postgres://app:p%40ss@db:5432/app?sslmode=require"),
            "postgres://app:***@db:5432/app?sslmode=require"
        );
        assert_eq!(
            redact("postgresql://db/app?user=app&password=x&schema=jobs"),
            "postgresql://db/app?user=app&password=***&schema=jobs"
        );
        assert_eq!(
            redact("postgres://db?password=x"),
            "postgres://db?password=***"
        );
    }

    #[tokio::test]
    async fn unknown_schemes_are_refused() {
        let err = connect("ftp://x").await.unwrap_err();
        assert!(err.to_string().contains("unsupported store URL"), "{err}");
        assert!(connect("memory://").await.is_ok());
    }
}
