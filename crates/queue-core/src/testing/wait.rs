//! Cases: `wait_for_work` (real time, kept short).
//!
//! A wait that should end early is given an hour, longer than any case may run, and the case
//! fails only if it has not ended within [`DEADLINE`]: ending before that shows it was ended
//! by what the case checks (a store may also end a wait early on its own, which the contract
//! allows), and a slow machine cannot make it fail.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{open, secs, Backend};
use crate::{Envelope, Storage};

/// The timeout of a wait that should end early.
pub(crate) const LONG: Duration = secs(3600);
/// How long a case gives a wait to end before it fails.
pub(super) const DEADLINE: Duration = secs(60);

/// Runs `wait`, failing the case with `what` if it has not ended within [`DEADLINE`].
pub(crate) async fn within<F: Future>(what: &str, wait: F) -> F::Output {
    tokio::time::timeout(DEADLINE, wait)
        .await
        .unwrap_or_else(|_| panic!("{what}: still waiting after {DEADLINE:?}"))
}

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
    within("not woken by the enqueue", store.wait_for_work(q, LONG))
        .await
        .unwrap();
    producer.await.unwrap();
    assert_eq!(store.fetch(q, 10, secs(30)).await.unwrap().len(), 1);
}

/// `wait_for_work` returns at once when the queue already has due work.
pub async fn wait_for_work_returns_when_work_is_ready<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "ready-work";
    let env: Envelope = fx.env(q, "t");
    fx.enqueue(env).await;
    within("due work waited", fx.store.wait_for_work(q, LONG))
        .await
        .unwrap();
}

/// With nothing coming, `wait_for_work` blocks for about its timeout, call after call (no hot
/// loop), and then returns.
pub async fn wait_for_work_times_out<B: Backend>(b: &B) {
    let fx = open(b).await;
    for call in 0..2 {
        let start = Instant::now();
        within(
            &format!("call {call}: a 300 ms wait did not return"),
            fx.store.wait_for_work("idle", Duration::from_millis(300)),
        )
        .await
        .unwrap();
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(150),
            "call {call} returned after {waited:?} with no work (hot loop)"
        );
    }
}
