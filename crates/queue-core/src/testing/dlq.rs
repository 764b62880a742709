//! Cases: the dead-letter queue — list, requeue, purge, discard.

use std::collections::BTreeSet;

use super::{failure, ms, open, secs, success, Backend};
use crate::storage::DISCARD_DEAD_BATCH;
use crate::{
    AckStatus, EnqueueOutcome, FailureKind, Outcome, Page, Storage, StoredResult, TaskId, TaskState,
};

/// `requeue_dead` puts a dead task back on its queue with fresh attempt and delivery counts;
/// unknown or no-longer-dead ids are not counted.
pub async fn requeue_dead_restores_fresh_counts<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "revive";
    let mut env = fx.env(q, "t");
    env.args = crate::to_msgpack(&(42,)).unwrap();
    let args = env.args.clone();
    let id = fx.enqueue(env).await;
    let d = fx.fetch_one(q).await;
    let retry = Outcome::Retry {
        eta: fx.now(),
        failure: failure(FailureKind::Error, "once"),
    };
    assert_eq!(fx.complete(d.lease, retry).await, AckStatus::Acked);
    let d = fx.fetch_one(q).await;
    assert_eq!((d.envelope.attempt, d.envelope.deliveries), (1, 2));
    let dead = Outcome::Dead {
        failure: failure(FailureKind::Error, "twice"),
    };
    assert_eq!(fx.complete(d.lease, dead).await, AckStatus::Acked);

    assert_eq!(
        fx.store.requeue_dead(&[id, TaskId::new()]).await.unwrap(),
        1
    );
    assert!(fx.store.get_dead(id).await.unwrap().is_none());
    fx.no_dead_letters("requeued").await;
    let d = fx.fetch_one(q).await;
    assert_eq!(d.lease.id, id);
    assert_eq!(
        (d.envelope.attempt, d.envelope.deliveries),
        (0, 1),
        "fresh counts"
    );
    assert_eq!((d.envelope.task.as_str(), &d.envelope.args), ("t", &args));
    assert_eq!(
        fx.store.requeue_dead(&[id]).await.unwrap(),
        0,
        "not dead now"
    );
}

/// `requeue_all_dead` and `purge_dead` act on one queue or on all.
pub async fn requeue_all_and_purge_dead_by_queue<B: Backend>(b: &B) {
    let fx = open(b).await;
    let a1 = fx.make_dead("qa", "t").await;
    let a2 = fx.make_dead("qa", "t").await;
    let b1 = fx.make_dead("qb", "t").await;
    let c1 = fx.make_dead("qc", "t").await;

    assert_eq!(fx.store.requeue_all_dead(Some("qa")).await.unwrap(), 2);
    assert_eq!(dead_ids(&fx.store).await, [b1, c1].into());
    let back: BTreeSet<TaskId> = super::ids(&fx.fetch("qa", 10).await).into_iter().collect();
    assert_eq!(back, [a1, a2].into());

    assert_eq!(fx.store.purge_dead(Some("qb")).await.unwrap(), 1);
    assert!(fx.store.get_dead(b1).await.unwrap().is_none());
    assert_eq!(dead_ids(&fx.store).await, [c1].into());

    let d1 = fx.make_dead("qd", "t").await;
    assert_eq!(dead_ids(&fx.store).await, [c1, d1].into());
    assert_eq!(fx.store.purge_dead(None).await.unwrap(), 2);
    assert_eq!(fx.counts(None).await.dead, 0);

    let e1 = fx.make_dead("qe", "t").await;
    let f1 = fx.make_dead("qf", "t").await;
    assert_eq!(fx.store.requeue_all_dead(None).await.unwrap(), 2);
    assert_eq!(fx.counts(None).await.dead, 0);
    assert_eq!(fx.fetch_one("qe").await.lease.id, e1);
    assert_eq!(fx.fetch_one("qf").await.lease.id, f1);
}

