//! The throughput harness's workloads on apalis 1.0 (apalis-postgres, apalis-sqlite and
//! apalis-redis), for `benches/compare/run.sh`.
//!
//! ```text
//! cargo run --release -- --backend postgres --url postgres://postgres@127.0.0.1:PORT/postgres
//! cargo run --release -- --backend sqlite --url sqlite:///tmp/apalis.db --synchronous full
//! cargo run --release -- --backend redis --url redis://127.0.0.1:PORT/0 --tasks 20000
//! ```
//!
//! Prints one JSON object (the last line) with the keys of Skiff's
//! `cargo bench --bench throughput -- --json`:
//!
//! * `enqueue_per_s`: one producer, `TaskSink::push` per task (its own transaction, or one
//!   Lua script call on Redis, each).
//! * `enqueue_concurrent_per_s`: 64 producers (Tokio tasks, a clone of the storage each).
//! * `enqueue_batch_per_s`: `TaskSink::push_bulk`, 1,000 per call (PostgreSQL: one
//!   `INSERT … unnest`; SQLite: one transaction of 1,000 INSERTs; Redis: one script call).
//! * `process_per_s`: N no-op tasks waiting; worker start → every task acknowledged in the
//!   store (`done_at` set; on Redis, in the queue's `done` set). `--concurrency` in-flight
//!   tasks (`.concurrency(n)` + `.parallelize(tokio::spawn)`), `--batch-size` tasks per fetch
//!   (apalis's default is 10), `--lock-tasks` as apalis's `Config::lock_tasks` (off by
//!   default here: one write per batch less; tasks stay `Queued` rather than `Running`), results
//!   persisted (apalis's default, as Skiff stores results).
//! * `latency_p50_ms` / `latency_p99_ms` over `latency_samples` probes: an idle worker in this
//!   process woken by apalis's own push notification, with `poll_with_interval(--poll-ms)`
//!   (100 ms) behind it; tasks pushed one at a time at `--latency-rate`/s; push call → handler
//!   start. The notifications: PostgreSQL `with_pubsub()` (LISTEN/NOTIFY, as apalis's pubsub
//!   example); SQLite an update hook on INSERT into `Jobs` on every pooled connection (what
//!   `SqliteStorage::connect_with_callback` installs, in process only); Redis
//!   `RedisStorageFactory` (PSUBSCRIBE to the `tasks:*:available` messages apalis's push script
//!   publishes, over a RESP3 connection).
//! * `peak_rss_mb`: VmHWM, reset before the worker phases.
//!
//! SQLite: the pool's connections are opened in WAL mode at `--synchronous normal|full` (as
//! Skiff's store: NORMAL by default, `?synchronous=full`). apalis's `SqliteStorage::setup` sets
//! `PRAGMA synchronous = OFF` on the one pooled connection it happens to run on (the others stay
//! at SQLite's default, FULL), so it runs here on a pool of its own that is closed before the
//! phases. Redis: whatever persistence the server has (run.sh starts one without and one with
//! AOF `everysec`).
//!
//! Each phase starts on an emptied store (PostgreSQL: `apalis.jobs`; SQLite: `Jobs`; Redis: the
//! bench's queues' keys).

use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use apalis::prelude::*;
use apalis_postgres::PostgresStorage;
use apalis_redis::{ConnectionManager, RedisStorage};
use apalis_sqlite::SqliteStorage;
use futures::channel::mpsc;
use futures::{Stream, StreamExt};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqliteOperation, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{PgPool, SqlitePool};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Postgres,
    Sqlite,
    Redis,
}

struct Args {
    backend: Kind,
    url: String,
    tasks: usize,
    concurrency: usize,
    batch_size: usize,
    lock_tasks: bool,
    poll_ms: u64,
    pool_size: u32,
    synchronous: String,
    enqueue_calls: Option<usize>,
    latency_samples: usize,
    latency_rate: u64,
    skip: Vec<String>,
}

