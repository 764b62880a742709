//! Garbage rows, bounded purges, leases across stores, wake-ups within and across processes.

use std::sync::Arc;
use std::time::Duration;

use queue_core::storage::{Revocation, RevokeTarget};
use queue_core::{AckStatus, Completion, FailureKind, ManualClock, Outcome, Storage, StoredResult};
use queue_sqlite::{SqliteOptions, SqliteStorage};
use sqlx::{ConnectOptions, Connection};

use crate::{env, open_manual};

#[tokio::test]
async fn a_corrupted_row_is_dead_lettered_and_the_rest_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.db");
    let (store, _clock) = open_manual(&path).await;
    let bad = env("g");
    let (bad_id, good_id) = (bad.id, {
        let good = env("g");
        let id = good.id;
        store.enqueue(vec![bad, good]).await.unwrap();
        id
    });
    // Corrupt the first row from outside, as a disk error or a foreign writer would.
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .connect()
        .await
        .unwrap();
    sqlx::query("UPDATE tasks SET raw = x'c1c1c1' WHERE id = ?1")
        .bind(bad_id.as_bytes().as_slice())
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    let got = store.fetch("g", 10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(
        got.iter().map(|d| d.lease.id).collect::<Vec<_>>(),
        [good_id]
    );
    let dead = store.get_dead(bad_id).await.unwrap().unwrap();
    assert_eq!(dead.task, "?");
    assert_eq!(dead.failure.kind, FailureKind::Undecodable);
    assert!(dead.envelope.is_err());
    assert!(matches!(
        store.get_result(bad_id).await.unwrap(),
        Some(StoredResult::Failure(_))
    ));
}

#[tokio::test]
async fn purge_works_in_bounded_batches() {
    let dir = tempfile::tempdir().unwrap();
    let (store, clock) = open_manual(&dir.path().join("p.db")).await;
    let batch: Vec<_> = (0..50).map(|_| env("p")).collect();
    store.enqueue(batch).await.unwrap();
    let got = store.fetch("p", 50, Duration::from_secs(30)).await.unwrap();
    let acks = got
        .iter()
        .map(|d| {
            Completion::new(
                d.lease,
                Outcome::Success { result: vec![0xc0] },
                Some(Duration::from_secs(1)),
            )
        })
        .collect();
    store.complete(acks).await.unwrap();
    assert_eq!(store.counts(None).await.unwrap().results, 50);
    clock.advance(Duration::from_secs(2));
    assert_eq!(store.counts(None).await.unwrap().results, 0);
    let mut rounds = Vec::new();
    loop {
        let n = store.purge_expired(20).await.unwrap();
        rounds.push(n);
        if n == 0 {
            break;
        }
    }
    assert_eq!(rounds, [20, 20, 10, 0]);
}

#[tokio::test]
async fn leases_are_fenced_across_stores_on_one_clock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    let clock = ManualClock::new();
    let open = || SqliteStorage::open(SqliteOptions::new(&path).clock(Arc::new(clock.clone())));
    let (a, b) = (open().await.unwrap(), open().await.unwrap());
    a.enqueue(vec![env("l")]).await.unwrap();
    let first = a
        .fetch("l", 1, Duration::from_secs(10))
        .await
        .unwrap()
        .remove(0);
    assert!(b
        .fetch("l", 1, Duration::from_secs(10))
        .await
        .unwrap()
        .is_empty());
    clock.advance(Duration::from_secs(11));
    let second = b
        .fetch("l", 1, Duration::from_secs(10))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(second.lease.id, first.lease.id);
    assert_ne!(second.lease.token, first.lease.token);
    assert_eq!(second.envelope.deliveries, 2);
    let done = |l| Completion::new(l, Outcome::Success { result: vec![0xc0] }, None);
    assert_eq!(
        a.complete(vec![done(first.lease)]).await.unwrap(),
        [AckStatus::Stale]
    );
    assert_eq!(
        b.complete(vec![done(second.lease)]).await.unwrap(),
        [AckStatus::Acked]
    );
}

