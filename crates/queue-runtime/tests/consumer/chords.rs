//! Chords: the callback runs once, after every member, with their outputs in order.

use std::sync::atomic::{AtomicU32, Ordering};

use queue_core::{Error, Group, Queue, TaskCall, TaskError, TaskOptions};
use queue_runtime::RunningConsumer;

use crate::common::{builder, queue, WAIT};

task!(Square, "square", (n: u64) -> u64, TaskOptions::new(), |ctx| {
    if n == 13 {
        return Err(TaskError::fatal("unlucky"));
    }
    tokio::time::sleep(std::time::Duration::from_millis(n % 7 * 10)).await;
    Ok(n * n)
});

static SUM_RUNS: AtomicU32 = AtomicU32::new(0);

task!(Sum, "sum", (v: Vec<u64>) -> u64, TaskOptions::new(), |ctx| {
    SUM_RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(v.iter().sum())
});

fn sum(v: Vec<u64>) -> TaskCall<Sum> {
    TaskCall::new((v,))
}

/// A running consumer of both task kinds with `workers` workers.
fn spawn_consumer(q: &Queue, workers: usize) -> RunningConsumer {
    builder(q)
        .workers(workers)
        .register_task::<Square>()
        .register_task::<Sum>()
        .build()
        .unwrap()
        .spawn()
}

#[tokio::test(flavor = "multi_thread")]
async fn chord_callback_runs_once_with_every_output() {
    let q = queue();
    // Two consumers compete for members and callback.
    let (a, b) = (spawn_consumer(&q, 3), spawn_consumer(&q, 3));
    let before = SUM_RUNS.load(Ordering::SeqCst);
    let h = Group::<Square>::map((1..=12).map(|n| (n,)))
        .then(sum)
        .enqueue(&q)
        .await
        .unwrap();
    assert_eq!(
        h.get(WAIT).await.unwrap(),
        (1..=12u64).map(|n| n * n).sum::<u64>()
    );
    assert_eq!(
        SUM_RUNS.load(Ordering::SeqCst),
        before + 1,
        "the callback ran exactly once"
    );
    a.shutdown(WAIT).await.unwrap();
    b.shutdown(WAIT).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn chord_with_a_failed_member_fails_the_callback() {
    let q = queue();
    let c = spawn_consumer(&q, 8);
    let h = Group::<Square>::map([(12,), (13,)])
        .then(sum)
        .enqueue(&q)
        .await
        .unwrap();
    match h.get(WAIT).await {
        Err(Error::TaskFailed { failure, .. }) => {
            assert!(
                failure.message.contains("chord member"),
                "{}",
                failure.message
            );
        }
        other => panic!("expected the callback to fail, got {other:?}"),
    }
    c.shutdown(WAIT).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chord_whose_member_result_is_gone_is_dead_lettered_with_the_reason() {
    let q = queue();
    let h = Group::<Square>::map([(2,), (3,)])
        .then(sum)
        .enqueue(&q)
        .await
        .unwrap();
    let members = h.members.ids();
    // The members finish (through the store: no consumer yet; the callback is handed back),
    // then one member's result goes away before the callback reads it.
    let storage = q.storage();
    let lease = std::time::Duration::from_secs(60);
    let now = q.clock().now();
    for d in storage.fetch("default", 10, lease).await.unwrap() {
        let outcome = if members.contains(&d.envelope.id) {
            let result = queue_core::to_msgpack(&4u64).unwrap();
            queue_core::Outcome::Success { result }
        } else {
            queue_core::Outcome::Defer { eta: now }
        };
        let done = queue_core::Completion::new(d.lease, outcome, None);
        storage.complete(vec![done]).await.unwrap();
    }
    h.members.get(WAIT).await.unwrap();
    assert!(storage.delete_result(members[0]).await.unwrap());

    let c = spawn_consumer(&q, 2);
    match h.callback.get(WAIT).await {
        Err(Error::TaskFailed { failure, .. }) => {
            assert_eq!(
                failure.kind,
                queue_core::FailureKind::Error,
                "{}",
                failure.message
            );
            assert!(failure.message.contains("no result"), "{}", failure.message);
        }
        other => panic!("expected the callback to fail, got {other:?}"),
    }
    let dead = q.storage().get_dead(h.callback.id()).await.unwrap();
    assert!(dead.is_some(), "the callback is in the dead-letter queue");
    c.shutdown(WAIT).await.unwrap();
}
