//! Builder validation and public type properties.

use std::time::Duration;

use queue_core::{Error, Registry, TaskOptions};
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
