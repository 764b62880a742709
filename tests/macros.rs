//! `#[skiff::task]`: tasks written with the macro, run through an immediate-mode queue, their
//! options as stored in the envelope, and registration. What it refuses to compile is in
//! `crates/compile-tests`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use skiff::{Backoff, Error, FailureKind, Queue, Registry, Task, TaskCall, TaskContext, TaskError};

const WAIT: Duration = Duration::from_secs(5);

/// Enqueues `call` on `queue` and waits for its output.
async fn output<T: Task>(queue: &Queue, call: TaskCall<T>) -> T::Output {
    call.enqueue(queue).await.unwrap().get(WAIT).await.unwrap()
}

/// What `send_email` returns (public, like the task: a `pub` task's types must be public).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sent {
    /// The recipient.
    pub to: String,
    /// The subject.
    pub subject: String,
}

/// Sends one email (pretend).
#[skiff::task(retries = 3, retry_delay = "60s", priority = 100)]
pub async fn send_email(to: String, subject: String) -> Result<Sent, TaskError> {
    if to.is_empty() {
        return Err(TaskError::cancel("no recipient"));
    }
    tokio::task::yield_now().await;
    Ok(Sent { to, subject })
}

#[skiff::task(
    name = "reports.nightly",
    queue = "reports",
    timeout = "30s",
    expires = "1h",
    retries = 4,
    retry_delay = "500ms",
    retry_backoff = 2.0,
    priority = -7
)]
async fn nightly_report(day: u32) -> Result<String, TaskError> {
    Ok(format!("report for day {day}"))
}

/// Runs on the blocking pool: reports the thread it ran on.
#[skiff::task]
fn blocking_thread(mut n: u64) -> Result<(String, u64), TaskError> {
    n += 1;
    Ok((format!("{:?}", std::thread::current().id()), n))
}

#[skiff::task(context, retries = 2)]
async fn introspect(
    ctx: TaskContext,
    tag: String,
) -> Result<(String, u32, u32, String), TaskError> {
    Ok((
        ctx.id.to_string(),
        ctx.attempt,
        ctx.retries_left,
        format!("{tag}:{}:{}", ctx.task, ctx.queue),
    ))
}

#[skiff::task(context)]
fn blocking_with_context(ctx: TaskContext) -> u32 {
    ctx.attempt
}

/// `Result<T, E>` with a std error: the error converts into a `TaskError`.
#[skiff::task]
async fn parse_number(text: String) -> Result<u32, std::num::ParseIntError> {
    let n: u32 = text.trim().parse()?;
    Ok(n * 2)
}

/// An alias with one parameter (`std::io::Result<T>`) also counts as a result.
#[skiff::task]
fn read_missing(path: String) -> std::io::Result<Vec<u8>> {
    std::fs::read(path)
}

#[skiff::task]
async fn bare_value(a: i64, b: i64) -> i64 {
    a + b
}

#[skiff::task]
async fn no_return() {}

#[skiff::task]
fn no_args() -> String {
    "none".to_owned()
}

static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);

/// Fails on its first two attempts.
#[skiff::task(context, retries = 2, retry_delay = "1h")]
async fn flaky(ctx: TaskContext) -> Result<u32, TaskError> {
    FLAKY_CALLS.fetch_add(1, Ordering::SeqCst);
    if ctx.attempt <= 2 {
        return Err(TaskError::msg(format!("attempt {} fails", ctx.attempt)));
    }
    Ok(ctx.attempt)
}

static ALWAYS_CALLS: AtomicU32 = AtomicU32::new(0);

#[skiff::task(retries = 1)]
async fn always_fails() -> Result<(), TaskError> {
    ALWAYS_CALLS.fetch_add(1, Ordering::SeqCst);
    Err(TaskError::msg("nope"))
}

/// A raw identifier as the name: the task is stored as `type`.
#[skiff::task]
async fn r#type(x: u8) -> u8 {
    x
}

