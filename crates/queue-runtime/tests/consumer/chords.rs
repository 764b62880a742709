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
