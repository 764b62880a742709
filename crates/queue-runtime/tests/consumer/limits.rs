//! Task locks and rate limits through running consumers.
//!
//! The lock tests run on paused Tokio time with the store on the same clock (see `common`), so
//! lock TTLs, renewals and task durations do not depend on the machine's speed; the rate-limit
//! test moves a manual clock window by window.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use queue_core::task::RateLimit;
use queue_core::{ManualClock, MemoryStorage, Queue, Task as _, TaskOptions};
use queue_runtime::Event;

use crate::common::{builder, eventually, queue_on_tokio_time, until_event, WAIT};

static INSIDE: AtomicU32 = AtomicU32::new(0);
static HIGH_WATER: AtomicU32 = AtomicU32::new(0);
static FREE_INSIDE: AtomicU32 = AtomicU32::new(0);
static FREE_HIGH_WATER: AtomicU32 = AtomicU32::new(0);

async fn inside(now: &AtomicU32, high: &AtomicU32, hold: Duration) {
    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
    high.fetch_max(n, Ordering::SeqCst);
    tokio::time::sleep(hold).await;
    now.fetch_sub(1, Ordering::SeqCst);
}

task!(Exclusive, "exclusive", (n: u32) -> u32, TaskOptions::new().lock("reports"), |ctx| {
    inside(&INSIDE, &HIGH_WATER, Duration::from_millis(30)).await;
    Ok(n)
});

task!(Free, "free", (n: u32) -> u32, TaskOptions::new(), |ctx| {
    inside(&FREE_INSIDE, &FREE_HIGH_WATER, Duration::from_millis(150)).await;
    Ok(n)
});

#[tokio::test(start_paused = true)]
async fn tasks_sharing_a_lock_never_overlap_while_others_run_in_parallel() {
    let q = queue_on_tokio_time();
    // Two consumers on one store: the lock is the store's, not a process's.
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            builder(&q)
                .workers(8)
                .register_task::<Exclusive>()
                .register_task::<Free>()
                .build()
                .unwrap()
        })
        .collect();
    let mut events = consumers[0].events();
    let locked = q
        .enqueue_many((0..8).map(|n| Exclusive::call((n,))))
        .await
        .unwrap();
    let free = q
        .enqueue_many((0..8).map(|n| Free::call((n,))))
        .await
        .unwrap();
    let running: Vec<_> = consumers.into_iter().map(|c| c.spawn()).collect();

    for (n, h) in locked.iter().enumerate() {
        assert_eq!(h.get(WAIT).await.unwrap(), n as u32);
    }
    for h in &free {
        h.get(WAIT).await.unwrap();
    }
    assert_eq!(
        HIGH_WATER.load(Ordering::SeqCst),
        1,
        "locked tasks overlapped"
    );
    assert!(
        FREE_HIGH_WATER.load(Ordering::SeqCst) > 1,
        "unlocked tasks ran one by one"
    );
    let seen = until_event(&mut events, |e| matches!(e, Event::Locked { .. })).await;
    match seen.last().unwrap() {
        Event::Locked { lock, .. } => assert_eq!(lock, "reports"),
        other => panic!("{other:?}"),
    }
    assert_eq!(q.counts().await.unwrap().dead, 0, "deferred, never failed");
    for r in running {
        r.shutdown(WAIT).await.unwrap();
    }
}

task!(Guarded, "guarded", () -> (), TaskOptions::new().lock("crashed"), |ctx| { Ok(()) });

#[tokio::test(start_paused = true)]
async fn a_crashed_holder_blocks_others_only_until_its_ttl() {
    let q = queue_on_tokio_time();
    // A holder that died: it took the lock for 1 s and never released it.
    assert!(q
        .storage()
        .acquire_lock("crashed", "dead-worker", Duration::from_secs(1))
        .await
        .unwrap());
    let consumer = builder(&q).register_task::<Guarded>().build().unwrap();
    let mut events = consumer.events();
    let running = consumer.spawn();
    let h = Guarded::call(()).enqueue(&q).await.unwrap();
    until_event(&mut events, |e| matches!(e, Event::Locked { .. })).await;
    h.get(WAIT).await.unwrap();
    // Released after the run: a new holder gets it at once.
    assert!(q
        .storage()
        .acquire_lock("crashed", "someone", Duration::from_secs(1))
        .await
        .unwrap());
    running.shutdown(WAIT).await.unwrap();
}