mod inner {
    /// A public task in a module, with a documented call function.
    #[skiff::task(queue = "inner")]
    pub async fn ping() -> String {
        "pong".to_owned()
    }
}

#[tokio::test]
async fn async_task_runs_and_returns_its_typed_output() {
    let queue = Queue::immediate();
    let handle = send_email("a@b.c".into(), "hi".into())
        .enqueue(&queue)
        .await
        .unwrap();
    let sent: Sent = handle.get(WAIT).await.unwrap();
    assert_eq!(
        sent,
        Sent {
            to: "a@b.c".into(),
            subject: "hi".into()
        }
    );

    let canceled = send_email(String::new(), "hi".into())
        .enqueue(&queue)
        .await
        .unwrap();
    match canceled.get(WAIT).await {
        Err(Error::TaskFailed { failure, .. }) => {
            assert_eq!(failure.kind, FailureKind::Canceled);
            assert_eq!(failure.message, "no recipient");
            assert_eq!(failure.attempts, 1, "a canceled task is not retried");
        }
        other => panic!("expected a canceled task, got {other:?}"),
    }
}

#[tokio::test]
async fn plain_fn_runs_on_the_blocking_pool() {
    let queue = Queue::immediate();
    let here = format!("{:?}", std::thread::current().id());
    let (thread, n) = output(&queue, blocking_thread(41)).await;
    assert_eq!(n, 42);
    assert_ne!(thread, here, "a plain fn must not run on the async thread");
}

#[tokio::test]
async fn context_parameter_sees_the_task() {
    let queue = Queue::immediate();
    let handle = introspect("t".into()).enqueue(&queue).await.unwrap();
    let (id, attempt, retries_left, rest) = handle.get(WAIT).await.unwrap();
    assert_eq!(id, handle.id().to_string());
    assert_eq!(attempt, 1);
    assert_eq!(retries_left, 2);
    assert_eq!(rest, "t:introspect:default");
    // The context is not an argument.
    let _: <introspect as Task>::Args = ("only the tag".to_owned(),);

    assert_eq!(output(&queue, blocking_with_context()).await, 1);
}

#[tokio::test]
async fn std_errors_convert_into_task_errors() {
    let queue = Queue::immediate();
    assert_eq!(output(&queue, parse_number("21".into())).await, 42);

    let bad = parse_number("x".into()).enqueue(&queue).await.unwrap();
    match bad.get(WAIT).await {
        Err(Error::TaskFailed { failure, .. }) => {
            assert_eq!(failure.kind, FailureKind::Error);
            assert!(
                failure.message.contains("invalid digit"),
                "{}",
                failure.message
            );
        }
        other => panic!("expected a failure, got {other:?}"),
    }

    let missing = read_missing("/nonexistent/skiff/file".into())
        .enqueue(&queue)
        .await
        .unwrap();
    assert!(matches!(
        missing.get(WAIT).await,
        Err(Error::TaskFailed { .. })
    ));
}

