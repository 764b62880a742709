//! Cases: poison tasks, undecodable envelopes, newer formats — dead-lettered, never looping,
//! never dropped.

use super::{ids, open, secs, Backend, Fx};
use crate::{
    FailureKind, Page, RetryPolicy, Storage, StoredResult, TaskId, DELIVERY_MARGIN, FORMAT_VERSION,
};

/// Delivers the task in `queue` `limit` times, letting each lease run out, then checks the
/// next fetch dead-letters it with [`FailureKind::DeliveryLimit`] instead of handing it out.
async fn deliver_until_dead<S: Storage>(fx: &Fx<S>, queue: &str, id: TaskId, limit: u32) {
    for n in 1..=limit {
        let d = fx.fetch_one(queue).await;
        assert_eq!(d.lease.id, id);
        assert_eq!(d.envelope.deliveries, n, "delivery {n} of {limit}");
        fx.expire_leases(queue).await;
    }
    fx.fetch_none(queue, "a task past its delivery limit").await;

    let dead = fx.store.get_dead(id).await.unwrap().expect("dead-lettered");
    assert_eq!(
        dead.failure.kind,
        FailureKind::DeliveryLimit,
        "{:?}",
        dead.failure
    );
    assert_eq!(dead.queue, queue);
    assert!(dead.envelope.is_ok(), "a poison envelope still decodes");
    assert!(
        fx.store.get_task(id).await.unwrap().is_none(),
        "not pending"
    );
    match fx.store.get_result(id).await.unwrap() {
        Some(StoredResult::Failure(f)) => assert_eq!(f.kind, FailureKind::DeliveryLimit),
        other => panic!("the result of a poison task is its failure, got {other:?}"),
    }
    fx.expire_leases(queue).await;
    fx.fetch_none(queue, "a dead poison task").await;
}

/// A task with `max_deliveries = 2` whose leases keep running out is delivered twice, then
/// dead-lettered as poison; a task behind it is still delivered.
pub async fn poison_task_is_dead_lettered<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "poison";
    let mut env = fx.env(q, "poison");
    env.max_deliveries = 2;
    let id = fx.enqueue(env).await;
    deliver_until_dead(&fx, q, id, 2).await;
    let c = fx.counts(Some(q)).await;
    assert_eq!((c.ready, c.leased, c.dead), (0, 0, 1));
    assert_eq!(
        fx.store.list_dead(Some(q), Page::first(10)).await.unwrap()[0].task,
        "poison"
    );

    let next = fx.enqueue_new(q, "fine").await;
    assert_eq!(fx.fetch_one(q).await.lease.id, next);
}

/// Without `max_deliveries` the limit is `retries + 1 + DELIVERY_MARGIN`.
pub async fn default_delivery_limit<B: Backend>(b: &B) {
    let fx = open(b).await;
    let env = fx.env("limit0", "t");
    assert_eq!(env.delivery_limit(), 1 + DELIVERY_MARGIN);
    let id = fx.enqueue(env).await;
    deliver_until_dead(&fx, "limit0", id, 1 + DELIVERY_MARGIN).await;

    let mut env = fx.env("limit2", "t");
    env.retry = RetryPolicy::fixed(2, secs(1));
    let id = fx.enqueue(env).await;
    deliver_until_dead(&fx, "limit2", id, 3 + DELIVERY_MARGIN).await;
}

/// Garbage in the store is not handed out: `fetch` dead-letters it with
/// [`FailureKind::Undecodable`] and a reason (task `"?"`), delivers the valid task behind it,
/// and `requeue_dead` leaves it in the dead-letter queue.
pub async fn undecodable_is_dead_lettered<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "garbage";
    let bad = TaskId::new();
    b.insert_raw(&fx.store, q, bad, b"\xc1 this is not msgpack".to_vec())
        .await;
    let rec = fx
        .store
        .get_task(bad)
        .await
        .unwrap()
        .expect("listed before fetch");
    assert!(
        rec.envelope.is_err(),
        "garbage decodes as {:?}",
        rec.envelope
    );
    let good = fx.enqueue_new(q, "fine").await;

    assert_eq!(
        ids(&fx.fetch(q, 10).await),
        vec![good],
        "only the valid task"
    );
    let dead = fx.store.list_dead(Some(q), Page::first(10)).await.unwrap();
    assert_eq!(dead.len(), 1);
    let d = &dead[0];
    assert_eq!((d.id, d.queue.as_str(), d.task.as_str()), (bad, q, "?"));
    assert_eq!(d.failure.kind, FailureKind::Undecodable, "{:?}", d.failure);
    assert!(!d.failure.message.is_empty(), "the reason is kept");
    assert!(d.envelope.is_err());
    match fx.store.get_result(bad).await.unwrap() {
        Some(StoredResult::Failure(f)) => assert_eq!(f.kind, FailureKind::Undecodable),
        other => panic!("the result of garbage is its failure, got {other:?}"),
    }

    assert_eq!(
        fx.store.requeue_dead(&[bad]).await.unwrap(),
        0,
        "not requeued"
    );
    assert!(
        fx.store.get_dead(bad).await.unwrap().is_some(),
        "still dead"
    );
    fx.expire_leases(q).await;
    assert_eq!(
        ids(&fx.fetch(q, 10).await),
        vec![good],
        "garbage never delivered"
    );
}

/// An envelope of a newer format version is dead-lettered with [`FailureKind::NewerFormat`].
pub async fn newer_format_is_dead_lettered<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "future";
    let mut env = fx.env(q, "from_the_future");
    env.version = FORMAT_VERSION + 1;
    let newer = env.id;
    b.insert_raw(&fx.store, q, newer, env.encode().unwrap())
        .await;
    let good = fx.enqueue_new(q, "fine").await;

    assert_eq!(
        ids(&fx.fetch(q, 10).await),
        vec![good],
        "only the current-format task"
    );
    let d = fx
        .store
        .get_dead(newer)
        .await
        .unwrap()
        .expect("dead-lettered");
    assert_eq!(d.failure.kind, FailureKind::NewerFormat, "{:?}", d.failure);
    assert!(!d.failure.message.is_empty());
    assert_eq!(d.queue, q);
    assert_eq!(fx.counts(Some(q)).await.dead, 1);
}
