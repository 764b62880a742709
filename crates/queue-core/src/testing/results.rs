//! Cases: results — get, wait, TTL, delete, purge.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::wait::{within, LONG};
use super::{open, secs, success, Backend};
use crate::{to_msgpack, AckStatus, Completion, Storage, StoredResult, TaskId};

/// A success result is kept (reading it does not delete it) until deleted.
pub async fn results_are_kept_until_deleted<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "results";
    let id = fx.enqueue_new(q, "t").await;
    let d = fx.fetch_one(q).await;
    assert_eq!(
        fx.complete(d.lease, success(&"out")).await,
        AckStatus::Acked
    );

    let expected = Some(StoredResult::Success(to_msgpack(&"out").unwrap()));
    assert_eq!(fx.store.get_result(id).await.unwrap(), expected);
    assert_eq!(
        fx.store.get_result(id).await.unwrap(),
        expected,
        "read twice"
    );
    assert_eq!(fx.counts(None).await.results, 1);

    assert!(fx.store.delete_result(id).await.unwrap(), "there was one");
    assert_eq!(fx.store.get_result(id).await.unwrap(), None);
    assert!(
        !fx.store.delete_result(id).await.unwrap(),
        "already deleted"
    );
    assert_eq!(fx.counts(None).await.results, 0);
    assert_eq!(fx.store.get_result(TaskId::new()).await.unwrap(), None);
}

/// `wait_result` is woken by a completion written by another Tokio task, long before its
/// timeout, and returns without waiting when the result is already there.
pub async fn wait_result_is_woken_by_completion<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "wake";
    let id = fx.enqueue_new(q, "t").await;
    let d = fx.fetch_one(q).await;
    let store = Arc::new(fx.store);

    let writer = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let c = Completion::new(d.lease, success(&7), None);
            store.complete(vec![c]).await.unwrap()
        })
    };
    let got = within("not woken by the write", store.wait_result(id, LONG))
        .await
        .unwrap();
    assert_eq!(got, Some(StoredResult::Success(to_msgpack(&7).unwrap())));
    assert_eq!(writer.await.unwrap(), vec![AckStatus::Acked]);

    let got = within(
        "waiting for an existing result",
        store.wait_result(id, LONG),
    )
    .await
    .unwrap();
    assert!(got.is_some());
}

/// `wait_result` with nothing coming returns `None` after its timeout, not before.
pub async fn wait_result_times_out<B: Backend>(b: &B) {
    let fx = open(b).await;
    let pending = fx.enqueue_new("timeout", "t").await;
    for id in [TaskId::new(), pending] {
        let start = Instant::now();
        let got = within(
            "a 300 ms wait did not return",
            fx.store.wait_result(id, Duration::from_millis(300)),
        )
        .await
        .unwrap();
        let waited = start.elapsed();
        assert_eq!(got, None);
        assert!(
            waited >= Duration::from_millis(250),
            "gave up after {waited:?}"
        );
    }
}

/// A result with a TTL is gone once the clock passes it; a result without one stays.
pub async fn result_ttl_expires<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "ttl";
    let short = fx.enqueue_new(q, "t").await;
    let forever = fx.enqueue_new(q, "t").await;
    let ds = fx.fetch(q, 10).await;
    assert_eq!(ds.len(), 2);
    let statuses = fx
        .store
        .complete(vec![
            Completion::new(ds[0].lease, success(&1), Some(secs(60))),
            Completion::new(ds[1].lease, success(&2), None),
        ])
        .await
        .unwrap();
    assert_eq!(statuses, vec![AckStatus::Acked, AckStatus::Acked]);

    fx.advance(secs(59));
    assert!(
        fx.store.get_result(short).await.unwrap().is_some(),
        "before TTL"
    );
    fx.advance(secs(2));
    assert_eq!(fx.store.get_result(short).await.unwrap(), None, "after TTL");
    assert_eq!(
        fx.store
            .wait_result(short, Duration::from_millis(50))
            .await
            .unwrap(),
        None,
        "wait_result returned an expired result"
    );
    assert!(fx.store.get_result(forever).await.unwrap().is_some());
    assert_eq!(
        fx.counts(None).await.results,
        1,
        "expired results are not counted"
    );
    fx.advance(secs(10 * 365 * 24 * 3600));
    assert!(
        fx.store.get_result(forever).await.unwrap().is_some(),
        "no TTL"
    );
}

/// `purge_expired(max)` is bounded by `max` and never removes a live result.
pub async fn purge_expired_keeps_live_results<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "purge";
    for _ in 0..3 {
        fx.enqueue_new(q, "t").await;
    }
    let ds = fx.fetch(q, 10).await;
    assert_eq!(ds.len(), 3);
    let batch = vec![
        Completion::new(ds[0].lease, success(&0), Some(secs(10))),
        Completion::new(ds[1].lease, success(&1), Some(secs(10))),
        Completion::new(ds[2].lease, success(&2), None),
    ];
    fx.store.complete(batch).await.unwrap();
    fx.advance(secs(11));

    let n = fx.store.purge_expired(1).await.unwrap();
    assert!(n <= 1, "purge_expired(1) removed {n}");
    fx.store.purge_expired(100).await.unwrap();
    fx.store.purge_expired(100).await.unwrap();
    assert_eq!(fx.store.get_result(ds[0].lease.id).await.unwrap(), None);
    assert_eq!(fx.store.get_result(ds[1].lease.id).await.unwrap(), None);
    assert_eq!(
        fx.store.get_result(ds[2].lease.id).await.unwrap(),
        Some(StoredResult::Success(to_msgpack(&2).unwrap()))
    );
    assert_eq!(fx.counts(None).await.results, 1);
}
