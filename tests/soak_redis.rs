//! The soak harness against a private redis-server: kill -9 workers mid-run, and crash and
//! restart Redis itself (AOF on) mid-run; every task must still be done, nothing left over.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use queue_redis::testing::{RedisServer, ServerConfig};
use support::soak;

fn aof_server() -> RedisServer {
    RedisServer::with(ServerConfig {
        appendonly: true,
        password: None,
    })
}

#[test]
fn redis_survives_kill_9_of_workers() {
    let server = aof_server();
    let duplicates = soak::kill_9_scenario(&server.url());
    eprintln!("redis: duplicates after 3 kills: {duplicates}");
}

#[test]
fn redis_poison_and_transient_failures() {
    let server = aof_server();
    soak::poison_scenario(&server.url());
}

#[test]
fn redis_restart_mid_run_loses_nothing() {
    let mut server = aof_server();
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
    // ...crash Redis (SIGKILL; the AOF is fsynced on every write) and bring it back.
    server.stop();
    std::thread::sleep(Duration::from_millis(1500));
    server.restart();
    soak::wait_success(worker, Duration::from_secs(300));

    soak::assert_all_done(&record, 0..3000);
    soak::assert_drained(&url);
}
