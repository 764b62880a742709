//! The soak harness: load a real store, kill workers with `kill -9`, restart them, and check
//! from the outside that nothing was lost. Its command line is a contract (see HARNESS in the
//! project docs); extend it only compatibly.
//!
//! ```text
//! cargo run --release --example soak -- URL enqueue --count N [--start S] [--sleep-ms MAX]
//!     [--fail-first K] [--poison K] [--priority P] [--delay-ms D] [--batch B]
//!     [--queue NAME] [--rollback R] [--hold-ms H] [--retry-after-secs T]
//! cargo run --release --example soak -- URL work --concurrency C --record FILE
//!     [--periodic-every-secs S] [--exit-when-idle-ms MS] [--lease-ms L] [--queues A,B]
//! cargo run --release --example soak -- URL stats [--queue NAME]
//! cargo run --release --example soak -- URL orders
//! cargo run --release --example soak -- URL garbage --count K [--queue NAME]
//! ```
//!
//! An option a store cannot honour (`--rollback` on Redis) exits with status 2 and a one-line
//! reason.

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
    /// Store URL: sqlite://PATH, sqlite:///ABS/PATH, redis://HOST:PORT/DB, rediss://…,
    /// redis+cluster://HOST:PORT/ (a seed node of a Redis Cluster)
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
        /// The queue to store the tasks in.
        #[arg(long, default_value = "default")]
        queue: String,
        /// Enqueue each task in an application transaction that also inserts n into
        /// `soak_orders` and commits; then R more tasks in transactions that roll back.
        #[arg(long)]
        rollback: Option<u64>,
        /// Every task sleeps exactly H ms (instead of the random --sleep-ms time).
        #[arg(long)]
        hold_ms: Option<u64>,
        /// The --fail-first tasks ask for their retry with `TaskError::retry_after(T s)`; T
        /// may be absurdly large (10^13): handled without a panic or a redelivery loop.
        #[arg(long)]
        retry_after_secs: Option<u64>,
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
        /// The queues to consume, comma-separated (by equal weights).
        #[arg(long, value_delimiter = ',', default_value = "default")]
        queues: Vec<String>,
    },
    /// Print the store's counts as one JSON line.
    Stats {
        /// Count one queue only.
        #[arg(long)]
        queue: Option<String>,
    },
    /// Print the rows of `soak_orders` as one JSON line: `{"orders": rows, "distinct": n}`.
    Orders,
    /// Write K entries that do not decode (random bytes, nothing, a truncated envelope, a
    /// string, a map of wrong types, a newer format) as ready tasks of the queue, where the
    /// store keeps pending tasks. A worker dead-letters each with the reason.
    Garbage {
        #[arg(long)]
        count: u64,
        #[arg(long, default_value = "default")]
        queue: String,
    },
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
    // `--hold-ms` and `--sleep-ms` both end up here: an async sleep, so a cancelled task ends
    // at once.
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

/// A `--fail-first` task of `enqueue --retry-after-secs T`: its first attempt asks to be
/// retried in T seconds; a later attempt records `done <n>`.
#[skiff::task(retries = 3, context)]
async fn soak_retry_after(
    ctx: TaskContext,
    n: u64,
    sleep_ms: u64,
    retry_after_secs: u64,
) -> Result<u64, TaskError> {
    if sleep_ms > 0 {
        tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
    }
    if ctx.attempt == 1 {
        return Err(TaskError::retry_after(
            Duration::from_secs(retry_after_secs),
            format!("soak task {n} asks for its retry in {retry_after_secs} s"),
        ));
    }
    record(&format!("done {n}\n"))?;
    Ok(n)
}

