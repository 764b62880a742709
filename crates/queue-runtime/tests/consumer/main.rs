//! Integration tests of the consumer on the in-memory store.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

#[macro_use]
mod common;

mod blocking;
mod builder;
mod chords;
mod concurrency;
mod control_plane;
mod events;
mod failures;
mod follow_ups;
mod hooks;
mod leases;
mod limits;
mod outage;
mod periodic;
mod prefetch;
mod revocation;
mod scheduling;
mod shutdown;
