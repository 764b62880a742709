//! Skiff in one file: define tasks, enqueue some, run a consumer in this process, print the
//! results. Runs on an embedded SQLite file; nothing to install.
//!
//! ```text
//! cargo run --example quickstart
//! ```

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use skiff::prelude::*;

/// What `send_email` returns.
#[derive(Debug, Serialize, Deserialize)]
struct Sent {
    to: String,
    message_id: String,
}

/// An async task with retries and a priority.
#[skiff::task(retries = 3, retry_delay = "1s", priority = 100)]
async fn send_email(to: String, subject: String) -> Result<Sent, TaskError> {
    tokio::time::sleep(Duration::from_millis(20)).await; // talk to the mail server
    Ok(Sent {
        message_id: format!("<{}@skiff.example>", subject.len()),
        to,
    })
}

/// A blocking task: plain `fn`s run on Tokio's blocking pool.
#[skiff::task]
fn checksum(data: Vec<u8>) -> Result<u32, TaskError> {
    Ok(data
        .iter()
        .fold(0u32, |acc, b| acc.rotate_left(5) ^ u32::from(*b)))
}

static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);

/// Fails its first attempt; the retry (written back to the store with an eta, never slept in
/// the worker) succeeds.
#[skiff::task(retries = 2, retry_delay = "200ms", context)]
async fn flaky_webhook(ctx: TaskContext, url: String) -> Result<String, TaskError> {
    FLAKY_CALLS.fetch_add(1, Ordering::SeqCst);
    if ctx.attempt == 1 {
        return Err(TaskError::msg(format!("{url} answered 503")));
    }
    Ok(format!("{url} answered 200 on attempt {}", ctx.attempt))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::temp_dir().join("skiff-quickstart.db");
    let queue = Queue::connect(&format!("sqlite://{}", path.display())).await?;
    queue.storage().flush().await?; // start from an empty store on every run
    println!("store: {}", path.display());

    // Enqueue first: the tasks wait safely in the store until a consumer runs.
    let email = send_email("ada@example.com".into(), "Welcome aboard".into())
        .enqueue(&queue)
        .await?;
    let sum = checksum(b"skiff".to_vec()).enqueue(&queue).await?;
    let hook = flaky_webhook("https://example.com/hook".into())
        .enqueue(&queue)
        .await?;
    let later = send_email("bob@example.com".into(), "Reminder".into())
        .delay(Duration::from_millis(500))
        .enqueue(&queue)
        .await?;
    let batch = queue
        .enqueue_many((0..100u8).map(|i| checksum(vec![i; 16])))
        .await?;
    println!(
        "enqueued {} tasks: {:?}",
        4 + batch.len(),
        queue.counts().await?
    );

    // Run a consumer inside this Tokio app.
    let started = Instant::now();
    let consumer = Consumer::builder(queue.clone())
        .workers(16)
        .register(send_email)
        .register(checksum)
        .register(flaky_webhook)
        .build()?;
    let running = consumer.spawn();

    let timeout = Duration::from_secs(10);
    let sent = email.get(timeout).await?;
    println!("send_email     -> {sent:?}");
    println!("checksum       -> {}", sum.get(timeout).await?);
    println!(
        "flaky_webhook  -> {} ({} calls)",
        hook.get(timeout).await?,
        FLAKY_CALLS.load(Ordering::SeqCst)
    );
    let reminder = later.get(timeout).await?;
    println!(
        "delayed email  -> {reminder:?} (after {:?})",
        started.elapsed()
    );
    let mut total = 0u64;
    for h in &batch {
        total += u64::from(h.get(timeout).await?);
    }
    println!("100 checksums  -> sum {total}");

    let report = running.shutdown(Duration::from_secs(5)).await?;
    println!("consumer stopped: {report:?}");
    println!("store now: {:?}", queue.counts().await?);
    Ok(())
}
