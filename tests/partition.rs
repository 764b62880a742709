//! Network partitions between a worker and its store: the link is cut for longer than a lease
//! (three leases) while the worker runs or while it waits idle, then restored. Nothing may be
//! lost or dead-lettered, tasks may run twice only if the worker held them when the link went
//! down, and the same worker (no restart, no help) must finish the work once the link is back.
//!
//! The link is a TCP proxy the test controls (`support::proxy`), not network namespaces with
//! veth pairs: namespaces and `tc` rules need root and leave state behind on the machine when
//! a run dies, whereas the proxy runs as part of an ordinary test command. It plays both kinds
//! of partition: one that TCP rides out (bytes held, then delivered: `Lost::Nothing`), and one
//! after which the connections open during it are silently dead, neither closed nor reset
//! (`Lost::Connections`: a NAT or firewall that forgot them), which a client notices only by
//! a timeout of its own. What the proxy cannot show is a kernel's TCP keepalive or
//! `TCP_USER_TIMEOUT`: its own socket answers for the dead link.
//!
//! Redis and PostgreSQL only: the SQLite store is a local file, with no network link to cut.
//!
//! Each test starts the worker in this process with its store URL pointed at the proxy, and
//! enqueues and inspects through a second store that reaches the server directly. Each
//! execution is recorded here, in memory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use skiff::prelude::*;
use skiff::Storage;
use support::proxy::{Lost, Proxy};
use tokio::time::Instant;

/// The workers' lease.
const LEASE: Duration = Duration::from_secs(2);
/// How long the link stays cut: three leases, so every lease held when it went down runs out.
const STALL: Duration = Duration::from_secs(6);
const WORKERS: usize = 4;
const PREFETCH: usize = 2;
/// Outcomes written per call (see `in_flight` in `busy`).
const ACK_BATCH: usize = 1;
/// Tasks of the busy runs, each holding its worker for `HOLD_MS`.
const TASKS: u64 = 48;
const HOLD_MS: u64 = 250;
/// How long the test waits for anything it waits for (generous: the machine may be loaded).
const PATIENCE: Duration = Duration::from_secs(90);
/// The idle worker's poll interval: far longer than the test waits, so only a wake-up (or the
/// store's own bound on one wait) can make it see new work.
const IDLE_POLL: Duration = Duration::from_secs(600);

/// The PostgreSQL stores' `query_timeout`.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// One execution: the task's number, and when it finished.
type Execution = (u64, Instant);

/// Every execution, by run.
static RUNS: LazyLock<Mutex<HashMap<String, Vec<Execution>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn executions(run: &str) -> Vec<Execution> {
    RUNS.lock().unwrap().get(run).cloned().unwrap_or_default()
}

fn distinct_done(run: &str) -> usize {
    let mut seen: Vec<u64> = executions(run).into_iter().map(|(n, _)| n).collect();
    seen.sort_unstable();
    seen.dedup();
    seen.len()
}

#[skiff::task]
async fn partition_task(run: String, n: u64, hold_ms: u64) -> Result<u64, TaskError> {
    tokio::time::sleep(Duration::from_millis(hold_ms)).await;
    RUNS.lock()
        .unwrap()
        .entry(run)
        .or_default()
        .push((n, Instant::now()));
    Ok(n)
}

/// A store: the worker's (through the proxy) or the test's (direct).
type Open = Box<dyn Fn(u16) -> futures::future::BoxFuture<'static, Arc<dyn Storage>> + Send>;

/// How a test reaches one kind of store.
struct Store {
    name: &'static str,
    /// The server's address, for the proxy.
    target: SocketAddr,
    /// Opens the store through `port` (the proxy's, or the server's own).
    open: Open,
    /// The PostgreSQL store's schema.
    schema: Option<String>,
    /// Kept alive for the test.
    _server: Option<queue_redis::testing::RedisServer>,
}

fn redis() -> Store {
    let server = queue_redis::testing::RedisServer::start();
    let port = server.port();
    let prefix = queue_redis::testing::unique_prefix("partition");
    Store {
        name: "redis",
        target: SocketAddr::from(([127, 0, 0, 1], port)),
        open: Box::new(move |port| {
            let prefix = prefix.clone();
            Box::pin(async move {
                let options = queue_redis::RedisOptions::new(format!("redis://127.0.0.1:{port}/0"))
                    .key_prefix(prefix);
                let store = queue_redis::RedisStorage::open(options)
                    .await
                    .expect("open the Redis store");
                Arc::new(store) as Arc<dyn Storage>
            })
        }),
        schema: None,
        _server: Some(server),
    }
}

