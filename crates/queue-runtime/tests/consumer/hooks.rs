//! Hooks (pre/post execute, startup, shutdown), event callbacks and the event stream, and the
//! timeout and interrupted events.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use queue_core::{Error, FailureKind, Outcome, Task as _, TaskError, TaskOptions};
use queue_runtime::{event_stream, Event};

use crate::common::{builder, queue, until_event, WAIT};

static DOOMED_RUNS: AtomicU32 = AtomicU32::new(0);

task!(Doomed, "doomed", () -> (), TaskOptions::new().retries(3), |ctx| {
    DOOMED_RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(())
});
task!(Fine, "fine", (n: u32) -> u32, TaskOptions::new(), |ctx| { Ok(n) });
task!(Fatal, "fatal_hooked", () -> (), TaskOptions::new(), |ctx| {
    Err(TaskError::fatal("no"))
});

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_pre_execute_hook_cancels_the_task() {
    let q = queue();
    let consumer = builder(&q)
        .register_task::<Doomed>()
        .register_task::<Fine>()
        .pre_execute(|ctx| async move {
            if ctx.task == "doomed" {
                return Err(TaskError::msg("maintenance window"));
            }
            Ok(())
        })
        .build()
        .unwrap();
    let mut events = consumer.events();
    let running = consumer.spawn();
    let doomed = Doomed::call(()).enqueue(&q).await.unwrap();
    let fine = Fine::call((7,)).enqueue(&q).await.unwrap();
    match doomed.get(WAIT).await {
        Err(Error::TaskFailed { failure, .. }) => {
            assert_eq!(failure.kind, FailureKind::Canceled);
            assert!(
                failure.message.contains("maintenance window"),
                "{failure:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fine.get(WAIT).await.unwrap(), 7);
    let seen = until_event(&mut events, |e| matches!(e, Event::Canceled { .. })).await;
    assert_eq!(seen.last().unwrap().id(), doomed.id());
    assert_eq!(DOOMED_RUNS.load(Ordering::SeqCst), 0, "the body never ran");
    assert_eq!(
        q.counts().await.unwrap().dead,
        0,
        "dropped, not retried or dead"
    );
    running.shutdown(WAIT).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn post_execute_sees_each_outcome_and_lifecycle_hooks_run_once_in_order() {
    let q = queue();
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let (l1, l2, l3) = (log.clone(), log.clone(), log.clone());
    let fine = Fine::call((1,)).enqueue(&q).await.unwrap();
    let fatal = Fatal::call(()).enqueue(&q).await.unwrap();
    let running = builder(&q)
        .workers(1)
        .register_task::<Fine>()
        .register_task::<Fatal>()
        .on_startup(move || {
            let l = l1.clone();
            async move { l.lock().unwrap().push("startup".into()) }
        })
        .post_execute(move |ctx, outcome| {
            let kind = match outcome {
                Outcome::Success { .. } => "success",
                Outcome::Dead { .. } => "dead",
                _ => "other",
            };
            l2.lock().unwrap().push(format!("{} {kind}", ctx.task));
        })
        .on_shutdown(move || {
            let l = l3.clone();
            async move { l.lock().unwrap().push("shutdown".into()) }
        })
        .build()
        .unwrap()
        .spawn();
    fine.get(WAIT).await.unwrap();
    assert!(fatal.get(WAIT).await.is_err());
    running.shutdown(WAIT).await.unwrap();
    let log = log.lock().unwrap().clone();
    assert_eq!(log.first().map(String::as_str), Some("startup"));
    assert_eq!(log.last().map(String::as_str), Some("shutdown"));
    let mut middle = log[1..log.len() - 1].to_vec();
    middle.sort();
    assert_eq!(middle, ["fatal_hooked dead", "fine success"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_event_callback_does_not_block_execution_and_streams_see_events() {
    let q = queue();
    let seen: Arc<Mutex<Vec<&'static str>>> = Arc::default();
    let s = seen.clone();
    let consumer = builder(&q)
        .register_task::<Fine>()
        .on_event(move |e| {
            std::thread::sleep(Duration::from_millis(20)); // a slow callback
            s.lock().unwrap().push(e.kind());
        })
        .build()
        .unwrap();
    let mut stream = Box::pin(event_stream(consumer.events()));
    let running = consumer.spawn();
    let handles = q
        .enqueue_many((0..20).map(|n| Fine::call((n,))))
        .await
        .unwrap();
    for (n, h) in handles.iter().enumerate() {
        assert_eq!(h.get(WAIT).await.unwrap(), n as u32);
    }
    let mut completes = 0;
    while completes < 20 {
        if let Some(Event::Complete { .. }) = stream.next().await {
            completes += 1;
        }
    }
    running.shutdown(WAIT).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.iter().filter(|k| **k == "complete").count(),
        20,
        "{seen:?}"
    );
    assert!(seen.contains(&"executing"));
}

task!(Sleepy, "sleepy", () -> (), TaskOptions::new().timeout(Duration::from_millis(50)), |ctx| {
    tokio::time::sleep(Duration::from_secs(5)).await;
    Ok(())
});

#[tokio::test(flavor = "multi_thread")]
async fn a_timeout_has_its_own_event_besides_the_error() {
    let q = queue();
    let consumer = builder(&q).register_task::<Sleepy>().build().unwrap();
    let mut events = consumer.events();
    let running = consumer.spawn();
    let h = Sleepy::call(()).enqueue(&q).await.unwrap();
    let seen = until_event(&mut events, |e| matches!(e, Event::Timeout { .. })).await;
    assert!(seen.iter().any(
        |e| matches!(e, Event::Error { failure, .. } if failure.kind == FailureKind::Timeout)
    ));
    match seen.last().unwrap() {
        Event::Timeout { id, timeout, .. } => {
            assert_eq!((*id, *timeout), (h.id(), Duration::from_millis(50)));
        }
        other => panic!("{other:?}"),
    }
    assert!(h.get(WAIT).await.is_err());
    running.shutdown(WAIT).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_hook_counts_attempts_until_the_task_is_dead() {
    let q = queue();
    let running = builder(&q)
        .register_task::<Fine>()
        .pre_execute(|ctx| async move {
            if ctx.task == "fine" {
                panic!("a hook that always panics");
            }
            Ok(())
        })
        .build()
        .unwrap()
        .spawn();
    let h = Fine::call((1,)).enqueue(&q).await.unwrap();
    // Each panic is a failed attempt that keeps its delivery: at the delivery limit
    // (1 + 3 for a task without retries) the task is dead-lettered, not handed back forever.
    match h.get(WAIT).await {
        Err(Error::TaskFailed { failure, .. }) => {
            assert_eq!(failure.kind, FailureKind::DeliveryLimit, "{failure:?}");
        }
        other => panic!("expected the task dead at its delivery limit, got {other:?}"),
    }
    assert_eq!(q.counts().await.unwrap().dead, 1);
    running.shutdown(WAIT).await.unwrap();
}
