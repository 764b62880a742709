//! Revocation through a running consumer: by id, by task kind, until a time, once; restore.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use queue_core::{
    Clock as _, Error, FailureKind, ManualClock, MemoryStorage, Queue, RevokeTarget, Task as _,
    TaskOptions,
};
use queue_runtime::{Event, RunningConsumer};

use crate::common::{builder, queue, until_event, WAIT};

static RUNS: AtomicU32 = AtomicU32::new(0);

task!(Victim, "victim", (n: u32) -> u32, TaskOptions::new(), |ctx| {
    RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(n)
});

task!(Bystander, "bystander", (n: u32) -> u32, TaskOptions::new(), |ctx| { Ok(n) });

/// A running consumer of `Bystander` only.
fn spawn_bystanders(q: &Queue) -> RunningConsumer {
    builder(q)
        .register_task::<Bystander>()
        .build()
        .unwrap()
        .spawn()
}

fn revoked<T: std::fmt::Debug>(r: &Result<T, Error>) -> bool {
    matches!(r, Err(Error::TaskFailed { failure, .. }) if failure.kind == FailureKind::Revoked)
}

#[tokio::test(flavor = "multi_thread")]
async fn revoke_by_id_drops_only_that_task_and_restore_undoes_it() {
    let q = queue();
    let consumer = builder(&q).register_task::<Victim>().build().unwrap();
    let mut events = consumer.events();
    let gone = Victim::call((1,)).enqueue(&q).await.unwrap();
    let kept = Victim::call((2,)).enqueue(&q).await.unwrap();
    let restored = Victim::call((3,)).enqueue(&q).await.unwrap();
    gone.revoke().await.unwrap();
    restored.revoke().await.unwrap();
    assert!(restored.restore().await.unwrap());
    let running = consumer.spawn();

    assert!(revoked(&gone.get(WAIT).await));
    assert_eq!(kept.get(WAIT).await.unwrap(), 2);
    assert_eq!(restored.get(WAIT).await.unwrap(), 3);
    let seen = until_event(&mut events, |e| matches!(e, Event::Revoked { .. })).await;
    assert_eq!(seen.last().unwrap().id(), gone.id());
    running.shutdown(WAIT).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn revoke_by_task_kind_until_restored() {
    let q = queue();
    q.revoke_task::<Bystander>().await.unwrap();
    let running = builder(&q)
        .register_task::<Bystander>()
        .register_task::<Victim>()
        .build()
        .unwrap()
        .spawn();
    let a = Bystander::call((1,)).enqueue(&q).await.unwrap();
    let b = Bystander::call((2,)).enqueue(&q).await.unwrap();
    let other = Victim::call((9,)).enqueue(&q).await.unwrap();
    assert!(revoked(&a.get(WAIT).await));
    assert!(revoked(&b.get(WAIT).await));
    assert_eq!(other.get(WAIT).await.unwrap(), 9, "other kinds run");

    assert!(q.restore_task::<Bystander>().await.unwrap());
    let c = Bystander::call((3,)).enqueue(&q).await.unwrap();
    assert_eq!(c.get(WAIT).await.unwrap(), 3);
    running.shutdown(WAIT).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn revoke_until_lapses_at_its_time() {
    let clock = ManualClock::new();
    let q = Queue::new(Arc::new(MemoryStorage::with_clock(Arc::new(clock.clone()))));
    let until = clock.now() + chrono::TimeDelta::seconds(60);
    q.revoke_with(RevokeTarget::Task("bystander".into()), Some(until), false)
        .await
        .unwrap();
    let running = spawn_bystanders(&q);
    let before = Bystander::call((1,)).enqueue(&q).await.unwrap();
    assert!(revoked(&before.get(WAIT).await));
    clock.advance(Duration::from_secs(61));
    let after = Bystander::call((2,)).enqueue(&q).await.unwrap();
    assert_eq!(after.get(WAIT).await.unwrap(), 2);
    running.shutdown(WAIT).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn revoke_once_stops_exactly_one_task() {
    let q = queue();
    q.revoke_with(RevokeTarget::Task("bystander".into()), None, true)
        .await
        .unwrap();
    let handles = q
        .enqueue_many((0..4).map(|n| Bystander::call((n,))))
        .await
        .unwrap();
    let running = spawn_bystanders(&q);
    let mut stopped = 0;
    for h in handles {
        match h.get(WAIT).await {
            Ok(_) => {}
            r if revoked(&r) => stopped += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(stopped, 1);
    running.shutdown(WAIT).await.unwrap();
}
