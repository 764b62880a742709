//! Workflows end to end through real consumers, on every backend: pipelines (with an error
//! handler), groups, chords with competing consumers, the dead-letter queue, and the control
//! plane (a paused queue, a running task cancelled, its progress, the live workers).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use skiff::prelude::*;
use skiff::{Error, FailureKind, Group, Page, RunningConsumer};

/// How long a step may take before the test fails: generous, so that only a broken workflow,
/// not a loaded machine, runs into it.
const WAIT: Duration = Duration::from_secs(60);

#[skiff::task]
async fn download(url: String) -> Result<Vec<u8>, TaskError> {
    if url.contains("broken") {
        return Err(TaskError::fatal(format!("{url}: 404")));
    }
    Ok(url.into_bytes())
}

#[skiff::task]
async fn process(data: Vec<u8>) -> Result<usize, TaskError> {
    Ok(data.len())
}

#[skiff::task]
async fn cleanup(n: usize) -> Result<String, TaskError> {
    Ok(format!("processed {n} bytes"))
}

static HANDLED: AtomicU32 = AtomicU32::new(0);

#[skiff::task]
async fn report_failure(failure: skiff::TaskFailure) -> Result<String, TaskError> {
    HANDLED.fetch_add(1, Ordering::SeqCst);
    Ok(format!("handled {}", failure.kind))
}

#[skiff::task]
async fn square(n: u64) -> Result<u64, TaskError> {
    tokio::time::sleep(Duration::from_millis(n % 5)).await;
    Ok(n * n)
}

static SUMS: AtomicU32 = AtomicU32::new(0);

#[skiff::task]
async fn total(squares: Vec<u64>) -> Result<u64, TaskError> {
    SUMS.fetch_add(1, Ordering::SeqCst);
    Ok(squares.iter().sum())
}

#[skiff::task(retries = 1, retry_delay = "10ms")]
async fn always_fails(n: u32) -> Result<u32, TaskError> {
    Err(TaskError::msg(format!("attempt failed for {n}")))
}

/// Reports its progress, then runs until cancelled.
#[skiff::task(context)]
async fn runaway(ctx: TaskContext, n: u32) -> Result<u32, TaskError> {
    ctx.progress(&skiff::Progress::new(50.0, "half way"))?;
    ctx.cancellation.cancelled().await;
    // Never reached for an async task: its future is dropped once the token fires.
    Ok(n)
}

fn consumer(queue: &Queue) -> RunningConsumer {
    Consumer::builder(queue.clone())
        .workers(8)
        .poll_interval(Duration::from_millis(100))
        .register(download)
        .register(process)
        .register(cleanup)
        .register(report_failure)
        .register(square)
        .register(total)
        .register(always_fails)
        .register(runaway)
        .heartbeat_interval(Duration::from_millis(100))
        .build()
        .unwrap()
        .spawn()
}

async fn pipelines(queue: &Queue) {
    let c = consumer(queue);
    let ok = download("https://example.com/a".into())
        .then(process)
        .then(cleanup)
        .on_error(report_failure)
        .enqueue(queue)
        .await
        .unwrap();
    assert_eq!(ok.get(WAIT).await.unwrap(), "processed 21 bytes");
    assert_eq!(ok.stage::<usize>(1).unwrap().get(WAIT).await.unwrap(), 21);

    let before = HANDLED.load(Ordering::SeqCst);
    let bad = download("https://broken.example".into())
        .then(process)
        .on_error(report_failure)
        .enqueue(queue)
        .await
        .unwrap();
    match bad.get(WAIT).await {
        Err(Error::TaskFailed { id, failure }) => {
            assert_eq!(id, bad.ids()[0]);
            assert!(failure.message.contains("404"));
        }
        other => panic!("expected the first stage to fail, got {other:?}"),
    }
    // The handler runs (once) and the later stage never does.
    let deadline = tokio::time::Instant::now() + WAIT;
    while HANDLED.load(Ordering::SeqCst) == before && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(HANDLED.load(Ordering::SeqCst), before + 1);
    assert!(!bad.stage::<usize>(1).unwrap().is_complete().await.unwrap());
    c.shutdown(WAIT).await.unwrap();
}

async fn groups_and_chords(queue: &Queue) {
    // Two consumers compete for members and the callback.
    let (a, b) = (consumer(queue), consumer(queue));
    let group = Group::<square>::map((1..=30).map(|n| (n,)))
        .enqueue(queue)
        .await
        .unwrap();
    let squares = group.get(WAIT).await.unwrap();
    assert_eq!(squares, (1..=30u64).map(|n| n * n).collect::<Vec<_>>());

    let before = SUMS.load(Ordering::SeqCst);
    let chord = Group::<square>::map((1..=20).map(|n| (n,)))
        .then(total)
        .enqueue(queue)
        .await
        .unwrap();
    assert_eq!(
        chord.get(WAIT).await.unwrap(),
        (1..=20u64).map(|n| n * n).sum::<u64>()
    );
    assert_eq!(
        SUMS.load(Ordering::SeqCst),
        before + 1,
        "the chord callback ran once"
    );
    a.shutdown(WAIT).await.unwrap();
    b.shutdown(WAIT).await.unwrap();
}

