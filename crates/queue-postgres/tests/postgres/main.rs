//! PostgreSQL-specific behaviour of the store, beyond the shared conformance suite: schema
//! migrations, transactional enqueue, LISTEN/NOTIFY wake-ups, pool and connection errors,
//! bad input, query plans, server crashes.
//!
//! Tests use the shared test server (a schema each) unless they need to stop or crash a
//! server; those start a private one (`queue_postgres::testing`). Every wait that should end
//! early is given an hour and a test fails only if it has not ended within [`DEADLINE`].

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod errors;
mod plain;
mod plane;
mod plans;
mod schema;
mod tls;
mod tx;
mod vacuum;
mod wake;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use queue_core::clock::{from_millis, to_millis};
use queue_core::{to_msgpack, Clock, Envelope, ManualClock};

/// A manual clock at now, rounded to the millisecond.
pub(crate) fn manual_clock() -> ManualClock {
    ManualClock::starting_at(from_millis(to_millis(Utc::now())))
}

/// A new envelope for `task` on `queue` at `clock`'s now.
pub(crate) fn env(clock: &dyn Clock, queue: &str, task: &str) -> Envelope {
    Envelope::new(queue, task, to_msgpack(&()).unwrap(), clock.now())
}

pub(crate) fn arc(clock: &ManualClock) -> Arc<dyn Clock> {
    Arc::new(clock.clone())
}

pub(crate) const LEASE: Duration = Duration::from_secs(30);
/// The timeout of a wait that should end early.
pub(crate) const HOUR: Duration = Duration::from_secs(3600);
/// How long a test gives something to happen before it fails.
pub(crate) const DEADLINE: Duration = Duration::from_secs(60);

/// Runs `f`, failing the test with `what` if it has not ended within [`DEADLINE`].
pub(crate) async fn within<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(DEADLINE, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: not done after {DEADLINE:?}"))
}
