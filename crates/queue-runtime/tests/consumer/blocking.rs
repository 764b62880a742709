//! Plain `fn` tasks on the blocking pool: a thread cannot be stopped from outside, so after a
//! timeout, an operator's cancel or a shutdown the task keeps its lease, its lock and its
//! concurrency slot until the thread returns. No second copy of a task (or of a lock's holder)
//! runs beside one that is still running.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use queue_core::{Error, FailureKind, Task as _, TaskContext, TaskError, TaskOptions};

use crate::common::{builder, eventually, queue, WAIT};

/// Counts the copies of one task kind running at once, and the highest count seen.
struct Copies {
    now: AtomicU32,
    max: AtomicU32,
    runs: AtomicU32,
    ended: AtomicU32,
}

impl Copies {
    const fn new() -> Self {
        Self {
            now: AtomicU32::new(0),
            max: AtomicU32::new(0),
            runs: AtomicU32::new(0),
            ended: AtomicU32::new(0),
        }
    }

    /// Runs `for_` of blocking work as one copy, ignoring every cancellation.
    fn run(&self, for_: Duration) {
        let running = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(running, Ordering::SeqCst);
        self.runs.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(for_);
        self.now.fetch_sub(1, Ordering::SeqCst);
        self.ended.fetch_add(1, Ordering::SeqCst);
    }
}

/// Defines a plain-`fn` task kind that sleeps `$ms` on the blocking pool, ignoring its token.
macro_rules! stubborn {
    ($ty:ident, $name:literal, $copies:ident, $ms:expr, $opts:expr) => {
        static $copies: Copies = Copies::new();
        struct $ty;
        impl queue_core::Task for $ty {
            const NAME: &'static str = $name;
            type Args = (u32,);
            type Output = ();
            fn options() -> TaskOptions {
                $opts
            }
            fn run(
                _: TaskContext,
                _: (u32,),
            ) -> futures::future::BoxFuture<'static, Result<(), TaskError>> {
                queue_core::run_blocking(|| {
                    $copies.run(Duration::from_millis($ms));
                    Ok(())
                })
            }
        }
    };
}

stubborn!(
    TimesOut,
    "times-out",
    TIMES_OUT,
    300,
    TaskOptions::new()
        .timeout(Duration::from_millis(30))
        .retries(3)
        .retry_delay(Duration::ZERO)
);

#[tokio::test(flavor = "multi_thread")]
async fn a_timed_out_plain_fn_is_retried_only_after_its_thread_returns() {
    let q = queue();
    let running = builder(&q)
        .workers(4)
        .register_task::<TimesOut>()
        .build()
        .unwrap()
        .spawn();
    let handle = TimesOut::call((1,)).enqueue(&q).await.unwrap();
    let failed = handle.get(WAIT).await;
    assert!(
        matches!(&failed, Err(Error::TaskFailed { failure, .. }) if failure.kind == FailureKind::Timeout),
        "{failed:?}"
    );
    running.shutdown(WAIT).await.unwrap();
    assert_eq!(
        TIMES_OUT.runs.load(Ordering::SeqCst),
        4,
        "1 run + 3 retries"
    );
    assert_eq!(
        TIMES_OUT.max.load(Ordering::SeqCst),
        1,
        "a retry ran beside the thread of the attempt that timed out"
    );
}

stubborn!(
    Locked,
    "locked-stubborn",
    LOCKED,
    200,
    TaskOptions::new()
        .timeout(Duration::from_millis(20))
        .retries(0)
        .lock("one-at-a-time")
);

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_fn_holds_its_lock_until_its_thread_returns() {
    let q = queue();
    let running = builder(&q)
        .workers(4)
        .register_task::<Locked>()
        .build()
        .unwrap()
        .spawn();
    let mut handles = Vec::new();
    for n in 0..4 {
        handles.push(Locked::call((n,)).enqueue(&q).await.unwrap());
    }
    for handle in handles {
        // Each times out (its thread sleeps past the limit), after holding the lock alone.
        assert!(handle.get(WAIT).await.is_err());
    }
    running.shutdown(WAIT).await.unwrap();
    assert_eq!(LOCKED.runs.load(Ordering::SeqCst), 4);
    assert_eq!(
        LOCKED.max.load(Ordering::SeqCst),
        1,
        "two holders of one lock ran at once"
    );
}

stubborn!(Slow, "slow-stubborn", SLOW, 800, TaskOptions::new());

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_hands_a_plain_fn_back_only_after_its_thread_returns() {
    let q = queue();
    let first = builder(&q).register_task::<Slow>().build().unwrap().spawn();
    let handle = Slow::call((1,)).enqueue(&q).await.unwrap();
    eventually("the task starts", || async {
        SLOW.now.load(Ordering::SeqCst) == 1
    })
    .await;
    // A second worker waits for the task while the first one shuts down.
    let second = builder(&q).register_task::<Slow>().build().unwrap().spawn();
    let report = first.shutdown(Duration::from_millis(20)).await.unwrap();
    assert_eq!(report.released, 1, "{report:?}");
    // (The second worker may already have started the task again: count ended runs.)
    assert_eq!(
        SLOW.ended.load(Ordering::SeqCst),
        1,
        "shutdown returned while the task's thread still ran"
    );
    handle.get(WAIT).await.unwrap();
    second.shutdown(WAIT).await.unwrap();
    assert_eq!(
        SLOW.runs.load(Ordering::SeqCst),
        2,
        "handed back, then run again"
    );
    assert_eq!(
        SLOW.max.load(Ordering::SeqCst),
        1,
        "the second worker ran the task beside the first one's thread"
    );
}

stubborn!(
    Outlives,
    "outlives-its-lease",
    OUTLIVES,
    2_500,
    TaskOptions::new()
        .timeout(Duration::from_millis(30))
        .retries(0)
);

#[tokio::test(flavor = "multi_thread")]
async fn a_thread_running_past_its_lease_keeps_the_lease_renewed() {
    let q = queue();
    // Two workers with leases shorter than the thread's run: only renewal keeps the second
    // from taking the task while the first one's thread still runs.
    let workers: Vec<_> = (0..2)
        .map(|_| {
            builder(&q)
                .lease(Duration::from_secs(1))
                .register_task::<Outlives>()
                .build()
                .unwrap()
                .spawn()
        })
        .collect();
    let handle = Outlives::call((1,)).enqueue(&q).await.unwrap();
    assert!(handle.get(WAIT).await.is_err(), "it times out");
    for worker in workers {
        worker.shutdown(WAIT).await.unwrap();
    }
    assert_eq!(
        OUTLIVES.runs.load(Ordering::SeqCst),
        1,
        "the lease ran out while the thread still ran, and another worker took the task"
    );
}