#[tokio::test]
async fn a_revocation_by_another_store_applies_to_the_next_fetched_batch() {
    // A consumer checks each batch it fetches; the "nothing is revoked" answer it keeps must
    // not hide a revocation written by another process before the next fetch.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let clock = ManualClock::new();
    let open = || SqliteStorage::open(SqliteOptions::new(&path).clock(Arc::new(clock.clone())));
    let (consumer, admin) = (open().await.unwrap(), open().await.unwrap());
    let (first, second) = (env("r"), env("r"));
    let second_id = second.id;
    consumer.enqueue(vec![first, second]).await.unwrap();
    let lease = Duration::from_secs(30);
    let got = consumer.fetch("r", 1, lease).await.unwrap();
    let asked = [(got[0].lease.id, got[0].envelope.task.as_str())];
    assert_eq!(consumer.check_revoked(&asked).await.unwrap(), [false]);

    admin
        .revoke(Revocation {
            target: RevokeTarget::Id(second_id),
            until: None,
            once: false,
        })
        .await
        .unwrap();
    let got = consumer.fetch("r", 1, lease).await.unwrap();
    assert_eq!(got[0].lease.id, second_id);
    let asked = [(second_id, got[0].envelope.task.as_str())];
    assert_eq!(consumer.check_revoked(&asked).await.unwrap(), [true]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_in_the_same_process_wakes_a_waiting_consumer() {
    // The store looks for other processes' writes once an hour, and the wait lasts an hour:
    // only the in-process wake-up can end it within the test's deadline.
    let hour = Duration::from_secs(3600);
    let store = Arc::new(
        SqliteStorage::open(SqliteOptions::in_memory().poll_interval(hour))
            .await
            .unwrap(),
    );
    let waiter = {
        let store = store.clone();
        tokio::spawn(async move { store.wait_for_work("w", hour).await })
    };
    // Lets the waiter start waiting. (On a machine so slow that it has not, its first look
    // finds the task, and the test passes without checking the wake-up.)
    tokio::time::sleep(Duration::from_millis(50)).await;
    store.enqueue(vec![env("w")]).await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), waiter)
        .await
        .expect("the enqueue did not wake the waiting consumer")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_and_results_from_another_process_are_seen_by_polling() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?poll_interval_ms=20",
        dir.path().join("x.db").display()
    );
    let producer = SqliteStorage::connect(&url).await.unwrap();
    let consumer = Arc::new(SqliteStorage::connect(&url).await.unwrap());
    let waiter = {
        let consumer = consumer.clone();
        tokio::spawn(async move { consumer.wait_for_work("x", Duration::from_secs(60)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let e = env("x");
    let id = e.id;
    producer.enqueue(vec![e]).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    let result_waiter = tokio::spawn({
        let consumer = consumer.clone();
        async move { consumer.wait_result(id, Duration::from_secs(60)).await }
    });
    let d = producer
        .fetch("x", 1, Duration::from_secs(30))
        .await
        .unwrap()
        .remove(0);
    let c = Completion::new(d.lease, Outcome::Success { result: vec![0x2a] }, None);
    producer.complete(vec![c]).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(30), result_waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.unwrap(), Some(StoredResult::Success(vec![0x2a])));
}

/// Two stores on one file are two processes to each other (each has its own writer and
/// wake-up channels). With an hour's poll, only the file watch can end these waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_processs_commits_wake_waits_through_the_file_watch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let hour = Duration::from_secs(3600);
    let producer = SqliteStorage::open(SqliteOptions::new(&path))
        .await
        .unwrap();
    let consumer = Arc::new(
        SqliteStorage::open(SqliteOptions::new(&path).poll_interval(hour))
            .await
            .unwrap(),
    );
    let waiter = {
        let consumer = consumer.clone();
        tokio::spawn(async move { consumer.wait_for_work("w", hour).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiter.is_finished(), "an empty queue ended the wait");
    let e = env("w");
    let id = e.id;
    producer.enqueue(vec![e]).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .expect("another process's enqueue did not wake the wait")
        .unwrap()
        .unwrap();

    let result_waiter = tokio::spawn({
        let consumer = consumer.clone();
        async move { consumer.wait_result(id, hour).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let d = producer
        .fetch("w", 1, Duration::from_secs(30))
        .await
        .unwrap()
        .remove(0);
    let c = Completion::new(d.lease, Outcome::Success { result: vec![7] }, None);
    producer.complete(vec![c]).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(30), result_waiter)
        .await
        .expect("another process's result did not wake the wait")
        .unwrap();
    assert_eq!(got.unwrap(), Some(StoredResult::Success(vec![7])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_file_watch_another_processs_commit_waits_for_the_poll() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    let hour = Duration::from_secs(3600);
    let producer = SqliteStorage::open(SqliteOptions::new(&path))
        .await
        .unwrap();
    let url = format!(
        "sqlite://{}?poll_interval_ms=3600000&watch_files=false",
        path.display()
    );
    let consumer = Arc::new(SqliteStorage::connect(&url).await.unwrap());
    let waiter = {
        let consumer = consumer.clone();
        tokio::spawn(async move { consumer.wait_for_work("p", hour).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    producer.enqueue(vec![env("p")]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiter.is_finished(), "woken without a watch or a poll");
    waiter.abort();
}

#[tokio::test]
async fn an_idle_wait_does_not_return_at_once() {
    let store = SqliteStorage::connect("sqlite::memory:").await.unwrap();
    for _ in 0..3 {
        let started = tokio::time::Instant::now();
        store
            .wait_for_work("idle", Duration::from_millis(150))
            .await
            .unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(150),
            "returned early with no work"
        );
    }
    // A future eta bounds the wait (with a manual clock, the timer is in the past at once).
    let clock = store.clock();
    let mut later = env("idle");
    later.eta = Some(clock.now() + chrono::TimeDelta::milliseconds(40));
    store.enqueue(vec![later]).await.unwrap();
    store
        .wait_for_work("idle", Duration::from_secs(60))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_whose_caller_stops_waiting_still_wakes_the_consumers_after_its_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let hour = Duration::from_secs(3600);
    let store = Arc::new(
        SqliteStorage::open(SqliteOptions::new(&path).poll_interval(hour))
            .await
            .unwrap(),
    );
    let mut other = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .connect()
        .await
        .unwrap();
    for round in 0..3 {
        let queue = format!("c{round}");
        let waiter = {
            let (store, queue) = (store.clone(), queue.clone());
            tokio::spawn(async move { store.wait_for_work(&queue, hour).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Another connection holds the write lock, so the insert waits inside SQLite; its
        // caller gives up and goes away, and never sees the answer.
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut other)
            .await
            .unwrap();
        let abandoned =
            tokio::time::timeout(Duration::from_millis(100), store.enqueue(vec![env(&queue)]))
                .await;
        assert!(
            abandoned.is_err(),
            "the enqueue finished with the lock held: {abandoned:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "woken before the lock was released");
        sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
        tokio::time::timeout(Duration::from_secs(30), waiter)
            .await
            .expect("an abandoned enqueue woke no consumer")
            .unwrap()
            .unwrap();
        let got = store
            .fetch(&queue, 10, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(got.len(), 1, "woken before the task was committed");
    }
}