fn postgres() -> Store {
    let url = queue_postgres::testing::shared_url();
    let options = queue_postgres::PostgresOptions::new(&url).expect("the test server's URL");
    let connect = options.connect_options();
    let host = connect.get_host().to_owned();
    let port = connect.get_port();
    let schema = queue_postgres::testing::unique_schema("partition");
    let target = format!("{host}:{port}")
        .parse::<SocketAddr>()
        .expect("the PostgreSQL test server listens on an IP address");
    Store {
        name: "postgres",
        target,
        schema: Some(schema.clone()),
        open: Box::new(move |port| {
            let url = url.clone();
            let schema = schema.clone();
            Box::pin(async move {
                let options = queue_postgres::PostgresOptions::new(&url)
                    .expect("the test server's URL")
                    .schema(&schema)
                    .expect("a schema name")
                    .map_connect(|c| c.host("127.0.0.1").port(port))
                    // Below the default (30 s) to keep the test short: a statement whose
                    // connection died fails after this, and the worker tries again.
                    .query_timeout(QUERY_TIMEOUT);
                let store = queue_postgres::PostgresStorage::open(options)
                    .await
                    .expect("open the PostgreSQL store");
                Arc::new(store) as Arc<dyn Storage>
            })
        }),
        _server: None,
    }
}

/// The direct store, the proxy, and a worker on a store through it.
struct Rig {
    direct: Queue,
    proxy: Proxy,
    worker: skiff::RunningConsumer,
}

async fn rig(store: &Store, poll: Duration) -> Rig {
    // What the worker logs, with RUST_LOG set (e.g. RUST_LOG=queue_postgres=debug).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let direct = Queue::new((store.open)(store.target.port()).await);
    let proxy = Proxy::start(store.target).await;
    let through = Queue::new((store.open)(proxy.port()).await);
    let worker = Consumer::builder(through)
        .register(partition_task)
        .workers(WORKERS)
        .prefetch(PREFETCH)
        .ack_batch(ACK_BATCH, Duration::from_millis(5))
        .lease(LEASE)
        .poll_interval(poll)
        .periodic(false)
        .build()
        .expect("build the worker")
        .spawn();
    Rig {
        direct,
        proxy,
        worker,
    }
}

