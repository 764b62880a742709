//! Leasing ahead of the workers while tasks are short; nothing leased ahead once told not to,
//! and tasks leased ahead handed back unstarted by a graceful shutdown.
//!
//! On paused Tokio time (see `common`): the consumer measures task durations on Tokio's clock,
//! so the short tasks measure as short even on a loaded machine.

use queue_core::Task as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use queue_core::TaskOptions;
use tokio::sync::Semaphore;

use queue_core::Queue;
use queue_runtime::RunningConsumer;

use crate::common::{builder, eventually, queue_on_tokio_time, tokio_clock, WAIT};
use crate::outage::Flaky;

// A short task: 1 ms of Tokio's time (a task that takes no time at all is not measured).
task!(Quick, "quick", () -> (), TaskOptions::new(), |ctx| {
    tokio::time::sleep(Duration::from_millis(1)).await;
    Ok(())
});

static AHEAD_GATE: Semaphore = Semaphore::const_new(0);
static AHEAD_STARTED: AtomicUsize = AtomicUsize::new(0);

task!(Held, "held", () -> (), TaskOptions::new(), |ctx| {
    AHEAD_STARTED.fetch_add(1, Ordering::SeqCst);
    AHEAD_GATE.acquire().await.unwrap().forget();
    Ok(())
});

/// A consumer of `q` with 2 workers and `prefetch`, which has run 20 no-op tasks (so it has
/// measured that tasks are short), and knows task `T` besides.
async fn after_short_tasks<T: queue_core::Task>(q: &Queue, prefetch: usize) -> RunningConsumer {
    let quick = q
        .enqueue_many((0..20).map(|_| Quick::call(())))
        .await
        .unwrap();
    let running = builder(q)
        .workers(2)
        .prefetch(prefetch)
        .register_task::<Quick>()
        .register_task::<T>()
        .build()
        .unwrap()
        .spawn();
    for h in &quick {
        h.get(WAIT).await.unwrap();
    }
    running
}

#[tokio::test(start_paused = true)]
async fn short_tasks_are_leased_ahead_and_handed_back_unstarted_on_shutdown() {
    let q = queue_on_tokio_time();
    let running = after_short_tasks::<Held>(&q, 6).await;
    // ...so of 10 tasks that block, 2 run and 6 more are leased ahead of a free worker.
    q.enqueue_many((0..10).map(|_| Held::call(())))
        .await
        .unwrap();
    eventually("2 running, 8 leased", || async {
        let counts = q.counts().await.unwrap();
        AHEAD_STARTED.load(Ordering::SeqCst) == 2 && counts.leased == 8
    })
    .await;
    for _ in 0..10 {
        let counts = q.counts().await.unwrap();
        assert_eq!((counts.leased, counts.ready), (8, 2), "{counts:?}");
        assert_eq!(
            AHEAD_STARTED.load(Ordering::SeqCst),
            2,
            "only the workers run"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // A graceful shutdown: the 6 leased ahead go back unstarted, the 2 running are handed
    // back after the grace period. Nothing is lost, nothing else ran.
    let report = running.shutdown(Duration::from_millis(100)).await.unwrap();
    assert_eq!(report.released, 8, "{report:?}");
    assert_eq!(AHEAD_STARTED.load(Ordering::SeqCst), 2);
    let counts = q.counts().await.unwrap();
    assert_eq!((counts.leased, counts.ready, counts.dead), (0, 10, 0));
}

static STRICT_GATE: Semaphore = Semaphore::const_new(0);
static STRICT_STARTED: AtomicUsize = AtomicUsize::new(0);

task!(Strict, "strict", () -> (), TaskOptions::new(), |ctx| {
    STRICT_STARTED.fetch_add(1, Ordering::SeqCst);
    STRICT_GATE.acquire().await.unwrap().forget();
    Ok(())
});

#[tokio::test(start_paused = true)]
async fn prefetch_zero_leases_only_for_free_workers() {
    let q = queue_on_tokio_time();
    let running = after_short_tasks::<Strict>(&q, 0).await;
    let held = q
        .enqueue_many((0..5).map(|_| Strict::call(())))
        .await
        .unwrap();
    eventually("2 running", || async {
        STRICT_STARTED.load(Ordering::SeqCst) == 2
    })
    .await;
    for _ in 0..10 {
        let counts = q.counts().await.unwrap();
        assert_eq!((counts.leased, counts.ready), (2, 3), "{counts:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    STRICT_GATE.add_permits(5);
    for h in &held {
        h.get(WAIT).await.unwrap();
    }
    let report = running.shutdown(WAIT).await.unwrap();
    assert_eq!(report.released, 0);
}

/// With short tasks, a fetch leases for at least half of the tasks it may hold ahead: while
/// more than that are still waiting for a worker, the fetcher waits for tasks to end instead
/// of leasing for the one or two permits each end frees. (Fetches of a few tasks, each
/// followed by one for the rest, left the workers without tasks for a round trip.)
#[tokio::test(start_paused = true)]
async fn short_tasks_are_fetched_in_batches_of_half_the_lease_ahead_or_more() {
    let store = Arc::new(Flaky::with_clock(tokio_clock()));
    let q = Queue::new(store.clone());
    let measured = q
        .enqueue_many((0..20).map(|_| Quick::call(())))
        .await
        .unwrap();
    // 4 workers and up to 20 ahead: tasks of 1 ms are started within 5 ms by 4 workers at 20
    // ahead, so a fetch is worth it once 10 may be leased.
    let running = builder(&q)
        .workers(4)
        .prefetch(20)
        .register_task::<Quick>()
        .build()
        .unwrap()
        .spawn();
    for h in &measured {
        h.get(WAIT).await.unwrap();
    }
    store.asked.lock().unwrap().clear();

    let tasks = q
        .enqueue_many((0..200).map(|_| Quick::call(())))
        .await
        .unwrap();
    for h in &tasks {
        h.get(WAIT).await.unwrap();
    }
    let asked = store.asked.lock().unwrap().clone();
    assert!(!asked.is_empty());
    // At least 5: the mean task may measure up to 2 ms on Tokio's 1 ms timer wheel (then 10
    // ahead); 4 workers ending together free 4 permits at most.
    assert!(asked.iter().all(|&n| n >= 5), "fetches asked for {asked:?}");
    running.shutdown(WAIT).await.unwrap();
}
