//! Producer-side control: revocation, reschedule, locks, dead-letter wrappers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use queue_core::{
    Error, ManualClock, MemoryStorage, Page, Queue, RevokeTarget, Storage, Task, TaskContext,
    TaskError, TaskState,
};

struct Noop;
impl Task for Noop {
    const NAME: &'static str = "noop";
    type Args = ();
    type Output = ();
    fn run(_: TaskContext, (): ()) -> BoxFuture<'static, Result<(), TaskError>> {
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn handles_revoke_restore_and_reschedule() {
    let clock = ManualClock::new();
    let store = Arc::new(MemoryStorage::with_clock(Arc::new(clock.clone())));
    let queue = Queue::new(store.clone());
    let h = Noop::call(()).enqueue(&queue).await.unwrap();

    h.revoke().await.unwrap();
    assert_eq!(
        store.check_revoked(&[(h.id(), "noop")]).await.unwrap(),
        vec![true]
    );
    assert!(h.restore().await.unwrap());
    assert_eq!(
        store.check_revoked(&[(h.id(), "noop")]).await.unwrap(),
        vec![false]
    );

    queue.revoke_task::<Noop>().await.unwrap();
    let other = queue_core::TaskId::new();
    assert_eq!(
        store.check_revoked(&[(other, "noop")]).await.unwrap(),
        vec![true]
    );
    assert!(queue.restore_task::<Noop>().await.unwrap());

    assert!(h.reschedule_in(Duration::from_secs(60)).await.unwrap());
    assert_eq!(
        store.get_task(h.id()).await.unwrap().unwrap().state,
        TaskState::Scheduled
    );
    clock.advance(Duration::from_secs(61));
    assert_eq!(
        store.get_task(h.id()).await.unwrap().unwrap().state,
        TaskState::Ready
    );
    // revoke_once: stops one check, then lapses.
    queue
        .revoke_with(RevokeTarget::Id(h.id()), None, true)
        .await
        .unwrap();
    assert_eq!(
        store.check_revoked(&[(h.id(), "noop")]).await.unwrap(),
        vec![true]
    );
    assert_eq!(
        store.check_revoked(&[(h.id(), "noop")]).await.unwrap(),
        vec![false]
    );
}

/// Tokio's timers are paused (the guard renews on them) and the store reads a manual clock
/// (the TTL runs out on it); the test moves both together, so the outcome does not depend on
/// how fast the machine is.
#[tokio::test(start_paused = true)]
async fn lock_guard_renews_while_held_and_releases_on_drop() {
    let clock = ManualClock::new();
    let queue = Queue::new(Arc::new(MemoryStorage::with_clock(Arc::new(clock.clone()))));
    let ttl = Duration::from_millis(150);
    let renew_every = ttl / 3;
    let guard = queue
        .lock("nightly")
        .ttl(ttl)
        .try_acquire()
        .await
        .unwrap()
        .expect("free at first");
    // Ten renewal periods, well past the TTL: only the guard's renewals keep others out. A
    // renewal that ran a period late would still hold the lock; none at all lets it lapse at
    // the third step.
    for step in 1..=10 {
        clock.advance(renew_every);
        tokio::time::advance(renew_every).await;
        assert!(
            queue.lock("nightly").try_acquire().await.unwrap().is_none(),
            "the lock lapsed {step} renewal periods after it was taken"
        );
    }
    drop(guard);
    // Released by the drop, not by its TTL: the store's clock stands still from here on.
    let again = queue
        .lock("nightly")
        .acquire(Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(again.name(), "nightly");
    match queue
        .lock("nightly")
        .acquire(Duration::from_millis(50))
        .await
    {
        Err(Error::Locked(name)) => assert_eq!(name, "nightly"),
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(again.release().await.unwrap());
}

#[tokio::test]
async fn a_crashed_holder_blocks_only_until_the_ttl() {
    let clock = ManualClock::new();
    let store = Arc::new(MemoryStorage::with_clock(Arc::new(clock.clone())));
    // A holder that never renews (its process died).
    assert!(store
        .acquire_lock("l", "dead-process", Duration::from_secs(30))
        .await
        .unwrap());
    let queue = Queue::new(store);
    assert!(queue.lock("l").try_acquire().await.unwrap().is_none());
    clock.advance(Duration::from_secs(31));
    assert!(queue.lock("l").try_acquire().await.unwrap().is_some());
}

#[tokio::test]
async fn dead_letter_wrappers() {
    let store = Arc::new(MemoryStorage::new());
    let queue = Queue::new(store.clone());
    store.insert_raw(
        "default",
        queue_core::TaskId::new(),
        b"\xc1not msgpack".to_vec(),
    );
    assert!(store
        .fetch("default", 10, Duration::from_secs(5))
        .await
        .unwrap()
        .is_empty());
    let dead = queue.dead_letters(None, Page::first(10)).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].envelope.is_err());
    assert_eq!(
        queue.requeue_dead(&[dead[0].id]).await.unwrap(),
        0,
        "garbage cannot be requeued"
    );
    assert_eq!(queue.purge_dead(None).await.unwrap(), 1);
    assert!(queue
        .dead_letters(None, Page::first(10))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn discard_dead_through_a_sealed_queue_reaches_the_store() {
    let store = Arc::new(MemoryStorage::new());
    let keys = queue_core::seal::Keyring::parse("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
        .unwrap();
    let sealed =
        Queue::new(store.clone()).with_sealing(queue_core::seal::Sealing::new().signing(keys));
    assert!(sealed.sealing().is_some());
    let (gone, kept) = (queue_core::TaskId::new(), queue_core::TaskId::new());
    for id in [gone, kept] {
        store.insert_raw("default", id, b"\xc1not msgpack".to_vec());
    }
    assert!(store
        .fetch("default", 10, Duration::from_secs(5))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.counts(None).await.unwrap().dead, 2);

    assert_eq!(sealed.discard_dead(&[gone]).await.unwrap(), 1);
    assert!(store.get_dead(gone).await.unwrap().is_none());
    assert!(store.get_dead(kept).await.unwrap().is_some());
    assert_eq!(sealed.discard_dead(&[gone]).await.unwrap(), 0);
}

#[tokio::test]
async fn queue_events_report_enqueued_and_scheduled_once_per_stored_task() {
    use queue_core::Event;
    let queue = Queue::memory();
    // Nobody listens: nothing is built or sent.
    Noop::call(()).enqueue(&queue).await.unwrap();
    let mut events = queue.events();
    let now_task = Noop::call(()).enqueue(&queue).await.unwrap();
    let later = Noop::call(())
        .delay(Duration::from_secs(60))
        .enqueue(&queue)
        .await
        .unwrap();
    // A duplicate is not stored, so it is not announced.
    let first = Noop::call(())
        .unique_key("k")
        .enqueue(&queue)
        .await
        .unwrap();
    let dup = Noop::call(())
        .unique_key("k")
        .enqueue(&queue)
        .await
        .unwrap();
    assert_eq!(first.id(), dup.id());
    let mut got = Vec::new();
    while let Ok(e) = events.try_recv() {
        got.push(e);
    }
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(
        matches!(&got[0], Event::Enqueued { id, task } if *id == now_task.id() && task == "noop")
    );
    assert!(matches!(&got[1], Event::Scheduled { id, .. } if *id == later.id()));
    assert!(matches!(&got[2], Event::Enqueued { id, .. } if *id == first.id()));
}

#[tokio::test]
async fn reschedule_is_announced() {
    use queue_core::Event;
    let queue = Queue::memory();
    let h = Noop::call(()).enqueue(&queue).await.unwrap();
    let mut events = queue.events();
    assert!(h.reschedule_in(Duration::from_secs(30)).await.unwrap());
    match events.try_recv() {
        Ok(Event::Scheduled { id, task, .. }) => {
            assert_eq!(id, h.id());
            assert_eq!(task, "noop");
        }
        other => panic!("expected Scheduled, got {other:?}"),
    }
}
