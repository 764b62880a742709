//! Failures: panics, timeouts, retries, cancel, fatal, unknown tasks, bad arguments, expiry
//! and revocation.

use queue_core::Task as _;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use queue_core::{
    to_msgpack, Envelope, Error, FailureKind, Page, Revocation, RevokeTarget, TaskError,
    TaskOptions, DEFAULT_QUEUE,
};
use queue_runtime::Event;

use crate::common::{builder, queue, until_event, WAIT};

fn failure<T: std::fmt::Debug>(r: Result<T, Error>) -> queue_core::TaskFailure {
    match r {
        Err(Error::TaskFailed { failure, .. }) => failure,
        other => panic!("expected a task failure, got {other:?}"),
    }
}

task!(MaybePanic, "maybe_panic", (boom: bool) -> String,
    TaskOptions::new().retries(1), |ctx| {
    if boom {
        panic!("kaboom");
    }
    Ok("fine".to_owned())
});

#[tokio::test(flavor = "multi_thread")]
async fn a_panic_fails_only_its_task() {
    let q = queue();
    let ok = q
        .enqueue_many((0..5).map(|_| MaybePanic::call((false,))))
        .await
        .unwrap();
    let bad = q
        .enqueue_many((0..2).map(|_| MaybePanic::call((true,))))
        .await
        .unwrap();
    let running = builder(&q)
        .register_task::<MaybePanic>()
        .build()
        .unwrap()
        .spawn();
    for h in &ok {
        assert_eq!(h.get(WAIT).await.unwrap(), "fine");
    }
    for h in &bad {
        let f = failure(h.get(WAIT).await);
        assert_eq!(f.kind, FailureKind::Panic);
        assert_eq!(f.attempts, 2, "a panic is retried like an error");
        assert!(f.message.contains("kaboom"), "{f:?}");
    }
    // The consumer is still running.
    let later = MaybePanic::call((false,)).enqueue(&q).await.unwrap();
    assert_eq!(later.get(WAIT).await.unwrap(), "fine");
    assert_eq!(q.counts().await.unwrap().dead, 2);
    running.shutdown(WAIT).await.unwrap();
}

task!(Slow, "slow", (stall: bool) -> u8,
    TaskOptions::new().timeout(Duration::from_millis(100)), |ctx| {
    if stall {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    Ok(1)
});

#[tokio::test(flavor = "multi_thread")]
async fn a_timeout_fails_only_its_task() {
    let q = queue();
    let stalled = Slow::call((true,)).enqueue(&q).await.unwrap();
    let quick = q
        .enqueue_many((0..5).map(|_| Slow::call((false,))))
        .await
        .unwrap();
    let running = builder(&q).register_task::<Slow>().build().unwrap().spawn();
    for h in &quick {
        assert_eq!(h.get(WAIT).await.unwrap(), 1);
    }
    let f = failure(stalled.get(WAIT).await);
    assert_eq!((f.kind, f.attempts), (FailureKind::Timeout, 1));
    running.shutdown(WAIT).await.unwrap();
}

static SEEN: Mutex<Vec<(u32, u32)>> = Mutex::new(Vec::new());

task!(Flaky, "flaky", () -> u32, TaskOptions::new().retries(2), |ctx| {
    SEEN.lock().unwrap().push((ctx.attempt, ctx.retries_left));
    if ctx.attempt == 1 {
        return Err(TaskError::msg("first try fails"));
    }
    Ok(ctx.attempt)
});

#[tokio::test(flavor = "multi_thread")]
async fn a_retried_task_succeeds_on_its_second_attempt() {
    let q = queue();
    let h = Flaky::call(()).enqueue(&q).await.unwrap();
    let running = builder(&q)
        .register_task::<Flaky>()
        .build()
        .unwrap()
        .spawn();
    assert_eq!(h.get(WAIT).await.unwrap(), 2);
    assert_eq!(*SEEN.lock().unwrap(), [(1, 2), (2, 1)]);
    running.shutdown(WAIT).await.unwrap();
}

static ALWAYS_RUNS: AtomicU32 = AtomicU32::new(0);

task!(AlwaysFails, "always_fails", () -> (), TaskOptions::new().retries(2), |ctx| {
    ALWAYS_RUNS.fetch_add(1, Ordering::SeqCst);
    Err(TaskError::msg(format!("attempt {} failed", ctx.attempt)))
});

#[tokio::test(flavor = "multi_thread")]
async fn exhausted_retries_dead_letter_the_task() {
    let q = queue();
    let h = AlwaysFails::call(()).enqueue(&q).await.unwrap();
    let running = builder(&q)
        .register_task::<AlwaysFails>()
        .build()
        .unwrap()
        .spawn();
    let f = failure(h.get(WAIT).await);
    assert_eq!((f.kind, f.attempts), (FailureKind::Error, 3));
    assert_eq!(f.message, "attempt 3 failed");
    assert_eq!(ALWAYS_RUNS.load(Ordering::SeqCst), 3);
    let dead = q.storage().list_dead(None, Page::first(10)).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].id, dead[0].failure.clone()), (h.id(), f));
    running.shutdown(WAIT).await.unwrap();
}