fn parse() -> Args {
    let mut a = Args {
        backend: Kind::Postgres,
        url: String::new(),
        tasks: 20_000,
        concurrency: 64,
        batch_size: 100,
        lock_tasks: false,
        poll_ms: 100,
        pool_size: 16,
        synchronous: "normal".into(),
        enqueue_calls: None,
        latency_samples: 1000,
        latency_rate: 200,
        skip: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--backend" => {
                a.backend = match value().as_str() {
                    "postgres" => Kind::Postgres,
                    "sqlite" => Kind::Sqlite,
                    "redis" => Kind::Redis,
                    other => panic!("--backend postgres|sqlite|redis, not {other}"),
                }
            }
            "--url" => a.url = value(),
            "--tasks" => a.tasks = value().parse().expect("--tasks N"),
            "--concurrency" => a.concurrency = value().parse().expect("--concurrency N"),
            "--batch-size" => a.batch_size = value().parse().expect("--batch-size N"),
            "--lock-tasks" => a.lock_tasks = value().parse().expect("--lock-tasks true|false"),
            "--poll-ms" => a.poll_ms = value().parse().expect("--poll-ms N"),
            "--pool-size" => a.pool_size = value().parse().expect("--pool-size N"),
            "--synchronous" => {
                a.synchronous = value().to_ascii_lowercase();
                assert!(
                    a.synchronous == "normal" || a.synchronous == "full",
                    "--synchronous normal|full"
                );
            }
            "--enqueue-calls" => a.enqueue_calls = Some(value().parse().expect("N")),
            "--latency-samples" => a.latency_samples = value().parse().expect("N"),
            "--latency-rate" => a.latency_rate = value().parse().expect("N"),
            "--skip" => a.skip = value().split(',').map(str::to_owned).collect(),
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(
        !a.url.is_empty(),
        "--url postgres://…|sqlite://…|redis://… is required"
    );
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

// ----- SQLite: apalis's in-process wake-up, on a pool whose connection options are ours -----

/// Sends while the latency phase runs (the hook is installed on every connection, as
/// `SqliteStorage::connect_with_callback` does; the enqueue phases have no worker to wake).
static HOOK_ON: AtomicBool = AtomicBool::new(false);

/// A wake-up per row inserted into apalis's `Jobs` table (apalis's `HookCallbackListener`,
/// which cannot be built around a pool of our own).
#[derive(Clone)]
struct Hook(Arc<Mutex<mpsc::UnboundedReceiver<()>>>);

impl Stream for Hook {
    type Item = ();
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        self.0.lock().unwrap().poll_next_unpin(cx)
    }
}

async fn open_sqlite(args: &Args) -> Result<(SqlitePool, Hook), BoxError> {
    let synchronous = match args.synchronous.as_str() {
        "full" => SqliteSynchronous::Full,
        _ => SqliteSynchronous::Normal,
    };
    let options = SqliteConnectOptions::from_str(&args.url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(synchronous)
        .busy_timeout(Duration::from_secs(30));
    // Migrations on a pool of their own: `setup` leaves `synchronous = OFF` on its connection.
    let setup = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await?;
    SqliteStorage::setup(&setup).await?;
    setup.close().await;
    let (tx, rx) = mpsc::unbounded::<()>();
    let pool = SqlitePoolOptions::new()
        .max_connections(args.pool_size)
        .after_connect(move |conn, _| {
            let tx = tx.clone();
            Box::pin(async move {
                let mut handle = conn.lock_handle().await?;
                handle.set_update_hook(move |ev| {
                    if HOOK_ON.load(Ordering::Relaxed)
                        && ev.operation == SqliteOperation::Insert
                        && ev.table == "Jobs"
                    {
                        let _ = tx.unbounded_send(());
                    }
                });
                Ok(())
            })
        })
        .connect_with(options)
        .await?;
    // What the pool's connections really run at (0 OFF, 1 NORMAL, 2 FULL), for the JSON.
    let level: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&pool)
        .await?;
    let expected = if args.synchronous == "full" { 2 } else { 1 };
    assert_eq!(level, expected, "PRAGMA synchronous on a pooled connection");
    Ok((pool, Hook(Arc::new(Mutex::new(rx)))))
}

// ----- the store -----

enum Store {
    Postgres(PgPool),
    Sqlite(SqlitePool, Hook),
    Redis(ConnectionManager),
}

fn pg_storage<T>(pool: &PgPool, args: &Args, queue: &str) -> PostgresStorage<T> {
    PostgresStorage::new(pool).with_config(
        apalis_postgres::Config::default()
            .queue(queue)
            .batch_size(args.batch_size)
            .lock_tasks(args.lock_tasks),
    )
}

