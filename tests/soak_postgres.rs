//! The soak harness against PostgreSQL: kill -9 workers mid-run, and crash the server itself
//! (`pg_ctl stop -m immediate`) mid-run and start it again; every task must still be done,
//! nothing left over.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use queue_postgres::testing::{shared_url, unique_schema, PostgresServer};
use support::soak;

/// A store of its own (a schema) on the shared test server.
fn store_url(tag: &str) -> String {
    let url = shared_url();
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}schema={}", unique_schema(tag))
}

#[test]
fn postgres_survives_kill_9_of_workers() {
    let duplicates = soak::kill_9_scenario(&store_url("soak-kill"));
    eprintln!("postgres: duplicates after 3 kills: {duplicates}");
}

#[test]
fn postgres_poison_and_transient_failures() {
    soak::poison_scenario(&store_url("soak-poison"));
}

#[test]
fn postgres_crash_mid_run_loses_nothing() {
    let mut server = PostgresServer::start();
    let url = server.url();
    // Crash the server (every server process exits at once, as with
    // `pg_ctl stop -m immediate`), leave it down a moment, and start it again: it replays its
    // WAL.
    soak::outage_scenario(&url, || {
        server.crash();
        std::thread::sleep(Duration::from_millis(1500));
        server.restart();
    });
}

#[test]
fn postgres_refuses_forged_tasks_and_rotates_keys() {
    soak::sealed_scenario(&store_url("soak-sealed"));
}

#[test]
fn postgres_dead_letters_garbage_and_runs_the_rest() {
    soak::garbage_scenario(&store_url("garbage"));
}

#[test]
fn postgres_takes_an_absurd_retry_after_without_a_loop() {
    soak::retry_after_scenario(&store_url("retry_after"));
}
