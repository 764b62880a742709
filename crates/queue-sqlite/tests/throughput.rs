//! A rough throughput check, not a benchmark and never a pass/fail on speed:
//! `cargo test -p queue-sqlite --release --test throughput -- --ignored --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use queue_core::testing::successes;
use queue_core::{Envelope, Storage};
use queue_sqlite::SqliteStorage;

fn env() -> Envelope {
    Envelope::new("bench", "noop", vec![0x90], Utc::now())
}

async fn store(dir: &tempfile::TempDir) -> Arc<SqliteStorage> {
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    Arc::new(SqliteStorage::connect(&url).await.unwrap())
}

async fn drain(store: &SqliteStorage, n: usize, batch: usize) -> f64 {
    let started = Instant::now();
    let mut done = 0;
    while done < n {
        let got = store
            .fetch("bench", batch, Duration::from_secs(60))
            .await
            .unwrap();
        assert!(!got.is_empty());
        done += got.len();
        let acks = successes(&got, Some(Duration::from_secs(3600)));
        store.complete(acks).await.unwrap();
    }
    n as f64 / started.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "prints rough throughput; run in release"]
async fn throughput() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;

    let n = 100_000;
    let started = Instant::now();
    for _ in 0..n / 1000 {
        store
            .enqueue((0..1000).map(|_| env()).collect())
            .await
            .unwrap();
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    println!("batch enqueue (1000 per call):      {rate:>9.0} tasks/s");

    let rate = drain(&store, 20_000, 256).await;
    println!("fetch 256 + complete, 80k backlog:  {rate:>9.0} tasks/s");
    let rate = drain(&store, 60_000, 256).await;
    println!("fetch 256 + complete, 60k..0:       {rate:>9.0} tasks/s");

    let started = Instant::now();
    let producers: Vec<_> = (0..64)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..500 {
                    store.enqueue(vec![env()]).await.unwrap();
                }
            })
        })
        .collect();
    for p in producers {
        p.await.unwrap();
    }
    let rate = 32_000.0 / started.elapsed().as_secs_f64();
    let stats = store.stats();
    println!("single enqueues from 64 tasks:      {rate:>9.0} tasks/s ({stats:?})");

    let rate = drain(&store, 32_000, 64).await;
    println!("fetch 64 + complete:                {rate:>9.0} tasks/s");
}