/// Waits until `done` holds, checking every 20 ms; panics with `what` after [`PATIENCE`].
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the store holds nothing ready, scheduled or leased; returns its counts.
async fn settled(queue: &Queue) -> skiff::Counts {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let counts = queue.storage().counts(None).await.expect("counts");
        if counts.ready == 0 && counts.scheduled == 0 && counts.leased == 0 {
            return counts;
        }
        assert!(
            Instant::now() < deadline,
            "the store never settled: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The busy run: `TASKS` tasks, the link cut for `STALL` once a quarter of them are done.
async fn busy(store: Store, lost: Lost) {
    let run = format!("{}-busy-{lost:?}", store.name);
    let rig = rig(&store, Duration::from_secs(1)).await;
    rig.direct
        .enqueue_many((0..TASKS).map(|n| partition_task(run.clone(), n, HOLD_MS)))
        .await
        .expect("enqueue");
    wait_until("a quarter of the tasks done before the stall", || {
        distinct_done(&run) as u64 >= TASKS / 4
    })
    .await;

    let stalled = Instant::now();
    rig.proxy.stall(lost);
    tokio::time::sleep(STALL).await;
    let resumed = Instant::now();
    rig.proxy.resume();
    let done_at_resume = distinct_done(&run);

    wait_until("every task done after the link came back", || {
        distinct_done(&run) as u64 == TASKS
    })
    .await;
    assert!(
        !rig.worker.is_finished(),
        "the worker stopped on its own during the partition"
    );
    let counts = settled(&rig.direct).await;

    // The most tasks the worker can hold when the link goes down: running or leased ahead
    // (WORKERS + PREFETCH, its lease permits), or run with their outcome not yet written. Its
    // fetcher leases more only while it holds fewer than WORKERS + PREFETCH + 4 * ACK_BATCH
    // in all, and then at most WORKERS + PREFETCH more. Each task held can run once more
    // (its lease runs out during the partition), none twice more.
    let in_flight = 2 * (WORKERS + PREFETCH) + 4 * ACK_BATCH - 1;
    let all = executions(&run);
    let mut counts_by_task: BTreeMap<u64, usize> = BTreeMap::new();
    for (n, _) in &all {
        *counts_by_task.entry(*n).or_default() += 1;
    }
    let duplicates = all.len() - counts_by_task.len();
    let during = all
        .iter()
        .filter(|(_, at)| *at >= stalled && *at < resumed)
        .count();
    let recovered = all
        .iter()
        .filter(|(_, at)| *at >= resumed)
        .map(|(_, at)| *at - resumed)
        .min();
    eprintln!(
        "{run}: {TASKS} tasks, {WORKERS} workers, prefetch {PREFETCH}, ack batch {ACK_BATCH} \
         (in flight at most {in_flight}), {done_at_resume} done at the resume, {during} finished during the stall, \
         {duplicates} duplicate runs, first task done {recovered:?} after the resume, \
         proxy connections: {}",
        rig.proxy.accepted()
    );

    assert!(
        (done_at_resume as u64) < TASKS,
        "the stall should interrupt the run"
    );
    assert!(
        during <= in_flight,
        "{during} tasks finished while the link was down: more than the worker held"
    );
    assert_eq!(counts.dead, 0, "nothing dead-lettered: {counts:?}");
    assert!(
        duplicates <= in_flight,
        "{duplicates} duplicate runs: more than the {in_flight} tasks in flight at the stall"
    );
    rig.worker
        .shutdown(Duration::from_secs(30))
        .await
        .expect("the worker shuts down cleanly");
}

/// The idle run: the worker waits for work when the link goes down; one task is enqueued
/// during the partition, one after. Both must run, with no poll to fall back on.
async fn idle(store: Store) {
    let run = format!("{}-idle", store.name);
    let rig = rig(&store, IDLE_POLL).await;
    rig.direct
        .enqueue_many([partition_task(run.clone(), 0, 0)])
        .await
        .expect("enqueue");
    wait_until("the first task done", || distinct_done(&run) == 1).await;
    // Past the first task's lease (a wait may have slept until its expiry, when the store
    // said it held a task): the worker is idle now, with no timer, waiting for a wake-up.
    tokio::time::sleep(LEASE + Duration::from_secs(1)).await;

    rig.proxy.stall(Lost::Connections);
    tokio::time::sleep(Duration::from_secs(1)).await;
    rig.direct
        .enqueue_many([partition_task(run.clone(), 1, 0)])
        .await
        .expect("enqueue during the partition");
    tokio::time::sleep(STALL - Duration::from_secs(1)).await;
    assert_eq!(
        distinct_done(&run),
        1,
        "the worker ran a task while it was cut off"
    );
    let resumed = Instant::now();
    rig.proxy.resume();
    rig.direct
        .enqueue_many([partition_task(run.clone(), 2, 0)])
        .await
        .expect("enqueue after the partition");

    wait_until(
        "the tasks enqueued during and after the partition done",
        || distinct_done(&run) == 3,
    )
    .await;
    eprintln!(
        "{run}: both tasks done {:?} after the resume (poll interval {IDLE_POLL:?})",
        resumed.elapsed()
    );
    assert!(!rig.worker.is_finished());
    let counts = settled(&rig.direct).await;
    assert_eq!(counts.dead, 0, "{counts:?}");
    rig.worker
        .shutdown(Duration::from_secs(30))
        .await
        .expect("the worker shuts down cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_worker_rides_out_a_partition_tcp_survives() {
    busy(redis(), Lost::Nothing).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_worker_recovers_from_a_partition_that_kills_its_connections() {
    busy(redis(), Lost::Connections).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_idle_worker_wakes_for_work_after_a_partition() {
    idle(redis()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_worker_rides_out_a_partition_tcp_survives() {
    busy(postgres(), Lost::Nothing).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_worker_recovers_from_a_partition_that_kills_its_connections() {
    busy(postgres(), Lost::Connections).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_idle_worker_wakes_for_work_after_a_partition() {
    idle(postgres()).await;
}

/// PostgreSQL: the link dies while statements of the worker are in flight (sent, not yet
/// answered). The test holds the tasks table locked, so the worker's next statements on it
/// (its fetcher's, its lease keeper's) wait at the server; it cuts the link, losing the
/// connections, and lets the statements go. Their answers never come: each must fail after the
/// query timeout for the worker to go on with the tasks enqueued meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_worker_recovers_when_the_link_dies_under_its_statements() {
    let store = postgres();
    let schema = store.schema.clone().expect("a schema");
    let run = "postgres-in-flight".to_owned();
    let rig = rig(&store, Duration::from_secs(1)).await;
    let direct = rig
        .direct
        .storage()
        .as_any()
        .and_then(|any| any.downcast_ref::<queue_postgres::PostgresStorage>())
        .expect("a PostgreSQL store");
    rig.direct
        .enqueue_many((0..4).map(|n| partition_task(run.clone(), n, 0)))
        .await
        .expect("enqueue");
    wait_until("the first tasks done", || distinct_done(&run) == 4).await;
    // Their outcomes written: the worker holds nothing, it only looks for work.
    settled(&rig.direct).await;

    let mut lock = direct.pool().begin().await.expect("begin");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "LOCK TABLE {schema}.tasks IN ACCESS EXCLUSIVE MODE"
    )))
    .execute(&mut *lock)
    .await
    .expect("lock the tasks table");
    // Three statements waiting for the lock: the fetcher's (it looks for work every second),
    // the lease keeper's (it requeues expired leases every lease / 2) and the heartbeat's
    // (every second).
    let waiting = format!(
        "SELECT count(*) FROM pg_locks WHERE relation = '{schema}.tasks'::regclass AND NOT granted"
    );
    let deadline = Instant::now() + PATIENCE;
    loop {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(waiting.as_str()))
            .fetch_one(direct.pool())
            .await
            .expect("read pg_locks");
        if n >= 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the worker's statements never waited for the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let blocked: Vec<String> = sqlx::query_scalar(
        "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 60) FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
    )
    .fetch_all(direct.pool())
    .await
    .expect("read pg_stat_activity");
    eprintln!("{run}: statements waiting when the link goes down: {blocked:?}");
    rig.proxy.stall(Lost::Connections);
    lock.rollback().await.expect("release the lock");
    rig.direct
        .enqueue_many((4..12).map(|n| partition_task(run.clone(), n, 0)))
        .await
        .expect("enqueue during the partition");
    tokio::time::sleep(STALL).await;
    let resumed = Instant::now();
    rig.proxy.resume();

    wait_until("the tasks enqueued during the partition done", || {
        distinct_done(&run) == 12
    })
    .await;
    eprintln!(
        "{run}: the tasks enqueued during the partition done {:?} after the resume",
        resumed.elapsed()
    );
    assert!(!rig.worker.is_finished());
    let counts = settled(&rig.direct).await;
    assert_eq!(counts.dead, 0, "{counts:?}");
    rig.worker
        .shutdown(Duration::from_secs(30))
        .await
        .expect("the worker shuts down cleanly");
}

/// Redis: after a partition that killed the connections, a caller whose calls follow one
/// another (as a worker's fetcher's do) loses one call, not one per connection: the call that
/// times out on a dead connection makes every connection of the store reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_reconnects_every_connection_after_one_died() {
    const LANES: usize = 4;
    let server = queue_redis::testing::RedisServer::start();
    let proxy = Proxy::start(SocketAddr::from(([127, 0, 0, 1], server.port()))).await;
    let options = queue_redis::RedisOptions::new(format!("redis://127.0.0.1:{}/0", proxy.port()))
        .key_prefix(queue_redis::testing::unique_prefix("lanes"))
        .pool_size(LANES)
        .response_timeout(Duration::from_secs(1));
    let store = queue_redis::RedisStorage::open(options)
        .await
        .expect("open the Redis store");
    // Calls go round-robin over the connections: every one is open and used now.
    for _ in 0..2 * LANES {
        store
            .paused_queues()
            .await
            .expect("a call before the partition");
    }
    proxy.stall(Lost::Connections);
    proxy.resume();
    let mut failures = 0;
    loop {
        match store.paused_queues().await {
            Ok(_) => break,
            Err(err) => {
                assert!(err.is_transient(), "{err}");
                failures += 1;
                assert!(failures <= 2 * LANES, "the store never got through: {err}");
            }
        }
    }
    eprintln!("redis-lanes: {failures} call(s) failed after the partition, of {LANES} connections");
    assert_eq!(
        failures, 1,
        "calls that failed after the partition, one after another, with {LANES} connections"
    );
}

/// PostgreSQL: after a partition that killed the connections, a caller whose calls follow one
/// another loses one call, not one per connection left idle in the pool: once a call has timed
/// out, the connections idle since before it are replaced instead of being pinged (a ping
/// that would never be answered either).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_replaces_idle_connections_after_one_died() {
    const CONNECTIONS: usize = 4;
    let store = postgres();
    let proxy = Proxy::start(store.target).await;
    let through = (store.open)(proxy.port()).await;
    let pg = through
        .as_any()
        .and_then(|any| any.downcast_ref::<queue_postgres::PostgresStorage>())
        .expect("a PostgreSQL store");
    // CONNECTIONS connections open at once, then idle in the pool.
    let mut held = Vec::new();
    for _ in 0..CONNECTIONS {
        held.push(pg.pool().acquire().await.expect("a connection"));
    }
    drop(held);
    wait_until("the connections back in the pool", || {
        pg.pool().num_idle() >= CONNECTIONS
    })
    .await;
    proxy.stall(Lost::Connections);
    proxy.resume();
    let mut failures = 0;
    loop {
        match through.paused_queues().await {
            Ok(_) => break,
            Err(err) => {
                assert!(err.is_transient(), "{err}");
                failures += 1;
                assert!(
                    failures <= 2 * CONNECTIONS,
                    "the store never got through: {err}"
                );
            }
        }
    }
    eprintln!(
        "postgres-idle-connections: {failures} call(s) failed after the partition, of {} idle connections",
        CONNECTIONS
    );
    assert_eq!(
        failures, 1,
        "calls that failed after the partition, one after another, with {CONNECTIONS} idle connections"
    );
}
