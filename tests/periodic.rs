//! Periodic tasks across processes: three `soak work --periodic-every-secs 1` workers on one
//! store for about five seconds; every fire time must be recorded exactly once, with no gap.
//! Run on SQLite, and on a private redis-server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

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
    let args = ["--concurrency", "4", "--record", rec, "--periodic-every-secs", "1"];
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
    assert!(missing.is_empty(), "fires missing between {first} and {last}: {missing:?}");
    assert!(counts.len() >= 4, "only {} fires in about 5.6 s", counts.len());
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
