//! The soak harness: load a real store, kill workers with `kill -9`, restart them, and check
//! from the outside that nothing was lost. Its command line is a contract (see HARNESS in the
//! project docs); extend it only compatibly.
//!
//! ```text
//! cargo run --release --example soak -- URL enqueue --count N [--start S] [--sleep-ms MAX]
//!     [--fail-first K] [--poison K] [--priority P] [--delay-ms D] [--batch B]
//! cargo run --release --example soak -- URL work --concurrency C --record FILE
//!     [--periodic-every-secs S] [--exit-when-idle-ms MS] [--lease-ms L]
//! cargo run --release --example soak -- URL stats
//! ```

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use rand::Rng;
use skiff::prelude::*;

/// Where `work` appends `done <n>` lines.
static RECORD: OnceLock<File> = OnceLock::new();

#[derive(Parser)]
#[command(about = "Skiff soak harness")]
struct Cli {
    /// Store URL: sqlite://PATH, sqlite:///ABS/PATH, redis://HOST:PORT/DB, rediss://…
    url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Store soak_task(n) for n in START..START+COUNT.
    Enqueue {
        #[arg(long)]
        count: u64,
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// Each task sleeps a random 0..=MAX ms, chosen now.
        #[arg(long, default_value_t = 0)]
        sleep_ms: u64,
        /// Tasks with n % K == 0 fail their first attempt.
        #[arg(long)]
        fail_first: Option<u64>,
        /// Tasks with n % K == 0 fail every attempt (and end dead).
        #[arg(long)]
        poison: Option<u64>,
        #[arg(long)]
        priority: Option<i16>,
        #[arg(long)]
        delay_ms: Option<u64>,
        /// Enqueue in batches of B through the batch API (default: one call per task).
        #[arg(long)]
        batch: Option<usize>,
    },
    /// Run a consumer until killed, or until the store is idle for --exit-when-idle-ms.
    Work {
        #[arg(long)]
        concurrency: usize,
        #[arg(long)]
        record: PathBuf,
        #[arg(long)]
        periodic_every_secs: Option<u64>,
        #[arg(long)]
        exit_when_idle_ms: Option<u64>,
        /// Lease length in ms (default 30000); a killed worker's tasks come back after it.
        #[arg(long)]
        lease_ms: Option<u64>,
    },
    /// Print the store's counts as one JSON line.
    Stats,
}

/// The soak workload. Fails on purpose when asked to; records each success.
#[skiff::task(retries = 3, retry_delay = "100ms", context)]
async fn soak_task(
    ctx: TaskContext,
    n: u64,
    sleep_ms: u64,
    fail_first: bool,
    poison: bool,
) -> Result<u64, TaskError> {
    if sleep_ms > 0 {
        tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
    }
    if poison {
        return Err(TaskError::msg(format!("soak task {n} is poison")));
    }
    if fail_first && ctx.attempt == 1 {
        return Err(TaskError::msg(format!(
            "soak task {n} fails its first attempt"
        )));
    }
    record(&format!("done {n}\n"))?;
    Ok(n)
}

/// The periodic task of `work --periodic-every-secs S`: records its fire time, which the
/// ticker passes as the task's `enqueued_at`.
#[skiff::task(context)]
async fn soak_cron(ctx: TaskContext) -> Result<(), TaskError> {
    record(&format!("cron {}\n", ctx.enqueued_at.timestamp()))
}

/// Appends one line with a single `write` on an O_APPEND file, so `kill -9` never leaves half
/// a line.
fn record(line: &str) -> Result<(), TaskError> {
    let file = RECORD
        .get()
        .ok_or_else(|| TaskError::fatal("no record file is open"))?;
    let written = (&*file).write(line.as_bytes())?;
    if written != line.len() {
        return Err(TaskError::msg("short write to the record file"));
    }
    Ok(())
}