/// Requeueing a dead task whose unique key is now held by another pending task must not lose
/// it: it is either requeued (and counted) or still in the dead-letter queue.
pub async fn requeue_dead_never_loses_a_task<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "revive-unique";
    let mut first = fx.env(q, "t");
    first.unique_key = Some("k".into());
    let first = fx.enqueue(first).await;
    let d = fx.fetch_one(q).await;
    let dead = Outcome::Dead {
        failure: failure(FailureKind::Error, "boom"),
    };
    assert_eq!(fx.complete(d.lease, dead).await, AckStatus::Acked);
    let mut second = fx.env(q, "t");
    second.unique_key = Some("k".into());
    let second_id = second.id;
    let out = fx.store.enqueue(vec![second]).await.unwrap();
    assert_eq!(out, vec![EnqueueOutcome::Enqueued(second_id)], "key free");

    let n = fx.store.requeue_dead(&[first]).await.unwrap();
    let pending = fx.store.get_task(first).await.unwrap().is_some();
    let still_dead = fx.store.get_dead(first).await.unwrap().is_some();
    assert!(
        pending || still_dead,
        "requeue_dead returned {n} and the task is neither pending nor dead: it was lost"
    );
    assert_eq!(
        n == 1,
        pending,
        "requeue_dead counted {n}, pending = {pending}"
    );
}

/// `list_dead` lists oldest first (by when they died, not by id) with paging.
pub async fn list_dead_oldest_first_with_paging<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "graveyard";
    let envs: Vec<_> = (0..3).map(|_| fx.env(q, "t")).collect();
    let order = [envs[2].id, envs[0].id, envs[1].id];
    fx.store.enqueue(envs).await.unwrap();
    let ds = fx.fetch(q, 10).await;
    assert_eq!(ds.len(), 3);
    let t0 = fx.now();
    for id in order {
        let d = ds.iter().find(|d| d.lease.id == id).unwrap();
        let dead = Outcome::Dead {
            failure: failure(FailureKind::Error, "boom"),
        };
        assert_eq!(fx.complete(d.lease, dead).await, AckStatus::Acked);
        fx.advance(secs(1));
    }

    let listed = fx.store.list_dead(Some(q), Page::first(10)).await.unwrap();
    assert_eq!(listed.iter().map(|d| d.id).collect::<Vec<_>>(), order);
    let times: Vec<i64> = listed.iter().map(|d| ms(d.failed_at)).collect();
    let expected: Vec<i64> = (0..3).map(|s| ms(t0 + secs(s))).collect();
    assert_eq!(times, expected, "failed_at");
    let page = Page {
        offset: 1,
        limit: 1,
    };
    let listed = fx.store.list_dead(Some(q), page).await.unwrap();
    assert_eq!(listed.iter().map(|d| d.id).collect::<Vec<_>>(), [order[1]]);
    let page = Page {
        offset: 3,
        limit: 10,
    };
    assert!(fx.store.list_dead(Some(q), page).await.unwrap().is_empty());
    assert!(fx
        .store
        .list_dead(Some("graveyard-other"), Page::first(10))
        .await
        .unwrap()
        .is_empty());
}