task!(Later, "later", (succeed_on_retry: bool) -> u32,
    TaskOptions::new().retries(1), |ctx| {
    if ctx.attempt == 1 || !succeed_on_retry {
        return Err(TaskError::retry_after(Duration::from_millis(300), "not yet"));
    }
    Ok(ctx.attempt)
});

#[tokio::test(flavor = "multi_thread")]
async fn retry_after_schedules_the_retry_in_the_store() {
    let q = queue();
    let consumer = builder(&q).register_task::<Later>().build().unwrap();
    let mut events = consumer.events();
    let before = q.clock().now();
    let h = Later::call((true,)).enqueue(&q).await.unwrap();
    let running = consumer.spawn();
    let seen = until_event(&mut events, |e| matches!(e, Event::Retrying { .. })).await;
    let Some(Event::Retrying { eta, .. }) = seen.last() else {
        unreachable!()
    };
    assert!(
        *eta >= before + chrono::TimeDelta::milliseconds(300),
        "{eta} vs {before}"
    );
    let record = q.storage().get_task(h.id()).await.unwrap();
    if let Some(record) = record {
        // It waits in the store, not in a worker (stores keep milliseconds).
        assert!(record.run_at >= before + chrono::TimeDelta::milliseconds(299));
    }
    assert_eq!(h.get(WAIT).await.unwrap(), 2);

    // With no retries left, RetryAfter ends in the dead-letter queue.
    let h = Later::call((false,)).enqueue(&q).await.unwrap();
    let f = failure(h.get(WAIT).await);
    assert_eq!((f.kind, f.attempts), (FailureKind::Error, 2));
    running.shutdown(WAIT).await.unwrap();
}

static CANCEL_RUNS: AtomicU32 = AtomicU32::new(0);

task!(Stopper, "stopper", (fatal: bool) -> (), TaskOptions::new().retries(3), |ctx| {
    CANCEL_RUNS.fetch_add(1, Ordering::SeqCst);
    if fatal {
        Err(TaskError::fatal("cannot ever work"))
    } else {
        Err(TaskError::cancel("nothing to do"))
    }
});

#[tokio::test(flavor = "multi_thread")]
async fn cancel_drops_and_fatal_dead_letters_without_retrying() {
    let q = queue();
    let consumer = builder(&q).register_task::<Stopper>().build().unwrap();
    let mut events = consumer.events();
    let canceled = Stopper::call((false,)).enqueue(&q).await.unwrap();
    let running = consumer.spawn();
    let f = failure(canceled.get(WAIT).await);
    assert_eq!((f.kind, f.attempts), (FailureKind::Canceled, 1));
    until_event(&mut events, |e| matches!(e, Event::Canceled { .. })).await;
    assert_eq!(
        q.counts().await.unwrap().dead,
        0,
        "canceled tasks are dropped"
    );

    let fatal = Stopper::call((true,)).enqueue(&q).await.unwrap();
    let f = failure(fatal.get(WAIT).await);
    assert_eq!((f.kind, f.attempts), (FailureKind::Error, 1));
    assert_eq!(q.counts().await.unwrap().dead, 1);
    assert_eq!(CANCEL_RUNS.load(Ordering::SeqCst), 2, "neither was retried");
    running.shutdown(WAIT).await.unwrap();
}

static ADD_RUNS: AtomicU32 = AtomicU32::new(0);

task!(Add, "add", (a: i64, b: i64) -> i64, TaskOptions::new().retries(3), |ctx| {
    ADD_RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(a + b)
});

