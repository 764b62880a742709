//! Periodic tasks across processes: three `soak work --periodic-every-secs 1` workers on one
//! store, joining one after another, until at least four fires have happened while all three
//! ran; every fire time must then be recorded exactly once, with no gap. Run on SQLite, and on
//! a private redis-server.
//!
//! Nothing here depends on the machine's speed: the test waits (with a generous deadline) for
//! each worker to be up and for the fires it needs, never for a fixed time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use skiff::prelude::QueueConnect as _;
use support::soak;

/// How long the test waits for a worker to start, or for the fires it needs.
const DEADLINE: Duration = Duration::from_secs(120);

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

/// Whether process `pid` handles SIGINT (the `SigCgt` mask of `/proc/PID/status`), or `None`
/// where `/proc` does not tell.
fn handles_sigint(pid: u32) -> Option<bool> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let mask = status.lines().find_map(|l| l.strip_prefix("SigCgt:"))?;
    let mask = u64::from_str_radix(mask.trim(), 16).ok()?;
    Some(mask & (1 << (2 - 1)) != 0) // SIGINT is signal 2
}

/// Waits until a worker is up: it has started its consumer (and with it the periodic ticker)
/// and waits for Ctrl-C, so a SIGINT now stops it gracefully instead of killing it. Where
/// `/proc` cannot tell, returns at once.
fn wait_until_up(worker: &mut Child) {
    let start = Instant::now();
    loop {
        if let Some(status) = worker.try_wait().expect("poll a worker") {
            panic!("a worker exited while starting: {status}");
        }
        if handles_sigint(worker.id()) != Some(false) {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "a worker did not start within {DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asks a worker to stop gracefully (SIGINT, what Ctrl-C sends) and waits for it.
fn interrupt(child: Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    soak::wait_success(child, Duration::from_secs(60));
}

/// The current Unix time in whole seconds (rounded down).
fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The fire times of periodic tasks still in the store (a graceful shutdown hands back a fire
/// it had fetched but not started; it is not lost, and runs when a worker comes back).
fn pending_fires(url: &str) -> Vec<i64> {
    use skiff::{Page, TaskState};
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let queue = if url.starts_with("redis://") {
            let store = queue_redis::RedisStorage::connect(url).await.unwrap();
            skiff::Queue::new(std::sync::Arc::new(store))
        } else {
            skiff::Queue::connect(url).await.unwrap()
        };
        let mut fires = Vec::new();
        for state in [TaskState::Ready, TaskState::Scheduled, TaskState::Leased] {
            let records = queue
                .storage()
                .list(state, None, Page::first(1000))
                .await
                .unwrap();
            for record in records {
                let env = record.envelope.expect("a pending task decodes");
                assert_eq!(env.task, "soak_cron", "only periodic fires are enqueued");
                fires.push(env.enqueued_at.timestamp());
            }
        }
        fires
    })
}

/// Three workers, one store, one-second fires.
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
    // They join one after another, each once the one before is up.
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let mut w = soak::spawn_worker(url, &args);
            wait_until_up(&mut w);
            w
        })
        .collect();
    let all_up = unix_now();
    // Four fires after all three were up (a fire at T happens at or after T).
    let start = Instant::now();
    loop {
        let fires_since = cron_counts(&record).range(all_up + 1..).count();
        if fires_since >= 4 {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "only {fires_since} fires in {DEADLINE:?} after all three workers were up: {:?}",
            cron_counts(&record)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for w in workers {
        interrupt(w);
    }

    let counts = cron_counts(&record);
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "fires recorded more than once: {twice:?}");
    let (first, last) = match (counts.keys().next(), counts.keys().next_back()) {
        (Some(&f), Some(&l)) => (f, l),
        _ => panic!("no fire recorded"),
    };
    let pending = pending_fires(url);
    for t in &pending {
        assert!(
            !counts.contains_key(t),
            "fire {t} was recorded and is still pending"
        );
    }
    let missing: Vec<i64> = (first..=last)
        .filter(|t| !counts.contains_key(t) && !pending.contains(t))
        .collect();
    assert!(
        missing.is_empty(),
        "fires missing between {first} and {last}: {missing:?} (pending: {pending:?})"
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