fn sqlite_storage<T>(pool: &SqlitePool, args: &Args, queue: &str) -> SqliteStorage<T> {
    SqliteStorage::new(pool).with_config(
        apalis_sqlite::Config::default()
            .queue(queue)
            .batch_size(args.batch_size)
            .lock_tasks(args.lock_tasks),
    )
}

fn redis_config(args: &Args, queue: &str) -> apalis_redis::Config {
    apalis_redis::Config::default()
        .queue(queue)
        .batch_size(args.batch_size)
        .lock_tasks(args.lock_tasks)
}

/// Runs `$body` with `$s` bound to an apalis storage of `$T` for `$queue` on the store, with
/// the bench's configuration (batch size, lock_tasks).
macro_rules! with_storage {
    ($store:expr, $args:expr, $T:ty, $queue:expr, |$s:ident| $body:expr) => {
        match $store {
            Store::Postgres(pool) => {
                let $s = pg_storage::<$T>(pool, $args, $queue);
                $body
            }
            Store::Sqlite(pool, _) => {
                let $s = sqlite_storage::<$T>(pool, $args, $queue);
                $body
            }
            Store::Redis(conn) => {
                let $s =
                    RedisStorage::<$T>::new(conn.clone()).with_config(redis_config($args, $queue));
                $body
            }
        }
    };
}

/// Starts a worker on `$backend` in a Tokio task; `(stop, running)`.
macro_rules! spawn_worker {
    ($name:expr, $backend:expr, $args:expr, $handler:expr) => {{
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let worker = WorkerBuilder::new($name)
            .backend($backend)
            .concurrency($args.concurrency)
            .parallelize(tokio::spawn)
            .build($handler);
        let running = tokio::spawn(worker.run_until(async move {
            let _ = stop_rx.await;
            Ok::<_, WorkerError>(())
        }));
        (stop_tx, running)
    }};
}

async fn stop_worker<T>(
    stop: tokio::sync::oneshot::Sender<()>,
    running: tokio::task::JoinHandle<T>,
) {
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(30), running).await;
}

async fn empty(store: &Store) -> Result<(), BoxError> {
    match store {
        Store::Postgres(pool) => {
            sqlx::query("TRUNCATE apalis.jobs").execute(pool).await?;
        }
        Store::Sqlite(pool, _) => {
            sqlx::query("DELETE FROM Jobs").execute(pool).await?;
        }
        Store::Redis(conn) => {
            let mut conn = conn.clone();
            for pattern in [format!("{QUEUE}:*"), format!("{PROBES}:*")] {
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(&pattern)
                    .query_async(&mut conn)
                    .await?;
                for chunk in keys.chunks(1000) {
                    redis::cmd("DEL")
                        .arg(chunk)
                        .query_async::<()>(&mut conn)
                        .await?;
                }
            }
        }
    }
    Ok(())
}

async fn done_count(store: &Store, queue: &str) -> Result<u64, BoxError> {
    Ok(match store {
        Store::Postgres(pool) => {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM apalis.jobs WHERE job_type = $1 AND done_at IS NOT NULL",
            )
            .bind(queue)
            .fetch_one(pool)
            .await? as u64
        }
        Store::Sqlite(pool, _) => {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM Jobs WHERE job_type = ?1 AND done_at IS NOT NULL",
            )
            .bind(queue)
            .fetch_one(pool)
            .await? as u64
        }
        Store::Redis(conn) => {
            let mut conn = conn.clone();
            redis::cmd("SCARD")
                .arg(format!("{queue}:done"))
                .query_async::<u64>(&mut conn)
                .await?
        }
    })
}

// ----- phases -----

async fn enqueue_sequential(args: &Args, store: &Store) -> Result<f64, BoxError> {
    let n = args.enqueue_calls.unwrap_or(args.tasks.min(20_000));
    with_storage!(store, args, Vec<u8>, QUEUE, |storage| {
        let mut storage = storage;
        // In a task of the runtime, as a web handler runs (the same as Skiff's harness).
        let producer = tokio::spawn(async move {
            let started = Instant::now();
            for _ in 0..n {
                storage.push(Vec::new()).await?;
            }
            Ok::<_, BoxError>(started.elapsed())
        });
        Ok(n as f64 / producer.await??.as_secs_f64())
    })
}

