//! The throughput harness's workloads on apalis-postgres 1.x, for `benches/compare/run.sh`.
//!
//! ```text
//! cargo run --release -- --url postgres://postgres@127.0.0.1:PORT/postgres --tasks 20000
//! ```
//!
//! Prints one JSON object (the last line) with the keys of Skiff's
//! `cargo bench --bench throughput -- --json`:
//!
//! * `enqueue_per_s`: one producer, `TaskSink::push` per task (its own transaction each).
//! * `enqueue_concurrent_per_s`: 64 producers (Tokio tasks, a clone of the storage each).
//! * `enqueue_batch_per_s`: `TaskSink::push_bulk`, 1,000 per call (one `INSERT … unnest` each).
//! * `process_per_s`: N no-op tasks waiting; worker start → every task marked done in the
//!   table (`done_at` set by apalis's acknowledgement). `--concurrency` in-flight tasks
//!   (`.concurrency(n)` + `.parallelize(tokio::spawn)`), `--batch-size` tasks per fetch,
//!   `--lock-tasks` as apalis's `Config::lock_tasks` (off by default here: one UPDATE per
//!   batch less; tasks stay `Queued` rather than `Running` while they run).
//! * `latency_p50_ms` / `latency_p99_ms`: an idle worker on `with_pubsub()` (LISTEN/NOTIFY)
//!   with `poll_with_interval(--poll-ms)` (100 ms) behind it, as apalis's pubsub example; tasks pushed one at a time at `--latency-rate`/s; push call → handler start.
//! * `peak_rss_mb`: VmHWM, reset before the worker phases.
//!
//! Tables live in apalis's own schema (`apalis`); each phase starts on an emptied `jobs` table.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use apalis::prelude::*;
use apalis_postgres::{Config, PostgresStorage};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    url: String,
    tasks: usize,
    concurrency: usize,
    batch_size: usize,
    lock_tasks: bool,
    poll_ms: u64,
    pool_size: u32,
    enqueue_calls: Option<usize>,
    latency_samples: usize,
    latency_rate: u64,
    skip: Vec<String>,
}

fn parse() -> Args {
    let mut a = Args {
        url: String::new(),
        tasks: 20_000,
        concurrency: 64,
        batch_size: 100,
        lock_tasks: false,
        poll_ms: 100,
        pool_size: 16,
        enqueue_calls: None,
        latency_samples: 1000,
        latency_rate: 200,
        skip: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => a.url = value(),
            "--tasks" => a.tasks = value().parse().expect("--tasks N"),
            "--concurrency" => a.concurrency = value().parse().expect("--concurrency N"),
            "--batch-size" => a.batch_size = value().parse().expect("--batch-size N"),
            "--lock-tasks" => a.lock_tasks = value().parse().expect("--lock-tasks true|false"),
            "--poll-ms" => a.poll_ms = value().parse().expect("--poll-ms N"),
            "--pool-size" => a.pool_size = value().parse().expect("--pool-size N"),
            "--enqueue-calls" => a.enqueue_calls = Some(value().parse().expect("N")),
            "--latency-samples" => a.latency_samples = value().parse().expect("N"),
            "--latency-rate" => a.latency_rate = value().parse().expect("N"),
            "--skip" => a.skip = value().split(',').map(str::to_owned).collect(),
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(!a.url.is_empty(), "--url postgres://… is required");
    a
}

const QUEUE: &str = "bench";
const PROBES: &str = "bench-probe";

static EXECUTED: AtomicU64 = AtomicU64::new(0);

async fn noop(payload: Vec<u8>) -> Result<(), BoxDynError> {
    let _ = payload;
    EXECUTED.fetch_add(1, Ordering::Relaxed);
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

async fn probe(sent_ns: u64) -> Result<(), BoxDynError> {
    let now = epoch().elapsed().as_nanos() as u64;
    latencies()
        .lock()
        .unwrap()
        .push(now.saturating_sub(sent_ns));
    Ok(())
}

fn config(args: &Args, queue: &str) -> Config {
    Config::default()
        .queue(queue)
        .batch_size(args.batch_size)
        .lock_tasks(args.lock_tasks)
}

async fn empty(pool: &PgPool) -> Result<(), BoxError> {
    sqlx::query("TRUNCATE apalis.jobs").execute(pool).await?;
    Ok(())
}

async fn done_count(pool: &PgPool, queue: &str) -> Result<i64, BoxError> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM apalis.jobs WHERE job_type = $1 AND done_at IS NOT NULL",
    )
    .bind(queue)
    .fetch_one(pool)
    .await?)
}

