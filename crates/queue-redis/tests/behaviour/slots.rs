//! The key layout for Redis Cluster (layout 2): every call works in one queue's hash tag, so
//! what crossed queues in one call before goes through the documented paths: follow-ups for
//! another queue through the completed task's outbox, ids and unique keys per queue, lookups
//! by id alone in every queue of the registry.

use queue_core::storage::{AckStatus, Completion, EnqueueOutcome, Outcome};
use queue_core::{Clock, Envelope, Storage, StoredResult};
use queue_redis::{RedisOptions, RedisStorage};

use crate::support;
use crate::{arc, env, manual_clock, LEASE};

#[tokio::test]
async fn a_follow_up_for_another_queue_is_moved_there_and_leaves_no_outbox() {
    let clock = manual_clock();
    let store = support::shared_store("slots-follow", arc(&clock)).await;
    let prefix = store.key_prefix().to_owned();
    store
        .enqueue(vec![env(&clock, "first", "a")])
        .await
        .unwrap();
    let d = store.fetch("first", 1, LEASE).await.unwrap().remove(0);
    let next = env(&clock, "second", "b");
    let next_id = next.id;
    let mut c = Completion::new(d.lease, Outcome::Success { result: vec![0xc0] }, None);
    c.follow_ups = vec![next, env(&clock, "first", "c")];
    assert_eq!(
        store.complete(vec![c]).await.unwrap(),
        vec![AckStatus::Acked]
    );

    assert_eq!(store.counts(Some("first")).await.unwrap().ready, 1);
    let got = store.fetch("second", 10, LEASE).await.unwrap();
    assert_eq!(got.len(), 1, "the follow-up is in its own queue");
    assert_eq!(got[0].envelope.id, next_id);
    let mut conn = support::raw_client(&support::shared_url())
        .get_connection()
        .unwrap();
    let left: u64 = redis::cmd("EXISTS")
        .arg(format!("{prefix}:{{first}}:outbox"))
        .query(&mut conn)
        .unwrap();
    assert_eq!(left, 0, "the outbox is emptied once the follow-up moved");
}

#[tokio::test]
async fn a_follow_up_left_in_an_outbox_by_a_dead_client_is_moved_by_purge_expired() {
    let clock = manual_clock();
    let store = support::shared_store("slots-outbox", arc(&clock)).await;
    let prefix = store.key_prefix().to_owned();
    store
        .enqueue(vec![env(&clock, "first", "a")])
        .await
        .unwrap();
    // What a completion leaves when its client dies right after the call: the follow-up in
    // the completed task's outbox, stamped with the call's time.
    let next: Envelope = env(&clock, "second", "b");
    let stamp = queue_core::clock::to_millis(clock.now());
    let mut value = format!("{stamp}|").into_bytes();
    value.extend(next.encode().unwrap());
    let mut conn = support::raw_client(&support::shared_url())
        .get_connection()
        .unwrap();
    redis::cmd("HSET")
        .arg(format!("{prefix}:{{first}}:outbox"))
        .arg(next.id.to_string())
        .arg(value)
        .query::<()>(&mut conn)
        .unwrap();

    store.purge_expired(100).await.unwrap();
    assert_eq!(
        store.counts(Some("second")).await.unwrap().ready,
        0,
        "a follow-up its client may still be moving is left alone"
    );
    clock.advance(std::time::Duration::from_secs(31));
    store.purge_expired(100).await.unwrap();
    let got = store.fetch("second", 10, LEASE).await.unwrap();
    assert_eq!(got.len(), 1, "moved after the grace time");
    assert_eq!(got[0].envelope.id, next.id);
    store.purge_expired(100).await.unwrap();
    assert_eq!(
        store.counts(Some("second")).await.unwrap().ready,
        0,
        "moved once"
    );
}

#[tokio::test]
async fn ids_and_unique_keys_are_per_queue_and_results_are_found_by_id_alone() {
    let clock = manual_clock();
    let store = support::shared_store("slots-ids", arc(&clock)).await;
    let mut a = env(&clock, "qa", "t");
    a.unique_key = Some("daily".into());
    let mut b = env(&clock, "qb", "t");
    b.unique_key = Some("daily".into());
    let (ida, idb) = (a.id, b.id);
    let out = store.enqueue(vec![a, b]).await.unwrap();
    assert_eq!(
        out,
        vec![EnqueueOutcome::Enqueued(ida), EnqueueOutcome::Enqueued(idb)],
        "a unique key holds within its queue only"
    );
    // A completion and reads by id alone from another client of the same store, which
    // remembers no lease: each finds the task's queue in the registry.
    let other = RedisStorage::open(
        RedisOptions::new(support::shared_url())
            .key_prefix(store.key_prefix())
            .clock(arc(&clock)),
    )
    .await
    .unwrap();
    let d = store.fetch("qb", 1, LEASE).await.unwrap().remove(0);
    let c = Completion::new(d.lease, Outcome::Success { result: vec![0x07] }, None);
    assert_eq!(
        other.complete(vec![c]).await.unwrap(),
        vec![AckStatus::Acked]
    );
    assert_eq!(
        other.get_result(idb).await.unwrap(),
        Some(StoredResult::Success(vec![0x07]))
    );
    assert!(other.get_task(ida).await.unwrap().is_some());
    assert!(other.get_task(idb).await.unwrap().is_none());
}

#[tokio::test]
async fn a_lookup_by_id_is_not_misled_by_a_lease_this_client_remembers() {
    let clock = manual_clock();
    let a = support::shared_store("slots-remembered", arc(&clock)).await;
    let b = RedisStorage::open(
        RedisOptions::new(support::shared_url())
            .key_prefix(a.key_prefix())
            .clock(arc(&clock)),
    )
    .await
    .unwrap();
    let first = env(&clock, "qa", "t");
    let id = first.id;
    a.enqueue(vec![first.clone()]).await.unwrap();
    // `a` leases it from qa and loses the lease; `b` runs it to the end.
    a.fetch("qa", 1, LEASE).await.unwrap();
    clock.advance(LEASE + std::time::Duration::from_secs(1));
    let d = b.fetch("qa", 1, LEASE).await.unwrap().remove(0);
    let c = Completion::new(d.lease, Outcome::Success { result: vec![0xc0] }, None);
    assert_eq!(b.complete(vec![c]).await.unwrap(), vec![AckStatus::Acked]);
    // The same fixed id, now pending in another queue.
    let mut again = first;
    again.queue = "qb".into();
    b.enqueue(vec![again]).await.unwrap();
    let task = a.get_task(id).await.unwrap().expect("found in qb");
    assert_eq!(task.queue, "qb");
}