async fn enqueue_concurrent(args: &Args, store: &Store) -> Result<f64, BoxError> {
    const PRODUCERS: usize = 64;
    let n = args.enqueue_calls.unwrap_or(args.tasks.min(50_000));
    let per = n.div_ceil(PRODUCERS);
    with_storage!(store, args, Vec<u8>, QUEUE, |storage| {
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
    })
}

async fn enqueue_batches(args: &Args, store: &Store) -> Result<f64, BoxError> {
    const BATCH: usize = 1000;
    with_storage!(store, args, Vec<u8>, QUEUE, |storage| {
        let mut storage = storage;
        let started = Instant::now();
        let mut left = args.tasks;
        while left > 0 {
            let k = left.min(BATCH);
            storage.push_bulk(vec![Vec::new(); k]).await?;
            left -= k;
        }
        Ok(args.tasks as f64 / started.elapsed().as_secs_f64())
    })
}

/// The longest the processing phase may take before it is given up (`None`, printed as
/// null): apalis-redis 1.0 was seen never to take 20,000 pushed tasks.
const PROCESS_DEADLINE: Duration = Duration::from_secs(300);

async fn process(args: &Args, store: &Store) -> Result<Option<f64>, BoxError> {
    let n = args.tasks as u64;
    let before = EXECUTED.load(Ordering::Relaxed);
    let started = Instant::now();
    with_storage!(store, args, Vec<u8>, QUEUE, |storage| {
        let (stop, running) = spawn_worker!("apalis-bench", storage, args, noop);
        // Every task has run: now wait for the acknowledgements (polling only from here on,
        // so the check does not load the store during the run).
        while EXECUTED.load(Ordering::Relaxed) - before < n {
            if started.elapsed() > PROCESS_DEADLINE {
                eprintln!(
                    "process: {} of {n} tasks ran in {PROCESS_DEADLINE:?}; given up",
                    EXECUTED.load(Ordering::Relaxed) - before
                );
                stop_worker(stop, running).await;
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        while done_count(store, QUEUE).await? < n {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let rate = n as f64 / started.elapsed().as_secs_f64();
        stop_worker(stop, running).await;
        Ok::<_, BoxError>(Some(rate))
    })
}

/// Pushes the probes at the steady rate with `$producer` and waits for them to start.
macro_rules! push_probes {
    ($args:expr, $producer:expr) => {{
        tokio::time::sleep(Duration::from_millis(500)).await;
        let n = $args.latency_samples;
        let gap = Duration::from_nanos(1_000_000_000 / $args.latency_rate.max(1));
        let mut tick = tokio::time::interval(gap);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pushed: Result<(), BoxError> = Ok(());
        for _ in 0..n {
            tick.tick().await;
            let sent = epoch().elapsed().as_nanos() as u64;
            if let Err(e) = $producer.push(sent).await {
                pushed = Err(e.into());
                break;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while pushed.is_ok() && latencies().lock().unwrap().len() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        pushed
    }};
}

async fn latency(args: &Args, store: &Store) -> Result<(f64, f64, usize), BoxError> {
    latencies().lock().unwrap().clear();
    let poll = Duration::from_millis(args.poll_ms);
    let pushed = match store {
        Store::Postgres(pool) => {
            let storage = pg_storage::<u64>(pool, args, PROBES);
            let mut producer = storage.clone();
            let backend = storage.with_pubsub().poll_with_interval(poll);
            let (stop, running) = spawn_worker!("apalis-bench-latency", backend, args, probe);
            let pushed = push_probes!(args, producer);
            stop_worker(stop, running).await;
            pushed
        }
        Store::Sqlite(pool, hook) => {
            let storage = sqlite_storage::<u64>(pool, args, PROBES);
            let mut producer = storage.clone();
            HOOK_ON.store(true, Ordering::Relaxed);
            let backend = storage
                .poll_with_stream(hook.clone())
                .poll_with_interval(poll);
            let (stop, running) = spawn_worker!("apalis-bench-latency", backend, args, probe);
            let pushed = push_probes!(args, producer);
            stop_worker(stop, running).await;
            HOOK_ON.store(false, Ordering::Relaxed);
            pushed
        }
        Store::Redis(conn) => {
            let mut producer =
                RedisStorage::<u64>::new(conn.clone()).with_config(redis_config(args, PROBES));
            // apalis's pubsub wake-up needs RESP3 (push messages on the connection).
            let sep = if args.url.contains('?') { '&' } else { '?' };
            let client = apalis_redis::Client::open(format!("{}{sep}protocol=resp3", args.url))?;
            let mut factory = apalis_redis::factory::RedisStorageFactory::new(client).await?;
            let backend = BackendFactory::<u64>::create_with_config(
                &mut factory,
                redis_config(args, PROBES),
            )?
            .poll_with_interval(poll);
            let (stop, running) = spawn_worker!("apalis-bench-latency", backend, args, probe);
            let pushed = push_probes!(args, producer);
            stop_worker(stop, running).await;
            pushed
        }
    };
    pushed?;
    let mut lat = latencies().lock().unwrap().clone();
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
    let (store, name) = match args.backend {
        Kind::Postgres => {
            let pool = PgPoolOptions::new()
                .max_connections(args.pool_size)
                .connect(&args.url)
                .await?;
            PostgresStorage::setup(&pool).await?;
            (Store::Postgres(pool), "apalis-postgres")
        }
        Kind::Sqlite => {
            let (pool, hook) = open_sqlite(&args).await?;
            (Store::Sqlite(pool, hook), "apalis-sqlite")
        }
        Kind::Redis => (
            Store::Redis(apalis_redis::connect(args.url.as_str()).await?),
            "apalis-redis",
        ),
    };
    let skip = |phase: &str| args.skip.iter().any(|s| s == phase);
    let mut r = serde_json::Map::new();
    let mut put = |k: &str, v: Option<f64>| {
        r.insert(
            k.into(),
            v.map_or(serde_json::Value::Null, |v| {
                serde_json::json!((v * 1000.0).round() / 1000.0)
            }),
        );
    };
    empty(&store).await?;
    let mut v = None;
    if !skip("enqueue") {
        let rate = enqueue_sequential(&args, &store).await?;
        eprintln!("enqueue, 1 producer: {rate:.0}/s");
        v = Some(rate.round());
        empty(&store).await?;
    }
    put("enqueue_per_s", v);
    let mut v = None;
    if !skip("concurrent") {
        let rate = enqueue_concurrent(&args, &store).await?;
        eprintln!("enqueue, 64 producers: {rate:.0}/s");
        v = Some(rate.round());
        empty(&store).await?;
    }
    put("enqueue_concurrent_per_s", v);
    let rate = enqueue_batches(&args, &store).await?;
    eprintln!("push_bulk (1,000 per call): {rate:.0}/s");
    put(
        "enqueue_batch_per_s",
        (!skip("batch")).then_some(rate.round()),
    );
    // apalis's due check compares run_at in whole seconds with now: let the batch become due
    // before the clock starts.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    reset_peak_rss();
    let mut v = None;
    if !skip("process") {
        if let Some(rate) = process(&args, &store).await? {
            eprintln!("process: {rate:.0}/s");
            v = Some(rate.round());
        }
    }
    put("process_per_s", v);
    empty(&store).await?;
    let mut samples = None;
    let (mut p50, mut p99) = (None, None);
    if !skip("latency") {
        let (a, b, n) = latency(&args, &store).await?;
        eprintln!("latency p50 {a:.2} ms, p99 {b:.2} ms ({n} samples)");
        (p50, p99, samples) = (Some(a), Some(b), Some(n));
    }
    put("latency_p50_ms", p50);
    put("latency_p99_ms", p99);
    put("peak_rss_mb", Some((peak_rss_mb() * 10.0).round() / 10.0));
    empty(&store).await?;
    r.insert("latency_samples".into(), samples.into());
    r.insert("backend".into(), name.into());
    r.insert("tasks".into(), args.tasks.into());
    r.insert("concurrency".into(), args.concurrency.into());
    r.insert("batch_size".into(), args.batch_size.into());
    r.insert("lock_tasks".into(), args.lock_tasks.into());
    r.insert("pool_size".into(), args.pool_size.into());
    r.insert("poll_ms".into(), args.poll_ms.into());
    if args.backend == Kind::Sqlite {
        r.insert("synchronous".into(), args.synchronous.clone().into());
    }
    println!("{}", serde_json::Value::Object(r));
    Ok(())
}
