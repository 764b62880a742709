//! Skiff's throughput harness: enqueue rates, processing rate, pickup latency and peak memory of
//! one store, measured with the public API on a fresh store.
//!
//! ```text
//! cargo bench --bench throughput -- --backend sqlite --tasks 100000 --concurrency 64
//! cargo bench --bench throughput -- --backend redis --tasks 100000 --concurrency 64 --json
//! cargo bench --bench throughput --features postgres -- --backend postgres --tasks 100000
//! cargo bench --bench throughput -- --backend sqlite --tasks 20000 --backlog 1000000
//! ```
//!
//! Phases (each on an empty store; the store is flushed in between):
//!
//! 1. `enqueue_per_s`: one producer, one `enqueue` call per task, sequential (a web app).
//! 2. `enqueue_concurrent_per_s`: 64 producers, one call per task.
//! 3. `--backlog M` (optional, untimed): M tasks of another kind at a LOWER priority in the
//!    same queue, so they wait behind the measured tasks and every claim walks past them.
//! 4. `enqueue_batch_per_s`: `Queue::enqueue_many`, 1,000 calls per batch.
//! 5. `process_per_s`: one consumer with `--concurrency` workers, from its start until every
//!    one of the N no-op tasks has its result stored (`Event::Complete` is sent after the
//!    store took the outcome; results of events the bench missed are read back).
//! 6. `latency_p50_ms` / `latency_p99_ms` (over `latency_samples` tasks): an idle consumer in
//!    the same process as the producer; tasks enqueued one at a time at a light steady rate;
//!    time from the `enqueue` call to the task body starting.
//! 7. `latency_xproc_p50_ms` / `latency_xproc_p99_ms` (`latency_xproc_samples`): the same with
//!    the producer in a child process (this binary again, `--xproc-producer`), so the consumer
//!    learns of each task only through the store; times are wall-clock micros of one machine.
//!
//! A phase left out with `--skip` prints `skipped` in the table and `null` in the JSON.
//!
//! `peak_rss_mb` is the process's VmHWM after phase 6; it is reset (`/proc/self/clear_refs`)
//! before phase 5, so it is the worker's peak, not the producers'.
//!
//! Redis without `--url` runs a private `redis-server`; PostgreSQL without `--url` runs a private
//! server at PostgreSQL's default durability (`queue_postgres::testing`); SQLite without `--url`
//! uses a file in a temporary directory. PostgreSQL's tables go to a schema of the bench's own
//! (`skiff_bench_<pid>`), emptied at the end. With `--json` the last line printed is one JSON
//! object.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use skiff::prelude::*;
use skiff::Event;
use skiff::{Storage, TaskId};
use tokio::sync::broadcast::error::RecvError;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Backend {
    Memory,
    Sqlite,
    Redis,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Sqlite => "sqlite",
            Self::Redis => "redis",
            Self::Postgres => "postgres",
        }
    }
}

#[derive(Debug, Parser)]
#[command(about = "Skiff throughput harness")]
struct Args {
    /// The store.
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: Backend,
    /// Store URL; default: a temp file (sqlite) or a private redis-server (redis).
    #[arg(long)]
    url: Option<String>,
    /// Tasks per phase.
    #[arg(long, default_value_t = 50_000)]
    tasks: usize,
    /// Consumer workers (concurrent executions).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Bytes of argument per task.
    #[arg(long, default_value_t = 0)]
    payload_bytes: usize,
    /// Lower-priority tasks waiting in the same queue while the N tasks are processed.
    #[arg(long, default_value_t = 0)]
    backlog: usize,
    /// Calls in the sequential enqueue phase (default: min(tasks, 20000)).
    #[arg(long)]
    enqueue_calls: Option<usize>,
    /// Samples in the latency phase.
    #[arg(long, default_value_t = 1000)]
    latency_samples: usize,
    /// Tasks per second in the latency phase.
    #[arg(long, default_value_t = 200)]
    latency_rate: u64,
    /// Consumer's ack batch: outcomes per store write (default: the consumer's, 128).
    #[arg(long)]
    ack_batch: Option<usize>,
    /// Consumer's prefetch: tasks leased ahead of the workers at most (default: the
    /// consumer's, twice `--concurrency` within its lease limit).
    #[arg(long)]
    prefetch: Option<usize>,
    /// Consumer's ack delay in ms (default: the consumer's, 5).
    #[arg(long)]
    ack_delay_ms: Option<u64>,
    /// Skip phases: any of enqueue,concurrent,batch,process,latency,xproc.
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
    /// Sign and/or encrypt every task (`skiff::seal`), to measure what it costs.
    #[arg(long, value_enum, default_value = "none")]
    seal: Seal,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
    /// Run as the producer of phase 7 (in a child process): enqueue `latency_samples` tasks
    /// at `latency_rate` on the store at `--url` and `--namespace`, then exit.
    #[arg(long, hide = true)]
    xproc_producer: bool,
    /// The Redis key prefix or PostgreSQL schema (default: one of this process's own).
    #[arg(long, hide = true)]
    namespace: Option<String>,
}

