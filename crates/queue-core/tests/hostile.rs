//! Hostile durations and times from callers never panic: a delay, an expiry or a wait of
//! `Duration::MAX` is clamped to [`queue_core::clock::max_time`] (the end of year 9999) or to
//! [`queue_core::clock::MAX_WAIT`]; an explicit eta past year 9999 is a clear error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::future::BoxFuture;
use queue_core::clock::{max_time, MAX_WAIT};
use queue_core::{Error, Queue, Storage, Task, TaskContext, TaskError, TaskState};

struct Ping;

impl Task for Ping {
    const NAME: &'static str = "ping";
    type Args = ();
    type Output = u32;
    fn run(_: TaskContext, (): ()) -> BoxFuture<'static, Result<u32, TaskError>> {
        Box::pin(async { Ok(7) })
    }
}

#[tokio::test]
async fn a_delay_or_expiry_of_duration_max_is_clamped_to_the_end_of_year_9999() {
    let queue = Queue::memory();
    let h = Ping::call(())
        .delay(Duration::MAX)
        .enqueue(&queue)
        .await
        .unwrap();
    let record = queue.storage().get_task(h.id()).await.unwrap().unwrap();
    assert_eq!(record.state, TaskState::Scheduled);
    assert_eq!(record.run_at, max_time());
    let h = Ping::call(())
        .expires(Duration::MAX)
        .enqueue(&queue)
        .await
        .unwrap();
    let record = queue.storage().get_task(h.id()).await.unwrap().unwrap();
    assert_eq!(record.envelope.unwrap().expires_at, Some(max_time()));
    assert!(h.reschedule_in(Duration::MAX).await.unwrap());
}

#[tokio::test]
async fn an_eta_past_year_9999_is_a_clear_error() {
    let queue = Queue::memory();
    let far = max_time() + chrono::TimeDelta::days(1);
    match Ping::call(()).eta(far).enqueue(&queue).await {
        Err(Error::InvalidInput(msg)) => assert!(msg.contains("9999"), "{msg}"),
        other => panic!("expected a clear error, got {other:?}"),
    }
}

#[tokio::test]
async fn waits_of_duration_max_do_not_panic() {
    let queue = Queue::immediate();
    let h = Ping::call(()).enqueue(&queue).await.unwrap();
    assert_eq!(h.get(Duration::MAX).await.unwrap(), 7);
    let lock = queue
        .lock("hostile")
        .ttl(Duration::MAX)
        .acquire(Duration::MAX)
        .await
        .unwrap();
    assert!(lock.release().await.unwrap());
    // Stores clamp the waits they are given (here one that ends at once: work is ready).
    let store = queue_core::MemoryStorage::new();
    store
        .enqueue(vec![Ping::call(())
            .into_envelope(chrono::Utc::now())
            .unwrap()])
        .await
        .unwrap();
    store.wait_for_work("default", Duration::MAX).await.unwrap();
    assert!(MAX_WAIT >= Duration::from_secs(10 * 365 * 24 * 3600));
}
