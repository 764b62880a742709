//! Test support (feature `testing`): PostgreSQL servers for tests, and stores in schemas of
//! their own, for Skiff's own tests and for applications that test against PostgreSQL.
//!
//! * [`shared_url`] is one server for every test process of a build (`cargo nextest` runs
//!   each test in a process of its own): the first process that needs it starts it, the
//!   others attach, and it stops a few seconds after the last one exits. Tests isolate
//!   themselves by schema: [`unique_schema`], [`shared_options`], [`shared_store`].
//! * [`PostgresServer::start`] is a private server, for tests that stop, crash or restart it:
//!   its own data directory in a temporary directory, on a free port of 127.0.0.1, stopped
//!   and removed when dropped (or when the test process dies).
//!   [`PostgresServer::crash`] stops it as `pg_ctl stop -m immediate` does;
//!   [`PostgresServer::restart`] brings it back on the same port and data.
//! * Every data directory is a copy of a **template** made once by `initdb` and kept under
//!   the build's target directory (`target/<profile>/skiff-postgres/`): concurrent test
//!   processes publish it with an atomic `rename`, and it is never written again.
//! * With `SKIFF_TEST_POSTGRES_URL` set, [`shared_url`] is that URL instead (tests that need a
//!   private server still start one). Test schemas are named `skiff_test_*`; on an external
//!   server they stay until dropped.
//! * The server binaries are looked for in `SKIFF_TEST_POSTGRES_BIN`, then under
//!   `/usr/lib/postgresql/*/bin` (the newest), then on `PATH`. Missing binaries fail the test
//!   with how to install them (`apt-get install postgresql`); tests are never skipped.
//! * Run as root (CI containers), the servers run as the `postgres` user, as PostgreSQL
//!   requires, and their directories are given to that user.
//!
//! # Examples
//!
//! ```no_run
//! # #![allow(dead_code)]
//! use std::sync::Arc;
//! use queue_core::{ManualClock, Storage};
//! use queue_postgres::testing::{shared_store, PostgresServer};
//!
//! # async fn demo() -> queue_core::Result<()> {
//! // A store of its own on the shared server.
//! let store = shared_store("orders", Arc::new(ManualClock::new())).await;
//! assert_eq!(store.counts(None).await?.ready, 0);
//!
//! // A server of its own, to crash.
//! let mut server = PostgresServer::start();
//! let store = queue_postgres::PostgresStorage::connect(&server.url()).await?;
//! server.crash();
//! assert!(store.counts(None).await.is_err());
//! server.restart();
//! # Ok(()) }
//! ```

// Test support: a panic here is the failure report of the test that called it.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod server;
mod shared;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use queue_core::Clock;

use crate::{PostgresOptions, PostgresStorage};

pub use server::{PostgresServer, ServerConfig};

/// The variable that points the tests at an existing server instead.
pub const EXTERNAL: &str = "SKIFF_TEST_POSTGRES_URL";

/// The variable that names the directory of the server binaries (`initdb`, `postgres`,
/// `pg_ctl`).
pub const BIN_DIR: &str = "SKIFF_TEST_POSTGRES_BIN";

/// The superuser of the test servers (no password: they listen on 127.0.0.1 only, `trust`).
pub const SUPERUSER: &str = "skiff";

/// Whether the tests run against an external server.
pub fn external_url() -> Option<String> {
    std::env::var(EXTERNAL).ok().filter(|u| !u.is_empty())
}

/// The server shared by the tests (or the external one), started if needed.
pub fn shared_url() -> String {
    static SHARED: OnceLock<String> = OnceLock::new();
    SHARED
        .get_or_init(|| external_url().unwrap_or_else(shared::attach))
        .clone()
}

/// A schema name no other test uses, of this run or another: `skiff_test_<tag>_<pid>_<n>_…`.
///
/// # Examples
///
/// ```
/// let a = queue_postgres::testing::unique_schema("orders");
/// let b = queue_postgres::testing::unique_schema("orders");
/// assert!(a.starts_with("skiff_test_orders_"));
/// assert_ne!(a, b);
/// assert!(queue_postgres::PostgresOptions::new("postgres://h/db").unwrap().schema(&a).is_ok());
/// ```
pub fn unique_schema(tag: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let tag: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(16)
        .collect();
    let mut name = format!(
        "skiff_test_{tag}_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        server::unique_suffix()
    );
    name.truncate(crate::MAX_SCHEMA_LEN);
    name
}

/// Options for a store on the shared server in a fresh schema.
pub fn shared_options(tag: &str) -> PostgresOptions {
    PostgresOptions::new(&shared_url())
        .expect("the test server's URL")
        .schema(&unique_schema(tag))
        .expect("a test schema name")
        .pool_size(8)
}

/// A store on the shared server in a fresh schema, on `clock`.
pub async fn shared_store(tag: &str, clock: Arc<dyn Clock>) -> PostgresStorage {
    PostgresStorage::open(shared_options(tag).clock(clock))
        .await
        .expect("open a PostgreSQL store on the test server")
}
