//! Graceful shutdown: short tasks finish, long ones go back to the queue, nothing is lost.

use queue_core::Task as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use queue_core::TaskOptions;
use queue_runtime::Event;
use tokio::sync::{oneshot, Semaphore};

use crate::common::{builder, eventually, queue, queue_on_tokio_time, until_event, WAIT};

static STARTED: AtomicUsize = AtomicUsize::new(0);
static SHORT_GATE: Semaphore = Semaphore::const_new(0);
static LONG_GATE: Semaphore = Semaphore::const_new(0);

task!(Job, "job", (long: bool) -> bool, TaskOptions::new(), |ctx| {
    STARTED.fetch_add(1, Ordering::SeqCst);
    let gate = if long { &LONG_GATE } else { &SHORT_GATE };
    gate.acquire().await.unwrap().forget();
    Ok(long)
});

/// On paused Tokio time (see `common`): the 300 ms grace period ends only once every task that
/// can finish has finished, however slow the machine.
#[tokio::test(start_paused = true)]
async fn shutdown_waits_for_short_tasks_and_releases_long_ones() {
    let q = queue_on_tokio_time();
    let short = q
        .enqueue_many((0..2).map(|_| Job::call((false,))))
        .await
        .unwrap();
    let long = q
        .enqueue_many((0..2).map(|_| Job::call((true,))))
        .await
        .unwrap();
    let consumer = builder(&q)
        .workers(4)
        .register_task::<Job>()
        .build()
        .unwrap();
    let mut events = consumer.events();
    let running = consumer.spawn();
    eventually("4 tasks running", || async {
        STARTED.load(Ordering::SeqCst) == 4
    })
    .await;

    let mut stopping = Box::pin(running.shutdown(Duration::from_millis(300)));
    // The first poll stops fetching; only then may the short tasks finish.
    assert!(futures::poll!(&mut stopping).is_pending());
    SHORT_GATE.add_permits(2);
    let report = stopping.await.unwrap();

    assert_eq!(
        (report.completed, report.released, report.unacked),
        (2, 2, 0)
    );
    for h in &short {
        assert!(!h.try_get().await.unwrap().unwrap(), "short tasks finished");
    }
    let counts = q.counts().await.unwrap();
    assert_eq!(
        (counts.ready, counts.leased),
        (2, 0),
        "long tasks are back, ready: {counts:?}"
    );
    let seen = until_event(&mut events, |e| matches!(e, Event::Interrupted { .. })).await;
    assert!(seen.iter().all(|e| !matches!(e, Event::Stale { .. })));

    // Another consumer picks them up at once.
    LONG_GATE.add_permits(2);
    let again = builder(&q).register_task::<Job>().build().unwrap().spawn();
    for h in &long {
        assert!(h.get(WAIT).await.unwrap());
    }
    again.shutdown(WAIT).await.unwrap();
}

task!(Echo, "echo", (n: u32) -> u32, TaskOptions::new(), |ctx| { Ok(n) });

#[tokio::test(flavor = "multi_thread")]
async fn run_until_stops_when_the_signal_fires() {
    let q = queue();
    let h = Echo::call((7,)).enqueue(&q).await.unwrap();
    let consumer = builder(&q).register_task::<Echo>().build().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let run = tokio::spawn(consumer.run_until(rx));
    assert_eq!(h.get(WAIT).await.unwrap(), 7);
    tx.send(()).unwrap();
    let report = tokio::time::timeout(WAIT, run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(report.released, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_of_an_idle_consumer_is_quick_and_clean() {
    let q = queue();
    let running = builder(&q).register_task::<Echo>().build().unwrap().spawn();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let report = tokio::time::timeout(WAIT, running.shutdown(WAIT))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (report.completed, report.released, report.unacked),
        (0, 0, 0)
    );
}
