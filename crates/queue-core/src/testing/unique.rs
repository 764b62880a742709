//! Cases: unique keys and fixed ids.

use super::{failure, open, secs, success, Backend};
use crate::{
    to_msgpack, AckStatus, EnqueueOutcome, FailureKind, Outcome, Storage, StoredResult, TaskId,
};

/// A second enqueue with the same unique key is a duplicate of the first while the first is
/// ready, leased or waiting for a retry; once it has ended (success or dead) the key is free.
pub async fn unique_key_while_pending_and_leased<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "unique";
    let keyed = |fx: &super::Fx<B::Store>, key: &str| {
        let mut env = fx.env(q, "t");
        env.unique_key = Some(key.to_owned());
        env
    };
    let first = fx.enqueue(keyed(&fx, "k")).await;
    let dup = |fx: &super::Fx<B::Store>| keyed(fx, "k");

    let out = fx.store.enqueue(vec![dup(&fx)]).await.unwrap();
    assert_eq!(out, vec![EnqueueOutcome::Duplicate(first)], "while ready");
    assert_eq!(fx.counts(Some(q)).await.ready, 1);

    let d = fx.fetch_one(q).await;
    let out = fx.store.enqueue(vec![dup(&fx)]).await.unwrap();
    assert_eq!(out, vec![EnqueueOutcome::Duplicate(first)], "while leased");

    let retry = Outcome::Retry {
        eta: fx.now() + secs(10),
        failure: failure(FailureKind::Error, "again"),
    };
    assert_eq!(fx.complete(d.lease, retry).await, AckStatus::Acked);
    let out = fx.store.enqueue(vec![dup(&fx)]).await.unwrap();
    assert_eq!(
        out,
        vec![EnqueueOutcome::Duplicate(first)],
        "while waiting to retry"
    );

    let other = fx.enqueue(keyed(&fx, "k2")).await;
    assert_ne!(other, first);

    fx.advance(secs(11));
    let d = fx.fetch(q, 10).await;
    let d = d
        .into_iter()
        .find(|d| d.lease.id == first)
        .expect("retried task");
    assert_eq!(fx.complete(d.lease, success(&())).await, AckStatus::Acked);
    let second = fx.enqueue(keyed(&fx, "k")).await;
    assert_ne!(
        second, first,
        "a new task with the key after the first succeeded"
    );

    let d = fx.fetch_one(q).await;
    assert_eq!(d.lease.id, second);
    let dead = Outcome::Dead {
        failure: failure(FailureKind::Error, "boom"),
    };
    assert_eq!(fx.complete(d.lease, dead).await, AckStatus::Acked);
    fx.enqueue(keyed(&fx, "k")).await; // accepted: the holder is dead, not pending
}

/// While an id that ended is pending again, its earlier result is gone for readers:
/// `get_result` finds none and `delete_result` deletes none. The new run's outcome is its
/// result; a new run purged before it ran leaves no result, not the earlier one either.
pub async fn an_earlier_result_stays_gone_while_its_id_runs_again<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "rerun";
    let env = fx.env(q, "t");
    let id = fx.enqueue(env.clone()).await;
    let d = fx.fetch_one(q).await;
    assert_eq!(fx.complete(d.lease, success(&1u32)).await, AckStatus::Acked);
    assert!(fx.store.get_result(id).await.unwrap().is_some());

    let again = fx.store.enqueue(vec![env.clone()]).await.unwrap();
    assert_eq!(again, vec![EnqueueOutcome::Enqueued(id)]);
    assert_eq!(
        fx.store.get_result(id).await.unwrap(),
        None,
        "while run again"
    );
    assert!(
        !fx.store.delete_result(id).await.unwrap(),
        "no result to delete while run again"
    );
    assert_eq!(fx.store.purge_queue(q).await.unwrap(), 1);
    assert_eq!(
        fx.store.get_result(id).await.unwrap(),
        None,
        "a purged run leaves no result, not the earlier run's either"
    );

    fx.enqueue(env.clone()).await;
    let d = fx.fetch_one(q).await;
    assert_eq!(fx.store.get_result(id).await.unwrap(), None, "while leased");
    assert_eq!(fx.complete(d.lease, success(&3u32)).await, AckStatus::Acked);
    assert_eq!(
        fx.store.get_result(id).await.unwrap(),
        Some(StoredResult::Success(to_msgpack(&3u32).unwrap())),
        "the newest run's result"
    );
}

