//! Builder validation and public type properties.

use std::time::Duration;

use queue_core::{Error, Registry, Task as _, TaskOptions};
use queue_runtime::{Consumer, Event, RunningConsumer, ShutdownReport};

use crate::common::queue;

task!(Noop, "noop", () -> (), TaskOptions::new(), |ctx| { Ok(()) });

#[test]
fn settings_are_validated() {
    let q = queue();
    let bad = [
        Consumer::builder(q.clone())
            .register_task::<Noop>()
            .workers(0)
            .build(),
        Consumer::builder(q.clone())
            .register_task::<Noop>()
            .workers(8)
            .prefetch(usize::MAX)
            .build(),
        Consumer::builder(q.clone())
            .register_task::<Noop>()
            .workers(queue_runtime::MAX_LEASED + 1)
            .prefetch(0)
            .build(),
        Consumer::builder(q.clone())
            .register_task::<Noop>()
            .lease(Duration::from_millis(500))
            .build(),
        Consumer::builder(q.clone())
            .register_task::<Noop>()
            .poll_interval(Duration::ZERO)
            .build(),
        Consumer::builder(q.clone())
            .register_task::<Noop>()
            .ack_batch(0, Duration::from_millis(1))
            .build(),
        Consumer::builder(q.clone())
            .register_task::<Noop>()
            .queue("")
            .build(),
        Consumer::builder(q.clone())
            .register_task::<Noop>()
            .queue("a{b}")
            .build(),
        Consumer::builder(q.clone()).build(),
    ];
    for (i, built) in bad.into_iter().enumerate() {
        assert!(
            matches!(built, Err(Error::InvalidInput(_))),
            "case {i}: {built:?}"
        );
    }
}

#[test]
fn registries_merge_and_settings_are_visible() {
    let mut registry = Registry::new();
    registry.register::<Noop>();
    let consumer = Consumer::builder(queue())
        .registry(registry)
        .queue("emails")
        .workers(3)
        .periodic(false)
        .build()
        .unwrap();
    assert_eq!(consumer.task_names(), ["noop"]);
    assert_eq!(consumer.queue_name(), "emails");
    assert_eq!(consumer.workers(), 3);
    assert!(!consumer.periodic());
    assert!(queue_runtime::default_workers() >= 1);
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Consumer>();
    check::<RunningConsumer>();
    check::<Event>();
    check::<ShutdownReport>();
    check::<queue_runtime::ConsumerBuilder>();
}

#[test]
fn run_futures_are_send() {
    fn check<T: Send>(_: T) {}
    let consumer = Consumer::builder(queue())
        .register_task::<Noop>()
        .build()
        .unwrap();
    check(consumer.run());
}

task!(Double, "double", (n: u32) -> u32, TaskOptions::new(), |ctx| { Ok(n * 2) });

/// Outcomes written only by time (`max` too large to ever fill) are still written: the
/// consumer neither dies nor stops acknowledging, so no task stays leased for good.
#[tokio::test(start_paused = true)]
async fn an_ack_batch_flushed_only_by_time_still_writes_outcomes() {
    let q = crate::common::queue_on_tokio_time();
    let handles = q
        .enqueue_many((0..3).map(|n| Double::call((n,))))
        .await
        .unwrap();
    let running = Consumer::builder(q.clone())
        .workers(2)
        .ack_batch(usize::MAX, Duration::from_millis(5))
        .register_task::<Double>()
        .build()
        .unwrap()
        .spawn();
    for (n, h) in handles.iter().enumerate() {
        assert_eq!(h.get(crate::common::WAIT).await.unwrap(), n as u32 * 2);
    }
    let report = running.shutdown(crate::common::WAIT).await.unwrap();
    assert_eq!(report.unacked, 0);
    let counts = q.counts().await.unwrap();
    assert_eq!((counts.ready, counts.leased), (0, 0));
}

/// A consumer asked to report itself (almost) never still runs its tasks.
#[tokio::test(start_paused = true)]
async fn a_huge_heartbeat_interval_does_not_stop_the_consumer() {
    let q = crate::common::queue_on_tokio_time();
    let handle = Double::call((21,)).enqueue(&q).await.unwrap();
    let running = Consumer::builder(q.clone())
        .heartbeat_interval(Duration::MAX)
        .register_task::<Double>()
        .build()
        .unwrap()
        .spawn();
    assert_eq!(handle.get(crate::common::WAIT).await.unwrap(), 42);
    running.shutdown(crate::common::WAIT).await.unwrap();
}
