//! Redis-specific behaviour of the store, beyond the shared conformance suite: key layout,
//! script reloading, secrets in errors, blocking wake-ups, bounded work, server restarts, the
//! control plane.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

mod bounded;
mod clocks;
mod enqueue;
mod garbage;
mod keys;
mod oom;
mod plane;
mod replication;
mod restart;
mod secrets;
mod slots;
mod wake;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use queue_core::clock::{from_millis, to_millis};
use queue_core::{to_msgpack, Envelope, ManualClock};

/// A manual clock at now, rounded to the millisecond.
pub(crate) fn manual_clock() -> ManualClock {
    ManualClock::starting_at(from_millis(to_millis(Utc::now())))
}

/// A new envelope for `task` on `queue` at the clock's now.
pub(crate) fn env(clock: &ManualClock, queue: &str, task: &str) -> Envelope {
    use queue_core::Clock;
    Envelope::new(queue, task, to_msgpack(&()).unwrap(), clock.now())
}

pub(crate) fn arc(clock: &ManualClock) -> Arc<dyn queue_core::Clock> {
    Arc::new(clock.clone())
}

pub(crate) const LEASE: Duration = Duration::from_secs(30);
