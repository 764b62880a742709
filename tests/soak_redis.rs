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
        ..ServerConfig::default()
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
    // Crash Redis (SIGKILL; the AOF is fsynced on every write) and bring it back.
    soak::outage_scenario(&url, || {
        server.stop();
        std::thread::sleep(Duration::from_millis(1500));
        server.restart();
    });
}

#[test]
fn redis_refuses_forged_tasks_and_rotates_keys() {
    let server = RedisServer::start();
    soak::sealed_scenario(&server.url());
}

#[test]
fn redis_dead_letters_garbage_and_runs_the_rest() {
    let server = aof_server();
    soak::garbage_scenario(&server.url());
}

#[test]
fn redis_takes_an_absurd_retry_after_without_a_loop() {
    let server = aof_server();
    soak::retry_after_scenario(&server.url());
}

/// 100 cycles of kill -9 of two workers, Redis (AOF) killed and restarted every 10th cycle (a
/// few minutes: run with `--run-ignored all`).
#[test]
#[ignore = "a few minutes; run by hand: cargo nextest run --all-features --test soak_redis --run-ignored all chaos"]
fn redis_chaos_100_cycles() {
    let mut server = aof_server();
    let url = server.url();
    let (done_before_drain, duplicates) = soak::chaos_scenario(&url, 100, || server.restart());
    eprintln!("redis chaos: 100 cycles, 10 Redis restarts, {done_before_drain} of 40000 done before the drain, 0 lost, {duplicates} duplicate runs");
}