task!(LongLocked, "long_locked", () -> (), TaskOptions::new().lock("long"), |ctx| {
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    Ok(())
});

#[tokio::test(start_paused = true)]
async fn a_running_tasks_lock_is_renewed_with_its_lease() {
    let q = queue_on_tokio_time();
    // Lease 1 s: the lock's TTL. The task runs 2.5 s, so only renewal keeps the lock.
    let consumer = builder(&q)
        .lease(Duration::from_secs(1))
        .register_task::<LongLocked>()
        .build()
        .unwrap();
    let mut events = consumer.events();
    let running = consumer.spawn();
    let h = LongLocked::call(()).enqueue(&q).await.unwrap();
    until_event(&mut events, |e| matches!(e, Event::Executing { .. })).await;
    // Past the TTL, and before the task ends.
    tokio::time::sleep(Duration::from_millis(1_800)).await;
    assert!(h.try_get().await.unwrap().is_none(), "still running");
    assert!(
        !q.storage()
            .acquire_lock("long", "intruder", Duration::from_secs(1))
            .await
            .unwrap(),
        "the lock lapsed while its task ran"
    );
    h.get(WAIT).await.unwrap();
    running.shutdown(WAIT).await.unwrap();
}

static WINDOWS: Mutex<Vec<i64>> = Mutex::new(Vec::new());
static CLOCK: OnceLock<ManualClock> = OnceLock::new();

task!(Limited, "limited", (n: u32) -> u32,
    TaskOptions::new().rate_limit(RateLimit { limit: 10, per: Duration::from_secs(1) }), |ctx| {
    use queue_core::Clock as _;
    WINDOWS.lock().unwrap().push(CLOCK.get().unwrap().now().timestamp());
    Ok(n)
});

#[tokio::test(flavor = "multi_thread")]
async fn rate_limited_tasks_are_deferred_to_later_windows_and_all_complete() {
    let clock = CLOCK
        .get_or_init(|| {
            ManualClock::starting_at(chrono::DateTime::from_timestamp(1_000_000, 0).unwrap())
        })
        .clone();
    let q = Queue::new(Arc::new(MemoryStorage::with_clock(Arc::new(clock.clone()))));
    let consumer = builder(&q)
        .workers(16)
        .register_task::<Limited>()
        .build()
        .unwrap();
    let mut events = consumer.events();
    let handles = q
        .enqueue_many((0..30).map(|n| Limited::call((n,))))
        .await
        .unwrap();
    let running = consumer.spawn();
    until_event(&mut events, |e| matches!(e, Event::RateLimited { .. })).await;

    // Move the manual clock on by a window each time the current one is used up.
    for window in 1..=3usize {
        eventually("the window's tasks to run", || async {
            WINDOWS.lock().unwrap().len() >= 10 * window
        })
        .await;
        // Past the window's end and the deferred tasks' jitter (at most 5% of the window).
        clock.advance(Duration::from_millis(1_100));
    }
    for (n, h) in handles.iter().enumerate() {
        assert_eq!(h.get(WAIT).await.unwrap(), n as u32);
    }
    let starts = WINDOWS.lock().unwrap().clone();
    let mut per_window = std::collections::BTreeMap::new();
    for w in starts {
        *per_window.entry(w).or_insert(0) += 1;
    }
    assert!(
        per_window.len() >= 3,
        "30 tasks at 10/s took {per_window:?}"
    );
    assert!(per_window.values().all(|&n| n <= 10), "{per_window:?}");
    assert_eq!(q.counts().await.unwrap().dead, 0);
    running.shutdown(WAIT).await.unwrap();
}
