//! The soak harness against a Redis Cluster the tests start (3 masters, 3 replicas): kill -9
//! of workers, and kill -9 of the master that holds the queue mid-run (its replica takes over,
//! the old master comes back as its replica), also both in one run. With `?wait=1` every task is done afterwards;
//! without it the run is recorded (asynchronous replication may lose what the old master had
//! acknowledged and not yet sent).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use queue_redis::testing::RedisCluster;
use support::soak;

/// The URL of `cluster` through a master other than `avoid` (the one a test kills), so that
/// processes started during the outage still reach a seed.
fn url_avoiding(cluster: &RedisCluster, avoid: u16, query: &str) -> String {
    let seed = cluster
        .master_ports()
        .into_iter()
        .find(|p| *p != avoid)
        .expect("another master");
    format!("redis+cluster://127.0.0.1:{seed}/{query}")
}

/// Kills the master of the soak's queue (`default`), waits for its replica to take over,
/// then starts the old master again and waits until it is the new master's replica.
fn fail_over(cluster: &mut RedisCluster, master: u16) {
    cluster.kill(master);
    let started = Instant::now();
    while cluster.master_of("{default}") == master {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no replica took over"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("failover took {:?}", started.elapsed());
    cluster.wait_ok(Duration::from_secs(30));
    cluster.restart(master);
    cluster.wait_ok(Duration::from_secs(30));
    cluster.wait_synced(Duration::from_secs(30));
}

#[test]
fn cluster_survives_kill_9_of_workers() {
    let cluster = RedisCluster::start();
    let duplicates = soak::kill_9_scenario(&cluster.url());
    eprintln!("redis cluster: duplicates after 3 kills: {duplicates}");
}

#[test]
fn cluster_failover_with_wait_loses_nothing() {
    let mut cluster = RedisCluster::start();
    let master = cluster.master_of("{default}");
    let url = url_avoiding(&cluster, master, "?wait=1");
    soak::outage_scenario(&url, || fail_over(&mut cluster, master));
}

#[test]
fn cluster_failover_and_kill_9_of_workers_with_wait_loses_nothing() {
    let mut cluster = RedisCluster::start();
    let master = cluster.master_of("{default}");
    let url = url_avoiding(&cluster, master, "?wait=1");
    let dir = tempfile::tempdir().expect("temp dir");
    let record = dir.path().join("record.txt");
    let rec = record.to_str().expect("utf-8 path");
    soak::enqueue(
        &url,
        "--count 5000 --batch 500 --sleep-ms 10 --fail-first 10",
    );
    let args = ["--concurrency", "16", "--record", rec, "--lease-ms", "2000"];
    let first = soak::spawn_worker(&url, &args);
    let second = soak::spawn_worker(&url, &args);
    let started = Instant::now();
    while soak::done_counts(&record).len() < 200 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the workers did not do 200 tasks within 120 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // A worker dies, then the queue's master, then the other worker; a new worker drains.
    soak::kill9(first);
    fail_over(&mut cluster, master);
    soak::kill9(second);
    let mut last = args.to_vec();
    last.extend(["--exit-when-idle-ms", "3000"]);
    soak::wait_success(soak::spawn_worker(&url, &last), Duration::from_secs(300));
    let duplicates = soak::assert_all_done(&record, 0..5000);
    soak::assert_drained(&url);
    eprintln!("redis cluster, wait=1: kill -9 of two workers and of the master: 0 of 5000 lost, {duplicates} duplicate runs");
}

#[test]
fn cluster_failover_without_wait_is_recorded() {
    let mut cluster = RedisCluster::start();
    let master = cluster.master_of("{default}");
    let url = url_avoiding(&cluster, master, "");
    let dir = tempfile::tempdir().expect("temp dir");
    let record = dir.path().join("record.txt");
    let rec = record.to_str().expect("utf-8 path");
    soak::enqueue(
        &url,
        "--count 3000 --batch 500 --sleep-ms 10 --fail-first 10",
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
    while soak::done_counts(&record).is_empty() {
        std::thread::sleep(Duration::from_millis(20));
    }
    fail_over(&mut cluster, master);
    soak::wait_success(worker, Duration::from_secs(300));
    let counts = soak::done_counts(&record);
    let missing = (0..3000).filter(|n| !counts.contains_key(n)).count();
    let duplicates: u32 = counts.values().map(|c| c - 1).sum();
    eprintln!(
        "redis cluster failover without wait: {missing} of 3000 tasks lost, {duplicates} duplicate runs"
    );
}
