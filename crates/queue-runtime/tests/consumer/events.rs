//! The event stream.

use queue_core::Task as _;
use std::time::Duration;

use queue_core::{FailureKind, TaskError, TaskOptions};
use queue_runtime::Event;
use tokio::sync::broadcast::error::TryRecvError;

use crate::common::{builder, queue, until_event, WAIT};

task!(Maybe, "maybe", (ok: bool) -> (), TaskOptions::new(), |ctx| {
    if ok { Ok(()) } else { Err(TaskError::msg("no")) }
});

#[tokio::test(flavor = "multi_thread")]
async fn events_report_executing_complete_and_error() {
    let q = queue();
    let consumer = builder(&q).register_task::<Maybe>().build().unwrap();
    let mut events = consumer.events();
    let ok = Maybe::call((true,)).enqueue(&q).await.unwrap();
    let bad = Maybe::call((false,)).enqueue(&q).await.unwrap();
    let running = consumer.spawn();
    let _ = bad.get(WAIT).await;
    let _ = ok.get(WAIT).await;

    let mut seen = Vec::new();
    for _ in 0..2 {
        seen.extend(
            until_event(&mut events, |e| {
                matches!(e, Event::Complete { .. } | Event::DeadLettered { .. })
            })
            .await,
        );
    }
    let of = |id| -> Vec<&'static str> {
        seen.iter()
            .filter(|e| e.id() == id)
            .map(Event::kind)
            .collect()
    };
    // The consumer shares its queue's stream, so the producer's `enqueued` comes first.
    assert_eq!(of(ok.id()), ["enqueued", "executing", "complete"]);
    assert_eq!(
        of(bad.id()),
        ["enqueued", "executing", "error", "dead_lettered"]
    );
    assert!(seen.iter().all(|e| e.task() == "maybe"));
    let error = seen.iter().find(|e| e.kind() == "error").unwrap();
    assert!(matches!(error, Event::Error { failure, .. } if failure.kind == FailureKind::Error));
    running.shutdown(WAIT).await.unwrap();
}

task!(Quick, "quick", () -> (), TaskOptions::new(), |ctx| { Ok(()) });

#[tokio::test(flavor = "multi_thread")]
async fn a_subscriber_that_never_reads_does_not_block_execution() {
    let q = queue();
    let consumer = builder(&q)
        .workers(32)
        .register_task::<Quick>()
        .build()
        .unwrap();
    let mut idle = consumer.events();
    let handles = q
        .enqueue_many((0..1500).map(|_| Quick::call(())))
        .await
        .unwrap();
    let running = consumer.spawn();
    for h in &handles {
        h.get(WAIT).await.unwrap();
    }
    running.shutdown(Duration::from_secs(5)).await.unwrap();
    assert!(matches!(idle.try_recv(), Err(TryRecvError::Lagged(_))));
}
