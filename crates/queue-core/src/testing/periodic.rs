//! Cases: what the runtime's periodic ticker and task locks rely on.
//!
//! The ticker claims each fire time with a lock (`periodic:{task}:{T}`), first for a minute,
//! then for much longer once the fire is enqueued; it enqueues the fire with an id derived
//! from the task and `T`; and it probes "has this schedule fired before" by taking a marker
//! lock under a shared probe owner and releasing it. Task locks are taken, renewed and
//! released per delivery, with the lease as TTL.

use std::time::Duration;

use super::{open, secs, success, Backend};
use crate::{AckStatus, EnqueueOutcome, Storage, TaskId};

/// A claim is never granted to another owner before its TTL, however often it is renewed
/// (also with a longer TTL than the first), and it is granted once the TTL has passed.
pub async fn tick_claim_is_exclusive_until_its_ttl<B: Backend>(b: &B) {
    let fx = open(b).await;
    let s = &fx.store;
    let claim = "periodic:report:1700000000000";
    assert!(s.acquire_lock(claim, "ticker:a", secs(60)).await.unwrap());
    for other in ["ticker:b", "ticker:c"] {
        assert!(
            !s.acquire_lock(claim, other, secs(60)).await.unwrap(),
            "claimed by a"
        );
    }
    // Confirmed: renewed for much longer than the first TTL.
    assert!(s.acquire_lock(claim, "ticker:a", secs(3600)).await.unwrap());
    fx.advance(secs(61));
    assert!(
        !s.acquire_lock(claim, "ticker:b", secs(60)).await.unwrap(),
        "past the first TTL, within the renewed one"
    );
    fx.advance(secs(3540));
    assert!(
        s.acquire_lock(claim, "ticker:b", secs(60)).await.unwrap(),
        "free once the renewed TTL has passed"
    );
    // Claims of other fire times are independent.
    assert!(s
        .acquire_lock("periodic:report:1700000060000", "ticker:c", secs(60))
        .await
        .unwrap());
}

/// Several callers with one shared owner all get the lock (a probe), and releasing it frees it
/// for everyone; a lock held by another owner stays refused to the probe.
pub async fn shared_owner_probes_a_lock<B: Backend>(b: &B) {
    let fx = open(b).await;
    let s = &fx.store;
    let marker = "periodic:report:active";
    assert!(
        s.acquire_lock(marker, "probe", secs(1)).await.unwrap(),
        "free: taken"
    );
    assert!(
        s.acquire_lock(marker, "probe", secs(1)).await.unwrap(),
        "same owner"
    );
    assert!(s.release_lock(marker, "probe").await.unwrap());
    assert!(s
        .acquire_lock(marker, "active", secs(31 * 24 * 3600))
        .await
        .unwrap());
    assert!(
        !s.acquire_lock(marker, "probe", secs(1)).await.unwrap(),
        "held: refused"
    );
    assert!(!s.release_lock(marker, "probe").await.unwrap());
    fx.advance(Duration::from_secs(30 * 24 * 3600));
    assert!(
        !s.acquire_lock(marker, "probe", secs(1)).await.unwrap(),
        "still held"
    );
}

/// A fixed (derived) id is a no-op while the task is pending or leased, but can be enqueued
/// again once the task has finished (why the ticker needs a claim besides the id); the new run
/// replaces the old run's result.
pub async fn derived_id_is_free_again_after_completion<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "periodic";
    let id = TaskId::derived("report@1700000000000");
    let fire = || {
        let mut env = fx.env(q, "report");
        env.id = id;
        env
    };
    fx.enqueue(fire()).await;
    let dup = fx.store.enqueue(vec![fire()]).await.unwrap();
    assert_eq!(dup, vec![EnqueueOutcome::Duplicate(id)], "pending");
    let d = fx.fetch_one(q).await;
    let dup = fx.store.enqueue(vec![fire()]).await.unwrap();
    assert_eq!(dup, vec![EnqueueOutcome::Duplicate(id)], "leased");
    assert_eq!(fx.complete(d.lease, success(&())).await, AckStatus::Acked);
    let again = fx.store.enqueue(vec![fire()]).await.unwrap();
    assert_eq!(
        again,
        vec![EnqueueOutcome::Enqueued(id)],
        "finished: free again"
    );
    assert_eq!(
        fx.store.get_result(id).await.unwrap(),
        None,
        "the new run replaced the old run's result"
    );
    assert_eq!(fx.counts(None).await.results, 0);
}