/// An envelope with the id of a pending or leased task is a duplicate; after the task ended
/// the id may be used again. Derived ids (periodic fires) dedupe across producers.
pub async fn fixed_id_is_unique<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "fixed";
    let env = fx.env(q, "t");
    let id = fx.enqueue(env.clone()).await;
    let mut again = env.clone();
    again.args = crate::to_msgpack(&("different",)).unwrap();

    let out = fx.store.enqueue(vec![again.clone()]).await.unwrap();
    assert_eq!(out, vec![EnqueueOutcome::Duplicate(id)], "while ready");
    let d = fx.fetch_one(q).await;
    let out = fx.store.enqueue(vec![again.clone()]).await.unwrap();
    assert_eq!(out, vec![EnqueueOutcome::Duplicate(id)], "while leased");
    assert_eq!(fx.complete(d.lease, success(&())).await, AckStatus::Acked);

    assert!(fx.store.get_result(id).await.unwrap().is_some());
    let out = fx.store.enqueue(vec![again.clone()]).await.unwrap();
    assert_eq!(out, vec![EnqueueOutcome::Enqueued(id)], "after it ended");
    assert_eq!(
        fx.store.get_result(id).await.unwrap(),
        None,
        "a new run forgets the result of the earlier one"
    );
    let d = fx.fetch_one(q).await;
    assert_eq!(d.envelope.args, again.args, "the new run's envelope");
    assert_eq!(d.envelope.deliveries, 1, "a new run starts fresh");

    let fire = TaskId::derived("nightly_report@1700000000");
    let mut a = fx.env(q, "nightly_report");
    a.id = fire;
    let mut b2 = fx.env(q, "nightly_report");
    b2.id = fire;
    fx.enqueue(a).await;
    let out = fx.store.enqueue(vec![b2]).await.unwrap();
    assert_eq!(out, vec![EnqueueOutcome::Duplicate(fire)]);
}

/// Duplicates inside one batch (by key and by id) are detected against earlier envelopes of
/// the same batch; a batch without unique keys that repeats an id, or holds one already
/// pending, stores the rest.
pub async fn duplicates_within_a_batch<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "batchdup";
    let with_key = |key: &str| {
        let mut env = fx.env(q, "t");
        env.unique_key = Some(key.to_owned());
        env
    };
    let a = with_key("k");
    let b2 = with_key("k");
    let mut c = fx.env(q, "t");
    c.id = a.id;
    let d = with_key("k2");
    let e = with_key("k2");
    let (ida, idd) = (a.id, d.id);
    let out = fx.store.enqueue(vec![a, b2, c, d, e]).await.unwrap();
    assert_eq!(
        out,
        vec![
            EnqueueOutcome::Enqueued(ida),
            EnqueueOutcome::Duplicate(ida),
            EnqueueOutcome::Duplicate(ida),
            EnqueueOutcome::Enqueued(idd),
            EnqueueOutcome::Duplicate(idd),
        ]
    );
    assert_eq!(fx.counts(Some(q)).await.ready, 2);
    assert_eq!(super::ids(&fx.fetch(q, 10).await), vec![ida, idd]);

    // Without unique keys: a repeated id, and an id already pending, among fresh ones.
    let q = "batchdup-ids";
    let (f, g) = (fx.env(q, "t"), fx.env(q, "t"));
    let (idf, idg) = (f.id, g.id);
    fx.enqueue(f.clone()).await;
    let h = fx.env(q, "t");
    let idh = h.id;
    let out = fx.store.enqueue(vec![g.clone(), h, g, f]).await.unwrap();
    assert_eq!(
        out,
        vec![
            EnqueueOutcome::Enqueued(idg),
            EnqueueOutcome::Enqueued(idh),
            EnqueueOutcome::Duplicate(idg),
            EnqueueOutcome::Duplicate(idf),
        ]
    );
    assert_eq!(super::ids(&fx.fetch(q, 10).await), vec![idf, idg, idh]);
}