async fn dead_letters(queue: &Queue) {
    let c = consumer(queue);
    let h = always_fails(7).enqueue(queue).await.unwrap();
    match h.get(WAIT).await {
        Err(Error::TaskFailed { failure, .. }) => {
            assert_eq!(failure.kind, FailureKind::Error);
            assert_eq!(failure.attempts, 2, "one try and one retry");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    let dead = queue.dead_letters(None, Page::first(10)).await.unwrap();
    let entry = dead
        .iter()
        .find(|d| d.id == h.id())
        .expect("in the dead-letter queue");
    assert_eq!(entry.task, "always_fails");
    assert!(entry.failure.message.contains("attempt failed for 7"));
    // Requeued, it runs (and fails) again, then it is back in the dead-letter queue.
    assert_eq!(queue.requeue_dead(&[h.id()]).await.unwrap(), 1);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let again = queue.storage().get_dead(h.id()).await.unwrap();
        if again.is_some() && queue.counts().await.unwrap().ready == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "requeued task never came back dead"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(queue.purge_dead(None).await.unwrap() >= 1);
    assert_eq!(queue.counts().await.unwrap().dead, 0);
    c.shutdown(WAIT).await.unwrap();
}

async fn control_plane(queue: &Queue) {
    let c = consumer(queue);
    // Paused: the task waits; resumed: it runs.
    assert!(queue.pause("default").await.unwrap());
    let waiting = square(3).enqueue(queue).await.unwrap();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            waiting.try_get().await.unwrap().is_none(),
            "ran while paused"
        );
    }
    assert!(queue.resume("default").await.unwrap());
    assert_eq!(waiting.get(WAIT).await.unwrap(), 9);

    // A running task: its worker lists it, its progress is readable, and a cancel stops it.
    let h = runaway(1).enqueue(queue).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let listed =
            queue.workers().await.unwrap().iter().any(|w| {
                w.info.pid == std::process::id() && w.running.iter().any(|r| r.id == h.id())
            });
        let progress = h.progress::<skiff::Progress>().await.unwrap();
        if listed && progress.is_some_and(|p| p.message == "half way") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the task never showed up running"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(h.cancel().await.unwrap(), skiff::CancelRequest::Running);
    match h.get(WAIT).await {
        Err(Error::TaskFailed { failure, .. }) => assert_eq!(failure.kind, FailureKind::Canceled),
        other => panic!("expected a canceled failure, got {other:?}"),
    }
    c.shutdown(WAIT).await.unwrap();
    assert!(
        queue
            .workers()
            .await
            .unwrap()
            .iter()
            .all(|w| w.info.pid != std::process::id()),
        "a worker that shut down is gone"
    );
}

/// The tasks count their runs in statics, so the backends take turns.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn all(queue: Queue) {
    let _turn = SERIAL.lock().await;
    pipelines(&queue).await;
    groups_and_chords(&queue).await;
    dead_letters(&queue).await;
    control_plane(&queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_on_memory() {
    all(Queue::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("wf.db").display());
    all(Queue::connect(&url).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_sealed_on_sqlite() {
    // Signed and encrypted: pipeline stages fed their predecessor's output, chord callbacks
    // fed their members' results and error handlers fed a failure are sealed on the way in
    // and opened on the way out.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("wf.db").display());
    let keys =
        skiff::seal::Keyring::parse("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
    let sealing = skiff::seal::Sealing::new()
        .signing(keys.clone())
        .encryption(keys);
    all(Queue::connect(&url).await.unwrap().with_sealing(sealing)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_on_redis() {
    let server = queue_redis::testing::RedisServer::start();
    let store = queue_redis::RedisStorage::connect(&server.url())
        .await
        .unwrap();
    all(Queue::new(Arc::new(store))).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_on_postgres() {
    // Through `Queue::connect`, with the `postgresql://` spelling and a schema of its own.
    let url = queue_postgres::testing::shared_url().replacen("postgres://", "postgresql://", 1);
    let schema = queue_postgres::testing::unique_schema("workflows");
    let sep = if url.contains('?') { '&' } else { '?' };
    all(Queue::connect(&format!("{url}{sep}schema={schema}"))
        .await
        .unwrap())
    .await;
}