/// The entries `garbage` writes, in turn: none of them decodes as a task.
fn garbage_payloads(count: u64, queue: &str) -> Result<Vec<Vec<u8>>, skiff::Error> {
    let mut rng = rand::rng();
    let args = skiff::to_msgpack(&(1u64, 0u64, false, false))?;
    let real = skiff::Envelope::new(queue, "soak_task", args, chrono::Utc::now());
    let encoded = real.encode()?;
    let mut newer = real.clone();
    newer.version = skiff::FORMAT_VERSION + 1;
    let newer = newer.encode()?;
    let mut out = Vec::new();
    for i in 0..count {
        out.push(match i % 6 {
            // Random bytes after 0xc1, a byte MessagePack never uses: they never decode by
            // chance (as an envelope of a newer format, say, which is counted apart).
            0 => std::iter::once(0xc1)
                .chain((0..rng.random_range(0..63)).map(|_| rng.random::<u8>()))
                .collect(),
            1 => Vec::new(),
            2 => encoded[..encoded.len() / 2].to_vec(),
            3 => skiff::to_msgpack(&"not an envelope")?,
            4 => skiff::to_msgpack(&std::collections::BTreeMap::from([
                ("id", 7u8),
                ("queue", 1),
            ]))?,
            _ => newer.clone(),
        });
    }
    Ok(out)
}

