//! Pipelines and immediate mode, through hand-written tasks (no macro in this crate).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::Utc;
use futures::future::BoxFuture;
use queue_core::{
    Error, FailureKind, FollowUpInput, FollowUpWhen, Queue, Task, TaskCall, TaskContext, TaskError,
    TaskFailure,
};

struct Download;
impl Task for Download {
    const NAME: &'static str = "download";
    type Args = (String,);
    type Output = Vec<u8>;
    fn run(_: TaskContext, (url,): (String,)) -> BoxFuture<'static, Result<Vec<u8>, TaskError>> {
        Box::pin(async move {
            if url.contains("broken") {
                return Err(TaskError::msg(format!("{url}: connection refused")));
            }
            Ok(url.into_bytes())
        })
    }
}
fn download(url: String) -> TaskCall<Download> {
    TaskCall::new((url,))
}

struct Process;
impl Task for Process {
    const NAME: &'static str = "process";
    type Args = (Vec<u8>,);
    type Output = usize;
    fn run(_: TaskContext, (data,): (Vec<u8>,)) -> BoxFuture<'static, Result<usize, TaskError>> {
        Box::pin(async move { Ok(data.len()) })
    }
}
fn process(data: Vec<u8>) -> TaskCall<Process> {
    TaskCall::new((data,))
}

struct Cleanup;
impl Task for Cleanup {
    const NAME: &'static str = "cleanup";
    type Args = (usize,);
    type Output = String;
    fn run(_: TaskContext, (n,): (usize,)) -> BoxFuture<'static, Result<String, TaskError>> {
        Box::pin(async move { Ok(format!("cleaned up after {n} bytes")) })
    }
}
fn cleanup(n: usize) -> TaskCall<Cleanup> {
    TaskCall::new((n,))
}

static REPORTED: AtomicU32 = AtomicU32::new(0);

struct Report;
impl Task for Report {
    const NAME: &'static str = "report";
    type Args = (TaskFailure,);
    type Output = String;
    fn run(_: TaskContext, (f,): (TaskFailure,)) -> BoxFuture<'static, Result<String, TaskError>> {
        Box::pin(async move {
            REPORTED.fetch_add(1, Ordering::SeqCst);
            Ok(format!("reported {}: {}", f.kind, f.message))
        })
    }
}
fn report(f: TaskFailure) -> TaskCall<Report> {
    TaskCall::new((f,))
}

#[test]
fn stages_nest_as_follow_ups() {
    let (head, ids) = download("a.io".into())
        .then(process)
        .then(cleanup)
        .on_error(report)
        .into_envelope(Utc::now())
        .unwrap();
    assert_eq!(ids.len(), 3);
    assert_eq!(head.id, ids[0]);
    assert_eq!(head.task, "download");
    let next = head
        .follow_ups
        .iter()
        .find(|f| f.when == FollowUpWhen::Success)
        .unwrap();
    assert_eq!(next.input, FollowUpInput::Output);
    assert_eq!(next.envelope.task, "process");
    assert_eq!(next.envelope.id, ids[1]);
    let last = &next
        .envelope
        .follow_ups
        .iter()
        .find(|f| f.when == FollowUpWhen::Success)
        .unwrap()
        .envelope;
    assert_eq!(last.task, "cleanup");
    assert_eq!(last.id, ids[2]);
    // Every stage carries the error handler.
    for env in [&head, &next.envelope, last] {
        let handlers: Vec<_> = env
            .follow_ups
            .iter()
            .filter(|f| f.when == FollowUpWhen::Failure)
            .collect();
        assert_eq!(handlers.len(), 1);
        assert_eq!(handlers[0].envelope.task, "report");
        assert_eq!(handlers[0].input, FollowUpInput::Failure);
    }
    // It survives the store's encoding.
    let bytes = head.encode().unwrap();
    assert_eq!(
        queue_core::Envelope::decode(&bytes)
            .unwrap()
            .encode()
            .unwrap(),
        bytes
    );
}

#[tokio::test]
async fn immediate_pipeline_runs_every_stage() {
    let queue = Queue::immediate();
    let handle = download("https://example.com/x".into())
        .then(process)
        .then(cleanup)
        .enqueue(&queue)
        .await
        .unwrap();
    let out = handle.get(Duration::from_secs(1)).await.unwrap();
    assert_eq!(out, "cleaned up after 21 bytes");
    let middle = handle.stage::<usize>(1).unwrap();
    assert_eq!(middle.get(Duration::ZERO).await.unwrap(), 21);
}

#[tokio::test]
async fn failing_stage_stops_the_pipeline_and_runs_the_handler() {
    let queue = Queue::immediate();
    let before = REPORTED.load(Ordering::SeqCst);
    let handle = download("https://broken.example".into())
        .then(process)
        .on_error(report)
        .enqueue(&queue)
        .await
        .unwrap();
    match handle.get(Duration::from_millis(200)).await {
        Err(Error::TaskFailed { id, failure }) => {
            assert_eq!(id, handle.ids()[0]);
            assert_eq!(failure.kind, FailureKind::Error);
            assert!(failure.message.contains("connection refused"));
        }
        other => panic!("expected the first stage's failure, got {other:?}"),
    }
    assert_eq!(
        REPORTED.load(Ordering::SeqCst),
        before + 1,
        "the handler ran once"
    );
    // The second stage never ran.
    let second = handle.stage::<usize>(1).unwrap();
    assert!(!second.is_complete().await.unwrap());
}
