//! Single enqueues on their caller's thread (`SqliteOptions::direct_enqueue`): what they store
//! and answer is what the writer's path stores and answers, and they step aside for a busy
//! database and for calls that arrive together.

use std::sync::Arc;
use std::time::Duration;

use queue_core::{EnqueueOutcome, Storage};
use queue_sqlite::{SqliteOptions, SqliteStorage};
use sqlx::ConnectOptions;

use crate::env;

async fn open(path: &std::path::Path, direct: bool) -> Arc<SqliteStorage> {
    let hour = Duration::from_secs(3600);
    Arc::new(
        SqliteStorage::open(
            SqliteOptions::new(path)
                .poll_interval(hour)
                .direct_enqueue(direct),
        )
        .await
        .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lone_single_enqueues_run_directly_and_answer_as_the_writer_does() {
    let dir = tempfile::tempdir().unwrap();
    for direct in [true, false] {
        let store = open(&dir.path().join(format!("d{direct}.db")), direct).await;
        let waiter = {
            let store = store.clone();
            tokio::spawn(async move { store.wait_for_work("d", Duration::from_secs(3600)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;

        let mut ids = Vec::new();
        for _ in 0..5 {
            let e = env("d");
            ids.push(e.id);
            let out = store.enqueue(vec![e]).await.unwrap();
            assert_eq!(out, vec![EnqueueOutcome::Enqueued(*ids.last().unwrap())]);
        }
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("the enqueue woke no waiting consumer")
            .unwrap()
            .unwrap();

        // A pending id again, and a unique key held by a pending task: the holder's id.
        let mut again = env("d");
        again.id = ids[0];
        let mut keyed = env("d");
        keyed.unique_key = Some("k".into());
        let holder = keyed.id;
        let mut same_key = env("d");
        same_key.unique_key = Some("k".into());
        assert_eq!(
            store.enqueue(vec![again]).await.unwrap(),
            vec![EnqueueOutcome::Duplicate(ids[0])]
        );
        store.enqueue(vec![keyed]).await.unwrap();
        assert_eq!(
            store.enqueue(vec![same_key]).await.unwrap(),
            vec![EnqueueOutcome::Duplicate(holder)]
        );

        let got = store.fetch("d", 10, Duration::from_secs(30)).await.unwrap();
        let mut order: Vec<_> = got.iter().map(|d| d.lease.id).collect();
        order.truncate(5);
        assert_eq!(order, ids, "FIFO order (direct: {direct})");
        let stats = store.stats();
        if direct {
            assert_eq!(stats.direct_enqueues, 8, "{stats:?}");
        } else {
            assert_eq!(stats.direct_enqueues, 0, "{stats:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_enqueue_that_meets_another_processs_lock_waits_on_the_writers_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    let store = open(&path, true).await;
    let mut other = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .connect()
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    let e = env("l");
    let id = e.id;
    let call = {
        let store = store.clone();
        tokio::spawn(async move { store.enqueue(vec![e]).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !call.is_finished(),
        "the enqueue finished with the lock held"
    );
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(out, vec![EnqueueOutcome::Enqueued(id)]);
    let stats = store.stats();
    assert_eq!(stats.direct_enqueues, 0, "{stats:?}");
    assert!(
        stats.busy_retries > 0 || stats.transactions == 1,
        "{stats:?}"
    );
    // The lock is gone: the next lone call runs directly again.
    store.enqueue(vec![env("l")]).await.unwrap();
    assert_eq!(store.stats().direct_enqueues, 1);
    assert_eq!(store.counts(Some("l")).await.unwrap().ready, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_that_arrive_together_are_committed_together() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("t.db"), true).await;
    let calls: Vec<_> = (0..200)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.enqueue(vec![env("t")]).await.unwrap() })
        })
        .collect();
    for c in calls {
        c.await.unwrap();
    }
    let stats = store.stats();
    assert_eq!(store.counts(Some("t")).await.unwrap().ready, 200);
    assert!(
        stats.transactions < 50 && stats.direct_enqueues < 25,
        "200 calls at once took {stats:?}"
    );
}

/// A producer alone for a long while stops yielding before each call (a yield costs a runtime
/// worker a poll of its I/O driver), but still yields now and then: calls that then arrive
/// together, here tasks of the same one-thread runtime, are still committed together.
#[tokio::test(flavor = "current_thread")]
async fn calls_that_arrive_after_a_long_lone_streak_are_still_committed_together() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("s.db"), true).await;
    for _ in 0..100 {
        store.enqueue(vec![env("s")]).await.unwrap();
    }
    let before = store.stats();
    assert_eq!(before.direct_enqueues, 100, "{before:?}");
    let calls: Vec<_> = (0..200)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.enqueue(vec![env("s")]).await.unwrap() })
        })
        .collect();
    for c in calls {
        c.await.unwrap();
    }
    let after = store.stats();
    assert_eq!(store.counts(Some("s")).await.unwrap().ready, 300);
    let (transactions, direct) = (
        after.transactions - before.transactions,
        after.direct_enqueues - before.direct_enqueues,
    );
    assert!(
        transactions < 50 && direct < 25,
        "200 calls at once after a lone streak took {transactions} transactions, {direct} direct"
    );
}
