//! SQLite-specific behaviour of [`SqliteStorage`]: opening files, schema versions, WAL, several
//! stores on one file, group commit, query plans, garbage rows, purges and wake-ups.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod concurrency;
mod direct;
mod open;
mod plane;
mod plans;
mod store;
mod tx;

use std::path::Path;
use std::sync::Arc;

use chrono::Utc;
use queue_core::clock::{from_millis, to_millis};
use queue_core::{Envelope, ManualClock};
use queue_sqlite::{SqliteOptions, SqliteStorage};

/// A new envelope for `queue` with empty-tuple args (msgpack `[]`).
pub(crate) fn env(queue: &str) -> Envelope {
    Envelope::new(queue, "t", vec![0x90], Utc::now())
}

/// Opens the store at `path` on a fresh manual clock.
pub(crate) async fn open_manual(path: &Path) -> (SqliteStorage, ManualClock) {
    let clock = ManualClock::starting_at(from_millis(to_millis(Utc::now())));
    let store = SqliteStorage::open(SqliteOptions::new(path).clock(Arc::new(clock.clone())))
        .await
        .unwrap();
    (store, clock)
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<SqliteStorage>();
    check::<SqliteOptions>();
    check::<queue_sqlite::WriterStats>();
    check::<queue_sqlite::QueryPlan>();
}

#[test]
fn opening_outside_a_runtime_is_an_error_not_a_panic() {
    let err = futures::executor::block_on(SqliteStorage::connect("sqlite::memory:")).unwrap_err();
    assert!(err.to_string().contains("Tokio runtime"), "{err}");
}
