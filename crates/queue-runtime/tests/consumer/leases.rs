//! Leases: renewal keeps long tasks from being redelivered; a crashed consumer's tasks come
//! back after their lease and are completed by another.
//!
//! On paused Tokio time with the store on the same clock (see `common`): a 1 s lease and its
//! renewals every ~333 ms hold whatever the machine's speed.

use queue_core::Task as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use queue_core::TaskOptions;
use queue_runtime::Event;

use crate::common::{builder, eventually, queue_on_tokio_time, WAIT};

static LONG_RUNS: AtomicUsize = AtomicUsize::new(0);

task!(LongJob, "long_job", () -> u32, TaskOptions::new(), |ctx| {
    LONG_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    Ok(ctx.deliveries)
});

#[tokio::test(start_paused = true)]
async fn renewal_keeps_a_long_task_from_being_redelivered() {
    let q = queue_on_tokio_time();
    let lease = Duration::from_secs(1);
    let h = LongJob::call(()).enqueue(&q).await.unwrap();
    // Two consumers: if the lease ran out, the other one would take the task.
    let a = builder(&q)
        .lease(lease)
        .register_task::<LongJob>()
        .build()
        .unwrap();
    let b = builder(&q)
        .lease(lease)
        .register_task::<LongJob>()
        .build()
        .unwrap();
    let (mut ea, mut eb) = (a.events(), b.events());
    let (a, b) = (a.spawn(), b.spawn());

    assert_eq!(h.get(WAIT).await.unwrap(), 1, "delivered once");
    assert_eq!(LONG_RUNS.load(Ordering::SeqCst), 1);
    a.shutdown(WAIT).await.unwrap();
    b.shutdown(WAIT).await.unwrap();
    for rx in [&mut ea, &mut eb] {
        while let Ok(e) = rx.try_recv() {
            assert!(!matches!(e, Event::Stale { .. }), "{e:?}");
        }
    }
}

static CRASH_STARTS: AtomicUsize = AtomicUsize::new(0);

task!(Survivor, "survivor", () -> u32, TaskOptions::new(), |ctx| {
    CRASH_STARTS.fetch_add(1, Ordering::SeqCst);
    if ctx.deliveries == 1 {
        // The first worker never finishes: it crashes while running this.
        std::future::pending::<()>().await;
    }
    Ok(ctx.deliveries)
});

#[tokio::test(start_paused = true)]
async fn a_crashed_consumers_tasks_come_back_after_the_lease() {
    let q = queue_on_tokio_time();
    let lease = Duration::from_secs(1);
    let handles = q
        .enqueue_many((0..3).map(|_| Survivor::call(())))
        .await
        .unwrap();
    let first = builder(&q)
        .lease(lease)
        .register_task::<Survivor>()
        .build()
        .unwrap()
        .spawn();
    eventually("3 tasks running", || async {
        CRASH_STARTS.load(Ordering::SeqCst) == 3
    })
    .await;

    first.abort(); // a crash: nothing is written
    for h in &handles {
        assert!(h.try_get().await.unwrap().is_none());
    }

    let second = builder(&q)
        .lease(lease)
        .register_task::<Survivor>()
        .build()
        .unwrap()
        .spawn();
    for h in &handles {
        assert_eq!(
            h.get(WAIT).await.unwrap(),
            2,
            "completed by the second consumer"
        );
    }
    let counts = q.counts().await.unwrap();
    assert_eq!((counts.ready, counts.leased, counts.dead), (0, 0, 0));
    second.shutdown(WAIT).await.unwrap();
}