/// Writes `payloads` as ready tasks of `queue` straight into the store at `url`.
async fn write_garbage(url: &str, queue: &str, payloads: Vec<Vec<u8>>) -> Result<(), skiff::Error> {
    let entries = payloads.into_iter().map(|raw| (skiff::TaskId::new(), raw));
    if is_redis(url) {
        let store = queue_redis::RedisStorage::connect(url).await?;
        for (id, raw) in entries {
            store.insert_raw(queue, id, raw).await?;
        }
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = queue_postgres::PostgresStorage::connect(url).await?;
        for (id, raw) in entries {
            store.insert_raw(queue, id, raw).await?;
        }
    } else if url.starts_with("sqlite:") {
        let store = skiff::sqlite::SqliteStorage::connect(url).await?;
        for (id, raw) in entries {
            store.insert_raw(queue, id, raw).await?;
        }
    } else {
        eprintln!("garbage: this store has no stored layout to write into");
        std::process::exit(2);
    }
    Ok(())
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

/// The store at `url`, with tasks signed and encrypted when SKIFF_SIGNING_KEYS /
/// SKIFF_ENCRYPTION_KEYS are set (without them, `enqueue` writes unsigned tasks: how an
/// outside check forges one).
async fn open(url: &str) -> Result<Queue, skiff::Error> {
    let sealing = skiff::seal::Sealing::from_env()?;
    Ok(open_store(url).await?.with_sealing(sealing))
}

/// Opens the store, waiting (up to skiff's default connect timeout) for a Redis or
/// PostgreSQL server that is not reachable or still loading, as a worker started right after
/// a server restart finds it.
async fn open_store(url: &str) -> Result<Queue, skiff::Error> {
    let timeout = skiff::DEFAULT_CONNECT_TIMEOUT;
    if is_redis(url) {
        let store =
            skiff::retry_connect(url, timeout, || queue_redis::RedisStorage::connect(url)).await?;
        return Ok(Queue::new(Arc::new(store)));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = skiff::retry_connect(url, timeout, || {
            queue_postgres::PostgresStorage::connect(url)
        })
        .await?;
        return Ok(Queue::new(Arc::new(store)));
    }
    Queue::connect(url).await
}

/// Whether `url` names a Redis store: one server (`redis://`, `rediss://`) or a Redis Cluster
/// (`redis+cluster://`, `rediss+cluster://`).
fn is_redis(url: &str) -> bool {
    [
        "redis://",
        "rediss://",
        "redis+cluster://",
        "rediss+cluster://",
    ]
    .iter()
    .any(|scheme| url.starts_with(scheme))
}

/// Exits with status 2 and a one-line reason: the store cannot do what was asked.
fn unsupported(what: &str, queue: &Queue) -> ! {
    eprintln!(
        "{what} is not supported on the {} store",
        queue.storage().backend()
    );
    std::process::exit(2)
}

/// The application side of `--rollback` and `orders`: the store's database, reached with sqlx.
enum AppDb<'q> {
    Sqlite(&'q skiff::sqlite::SqliteStorage),
    Postgres(&'q queue_postgres::PostgresStorage),
}

impl<'q> AppDb<'q> {
    /// The database of `queue`'s store, or `None` when it shares no transactions.
    fn of(queue: &'q Queue) -> Option<Self> {
        let any = queue.storage().as_any()?;
        if let Some(s) = any.downcast_ref::<skiff::sqlite::SqliteStorage>() {
            return Some(Self::Sqlite(s));
        }
        any.downcast_ref().map(Self::Postgres)
    }

    /// `soak_orders`, created if missing (beside the store's tables).
    async fn orders_table(&self) -> Result<String, sqlx::Error> {
        let (table, create) = match self {
            Self::Sqlite(_) => (
                "soak_orders".to_owned(),
                "CREATE TABLE IF NOT EXISTS soak_orders (n INTEGER NOT NULL)".to_owned(),
            ),
            Self::Postgres(s) => {
                let table = format!("\"{}\".soak_orders", s.schema());
                let create = format!("CREATE TABLE IF NOT EXISTS {table} (n bigint NOT NULL)");
                (table, create)
            }
        };
        match self {
            Self::Sqlite(s) => {
                sqlx::query(sqlx::AssertSqlSafe(create))
                    .execute(s.pool())
                    .await?;
            }
            Self::Postgres(s) => {
                sqlx::query(sqlx::AssertSqlSafe(create))
                    .execute(s.pool())
                    .await?;
            }
        }
        Ok(table)
    }

    /// Inserts order `n` and enqueues `call` in one transaction, then commits or rolls back.
    async fn order(
        &self,
        queue: &Queue,
        table: &str,
        n: u64,
        call: skiff::TaskCall<soak_task>,
        commit: bool,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let insert = format!("INSERT INTO {table} (n) VALUES ($1)");
        let n = i64::try_from(n)?;
        match self {
            Self::Sqlite(s) => {
                use skiff::sqlite::EnqueueIn as _;
                let mut tx = s.pool().begin_with("BEGIN IMMEDIATE").await?;
                sqlx::query(sqlx::AssertSqlSafe(insert))
                    .bind(n)
                    .execute(&mut *tx)
                    .await?;
                call.enqueue_in(&mut tx, queue).await?;
                if commit {
                    tx.commit().await?;
                } else {
                    tx.rollback().await?;
                }
            }
            Self::Postgres(s) => {
                use queue_postgres::EnqueueIn as _;
                let mut tx = s.pool().begin().await?;
                sqlx::query(sqlx::AssertSqlSafe(insert))
                    .bind(n)
                    .execute(&mut *tx)
                    .await?;
                call.enqueue_in(&mut tx, queue).await?;
                if commit {
                    tx.commit().await?;
                } else {
                    tx.rollback().await?;
                }
            }
        }
        Ok(())
    }

    /// `(rows, distinct n)` of `soak_orders`.
    async fn orders(&self) -> Result<(i64, i64), sqlx::Error> {
        let table = self.orders_table().await?;
        let select = format!("SELECT count(*), count(DISTINCT n) FROM {table}");
        match self {
            Self::Sqlite(s) => {
                sqlx::query_as(sqlx::AssertSqlSafe(select))
                    .fetch_one(s.pool())
                    .await
            }
            Self::Postgres(s) => {
                sqlx::query_as(sqlx::AssertSqlSafe(select))
                    .fetch_one(s.pool())
                    .await
            }
        }
    }
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
            queue: queue_name,
            rollback,
            hold_ms,
            retry_after_secs,
        } => {
            let began = Instant::now();
            let mut rng = rand::rng();
            let make = |n: u64, rng: &mut rand::rngs::ThreadRng| {
                let sleep = match hold_ms {
                    Some(h) => h,
                    None if sleep_ms > 0 => rng.random_range(0..=sleep_ms),
                    None => 0,
                };
                let is_poison = poison.is_some_and(|k| k > 0 && n % k == 0);
                let fails_first = !is_poison && fail_first.is_some_and(|k| k > 0 && n % k == 0);
                let mut call = soak_task(n, sleep, fails_first, is_poison).queue(&queue_name);
                if let Some(p) = priority {
                    call = call.priority(p);
                }
                if let Some(d) = delay_ms {
                    call = call.delay(Duration::from_millis(d));
                }
                call
            };
            if let Some(t) = retry_after_secs {
                if rollback.is_some() {
                    eprintln!("--retry-after-secs cannot be combined with --rollback");
                    std::process::exit(2);
                }
                // The --fail-first tasks are soak_retry_after calls, one enqueue each.
                let fails_first = |n: u64| {
                    !poison.is_some_and(|k| k > 0 && n % k == 0)
                        && fail_first.is_some_and(|k| k > 0 && n % k == 0)
                };
                for n in start..start + count {
                    if fails_first(n) {
                        let sleep = hold_ms.unwrap_or(0);
                        let mut call = soak_retry_after(n, sleep, t).queue(&queue_name);
                        if let Some(p) = priority {
                            call = call.priority(p);
                        }
                        call.enqueue(&queue).await?;
                    } else {
                        make(n, &mut rng).enqueue(&queue).await?;
                    }
                }
                let seconds = began.elapsed().as_secs_f64();
                println!(
                    "{}",
                    serde_json::json!({ "enqueued": count, "seconds": seconds })
                );
                return Ok(());
            }
            if let Some(rolled_back) = rollback {
                let Some(db) = AppDb::of(&queue) else {
                    unsupported("--rollback (enqueue in an application transaction)", &queue)
                };
                let table = db.orders_table().await?;
                for n in start..start + count {
                    db.order(&queue, &table, n, make(n, &mut rng), true).await?;
                }
                let end = start + count;
                for n in end..end + rolled_back {
                    db.order(&queue, &table, n, make(n, &mut rng), false)
                        .await?;
                }
                let seconds = began.elapsed().as_secs_f64();
                println!(
                    "{}",
                    serde_json::json!({ "enqueued": count, "rolled_back": rolled_back, "seconds": seconds })
                );
                return Ok(());
            }
            let calls = (start..start + count).map(|n| make(n, &mut rng));
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
            queues,
        } => {
            let file = OpenOptions::new().create(true).append(true).open(&record)?;
            RECORD
                .set(file)
                .map_err(|_| "the record file was already open")?;
            let lease = Duration::from_millis(lease_ms.unwrap_or(30_000));
            let options = WorkOptions {
                concurrency,
                lease,
                periodic_every_secs,
                exit_when_idle_ms,
                queues,
            };
            work(queue, options).await?;
        }
        Command::Stats { queue: name } => {
            let counts = match name {
                Some(name) => queue.storage().counts(Some(&name)).await?,
                None => queue.counts().await?,
            };
            println!("{}", serde_json::to_string(&counts)?);
        }
        Command::Garbage { count, queue: name } => {
            write_garbage(&cli.url, &name, garbage_payloads(count, &name)?).await?;
            println!("{}", serde_json::json!({ "written": count }));
        }
        Command::Orders => {
            let Some(db) = AppDb::of(&queue) else {
                unsupported("orders (an application table)", &queue)
            };
            let (rows, distinct) = db.orders().await?;
            println!(
                "{}",
                serde_json::json!({ "orders": rows, "distinct": distinct })
            );
        }
    }
    Ok(())
}

/// What `work` was asked to do.
struct WorkOptions {
    concurrency: usize,
    lease: Duration,
    periodic_every_secs: Option<u64>,
    exit_when_idle_ms: Option<u64>,
    queues: Vec<String>,
}

async fn work(queue: Queue, options: WorkOptions) -> Result<(), Box<dyn std::error::Error>> {
    let WorkOptions {
        concurrency,
        lease,
        periodic_every_secs,
        exit_when_idle_ms,
        queues,
    } = options;
    // One consumer of every queue, by equal weights.
    let mut builder = Consumer::builder(queue.clone())
        .queues(queues.iter().map(|q| (q.as_str(), 1)))
        .workers(concurrency)
        .lease(lease)
        .register(soak_task)
        .register(soak_retry_after);
    if let Some(secs) = periodic_every_secs {
        // Fires at every multiple of `secs` since the Unix epoch, once across all workers.
        let every = skiff::Schedule::every(Duration::from_secs(secs.max(1)))?;
        builder = builder.periodic_task(soak_cron, every);
    }
    let running = builder.build()?.spawn();
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
