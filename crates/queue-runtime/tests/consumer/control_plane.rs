//! The control plane through running consumers: pausing a queue, cancelling running tasks
//! (async and plain `fn`), progress, live workers, weighted and strict multi-queue consumers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use queue_core::{
    CancelRequest, Error, FailureKind, Progress, Task as _, TaskContext, TaskError, TaskOptions,
};

use crate::common::{builder, eventually, queue, WAIT};

task!(Quick, "quick", (n: u32) -> u32, TaskOptions::new(), |ctx| { Ok(n) });

static DROPPED: AtomicU32 = AtomicU32::new(0);

/// Counts its drops: dropping the future of a cancelled task runs it.
struct DropCounter;
impl Drop for DropCounter {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::SeqCst);
    }
}

task!(Forever, "forever", (step: u32) -> u32, TaskOptions::new(), |ctx| {
    let _guard = DropCounter;
    ctx.progress(&Progress::new(f64::from(step), "looping")).unwrap();
    std::future::pending::<()>().await;
    Ok(step)
});

static SAW_TOKEN: AtomicBool = AtomicBool::new(false);
/// Set when [`Blocking`]'s fn has started (leased is not enough: a task cancelled before its
/// execution starts never runs its fn).
static FN_STARTED: AtomicBool = AtomicBool::new(false);

/// A plain `fn` on the blocking pool that checks its token.
struct Blocking;
impl queue_core::Task for Blocking {
    const NAME: &'static str = "blocking";
    type Args = ();
    type Output = ();
    fn run(ctx: TaskContext, (): ()) -> futures::future::BoxFuture<'static, Result<(), TaskError>> {
        queue_core::run_blocking(move || {
            FN_STARTED.store(true, Ordering::SeqCst);
            while !ctx.cancellation.is_cancelled() {
                std::thread::sleep(Duration::from_millis(5));
            }
            SAW_TOKEN.store(true, Ordering::SeqCst);
            Ok(())
        })
    }
}