#[tokio::test(flavor = "multi_thread")]
async fn unknown_tasks_and_bad_arguments_are_dead_lettered() {
    let q = queue();
    let consumer = builder(&q).register_task::<Add>().build().unwrap();
    let mut events = consumer.events();
    let now = q.clock().now();
    let unknown = Envelope::new(DEFAULT_QUEUE, "nope", to_msgpack(&()).unwrap(), now);
    let bad_args = Envelope::new(
        DEFAULT_QUEUE,
        "add",
        to_msgpack(&"not a pair").unwrap(),
        now,
    );
    let (unknown_id, bad_id) = (unknown.id, bad_args.id);
    q.enqueue_envelopes(vec![unknown, bad_args]).await.unwrap();
    let running = consumer.spawn();

    let f = failure(q.handle::<()>(unknown_id).get(WAIT).await);
    assert_eq!((f.kind, f.attempts), (FailureKind::UnknownTask, 0));
    assert!(f.message.contains("nope"), "{f:?}");
    let f = failure(q.handle::<i64>(bad_id).get(WAIT).await);
    assert_eq!(f.kind, FailureKind::Undecodable);
    until_event(
        &mut events,
        |e| matches!(e, Event::UnknownTask { id, .. } if *id == unknown_id),
    )
    .await;
    assert_eq!(q.counts().await.unwrap().dead, 2);
    assert_eq!(ADD_RUNS.load(Ordering::SeqCst), 0);
    running.shutdown(WAIT).await.unwrap();
}

static GONE_RUNS: AtomicU32 = AtomicU32::new(0);

task!(Gone, "gone", () -> (), TaskOptions::new(), |ctx| {
    GONE_RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(())
});

#[tokio::test(flavor = "multi_thread")]
async fn expired_and_revoked_tasks_are_dropped_without_running() {
    let q = queue();
    let consumer = builder(&q).register_task::<Gone>().build().unwrap();
    let mut events = consumer.events();
    let past = q.clock().now() - chrono::TimeDelta::seconds(1);
    let expired = Gone::call(()).expires_at(past).enqueue(&q).await.unwrap();
    let revoked = Gone::call(()).enqueue(&q).await.unwrap();
    q.storage()
        .revoke(Revocation {
            target: RevokeTarget::Id(revoked.id()),
            until: None,
            once: false,
        })
        .await
        .unwrap();
    let running = consumer.spawn();

    assert_eq!(failure(expired.get(WAIT).await).kind, FailureKind::Expired);
    assert_eq!(failure(revoked.get(WAIT).await).kind, FailureKind::Revoked);
    let mut kinds = Vec::new();
    for _ in 0..2 {
        let seen = until_event(&mut events, |e| {
            matches!(e, Event::Expired { .. } | Event::Revoked { .. })
        })
        .await;
        kinds.push(seen.last().unwrap().kind());
    }
    kinds.sort_unstable();
    assert_eq!(kinds, ["expired", "revoked"]);
    assert_eq!(GONE_RUNS.load(Ordering::SeqCst), 0);
    assert_eq!(
        q.counts().await.unwrap().dead,
        0,
        "dropped, not dead-lettered"
    );
    running.shutdown(WAIT).await.unwrap();
}

task!(AbsurdRetry, "absurd_retry", () -> (), TaskOptions::new().retries(3), |ctx| {
    // A server's `Retry-After` of "forever", say.
    Err(TaskError::retry_after(Duration::MAX, "come back never"))
});

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_after_duration_max_is_scheduled_at_the_end_of_year_9999() {
    let q = queue();
    let running = builder(&q)
        .register_task::<AbsurdRetry>()
        .register_task::<MaybePanic>()
        .build()
        .unwrap()
        .spawn();
    let h = AbsurdRetry::call(()).enqueue(&q).await.unwrap();
    crate::common::eventually("the retry is written back", || async {
        q.counts().await.unwrap().scheduled == 1
    })
    .await;
    let record = q.storage().get_task(h.id()).await.unwrap().unwrap();
    assert_eq!(record.run_at, queue_core::clock::max_time());
    // The consumer goes on working.
    let ok = MaybePanic::call((false,)).enqueue(&q).await.unwrap();
    assert_eq!(ok.get(WAIT).await.unwrap(), "fine");
    running.shutdown(WAIT).await.unwrap();
}