// ----- tasks -----

static EXECUTED: AtomicU64 = AtomicU64::new(0);

/// The measured no-op task.
#[skiff::task]
async fn noop(payload: Vec<u8>) -> Result<(), TaskError> {
    let _ = payload;
    EXECUTED.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// The backlog: never meant to run during the measurement (lower priority).
#[skiff::task]
async fn filler(payload: Vec<u8>) -> Result<(), TaskError> {
    let _ = payload;
    Ok(())
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn latencies() -> &'static Mutex<Vec<u64>> {
    static LAT: OnceLock<Mutex<Vec<u64>>> = OnceLock::new();
    LAT.get_or_init(|| Mutex::new(Vec::new()))
}

/// Records the time from its enqueue call (`sent_ns` after the epoch) to its start.
#[skiff::task]
async fn probe(sent_ns: u64) -> Result<(), TaskError> {
    let now = epoch().elapsed().as_nanos() as u64;
    latencies()
        .lock()
        .unwrap()
        .push(now.saturating_sub(sent_ns));
    Ok(())
}

fn wall_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Records the time from its enqueue call in another process (`sent_us`, wall clock) to its
/// start.
#[skiff::task]
async fn xprobe(sent_us: u64) -> Result<(), TaskError> {
    let waited_us = wall_micros().saturating_sub(sent_us);
    latencies().lock().unwrap().push(waited_us * 1_000);
    Ok(())
}

// ----- the store -----

struct Store {
    queue: Queue,
    sqlite: Option<Arc<skiff::sqlite::SqliteStorage>>,
    _redis: Option<queue_redis::testing::RedisServer>,
    _postgres: Option<queue_postgres::testing::PostgresServer>,
    _dir: Option<tempfile::TempDir>,
    describe: String,
    /// How a child process reaches the same store: `--url` and `--namespace`.
    url: String,
    namespace: String,
}

/// What `--seal` turns on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Seal {
    None,
    Sign,
    Encrypt,
    Both,
}

fn sealing(seal: Seal) -> skiff::seal::Sealing {
    let keys = skiff::seal::Keyring::new([("bench", vec![7u8; skiff::seal::KEY_LEN])])
        .unwrap_or_else(|e| unreachable!("a fixed key: {e}"));
    let none = skiff::seal::Sealing::new();
    match seal {
        Seal::None => none,
        Seal::Sign => none.signing(keys),
        Seal::Encrypt => none.encryption(keys),
        Seal::Both => none.signing(keys.clone()).encryption(keys),
    }
}

async fn open(args: &Args) -> Result<Store, BoxError> {
    let mut redis_server = None;
    let mut dir = None;
    let mut sqlite = None;
    let mut postgres_server = None;
    let mut child_url = String::new();
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| match args.backend {
            Backend::Postgres => format!("skiff_bench_{}", std::process::id()),
            _ => format!("skiff-bench-{}", std::process::id()),
        });
    let (storage, describe): (Arc<dyn Storage>, String) = match args.backend {
        Backend::Memory => (Arc::new(skiff::MemoryStorage::new()), "memory".into()),
        Backend::Sqlite => {
            let url = match &args.url {
                Some(url) => url.clone(),
                None => {
                    let d = tempfile::tempdir()?;
                    let url = format!("sqlite://{}", d.path().join("bench.db").display());
                    dir = Some(d);
                    url
                }
            };
            let store = Arc::new(skiff::sqlite::SqliteStorage::connect(&url).await?);
            sqlite = Some(store.clone());
            child_url = url.clone();
            (store, url)
        }
        Backend::Redis => {
            let url = match &args.url {
                Some(url) => url.clone(),
                None => {
                    let server = queue_redis::testing::RedisServer::start();
                    let url = server.url();
                    redis_server = Some(server);
                    url
                }
            };
            let options = queue_redis::RedisOptions::new(url.clone()).key_prefix(namespace.clone());
            let store = queue_redis::RedisStorage::open(options).await?;
            child_url = url.clone();
            (Arc::new(store), skiff::redact(&url))
        }
        Backend::Postgres => {
            let url = match &args.url {
                Some(url) => url.clone(),
                None => {
                    let server = queue_postgres::testing::PostgresServer::with(
                        queue_postgres::testing::ServerConfig {
                            durable: true,
                            ..Default::default()
                        },
                    );
                    let url = server.url();
                    postgres_server = Some(server);
                    url
                }
            };
            let options = queue_postgres::PostgresOptions::new(&url)?
                .schema(&namespace)?
                .pool_size(16);
            let store = queue_postgres::PostgresStorage::open(options).await?;
            child_url = url.clone();
            (Arc::new(store), skiff::redact(&url))
        }
    };
    let describe = match args.seal {
        Seal::None => describe,
        seal => format!("{describe}, sealed: {seal:?}"),
    };
    Ok(Store {
        queue: Queue::new(storage).with_sealing(sealing(args.seal)),
        sqlite,
        _redis: redis_server,
        _postgres: postgres_server,
        _dir: dir,
        describe,
        url: child_url,
        namespace,
    })
}