fn canceled<T: std::fmt::Debug>(r: &Result<T, Error>) -> bool {
    matches!(r, Err(Error::TaskFailed { failure, .. }) if failure.kind == FailureKind::Canceled)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_queue_is_not_consumed_until_resumed() {
    let q = queue();
    let running = builder(&q)
        .register_task::<Quick>()
        .build()
        .unwrap()
        .spawn();
    assert_eq!(
        Quick::call((1,))
            .enqueue(&q)
            .await
            .unwrap()
            .get(WAIT)
            .await
            .unwrap(),
        1
    );
    assert!(q.pause("default").await.unwrap());
    let waiting = Quick::call((2,)).enqueue(&q).await.unwrap();
    // Nothing takes it while paused: it stays ready for as long as we look.
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(q.counts().await.unwrap().ready, 1);
    }
    assert!(waiting.try_get().await.unwrap().is_none());
    assert!(q.resume("default").await.unwrap());
    assert_eq!(waiting.get(WAIT).await.unwrap(), 2);
    running.shutdown(WAIT).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_stops_a_running_async_task_and_its_progress_is_readable() {
    let q = queue();
    let running = builder(&q)
        .register_task::<Forever>()
        .heartbeat_interval(Duration::from_millis(50))
        .build()
        .unwrap()
        .spawn();
    let before = DROPPED.load(Ordering::SeqCst);
    let h = Forever::call((40,)).enqueue(&q).await.unwrap();
    eventually("the task reports its progress", || async {
        h.progress::<Progress>()
            .await
            .unwrap()
            .is_some_and(|p| p.percent == 40.0)
    })
    .await;
    eventually("the worker lists the running task", || async {
        q.workers().await.unwrap().iter().any(|w| {
            w.running
                .iter()
                .any(|r| r.id == h.id() && r.task == "forever")
        })
    })
    .await;
    assert_eq!(h.cancel().await.unwrap(), CancelRequest::Running);
    let out = h.get(WAIT).await;
    assert!(canceled(&out), "{out:?}");
    assert!(
        DROPPED.load(Ordering::SeqCst) > before,
        "the future was dropped"
    );
    assert_eq!(
        q.counts().await.unwrap().dead,
        0,
        "canceled, not dead-lettered"
    );
    running.shutdown(WAIT).await.unwrap();
    assert!(
        q.workers().await.unwrap().is_empty(),
        "gone after its shutdown"
    );
}

static HANDLED: AtomicU32 = AtomicU32::new(0);

task!(Handler, "cancel_handler", (f: queue_core::TaskFailure) -> (), TaskOptions::new(), |ctx| {
    HANDLED.fetch_add(1, Ordering::SeqCst);
    Ok(())
});

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_task_runs_no_follow_ups() {
    let q = queue();
    let running = builder(&q)
        .register_task::<Forever>()
        .register_task::<Handler>()
        .register_task::<Quick>()
        .heartbeat_interval(Duration::from_millis(50))
        .build()
        .unwrap()
        .spawn();
    let h = Forever::call((1,))
        .on_error(Handler::call)
        .enqueue(&q)
        .await
        .unwrap();
    eventually("the task runs", || async {
        q.counts().await.unwrap().leased == 1
    })
    .await;
    let first = h.stage::<u32>(0).unwrap();
    assert_eq!(first.cancel().await.unwrap(), CancelRequest::Running);
    assert!(canceled(&first.get(WAIT).await));
    // The queue is drained: a task enqueued now runs after anything the cancel left behind.
    assert_eq!(
        Quick::call((3,))
            .enqueue(&q)
            .await
            .unwrap()
            .get(WAIT)
            .await
            .unwrap(),
        3
    );
    eventually("nothing pending", || async {
        let c = q.counts().await.unwrap();
        c.ready + c.scheduled + c.leased == 0
    })
    .await;
    assert_eq!(HANDLED.load(Ordering::SeqCst), 0, "the error handler ran");
    running.shutdown(WAIT).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_fires_the_token_of_a_plain_fn() {
    let q = queue();
    let running = builder(&q)
        .register_task::<Blocking>()
        .heartbeat_interval(Duration::from_millis(50))
        .build()
        .unwrap()
        .spawn();
    let h = Blocking::call(()).enqueue(&q).await.unwrap();
    eventually("the fn runs", || async {
        FN_STARTED.load(Ordering::SeqCst)
    })
    .await;
    assert_eq!(q.cancel(h.id()).await.unwrap(), CancelRequest::Running);
    assert!(canceled(&h.get(WAIT).await));
    eventually("the fn saw its token", || async {
        SAW_TOKEN.load(Ordering::SeqCst)
    })
    .await;
    running.shutdown(WAIT).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_a_pending_task_revokes_it() {
    let q = queue();
    let h = Quick::call((5,)).enqueue(&q).await.unwrap();
    assert_eq!(h.cancel().await.unwrap(), CancelRequest::Pending);
    let running = builder(&q)
        .register_task::<Quick>()
        .build()
        .unwrap()
        .spawn();
    let out = h.get(WAIT).await;
    assert!(
        matches!(&out, Err(Error::TaskFailed { failure, .. }) if failure.kind == FailureKind::Revoked),
        "{out:?}"
    );
    running.shutdown(WAIT).await.unwrap();
}

/// Records which queue each run came from.
static ORDER: Mutex<Vec<String>> = Mutex::new(Vec::new());

task!(Tagged, "tagged", () -> (), TaskOptions::new(), |ctx| {
    ORDER.lock().unwrap().push(ctx.queue.clone());
    Ok(())
});

#[tokio::test(flavor = "multi_thread")]
async fn weighted_queues_share_the_work_by_weight() {
    let q = queue();
    for name in ["critical", "default", "low"] {
        let calls: Vec<_> = (0..600).map(|_| Tagged::call(()).queue(name)).collect();
        q.enqueue_many(calls).await.unwrap();
    }
    ORDER.lock().unwrap().clear();
    let running = builder(&q)
        .workers(4)
        .queues([("critical", 6), ("default", 3), ("low", 1)])
        .register_task::<Tagged>()
        .build()
        .unwrap()
        .spawn();
    eventually("500 tasks ran", || async {
        ORDER.lock().unwrap().len() >= 500
    })
    .await;
    running.shutdown(WAIT).await.unwrap();
    let order = ORDER.lock().unwrap().clone();
    let first: Vec<&String> = order.iter().take(500).collect();
    let mut shares: HashMap<&str, usize> = HashMap::new();
    for q in &first {
        *shares.entry(q.as_str()).or_default() += 1;
    }
    for (name, weight) in [("critical", 6.0), ("default", 3.0), ("low", 1.0)] {
        let share = shares.get(name).copied().unwrap_or(0) as f64 / 500.0;
        let want = weight / 10.0;
        assert!(
            (share - want).abs() <= want * 0.1,
            "{name}: {share:.3} of the tasks, want {want} ± 10% ({shares:?})"
        );
    }
}

/// Records the order in which strict-priority runs happened.
static STRICT_ORDER: Mutex<Vec<u32>> = Mutex::new(Vec::new());

task!(Ranked, "ranked", (n: u32) -> u32, TaskOptions::new(), |ctx| {
    STRICT_ORDER.lock().unwrap().push(n);
    Ok(n)
});

#[tokio::test(flavor = "multi_thread")]
async fn strict_priority_drains_the_first_queue_first_and_idle_queues_wake_it() {
    let q = queue();
    // Both queues hold work before the consumer starts, so its first fetch
    // already sees all of it.
    let seconds: Vec<_> = (0..5).map(|n| Ranked::call((n,)).queue("second")).collect();
    let firsts: Vec<_> = (10..15)
        .map(|n| Ranked::call((n,)).queue("first"))
        .collect();
    let seconds = q.enqueue_many(seconds).await.unwrap();
    let firsts = q.enqueue_many(firsts).await.unwrap();
    STRICT_ORDER.lock().unwrap().clear();
    let running = builder(&q)
        .workers(1)
        .prefetch(0)
        .queues([("first", 1), ("second", 1)])
        .strict_priority(true)
        .register_task::<Ranked>()
        .build()
        .unwrap()
        .spawn();
    for h in firsts.iter().chain(&seconds) {
        h.get(WAIT).await.unwrap();
    }
    let order = STRICT_ORDER.lock().unwrap().clone();
    assert_eq!(
        order,
        vec![10, 11, 12, 13, 14, 0, 1, 2, 3, 4],
        "the first queue drains first"
    );
    // An idle consumer wakes on work in any of its queues, the second included.
    let woke = Ranked::call((100,))
        .queue("second")
        .enqueue(&q)
        .await
        .unwrap();
    assert_eq!(woke.get(WAIT).await.unwrap(), 100);
    running.shutdown(WAIT).await.unwrap();
}

#[test]
fn bad_queue_lists_are_refused() {
    let q = queue();
    let err = |b: queue_runtime::ConsumerBuilder| {
        b.register_task::<Quick>().build().unwrap_err().to_string()
    };
    assert!(err(builder(&q).queues([("a", 1), ("a", 2)])).contains("listed twice"));
    assert!(err(builder(&q).queues([("a", 0)])).contains("weight 0"));
    assert!(err(builder(&q).queues(Vec::<(String, u32)>::new())).contains("at least one queue"));
}

task!(Counted, "counted", (fail: bool) -> (), TaskOptions::new().queue("tallied"), |ctx| {
    if fail {
        return Err(TaskError::fatal("told to fail"));
    }
    Ok(())
});

/// What each live worker finished per minute, for a dashboard's hourly chart.
fn tallied(workers: &[queue_core::WorkerStatus]) -> (u64, u64) {
    workers
        .iter()
        .flat_map(|w| &w.throughput)
        .filter(|c| c.queue == "tallied")
        .fold((0, 0), |(ok, bad), c| (ok + c.processed, bad + c.failed))
}

#[tokio::test(flavor = "multi_thread")]
async fn heartbeats_report_what_the_worker_finished_per_minute() {
    let q = queue();
    let running = builder(&q)
        .queues([("tallied", 1)])
        .register_task::<Counted>()
        .heartbeat_interval(Duration::from_millis(50))
        .build()
        .unwrap()
        .spawn();
    for fail in [false, true, false, false, true, false, false] {
        Counted::call((fail,)).enqueue(&q).await.unwrap();
    }
    eventually("5 processed and 2 failed in the heartbeat", || async {
        tallied(&q.workers().await.unwrap()) == (5, 2)
    })
    .await;
    let workers = q.workers().await.unwrap();
    let minutes: Vec<_> = workers[0].throughput.iter().map(|c| c.minute).collect();
    let now = q.clock().now();
    assert!(
        minutes
            .iter()
            .all(|m| *m <= now && now - *m < chrono::Duration::minutes(2)),
        "the current minute: {minutes:?} at {now}"
    );
    assert!(workers[0].periodic.is_empty(), "no periodic tasks here");
    running.shutdown(WAIT).await.unwrap();
}

task!(Chime, "chime", () -> (), TaskOptions::new(), |ctx| { Ok(()) });

#[tokio::test(flavor = "multi_thread")]
async fn heartbeats_report_the_periodic_schedules_with_next_and_last_fire() {
    let q = queue();
    let every = queue_runtime::Schedule::every(Duration::from_millis(300)).unwrap();
    let running = builder(&q)
        .periodic_task_kind::<Chime>(every)
        .heartbeat_interval(Duration::from_millis(50))
        .build()
        .unwrap()
        .spawn();
    eventually("a fire in the heartbeat", || async {
        let workers = q.workers().await.unwrap();
        workers
            .iter()
            .flat_map(|w| &w.periodic)
            .any(|p| p.last.is_some())
    })
    .await;
    let workers = q.workers().await.unwrap();
    let status = &workers[0].periodic[0];
    assert_eq!(
        (status.task.as_str(), status.queue.as_str()),
        ("chime", "default")
    );
    assert_eq!(status.schedule, "every 300ms");
    let (next, last) = (status.next.unwrap(), status.last.unwrap());
    assert!(next > last, "next {next} after last {last}");
    running.shutdown(WAIT).await.unwrap();

    // A consumer that runs no ticker reports no schedules.
    let running = builder(&q)
        .periodic_task_kind::<Chime>(
            queue_runtime::Schedule::every(Duration::from_millis(300)).unwrap(),
        )
        .periodic(false)
        .heartbeat_interval(Duration::from_millis(50))
        .build()
        .unwrap()
        .spawn();
    eventually("the worker is live", || async {
        !q.workers().await.unwrap().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(q
        .workers()
        .await
        .unwrap()
        .iter()
        .all(|w| w.periodic.is_empty()));
    running.shutdown(WAIT).await.unwrap();
}
