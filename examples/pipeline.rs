//! A three-step pipeline: download -> process -> cleanup, with an error handler.
//!
//! Each stage receives the previous stage's output; the next stage is stored in the same
//! atomic store operation that records the previous stage's success, so a crash between two
//! stages loses nothing. A stage whose input type does not match the previous output does not
//! compile.
//!
//! ```text
//! cargo run --example pipeline
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};
use skiff::prelude::*;
use skiff::TaskFailure;

/// What `download` hands to `process`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Page {
    url: String,
    body: String,
}

/// What `process` hands to `cleanup`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Summary {
    url: String,
    words: usize,
}

/// Fetches a page (simulated; URLs containing "missing" fail for good).
#[skiff::task(retries = 2, retry_delay = "100ms")]
async fn download(url: String) -> Result<Page, TaskError> {
    tokio::time::sleep(Duration::from_millis(30)).await;
    if url.contains("missing") {
        return Err(TaskError::fatal(format!("{url} answered 404")));
    }
    Ok(Page {
        body: format!("welcome to {url} where tasks run in the background"),
        url,
    })
}

/// Counts the words of a page.
#[skiff::task]
async fn process(page: Page) -> Result<Summary, TaskError> {
    Ok(Summary {
        words: page.body.split_whitespace().count(),
        url: page.url,
    })
}

/// Removes temporary files and reports.
#[skiff::task]
async fn cleanup(summary: Summary) -> Result<String, TaskError> {
    Ok(format!(
        "{}: {} words, temp files removed",
        summary.url, summary.words
    ))
}

/// Runs when any stage fails for good.
#[skiff::task]
async fn alert(failure: TaskFailure) -> Result<(), TaskError> {
    println!("alert: a pipeline stage failed: {failure}");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::temp_dir().join("skiff-pipeline.db");
    let queue = Queue::connect(&format!("sqlite://{}", path.display())).await?;
    queue.storage().flush().await?;

    let consumer = Consumer::builder(queue.clone())
        .workers(4)
        .register(download)
        .register(process)
        .register(cleanup)
        .register(alert)
        .build()?;
    let running = consumer.spawn();

    let good = download("https://skiff.example/docs".into())
        .then(process)
        .then(cleanup)
        .on_error(alert)
        .enqueue(&queue)
        .await?;
    let bad = download("https://skiff.example/missing".into())
        .then(process)
        .then(cleanup)
        .on_error(alert)
        .enqueue(&queue)
        .await?;

    let timeout = Duration::from_secs(10);
    println!("stage ids: {:?}", good.ids());
    println!("result: {}", good.get(timeout).await?);
    match bad.get(timeout).await {
        Ok(out) => println!("unexpected success: {out}"),
        Err(e) => println!("the second pipeline stopped: {e}"),
    }
    tokio::time::sleep(Duration::from_millis(300)).await; // let the alert print
    running.shutdown(Duration::from_secs(5)).await?;
    Ok(())
}