async fn enqueue_sequential(args: &Args, pool: &PgPool) -> Result<f64, BoxError> {
    let n = args.enqueue_calls.unwrap_or(args.tasks.min(20_000));
    let mut storage = PostgresStorage::<Vec<u8>>::new(pool).with_config(config(args, QUEUE));
    let started = Instant::now();
    for _ in 0..n {
        storage.push(Vec::new()).await?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

async fn enqueue_concurrent(args: &Args, pool: &PgPool) -> Result<f64, BoxError> {
    const PRODUCERS: usize = 64;
    let n = args.enqueue_calls.unwrap_or(args.tasks.min(50_000));
    let per = n.div_ceil(PRODUCERS);
    let storage = PostgresStorage::<Vec<u8>>::new(pool).with_config(config(args, QUEUE));
    let started = Instant::now();
    let mut producers = tokio::task::JoinSet::new();
    for _ in 0..PRODUCERS {
        let mut storage = storage.clone();
        producers.spawn(async move {
            for _ in 0..per {
                storage.push(Vec::new()).await?;
            }
            Ok::<_, BoxError>(())
        });
    }
    while let Some(joined) = producers.join_next().await {
        joined??;
    }
    Ok((per * PRODUCERS) as f64 / started.elapsed().as_secs_f64())
}

async fn enqueue_batches(args: &Args, pool: &PgPool) -> Result<f64, BoxError> {
    const BATCH: usize = 1000;
    let mut storage = PostgresStorage::<Vec<u8>>::new(pool).with_config(config(args, QUEUE));
    let started = Instant::now();
    let mut left = args.tasks;
    while left > 0 {
        let k = left.min(BATCH);
        storage.push_bulk(vec![Vec::new(); k]).await?;
        left -= k;
    }
    Ok(args.tasks as f64 / started.elapsed().as_secs_f64())
}

async fn process(args: &Args, pool: &PgPool) -> Result<f64, BoxError> {
    let n = args.tasks as u64;
    let before = EXECUTED.load(Ordering::Relaxed);
    let storage = PostgresStorage::<Vec<u8>>::new(pool).with_config(config(args, QUEUE));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let worker = WorkerBuilder::new("apalis-bench")
        .backend(storage)
        .concurrency(args.concurrency)
        .parallelize(tokio::spawn)
        .build(noop);
    let running = tokio::spawn(worker.run_until(async move {
        let _ = stop_rx.await;
        Ok::<_, WorkerError>(())
    }));
    // Every task has run: now wait for the acknowledgements (polling only from here on, so
    // the check does not load the server during the run).
    while EXECUTED.load(Ordering::Relaxed) - before < n {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    while (done_count(pool, QUEUE).await? as u64) < n {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(30), running).await;
    Ok(rate)
}

async fn latency(args: &Args, pool: &PgPool) -> Result<(f64, f64), BoxError> {
    let n = args.latency_samples;
    latencies().lock().unwrap().clear();
    let storage = PostgresStorage::<u64>::new(pool).with_config(config(args, PROBES));
    let mut producer = storage.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let worker = WorkerBuilder::new("apalis-bench-latency")
        .backend(
            storage
                .with_pubsub()
                .poll_with_interval(Duration::from_millis(args.poll_ms)),
        )
        .concurrency(args.concurrency)
        .parallelize(tokio::spawn)
        .build(probe);
    let running = tokio::spawn(worker.run_until(async move {
        let _ = stop_rx.await;
        Ok::<_, WorkerError>(())
    }));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let gap = Duration::from_nanos(1_000_000_000 / args.latency_rate.max(1));
    let mut tick = tokio::time::interval(gap);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for _ in 0..n {
        tick.tick().await;
        let sent = epoch().elapsed().as_nanos() as u64;
        producer.push(sent).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while latencies().lock().unwrap().len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(30), running).await;
    let mut lat = latencies().lock().unwrap().clone();
    if lat.is_empty() {
        return Err("no latency samples".into());
    }
    lat.sort_unstable();
    let pct = |p: f64| {
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i] as f64 / 1e6
    };
    Ok((pct(0.50), pct(0.99)))
}

fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = parse();
    let _ = epoch();
    let pool = PgPoolOptions::new()
        .max_connections(args.pool_size)
        .connect(&args.url)
        .await?;
    PostgresStorage::setup(&pool).await?;
    let skip = |phase: &str| args.skip.iter().any(|s| s == phase);
    let mut r = serde_json::Map::new();
    let mut put = |k: &str, v: f64| {
        r.insert(k.into(), serde_json::json!((v * 1000.0).round() / 1000.0));
    };
    empty(&pool).await?;
    if !skip("enqueue") {
        let v = enqueue_sequential(&args, &pool).await?;
        eprintln!("enqueue, 1 producer: {v:.0}/s");
        put("enqueue_per_s", v.round());
        empty(&pool).await?;
    }
    if !skip("concurrent") {
        let v = enqueue_concurrent(&args, &pool).await?;
        eprintln!("enqueue, 64 producers: {v:.0}/s");
        put("enqueue_concurrent_per_s", v.round());
        empty(&pool).await?;
    }
    let v = enqueue_batches(&args, &pool).await?;
    eprintln!("push_bulk (1,000 per call): {v:.0}/s");
    put("enqueue_batch_per_s", v.round());
    // apalis's due check is `run_at < now()` with run_at in whole seconds: let the batch
    // become due before the clock starts.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    reset_peak_rss();
    if !skip("process") {
        let v = process(&args, &pool).await?;
        eprintln!("process: {v:.0}/s");
        put("process_per_s", v.round());
    }
    empty(&pool).await?;
    if !skip("latency") {
        let (p50, p99) = latency(&args, &pool).await?;
        eprintln!("latency p50 {p50:.2} ms, p99 {p99:.2} ms");
        put("latency_p50_ms", p50);
        put("latency_p99_ms", p99);
    }
    put("peak_rss_mb", (peak_rss_mb() * 10.0).round() / 10.0);
    empty(&pool).await?;
    r.insert("backend".into(), "apalis-postgres".into());
    r.insert("tasks".into(), args.tasks.into());
    r.insert("concurrency".into(), args.concurrency.into());
    r.insert("batch_size".into(), args.batch_size.into());
    r.insert("lock_tasks".into(), args.lock_tasks.into());
    println!("{}", serde_json::Value::Object(r));
    Ok(())
}