/// `discard_dead` removes exactly the dead tasks it is given, from every view of the
/// dead-letter queue (listings of all queues and of one, lookups, counts, the queue list), and
/// returns how many were dead: unknown ids, a ready task's id and an id given twice count
/// nothing, and the ready task is still delivered. A list longer than
/// [`DISCARD_DEAD_BATCH`] is handled whole. Discarding again returns 0.
pub async fn discard_dead_removes_only_the_chosen_tasks<B: Backend>(b: &B) {
    let fx = open(b).await;
    let (qa, qb) = ("discard-a", "discard-b");
    let a = fx.make_dead(qa, "t").await;
    let kept = fx.make_dead(qa, "t").await;
    let c = fx.make_dead(qb, "t").await;
    let ready = fx.enqueue_new(qa, "t").await;
    assert_eq!(fx.counts(None).await.dead, 3);

    // a, then ids that are not dead, past the first DISCARD_DEAD_BATCH, then c, then a again.
    let mut ids = vec![a, ready, TaskId::new()];
    ids.extend((0..DISCARD_DEAD_BATCH).map(|_| TaskId::new()));
    ids.extend([c, a]);
    assert_eq!(
        fx.store.discard_dead(&ids).await.unwrap(),
        2,
        "two of the ids were dead"
    );

    assert!(fx.store.get_dead(a).await.unwrap().is_none(), "a discarded");
    assert!(fx.store.get_dead(c).await.unwrap().is_none(), "c discarded");
    let left = fx
        .store
        .get_dead(kept)
        .await
        .unwrap()
        .expect("kept is dead");
    assert_eq!((left.queue.as_str(), left.task.as_str()), (qa, "t"));
    assert_eq!(left.failure.message, "boom");
    assert_eq!(dead_ids(&fx.store).await, [kept].into());
    assert_eq!(dead_ids_of(&fx.store, qa).await, [kept]);
    assert!(
        dead_ids_of(&fx.store, qb).await.is_empty(),
        "nothing dead left in {qb}"
    );
    assert_eq!(fx.counts(None).await.dead, 1);
    assert_eq!(fx.counts(Some(qa)).await.dead, 1);
    assert_eq!(fx.counts(Some(qb)).await.dead, 0);
    let queues = fx.store.queues().await.unwrap();
    assert_eq!(queues, [qa], "{qb} has neither pending nor dead tasks now");

    // The ready task given among the ids is untouched.
    let record = fx
        .store
        .get_task(ready)
        .await
        .unwrap()
        .expect("still pending");
    assert_eq!(record.state, TaskState::Ready);
    assert_eq!(fx.counts(Some(qa)).await.ready, 1);
    assert_eq!(fx.fetch_one(qa).await.lease.id, ready);

    assert_eq!(
        fx.store.discard_dead(&[a, c]).await.unwrap(),
        0,
        "already discarded"
    );
    assert_eq!(fx.store.discard_dead(&[]).await.unwrap(), 0, "no ids");
    assert_eq!(dead_ids(&fx.store).await, [kept].into());
}

/// A discarded task is gone from the dead-letter queue for good: `requeue_dead` and
/// `requeue_all_dead` find nothing to put back, and nothing is delivered. As with
/// `purge_dead`, its failure result goes with it.
pub async fn discarded_dead_tasks_cannot_be_requeued<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "discard-requeue";
    let gone = fx.make_dead(q, "t").await;
    let other = fx.make_dead(q, "t").await;
    assert_eq!(fx.store.discard_dead(&[gone]).await.unwrap(), 1);

    assert_eq!(fx.store.requeue_dead(&[gone]).await.unwrap(), 0);
    fx.fetch_none(q, "a discarded task is not requeued").await;
    assert!(fx.store.get_task(gone).await.unwrap().is_none());
    assert_eq!(
        fx.store.requeue_all_dead(None).await.unwrap(),
        1,
        "other only"
    );
    assert_eq!(fx.fetch_one(q).await.lease.id, other);
    fx.no_dead_letters("other requeued, gone discarded").await;
    assert_eq!(
        fx.store.get_result(gone).await.unwrap(),
        None,
        "its failure result went with it"
    );
}

/// `purge_dead` and `discard_dead` take each task's failure result with its record (what its
/// dead-lettering stored), but not a newer result of the same id (a fixed id run again
/// after it died).
pub async fn purged_dead_tasks_take_their_failure_results<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "purge-results";
    let (one, two, again) = (
        fx.make_dead(q, "t").await,
        fx.make_dead(q, "t").await,
        fx.make_dead(q, "t").await,
    );
    let mut rerun = fx.env(q, "t");
    rerun.id = again;
    fx.enqueue(rerun).await;
    let d = fx.fetch_one(q).await;
    assert_eq!(d.lease.id, again);
    assert_eq!(fx.complete(d.lease, success(&7u32)).await, AckStatus::Acked);

    assert_eq!(fx.store.discard_dead(&[one]).await.unwrap(), 1);
    assert_eq!(fx.store.get_result(one).await.unwrap(), None);
    assert!(matches!(
        fx.store.get_result(two).await.unwrap(),
        Some(StoredResult::Failure(_))
    ));
    assert_eq!(fx.store.purge_dead(Some(q)).await.unwrap(), 2);
    assert_eq!(fx.store.get_result(two).await.unwrap(), None);
    assert!(
        matches!(
            fx.store.get_result(again).await.unwrap(),
            Some(StoredResult::Success(_))
        ),
        "the newer result of the same id stays"
    );
}

