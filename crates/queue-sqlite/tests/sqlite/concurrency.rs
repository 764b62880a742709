//! Several stores on one file (as several processes would be) and group commit.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use queue_core::testing::successes;
use queue_core::{AckStatus, Storage, TaskId};
use queue_sqlite::SqliteStorage;

use crate::env;

async fn two_stores() -> (tempfile::TempDir, Arc<SqliteStorage>, Arc<SqliteStorage>) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("shared.db").display());
    let a = SqliteStorage::connect(&url).await.unwrap();
    let b = SqliteStorage::connect(&url).await.unwrap();
    (dir, Arc::new(a), Arc::new(b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stores_sharing_a_file_never_deliver_a_task_twice() {
    let (_dir, a, b) = two_stores().await;
    let total = 3000;
    let mut expected = HashSet::new();
    for _ in 0..total / 500 {
        let batch: Vec<_> = (0..500).map(|_| env("shared")).collect();
        expected.extend(batch.iter().map(|e| e.id));
        a.enqueue(batch).await.unwrap();
    }

    let mut workers = Vec::new();
    for store in [a.clone(), b.clone(), a.clone(), b.clone()] {
        workers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                let got = store
                    .fetch("shared", 32, Duration::from_secs(600))
                    .await
                    .unwrap();
                if got.is_empty() {
                    return seen;
                }
                let acks = successes(&got, None);
                let status = store.complete(acks).await.unwrap();
                assert!(status.iter().all(|s| *s == AckStatus::Acked));
                seen.extend(got.iter().map(|d| d.lease.id));
            }
        }));
    }
    let mut delivered: Vec<TaskId> = Vec::new();
    for w in workers {
        delivered.extend(w.await.unwrap());
    }
    let unique: HashSet<_> = delivered.iter().copied().collect();
    assert_eq!(delivered.len(), unique.len(), "a task was delivered twice");
    assert_eq!(unique, expected);
    let counts = b.counts(None).await.unwrap();
    assert_eq!(
        (counts.ready, counts.leased, counts.results),
        (0, 0, total as u64)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn producers_on_two_stores_never_see_database_is_locked() {
    let (_dir, a, b) = two_stores().await;
    let mut producers = Vec::new();
    for i in 0..16 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        producers.push(tokio::spawn(async move {
            for _ in 0..100 {
                store.enqueue(vec![env("busy")]).await.unwrap();
            }
        }));
    }
    // A consumer writing at the same time.
    let consumer = {
        let store = b.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while n < 800 {
                let got = store
                    .fetch("busy", 50, Duration::from_secs(600))
                    .await
                    .unwrap();
                n += got.len();
                let acks = successes(&got, None);
                store.complete(acks).await.unwrap();
                if got.is_empty() {
                    store
                        .wait_for_work("busy", Duration::from_millis(100))
                        .await
                        .unwrap();
                }
            }
        })
    };
    for p in producers {
        p.await.unwrap();
    }
    consumer.await.unwrap();
    let c = a.counts(Some("busy")).await.unwrap();
    assert_eq!(c.ready + c.leased + c.results, 1600);
}

#[test]
fn concurrent_enqueues_are_committed_together() {
    // A current-thread runtime makes the interleaving deterministic: all 500 calls queue their
    // message before the writer task runs once.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = SqliteStorage::connect("sqlite::memory:").await.unwrap();
        let before = store.stats();
        let calls = (0..500).map(|_| store.enqueue(vec![env("gc")]));
        let results = futures::future::join_all(calls).await;
        assert!(results.iter().all(|r| r.is_ok()));
        let after = store.stats();
        assert_eq!(after.operations - before.operations, 500);
        let transactions = after.transactions - before.transactions;
        // Tokio's cooperative budget can pause the 500 sends part-way while SQLite's thread
        // commits the first group, so a loaded machine may see a few groups: never hundreds.
        assert!(
            transactions <= 8,
            "500 enqueues took {transactions} transactions: {after:?}"
        );
        assert_eq!(store.counts(Some("gc")).await.unwrap().ready, 500);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_under_real_concurrency_still_coalesces() {
    let store = Arc::new(SqliteStorage::connect("sqlite::memory:").await.unwrap());
    let tasks: Vec<_> = (0..2000)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.enqueue(vec![env("gc")]).await.unwrap() })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let stats = store.stats();
    assert_eq!(store.counts(Some("gc")).await.unwrap().ready, 2000);
    assert!(stats.transactions < stats.operations, "{stats:?}");
}
