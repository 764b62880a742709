//! Periodic tasks across processes: three `soak work --periodic-every-secs 1` workers on one
//! store for about five seconds; every fire time must be recorded exactly once, with no gap.
//! Run on SQLite, and on a private redis-server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use skiff::prelude::QueueConnect as _;
use support::soak;

/// How many times each `cron T` line appears in the record file.
fn cron_counts(record: &Path) -> BTreeMap<i64, u32> {
    let text = std::fs::read_to_string(record).unwrap_or_default();
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        let t = line
            .strip_prefix("cron ")
            .and_then(|t| t.parse::<i64>().ok())
            .unwrap_or_else(|| panic!("malformed record line {line:?}"));
        *counts.entry(t).or_insert(0) += 1;
    }
    counts
}

/// Asks a worker to stop gracefully (SIGINT, what Ctrl-C sends) and waits for it.
fn interrupt(child: std::process::Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    soak::wait_success(child, Duration::from_secs(60));
}

/// Three workers, one store, about five seconds of one-second fires.
fn three_workers_fire_each_second_once(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record.txt");
    let rec = record.to_str().unwrap();
    soak::run(url, &["stats"]); // creates the store before the workers race to
    let args = [
        "--concurrency",
        "4",
        "--record",
        rec,
        "--periodic-every-secs",
        "1",
    ];
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let w = soak::spawn_worker(url, &args);
            std::thread::sleep(Duration::from_millis(300));
            w
        })
        .collect();
    std::thread::sleep(Duration::from_secs(5));
    for w in workers {
        interrupt(w);
    }

    let counts = cron_counts(&record);
    let twice: Vec<_> = counts.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "fires recorded more than once: {twice:?}");
    let (first, last) = match (counts.keys().next(), counts.keys().next_back()) {
        (Some(&f), Some(&l)) => (f, l),
        _ => panic!("no fire recorded"),
    };
    let missing: Vec<i64> = (first..=last).filter(|t| !counts.contains_key(t)).collect();
    assert!(
        missing.is_empty(),
        "fires missing between {first} and {last}: {missing:?}"
    );
    assert!(
        counts.len() >= 4,
        "only {} fires in about 5.6 s",
        counts.len()
    );
}

#[test]
fn sqlite_three_workers_fire_each_second_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("periodic.db").display());
    three_workers_fire_each_second_once(&url);
}

#[test]
fn redis_three_workers_fire_each_second_once() {
    let server = queue_redis::testing::RedisServer::start();
    three_workers_fire_each_second_once(&server.url());
}

/// Returns when it started, in Unix milliseconds.
#[skiff::task]
async fn started_at() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Lateness of delayed tasks (start − eta) on a store: 200 tasks with a 200 ms delay,
/// enqueued one every 5 ms so their etas are spread out; prints p50/p99/max.
async fn measure_lateness(queue: skiff::Queue, label: &str) {
    use skiff::{Consumer, Task as _};
    let running = Consumer::builder(queue.clone())
        .workers(32)
        .register(started_at)
        .build()
        .unwrap()
        .spawn();
    let mut pending = Vec::new();
    for _ in 0..200 {
        let eta = chrono::Utc::now() + chrono::TimeDelta::milliseconds(200);
        let h = started_at::call(()).eta(eta).enqueue(&queue).await.unwrap();
        pending.push((eta.timestamp_millis(), h));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut late = Vec::new();
    for (eta, h) in pending {
        let started = h.get(Duration::from_secs(30)).await.unwrap();
        assert!(started >= eta, "ran {} ms early", eta - started);
        late.push(started - eta);
    }
    late.sort_unstable();
    let pct = |p: usize| late[(late.len() * p / 100).min(late.len() - 1)];
    eprintln!(
        "{label}: lateness of 200 delayed tasks: p50 {} ms, p99 {} ms, max {} ms",
        pct(50),
        pct(99),
        late[late.len() - 1]
    );
    running.shutdown(Duration::from_secs(10)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement; run with --ignored --nocapture"]
async fn lateness_of_delayed_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("late.db").display());
    measure_lateness(skiff::Queue::connect(&url).await.unwrap(), "sqlite").await;

    let server = queue_redis::testing::RedisServer::start();
    let store = queue_redis::RedisStorage::connect(&server.url())
        .await
        .unwrap();
    measure_lateness(skiff::Queue::new(std::sync::Arc::new(store)), "redis").await;
}
