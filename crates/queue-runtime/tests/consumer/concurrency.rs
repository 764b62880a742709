//! The consumer never runs, nor leases, more tasks than it has workers.

use queue_core::Task as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use queue_core::TaskOptions;
use tokio::sync::Semaphore;

use crate::common::{builder, eventually, queue, queue_on_tokio_time, WAIT};

static RUNNING: AtomicUsize = AtomicUsize::new(0);
static HIGH: AtomicUsize = AtomicUsize::new(0);

task!(Sleepy, "sleepy", (n: u32) -> u32, TaskOptions::new(), |ctx| {
    let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
    HIGH.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(10)).await;
    RUNNING.fetch_sub(1, Ordering::SeqCst);
    Ok(n)
});

/// On paused Tokio time (see `common`): tasks started together are all inside their 10 ms
/// sleep at once, however slow the machine, so the high-water mark is exact.
#[tokio::test(start_paused = true)]
async fn never_runs_more_than_workers_at_once() {
    let q = queue_on_tokio_time();
    let handles = q
        .enqueue_many((0..50).map(|n| Sleepy::call((n,))))
        .await
        .unwrap();
    let running = builder(&q)
        .workers(4)
        .register_task::<Sleepy>()
        .build()
        .unwrap()
        .spawn();
    for (n, h) in handles.iter().enumerate() {
        assert_eq!(h.get(WAIT).await.unwrap(), n as u32);
    }
    let high = HIGH.load(Ordering::SeqCst);
    assert!(high <= 4, "{high} tasks ran at once with 4 workers");
    assert!(
        high >= 2,
        "tasks did not run concurrently (high-water mark {high})"
    );
    running.shutdown(WAIT).await.unwrap();
}

static GATE: Semaphore = Semaphore::const_new(0);
static GATED_RUNNING: AtomicUsize = AtomicUsize::new(0);

task!(Gated, "gated", () -> (), TaskOptions::new(), |ctx| {
    GATED_RUNNING.fetch_add(1, Ordering::SeqCst);
    GATE.acquire().await.unwrap().forget();
    Ok(())
});

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn never_leases_more_than_workers() {
    let q = queue();
    let handles = q
        .enqueue_many((0..10).map(|_| Gated::call(())))
        .await
        .unwrap();
    let running = builder(&q)
        .workers(3)
        .register_task::<Gated>()
        .build()
        .unwrap()
        .spawn();

    eventually("3 tasks running", || async {
        GATED_RUNNING.load(Ordering::SeqCst) == 3
    })
    .await;
    // Every worker is busy: the fetcher waits for a worker, not for the store, and has leased
    // nothing beyond what runs.
    for _ in 0..20 {
        let counts = q.counts().await.unwrap();
        assert_eq!((counts.leased, counts.ready), (3, 7), "{counts:?}");
        assert_eq!(GATED_RUNNING.load(Ordering::SeqCst), 3);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    GATE.add_permits(10);
    for h in &handles {
        h.get(WAIT).await.unwrap();
    }
    let report = running.shutdown(WAIT).await.unwrap();
    assert_eq!(report.released, 0);
    assert_eq!(q.counts().await.unwrap().leased, 0);
}