async fn open(url: &str) -> Result<Queue, skiff::Error> {
    if url.starts_with("redis://") || url.starts_with("rediss://") {
        let store = queue_redis::RedisStorage::connect(url).await?;
        return Ok(Queue::new(Arc::new(store)));
    }
    Queue::connect(url).await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    let queue = open(&cli.url).await?;
    match cli.command {
        Command::Enqueue {
            count,
            start,
            sleep_ms,
            fail_first,
            poison,
            priority,
            delay_ms,
            batch,
        } => {
            let began = Instant::now();
            let mut rng = rand::rng();
            let calls = (start..start + count).map(|n| {
                let sleep = if sleep_ms > 0 {
                    rng.random_range(0..=sleep_ms)
                } else {
                    0
                };
                let is_poison = poison.is_some_and(|k| k > 0 && n % k == 0);
                let fails_first = !is_poison && fail_first.is_some_and(|k| k > 0 && n % k == 0);
                let mut call = soak_task(n, sleep, fails_first, is_poison);
                if let Some(p) = priority {
                    call = call.priority(p);
                }
                if let Some(d) = delay_ms {
                    call = call.delay(Duration::from_millis(d));
                }
                call
            });
            match batch {
                Some(size) if size > 1 => {
                    let calls: Vec<_> = calls.collect();
                    let mut calls = calls.into_iter().peekable();
                    while calls.peek().is_some() {
                        let chunk: Vec<_> = calls.by_ref().take(size).collect();
                        queue.enqueue_many(chunk).await?;
                    }
                }
                _ => {
                    for call in calls {
                        call.enqueue(&queue).await?;
                    }
                }
            }
            let seconds = began.elapsed().as_secs_f64();
            println!(
                "{}",
                serde_json::json!({ "enqueued": count, "seconds": seconds })
            );
        }
        Command::Work {
            concurrency,
            record,
            periodic_every_secs,
            exit_when_idle_ms,
            lease_ms,
        } => {
            let file = OpenOptions::new().create(true).append(true).open(&record)?;
            RECORD
                .set(file)
                .map_err(|_| "the record file was already open")?;
            let lease = Duration::from_millis(lease_ms.unwrap_or(30_000));
            work(
                queue,
                concurrency,
                lease,
                periodic_every_secs,
                exit_when_idle_ms,
            )
            .await?;
        }
        Command::Stats => {
            let counts = queue.counts().await?;
            println!("{}", serde_json::to_string(&counts)?);
        }
    }
    Ok(())
}

async fn work(
    queue: Queue,
    concurrency: usize,
    lease: Duration,
    periodic_every_secs: Option<u64>,
    exit_when_idle_ms: Option<u64>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut builder = Consumer::builder(queue.clone())
        .workers(concurrency)
        .lease(lease)
        .register(soak_task);
    if let Some(secs) = periodic_every_secs {
        // Fires at every multiple of `secs` since the Unix epoch, once across all workers.
        let every = skiff::Schedule::every(Duration::from_secs(secs.max(1)))?;
        builder = builder.periodic_task(soak_cron, every);
    }
    let consumer = builder.build()?;
    let running = consumer.spawn();
    match exit_when_idle_ms {
        Some(idle_ms) => {
            let idle_for = Duration::from_millis(idle_ms);
            let mut idle_since: Option<Instant> = None;
            let mut store_down = false;
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let c = match queue.counts().await {
                    Ok(c) => c,
                    Err(e) => {
                        if !store_down {
                            eprintln!("store unreachable, still running: {e}");
                            store_down = true;
                        }
                        idle_since = None;
                        continue;
                    }
                };
                if std::mem::take(&mut store_down) {
                    eprintln!("store reachable again");
                }
                if c.ready + c.scheduled + c.leased == 0 {
                    let since = *idle_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= idle_for {
                        break;
                    }
                } else {
                    idle_since = None;
                }
            }
        }
        None => {
            tokio::signal::ctrl_c().await?;
        }
    }
    running.shutdown(Duration::from_secs(30)).await?;
    Ok(())
}