#[tokio::test]
async fn bare_and_unit_returns_are_successes() {
    let queue = Queue::immediate();
    assert_eq!(output(&queue, bare_value(2, 3)).await, 5);
    output(&queue, no_return()).await;
    assert_eq!(output(&queue, no_args()).await, "none");
    assert_eq!(output(&queue, r#type(9)).await, 9);
    assert_eq!(<r#type as Task>::NAME, "type");
    assert_eq!(output(&queue, inner::ping()).await, "pong");
}

#[test]
fn options_land_in_the_envelope() {
    let now = chrono::Utc::now();
    let env = send_email("a@b.c".into(), "hi".into())
        .into_envelope(now)
        .unwrap();
    assert_eq!(env.task, "send_email");
    assert_eq!(env.queue, "default");
    assert_eq!(env.priority, 100);
    assert_eq!(env.retry.max_retries, 3);
    assert_eq!(env.retry.backoff, Backoff::Fixed { delay_ms: 60_000 });
    assert_eq!(env.timeout, None);
    assert_eq!(env.expires_at, None);

    let env = nightly_report(3).into_envelope(now).unwrap();
    assert_eq!(env.task, "reports.nightly");
    assert_eq!(env.queue, "reports");
    assert_eq!(env.priority, -7);
    assert_eq!(env.timeout, Some(Duration::from_secs(30)));
    assert_eq!(env.expires_at, Some(now + chrono::Duration::hours(1)));
    assert_eq!(env.retry.max_retries, 4);
    assert!(
        matches!(env.retry.backoff, Backoff::Exponential { base_ms: 500, factor, .. } if factor == 2.0)
    );
    assert_eq!(env.retry.delay(3), Duration::from_secs(2));

    let opts = <nightly_report as Task>::options();
    assert_eq!(opts.retry_backoff, Some(2.0));
    assert_eq!(<nightly_report as Task>::NAME, "reports.nightly");
    assert_eq!(
        <send_email as Task>::options().retry_delay,
        Duration::from_secs(60)
    );
    assert_eq!(<no_args as Task>::options(), skiff::TaskOptions::new());
}

#[tokio::test]
async fn immediate_mode_retries_until_success() {
    let queue = Queue::immediate();
    assert_eq!(output(&queue, flaky()).await, 3);
    assert_eq!(FLAKY_CALLS.load(Ordering::SeqCst), 3);

    let handle = always_fails().enqueue(&queue).await.unwrap();
    match handle.get(WAIT).await {
        Err(Error::TaskFailed { failure, .. }) => assert_eq!(failure.attempts, 2),
        other => panic!("expected a failure after 2 attempts, got {other:?}"),
    }
    assert_eq!(ALWAYS_CALLS.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn calls_chain_delay_eta_and_priority() {
    let queue = Queue::immediate();
    let handle = send_email("a@b.c".into(), "later".into())
        .delay(Duration::from_secs(1800))
        .priority(5)
        .queue("elsewhere")
        .enqueue(&queue)
        .await
        .unwrap();
    assert_eq!(handle.get(WAIT).await.unwrap().subject, "later");

    let now = chrono::Utc::now();
    let env = send_email("a@b.c".into(), "x".into())
        .eta(now + chrono::Duration::minutes(5))
        .priority(-1)
        .into_envelope(now)
        .unwrap();
    assert_eq!(env.priority, -1);
    assert_eq!(env.eta, Some(now + chrono::Duration::minutes(5)));
}

#[test]
fn functions_register_their_task_kind() {
    let mut r = Registry::new();
    r.register_fn(send_email)
        .register_fn(nightly_report)
        .register_fn(introspect)
        .register_fn(no_args)
        .register_fn(blocking_with_context)
        .register::<flaky>();
    assert!(r.get("send_email").is_some());
    assert!(r.get("reports.nightly").is_some());
    assert!(r.get("nightly_report").is_none());
    assert_eq!(r.get("introspect").unwrap().options().retries, 2);
    assert_eq!(r.len(), 6);
}

#[skiff::task]
async fn double_it(n: i64) -> i64 {
    n * 2
}

#[skiff::task]
fn describe(n: i64) -> Result<String, TaskError> {
    Ok(format!("n = {n}"))
}

#[tokio::test]
async fn macro_tasks_chain_into_pipelines() {
    let queue = Queue::immediate();
    let handle = bare_value(2, 3)
        .then(double_it)
        .then(describe)
        .enqueue(&queue)
        .await
        .unwrap();
    assert_eq!(handle.get(WAIT).await.unwrap(), "n = 10");
}

#[test]
fn consumers_register_macro_tasks() {
    let _builder = skiff::Consumer::builder(Queue::memory())
        .register(send_email)
        .register(introspect)
        .register(describe);
}

#[test]
fn task_kinds_are_send_sync_and_calls_are_send() {
    fn is_send_sync<T: Send + Sync + 'static>() {}
    fn is_send<T: Send>(_: &T) {}
    is_send_sync::<send_email>();
    is_send_sync::<blocking_thread>();
    is_send(&send_email("a".into(), "b".into()));
}
