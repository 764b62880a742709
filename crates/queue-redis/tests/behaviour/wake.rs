//! Idle waits block on Redis and are woken by writes from other connections.
//!
//! The stores block for up to an hour per call (`block_timeout`) and every wait lasts an hour,
//! so a wait that ends within a test's deadline was ended by a wake-up, however slow the
//! machine.

use std::time::Duration;

use queue_core::storage::{Completion, Outcome, StoredResult};
use queue_core::{Storage, SystemClock};
use queue_redis::RedisStorage;

use crate::support;

/// How long a store blocks in one call, and how long each wait lasts.
const HOUR: Duration = Duration::from_secs(3600);
/// How long a test waits for a wake-up before it fails.
const DEADLINE: Duration = Duration::from_secs(60);

async fn pair(tag: &str) -> (RedisStorage, RedisStorage) {
    let options = support::shared_options(tag)
        .clock(std::sync::Arc::new(SystemClock))
        .block_timeout(HOUR);
    let a = RedisStorage::open(options.clone().blocking_pool_size(1))
        .await
        .unwrap();
    let b = RedisStorage::open(options).await.unwrap();
    (a, b)
}

fn envelope(queue: &str) -> queue_core::Envelope {
    queue_core::Envelope::new(
        queue,
        "t",
        queue_core::to_msgpack(&()).unwrap(),
        chrono::Utc::now(),
    )
}

#[tokio::test]
async fn wait_for_work_wakes_on_enqueue_from_another_store() {
    let (a, b) = pair("wake-work").await;
    let waiter = tokio::spawn(async move {
        a.wait_for_work("jobs", HOUR).await.unwrap();
        a
    });
    // Lets the waiter block first. (If it has not yet, its first look finds the task.)
    tokio::time::sleep(Duration::from_millis(200)).await;
    b.enqueue(vec![envelope("jobs")]).await.unwrap();
    let a = tokio::time::timeout(DEADLINE, waiter)
        .await
        .expect("the enqueue did not wake the waiting store")
        .unwrap();
    assert_eq!(
        a.fetch("jobs", 10, Duration::from_secs(30))
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn cancelled_wait_does_not_poison_the_blocking_pool() {
    let (a, b) = pair("wake-cancel").await;
    // Cancel a wait mid-BLPOP; its connection must not go back to the (size 1) pool with the
    // BLPOP still pending, or it would swallow the next wake-up.
    let cancelled = tokio::time::timeout(
        Duration::from_millis(100),
        a.wait_for_work("jobs", Duration::from_secs(30)),
    )
    .await;
    assert!(cancelled.is_err(), "the wait was still blocked");
    let waiter = tokio::spawn(async move { a.wait_for_work("jobs", HOUR).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(200)).await;
    b.enqueue(vec![envelope("jobs")]).await.unwrap();
    tokio::time::timeout(DEADLINE, waiter)
        .await
        .expect("the enqueue did not wake the waiting store")
        .unwrap();
}

#[tokio::test]
async fn wait_result_wakes_every_waiter() {
    let (a, b) = pair("wake-result").await;
    let a = std::sync::Arc::new(a);
    let env = envelope("jobs");
    let id = env.id;
    b.enqueue(vec![env]).await.unwrap();
    let mut waiters = Vec::new();
    for _ in 0..2 {
        let a = a.clone();
        waiters.push(tokio::spawn(async move {
            a.wait_result(id, HOUR).await.unwrap()
        }));
    }
    // Blocking pool of size 1: the second waiter waits for the first one's connection; both
    // must see the result.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let d = b
        .fetch("jobs", 1, Duration::from_secs(30))
        .await
        .unwrap()
        .remove(0);
    let done = Completion::new(d.lease, Outcome::Success { result: vec![0xc0] }, None);
    b.complete(vec![done]).await.unwrap();
    for w in waiters {
        let got = tokio::time::timeout(DEADLINE, w)
            .await
            .expect("the write did not wake every waiter")
            .unwrap();
        assert_eq!(got, Some(StoredResult::Success(vec![0xc0])));
    }
}