/// A task the store dead-letters at fetch (past its delivery limit) keeps its failure result
/// for [`DEAD_RESULT_TTL`](crate::storage::DEAD_RESULT_TTL), like any result with a TTL;
/// the dead-letter record stays until it is requeued, discarded or purged.
pub async fn results_of_tasks_dead_lettered_at_fetch_expire<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "dead-ttl";
    let mut env = fx.env(q, "poison");
    env.max_deliveries = 1;
    let id = fx.enqueue(env).await;
    assert_eq!(fx.fetch_one(q).await.lease.id, id);
    fx.expire_leases(q).await;
    fx.fetch_none(q, "a task past its delivery limit").await;
    assert!(matches!(
        fx.store.get_result(id).await.unwrap(),
        Some(StoredResult::Failure(_))
    ));
    fx.advance(crate::storage::DEAD_RESULT_TTL - secs(60));
    fx.store.purge_expired(1000).await.unwrap();
    assert!(
        fx.store.get_result(id).await.unwrap().is_some(),
        "kept within its TTL"
    );
    fx.advance(secs(120));
    fx.store.purge_expired(1000).await.unwrap();
    assert_eq!(fx.store.get_result(id).await.unwrap(), None, "expired");
    assert!(
        fx.store.get_dead(id).await.unwrap().is_some(),
        "the record stays"
    );
}

/// The dead-letter queue keeps one record per task id: a fixed id that dies a second time
/// (enqueued again after its first death) replaces its earlier record with the latest.
pub async fn a_fixed_id_that_dies_twice_keeps_its_latest_record<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "dies-twice";
    let id = fx.make_dead(q, "t").await;
    let mut again = fx.env(q, "t");
    again.id = id;
    fx.enqueue(again).await;
    let d = fx.fetch_one(q).await;
    assert_eq!(d.lease.id, id);
    let second = Outcome::Dead {
        failure: failure(FailureKind::Panic, "second death"),
    };
    assert_eq!(fx.complete(d.lease, second).await, AckStatus::Acked);

    let listed = fx.store.list_dead(Some(q), Page::first(10)).await.unwrap();
    assert_eq!(listed.len(), 1, "one record per id: {listed:?}");
    assert_eq!(
        (listed[0].failure.kind, listed[0].failure.message.as_str()),
        (FailureKind::Panic, "second death")
    );
    assert_eq!(fx.counts(Some(q)).await.dead, 1);
    assert_eq!(fx.store.requeue_dead(&[id]).await.unwrap(), 1);
    assert_eq!(fx.fetch_one(q).await.lease.id, id);
    fx.no_dead_letters("requeued").await;
}

/// Discarding a dead task leaves a pending task of the same id (enqueued again with a fixed
/// id after it died) where it is.
pub async fn discard_dead_spares_a_pending_task_of_the_same_id<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "discard-same-id";
    let id = fx.make_dead(q, "t").await;
    let mut again = fx.env(q, "t");
    again.id = id;
    fx.enqueue(again).await;

    assert_eq!(fx.store.discard_dead(&[id]).await.unwrap(), 1);
    assert!(fx.store.get_dead(id).await.unwrap().is_none());
    let record = fx.store.get_task(id).await.unwrap().expect("still pending");
    assert_eq!(record.state, TaskState::Ready);
    assert_eq!(fx.counts(Some(q)).await.ready, 1);
    assert_eq!(fx.fetch_one(q).await.lease.id, id);
}

/// The ids in the dead-letter queue.
async fn dead_ids<S: Storage>(s: &S) -> BTreeSet<TaskId> {
    let dead = s.list_dead(None, Page::first(100)).await.unwrap();
    dead.into_iter().map(|d| d.id).collect()
}

/// The ids in the dead-letter queue of `queue`, as listed.
async fn dead_ids_of<S: Storage>(s: &S, queue: &str) -> Vec<TaskId> {
    let dead = s.list_dead(Some(queue), Page::first(100)).await.unwrap();
    dead.into_iter().map(|d| d.id).collect()
}
