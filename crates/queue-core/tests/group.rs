//! Groups, maps and chords in immediate mode, and the chord envelope shape.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::future::BoxFuture;
use queue_core::{
    ChordInputs, Error, FailureKind, Group, Queue, Task, TaskCall, TaskContext, TaskError,
};

struct Square;
impl Task for Square {
    const NAME: &'static str = "square";
    type Args = (u64,);
    type Output = u64;
    fn run(_: TaskContext, (n,): (u64,)) -> BoxFuture<'static, Result<u64, TaskError>> {
        Box::pin(async move {
            if n == 13 {
                return Err(TaskError::fatal("unlucky"));
            }
            Ok(n * n)
        })
    }
}

struct Sum;
impl Task for Sum {
    const NAME: &'static str = "sum";
    type Args = (Vec<u64>,);
    type Output = u64;
    fn run(_: TaskContext, (v,): (Vec<u64>,)) -> BoxFuture<'static, Result<u64, TaskError>> {
        Box::pin(async move { Ok(v.iter().sum()) })
    }
}
fn sum(v: Vec<u64>) -> TaskCall<Sum> {
    TaskCall::new((v,))
}

#[tokio::test]
async fn map_collects_results_in_order() {
    let queue = Queue::immediate();
    let h = Group::<Square>::map((0..20).map(|n| (n,)))
        .enqueue(&queue)
        .await
        .unwrap();
    assert_eq!(h.ids().len(), 20);
    let out = h.get(Duration::from_secs(1)).await;
    // 13 fails: the group reports the first failure.
    match out {
        Err(Error::TaskFailed { failure, .. }) => assert!(failure.message.contains("unlucky")),
        other => panic!("{other:?}"),
    }
    let ok = Group::<Square>::map((0..5).map(|n| (n,)))
        .enqueue(&queue)
        .await
        .unwrap();
    assert_eq!(
        ok.get(Duration::from_secs(1)).await.unwrap(),
        vec![0, 1, 4, 9, 16]
    );
}

#[tokio::test]
async fn chord_runs_the_callback_with_all_outputs() {
    let queue = Queue::immediate();
    let chord = Group::<Square>::map((1..=10).map(|n| (n,))).then(sum);
    let h = chord.enqueue(&queue).await.unwrap();
    assert_eq!(h.get(Duration::from_secs(1)).await.unwrap(), 385);
    assert_eq!(h.members.get(Duration::ZERO).await.unwrap().len(), 10);
}

#[tokio::test]
async fn chord_with_a_failed_member_fails_its_callback() {
    let queue = Queue::immediate();
    let h = Group::<Square>::map([(12,), (13,)])
        .then(sum)
        .enqueue(&queue)
        .await
        .unwrap();
    match h.get(Duration::from_secs(1)).await {
        Err(Error::TaskFailed { failure, .. }) => {
            assert_eq!(failure.kind, FailureKind::Error);
            assert!(
                failure.message.contains("chord member"),
                "{}",
                failure.message
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn chord_callback_waits_in_a_real_store() {
    // On a store (not immediate), members and callback go in one batch; the callback names
    // its members and is not runnable until they all have results.
    let queue = Queue::memory();
    let h = Group::<Square>::map([(2,), (3,)])
        .then(sum)
        .enqueue(&queue)
        .await
        .unwrap();
    assert_eq!(queue.counts().await.unwrap().ready, 3);
    let rec = queue
        .storage()
        .get_task(h.callback.id())
        .await
        .unwrap()
        .unwrap();
    let env = rec.envelope.unwrap();
    assert_eq!(env.chord_members, h.members.ids());
    assert!(matches!(
        queue.chord_inputs(&env).await.unwrap(),
        ChordInputs::Waiting
    ));
}

#[tokio::test]
async fn a_chord_member_that_could_be_a_duplicate_is_refused_before_anything_is_stored() {
    let queue = Queue::memory();
    // A pending task the unique key would point at.
    TaskCall::<Square>::new((1,))
        .unique_key("square-1")
        .enqueue(&queue)
        .await
        .unwrap();
    let before = queue.counts().await.unwrap().ready;
    let keyed = Group::new([
        TaskCall::<Square>::new((2,)),
        TaskCall::<Square>::new((1,)).unique_key("square-1"),
    ])
    .then(sum)
    .enqueue(&queue)
    .await;
    assert!(matches!(keyed, Err(Error::InvalidInput(_))), "{keyed:?}");
    let fixed = Group::new([TaskCall::<Square>::new((3,)).id(queue_core::TaskId::new())])
        .then(sum)
        .enqueue(&queue)
        .await;
    assert!(matches!(fixed, Err(Error::InvalidInput(_))), "{fixed:?}");
    assert_eq!(
        queue.counts().await.unwrap().ready,
        before,
        "neither members nor callbacks were stored"
    );
}

/// Runs the members of a chord enqueued on `queue`'s store (no consumer): each gets its output.
async fn finish_members(queue: &Queue, members: &[queue_core::TaskId]) {
    let storage = queue.storage();
    for d in storage
        .fetch("default", 100, Duration::from_secs(60))
        .await
        .unwrap()
    {
        if !members.contains(&d.envelope.id) {
            continue;
        }
        let out = queue_core::to_msgpack(&7u64).unwrap();
        let done = queue_core::Completion::new(
            d.lease,
            queue_core::Outcome::Success { result: out },
            None,
        );
        storage.complete(vec![done]).await.unwrap();
    }
}

#[tokio::test]
async fn a_member_whose_result_is_gone_loses_the_chord_instead_of_waiting_forever() {
    let queue = Queue::memory();
    let h = Group::<Square>::map([(2,), (3,)])
        .then(sum)
        .enqueue(&queue)
        .await
        .unwrap();
    let members = h.members.ids();
    finish_members(&queue, members).await;
    let env = queue
        .storage()
        .get_task(h.callback.id())
        .await
        .unwrap()
        .unwrap()
        .envelope
        .unwrap();
    assert!(matches!(
        queue.chord_inputs(&env).await.unwrap(),
        ChordInputs::Ready(_)
    ));
    assert!(queue.storage().delete_result(members[1]).await.unwrap());
    match queue.chord_inputs(&env).await.unwrap() {
        ChordInputs::Lost(f) => {
            assert!(f.message.contains(&members[1].to_string()), "{}", f.message);
            assert!(
                f.message.contains("expired or was deleted"),
                "{}",
                f.message
            );
        }
        other => panic!("expected Lost, got {other:?}"),
    }
}