// ----- progress -----

struct Progress {
    bar: Option<ProgressBar>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// A bar for `total` steps that follows `done` (shown only without `--json`).
    fn new(json: bool, label: &str, total: u64, done: Arc<AtomicU64>) -> Self {
        if json {
            return Self {
                bar: None,
                ticker: None,
            };
        }
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("{msg:>24} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
                .unwrap()
                .progress_chars("=> "),
        );
        bar.set_message(label.to_owned());
        let b = bar.clone();
        let ticker = tokio::spawn(async move {
            loop {
                b.set_position(done.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Self {
            bar: Some(bar),
            ticker: Some(ticker),
        }
    }

    fn finish(self) {
        if let Some(t) = self.ticker {
            t.abort();
        }
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}

// ----- phases -----

fn payload(bytes: usize) -> Vec<u8> {
    vec![7; bytes]
}

async fn enqueue_sequential(args: &Args, queue: &Queue) -> Result<f64, BoxError> {
    let n = args.enqueue_calls.unwrap_or(args.tasks.min(20_000));
    let done = Arc::new(AtomicU64::new(0));
    let progress = Progress::new(args.json, "enqueue (1 producer)", n as u64, done.clone());
    let body = payload(args.payload_bytes);
    let queue = queue.clone();
    // In a task of the runtime, as a web handler runs (`#[tokio::main]`'s own future runs on
    // the main thread, outside the runtime's workers, and each reply would cross threads).
    let producer = tokio::spawn(async move {
        let started = Instant::now();
        for _ in 0..n {
            noop(body.clone()).enqueue(&queue).await?;
            done.fetch_add(1, Ordering::Relaxed);
        }
        Ok::<_, skiff::Error>(started.elapsed())
    });
    let rate = n as f64 / producer.await??.as_secs_f64();
    progress.finish();
    Ok(rate)
}

async fn enqueue_concurrent(args: &Args, queue: &Queue) -> Result<f64, BoxError> {
    const PRODUCERS: usize = 64;
    let n = args.enqueue_calls.unwrap_or(args.tasks.min(50_000));
    let per = n.div_ceil(PRODUCERS);
    let done = Arc::new(AtomicU64::new(0));
    let progress = Progress::new(
        args.json,
        "enqueue (64 producers)",
        (per * PRODUCERS) as u64,
        done.clone(),
    );
    let started = Instant::now();
    let mut producers = tokio::task::JoinSet::new();
    for _ in 0..PRODUCERS {
        let queue = queue.clone();
        let done = done.clone();
        let body = payload(args.payload_bytes);
        producers.spawn(async move {
            for _ in 0..per {
                noop(body.clone()).enqueue(&queue).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, skiff::Error>(())
        });
    }
    while let Some(joined) = producers.join_next().await {
        joined??;
    }
    let rate = (per * PRODUCERS) as f64 / started.elapsed().as_secs_f64();
    progress.finish();
    Ok(rate)
}

/// Enqueues `n` calls in batches of 1,000; returns the ids and the rate.
async fn enqueue_batches<F>(
    args: &Args,
    queue: &Queue,
    label: &str,
    n: usize,
    call: F,
) -> Result<(Vec<TaskId>, f64), BoxError>
where
    F: Fn() -> skiff::TaskCall<noop>,
{
    const BATCH: usize = 1000;
    let done = Arc::new(AtomicU64::new(0));
    let progress = Progress::new(args.json, label, n as u64, done.clone());
    let mut ids = Vec::with_capacity(n);
    let started = Instant::now();
    let mut left = n;
    while left > 0 {
        let k = left.min(BATCH);
        let handles = queue.enqueue_many((0..k).map(|_| call())).await?;
        ids.extend(handles.iter().map(|h| h.id()));
        left -= k;
        done.fetch_add(k as u64, Ordering::Relaxed);
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    progress.finish();
    Ok((ids, rate))
}

/// The backlog: M `filler` tasks at a lower priority, untimed.
async fn enqueue_backlog(args: &Args, queue: &Queue) -> Result<(), BoxError> {
    const BATCH: usize = 1000;
    let done = Arc::new(AtomicU64::new(0));
    let progress = Progress::new(args.json, "backlog", args.backlog as u64, done.clone());
    let body = payload(args.payload_bytes);
    let mut left = args.backlog;
    while left > 0 {
        let k = left.min(BATCH);
        queue
            .enqueue_many((0..k).map(|_| filler(body.clone()).priority(-10)))
            .await?;
        left -= k;
        done.fetch_add(k as u64, Ordering::Relaxed);
    }
    progress.finish();
    Ok(())
}

/// Resets the process's peak RSS (VmHWM); false where the kernel does not allow it.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn process(args: &Args, queue: &Queue, ids: Vec<TaskId>) -> Result<f64, BoxError> {
    let n = ids.len();
    let mut remaining: HashSet<TaskId> = ids.into_iter().collect();
    let mut builder = Consumer::builder(queue.clone())
        .workers(args.concurrency)
        .register(noop)
        .register(filler)
        .periodic(false);
    if let Some(prefetch) = args.prefetch {
        builder = builder.prefetch(prefetch);
    }
    if args.ack_batch.is_some() || args.ack_delay_ms.is_some() {
        builder = builder.ack_batch(
            args.ack_batch.unwrap_or(128),
            Duration::from_millis(args.ack_delay_ms.unwrap_or(5)),
        );
    }
    let consumer = builder.build()?;
    let mut events = consumer.events();
    let done = Arc::new(AtomicU64::new(0));
    let progress = Progress::new(args.json, "process", n as u64, done.clone());
    let executed_before = EXECUTED.load(Ordering::Relaxed);

    let started = Instant::now();
    let running = consumer.spawn();
    let mut lagged = 0u64;
    while !remaining.is_empty() {
        match events.recv().await {
            Ok(Event::Complete { id, .. }) => {
                if remaining.remove(&id) {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(_) => {}
            Err(RecvError::Lagged(k)) => {
                lagged += k;
                // Missed events: once every task has run, read the missing results back.
                if EXECUTED.load(Ordering::Relaxed) - executed_before >= n as u64 {
                    confirm(queue, &mut remaining).await?;
                }
            }
            Err(RecvError::Closed) => return Err("the consumer stopped".into()),
        }
        if lagged > 0 && EXECUTED.load(Ordering::Relaxed) - executed_before >= n as u64 {
            confirm(queue, &mut remaining).await?;
        }
    }
    let elapsed = started.elapsed();
    progress.finish();
    running.shutdown(Duration::from_secs(30)).await?;
    if lagged > 0 && !args.json {
        println!("(missed {lagged} events; their results were read back from the store)");
    }
    Ok(n as f64 / elapsed.as_secs_f64())
}

/// Drops from `remaining` the tasks whose results are stored.
async fn confirm(queue: &Queue, remaining: &mut HashSet<TaskId>) -> Result<(), BoxError> {
    let storage = queue.storage();
    let mut stored = Vec::new();
    for id in remaining.iter() {
        if storage.get_result(*id).await?.is_some() {
            stored.push(*id);
        }
    }
    for id in stored {
        remaining.remove(&id);
    }
    if !remaining.is_empty() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

async fn latency(args: &Args, queue: &Queue) -> Result<(f64, f64, usize), BoxError> {
    let n = args.latency_samples;
    latencies().lock().unwrap().clear();
    let consumer = Consumer::builder(queue.clone())
        .workers(args.concurrency)
        .register(probe)
        .periodic(false)
        .build()?;
    let running = consumer.spawn();
    // Let the consumer reach its idle wait.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let done = Arc::new(AtomicU64::new(0));
    let progress = Progress::new(args.json, "latency", n as u64, done.clone());
    let gap = Duration::from_nanos(1_000_000_000 / args.latency_rate.max(1));
    let mut tick = tokio::time::interval(gap);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for _ in 0..n {
        tick.tick().await;
        let sent = epoch().elapsed().as_nanos() as u64;
        probe(sent).enqueue(queue).await?;
        done.fetch_add(1, Ordering::Relaxed);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while latencies().lock().unwrap().len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    progress.finish();
    running.shutdown(Duration::from_secs(30)).await?;
    percentiles(latencies().lock().unwrap().clone())
}

/// Phase 7: the consumer here, the producer a child process (this binary with
/// `--xproc-producer`).
async fn latency_xproc(args: &Args, store: &Store) -> Result<(f64, f64, usize), BoxError> {
    if store.url.is_empty() {
        return Err("the memory store cannot be reached from another process".into());
    }
    let n = args.latency_samples;
    latencies().lock().unwrap().clear();
    let consumer = Consumer::builder(store.queue.clone())
        .workers(args.concurrency)
        .register(xprobe)
        .periodic(false)
        .build()?;
    let running = consumer.spawn();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = tokio::process::Command::new(std::env::current_exe()?)
        .args(["--xproc-producer", "--backend", args.backend.name()])
        .args(["--url", &store.url, "--namespace", &store.namespace])
        .args(["--latency-samples", &n.to_string()])
        .args(["--latency-rate", &args.latency_rate.to_string()])
        .args(["--seal", &format!("{:?}", args.seal).to_lowercase()])
        .status()
        .await?;
    if !status.success() {
        return Err(format!("the producer process failed: {status}").into());
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while latencies().lock().unwrap().len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    running.shutdown(Duration::from_secs(30)).await?;
    percentiles(latencies().lock().unwrap().clone())
}

/// The child's side of phase 7.
async fn xproc_producer(args: &Args) -> Result<(), BoxError> {
    let store = open(args).await?;
    let gap = Duration::from_nanos(1_000_000_000 / args.latency_rate.max(1));
    let mut tick = tokio::time::interval(gap);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for _ in 0..args.latency_samples {
        tick.tick().await;
        xprobe(wall_micros()).enqueue(&store.queue).await?;
    }
    Ok(())
}

/// p50 and p99 in ms of samples in ns, and their count.
fn percentiles(mut lat: Vec<u64>) -> Result<(f64, f64, usize), BoxError> {
    if lat.is_empty() {
        return Err("no latency samples".into());
    }
    lat.sort_unstable();
    let pct = |p: f64| {
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i] as f64 / 1e6
    };
    Ok((pct(0.50), pct(0.99), lat.len()))
}

/// What the run measured; `None` for a phase that was skipped (printed as `skipped`, and as
/// `null` in the JSON: never as a rate of 0).
#[derive(Debug, Default)]
struct Report {
    enqueue_per_s: Option<f64>,
    enqueue_concurrent_per_s: Option<f64>,
    enqueue_batch_per_s: Option<f64>,
    process_per_s: Option<f64>,
    /// p50 and p99 in ms, and how many samples they cover.
    latency: Option<(f64, f64, usize)>,
    /// The same with the producer in another process.
    latency_xproc: Option<(f64, f64, usize)>,
    peak_rss_mb: f64,
}

/// A rate for the table: whole tasks per second, or `skipped`.
fn rate_cell(rate: Option<f64>) -> String {
    rate.map_or_else(|| "skipped".to_owned(), |r| format!("{r:.0} tasks/s"))
}

/// A JSON number rounded to `decimals`, or `null`.
fn json_num(v: Option<f64>, decimals: i32) -> serde_json::Value {
    let scale = 10f64.powi(decimals);
    v.map_or(serde_json::Value::Null, |v| {
        serde_json::json!((v * scale).round() / scale)
    })
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let _ = epoch();
    if args.xproc_producer {
        return xproc_producer(&args).await;
    }
    let store = open(&args).await?;
    let queue = store.queue.clone();
    let storage = queue.storage().clone();
    storage.flush().await?;
    let skip = |phase: &str| args.skip.iter().any(|s| s == phase);
    if !args.json {
        println!(
            "skiff throughput: backend {} ({}), tasks {}, concurrency {}, payload {} B, backlog {}, load {}",
            args.backend.name(),
            store.describe,
            args.tasks,
            args.concurrency,
            args.payload_bytes,
            args.backlog,
            load()
        );
    }
    let mut r = Report::default();

    if !skip("enqueue") {
        r.enqueue_per_s = Some(enqueue_sequential(&args, &queue).await?);
        storage.flush().await?;
    }
    if !skip("concurrent") {
        r.enqueue_concurrent_per_s = Some(enqueue_concurrent(&args, &queue).await?);
        storage.flush().await?;
    }
    if args.backlog > 0 {
        enqueue_backlog(&args, &queue).await?;
    }
    let body = payload(args.payload_bytes);
    let (ids, rate) = enqueue_batches(&args, &queue, "enqueue (batches)", args.tasks, || {
        noop(body.clone())
    })
    .await?;
    if !skip("batch") {
        r.enqueue_batch_per_s = Some(rate);
    }
    let rss_reset = reset_peak_rss();
    if !skip("process") {
        let before = store.sqlite.as_ref().map(|s| s.stats());
        r.process_per_s = Some(process(&args, &queue, ids).await?);
        if let (Some(s), Some(before), false) = (&store.sqlite, before, args.json) {
            let after = s.stats();
            let txs = after.transactions - before.transactions;
            let ops = after.operations - before.operations;
            println!(
                "SQLite writer during processing: {txs} transactions, {ops} operations ({:.1} tasks per transaction)",
                args.tasks as f64 / txs.max(1) as f64
            );
        }
    }
    storage.flush().await?;
    if !skip("latency") {
        r.latency = Some(latency(&args, &queue).await?);
        storage.flush().await?;
    }
    if !skip("xproc") && args.backend != Backend::Memory {
        r.latency_xproc = Some(latency_xproc(&args, &store).await?);
    }
    r.peak_rss_mb = peak_rss_mb();
    storage.flush().await?;

    if !args.json {
        println!();
        println!("| metric | value |");
        println!("| --- | ---: |");
        println!("| enqueue, 1 producer | {} |", rate_cell(r.enqueue_per_s));
        println!(
            "| enqueue, 64 producers | {} |",
            rate_cell(r.enqueue_concurrent_per_s)
        );
        println!(
            "| enqueue_many (1,000 per call) | {} |",
            rate_cell(r.enqueue_batch_per_s)
        );
        println!(
            "| process {} no-op tasks, {} workers{} | {} |",
            args.tasks,
            args.concurrency,
            if args.backlog > 0 {
                format!(", {} waiting behind", args.backlog)
            } else {
                String::new()
            },
            rate_cell(r.process_per_s)
        );
        match r.latency {
            Some((p50, p99, n)) => {
                println!("| enqueue-to-start p50, in process ({n} samples) | {p50:.2} ms |");
                println!("| enqueue-to-start p99, in process ({n} samples) | {p99:.2} ms |");
            }
            None => println!("| enqueue-to-start, in process | skipped |"),
        }
        match r.latency_xproc {
            Some((p50, p99, n)) => {
                println!("| enqueue-to-start p50, producer in another process ({n} samples) | {p50:.2} ms |");
                println!("| enqueue-to-start p99, producer in another process ({n} samples) | {p99:.2} ms |");
            }
            None => println!("| enqueue-to-start, producer in another process | skipped |"),
        }
        println!(
            "| peak RSS{} | {:.1} MB |",
            if rss_reset { " (worker phases)" } else { "" },
            r.peak_rss_mb
        );
        println!("load average after: {}", load());
    }
    if args.json {
        let obj = serde_json::json!({
            "backend": args.backend.name(),
            "tasks": args.tasks,
            "concurrency": args.concurrency,
            "prefetch": args.prefetch,
            "enqueue_per_s": json_num(r.enqueue_per_s, 0),
            "enqueue_concurrent_per_s": json_num(r.enqueue_concurrent_per_s, 0),
            "enqueue_batch_per_s": json_num(r.enqueue_batch_per_s, 0),
            "process_per_s": json_num(r.process_per_s, 0),
            "latency_p50_ms": json_num(r.latency.map(|l| l.0), 3),
            "latency_p99_ms": json_num(r.latency.map(|l| l.1), 3),
            "latency_samples": r.latency.map(|l| l.2),
            "latency_xproc_p50_ms": json_num(r.latency_xproc.map(|l| l.0), 3),
            "latency_xproc_p99_ms": json_num(r.latency_xproc.map(|l| l.1), 3),
            "latency_xproc_samples": r.latency_xproc.map(|l| l.2),
            "peak_rss_mb": (r.peak_rss_mb * 10.0).round() / 10.0,
        });
        println!("{obj}");
    }
    if args.backend == Backend::Postgres {
        storage.flush().await?;
    }
    Ok(())
}
