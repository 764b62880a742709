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
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record.txt");
    let rec = record.to_str().unwrap();

    soak::run(
        &url,
        &[
            "enqueue",
            "--count",
            "3000",
            "--batch",
            "500",
            "--sleep-ms",
            "10",
            "--fail-first",
            "10",
        ],
    );
    let worker = soak::spawn_worker(
        &url,
        &[
            "--concurrency",
            "16",
            "--record",
            rec,
            "--lease-ms",
            "2000",
            "--exit-when-idle-ms",
            "2000",
        ],
    );
    // Once the worker is connected and working (it has done a task)...
    let started = std::time::Instant::now();
    while soak::done_counts(&record).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the worker did no task within 120 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // ...crash the server (every server process exits at once, as with
    // `pg_ctl stop -m immediate`), leave it down a moment, and start it again: it replays its
    // WAL; the worker's calls fail meanwhile and it reconnects.
    server.crash();
    std::thread::sleep(Duration::from_millis(1500));
    server.restart();
    soak::wait_success(worker, Duration::from_secs(300));

    let done = soak::done_counts(&record).len();
    soak::assert_all_done(&record, 0..3000);
    soak::assert_drained(&url);
    assert!(done >= 3000);
}
