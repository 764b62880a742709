//! Cases: `wait_for_work` (real time, kept short).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{open, secs, Backend};
use crate::{Envelope, Storage};

/// `wait_for_work` returns promptly when another Tokio task enqueues to the queue.
pub async fn wait_for_work_wakes_on_enqueue<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "wake-work";
    let env = fx.env(q, "t");
    let store = Arc::new(fx.store);
    let producer = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            store.enqueue(vec![env]).await.unwrap()
        })
    };
    let start = Instant::now();
    store.wait_for_work(q, secs(5)).await.unwrap();
    let waited = start.elapsed();
    assert!(
        waited < secs(2),
        "woken after {waited:?}, not by the enqueue"
    );
    producer.await.unwrap();
    assert_eq!(store.fetch(q, 10, secs(30)).await.unwrap().len(), 1);
}

/// `wait_for_work` returns at once when the queue already has due work.
pub async fn wait_for_work_returns_when_work_is_ready<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "ready-work";
    let env: Envelope = fx.env(q, "t");
    fx.enqueue(env).await;
    let start = Instant::now();
    fx.store.wait_for_work(q, secs(5)).await.unwrap();
    let waited = start.elapsed();
    assert!(waited < secs(1), "due work waited {waited:?}");
}

/// With nothing coming, `wait_for_work` blocks for about its timeout, call after call (no hot
/// loop), and does not overrun it by much.
pub async fn wait_for_work_times_out<B: Backend>(b: &B) {
    let fx = open(b).await;
    for call in 0..2 {
        let start = Instant::now();
        fx.store
            .wait_for_work("idle", Duration::from_millis(300))
            .await
            .unwrap();
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(150),
            "call {call} returned after {waited:?} with no work (hot loop)"
        );
        assert!(
            waited < secs(2),
            "call {call}: a 300 ms wait took {waited:?}"
        );
    }
}
