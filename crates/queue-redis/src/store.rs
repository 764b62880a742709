//! [`RedisStorage`]: opening the store, its connection pools, and the [`Storage`] impl, which
//! delegates to the inherent methods in `hot.rs`, `wait.rs`, `control.rs`, `dead.rs`,
//! `admin.rs` and `plane.rs`.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_redis::{Pool, Runtime};
use queue_core::clock::to_millis;
use queue_core::storage::{
    AckStatus, CancelRequest, Completion, Counts, DeadTask, Delivery, EnqueueOutcome, Lease, Page,
    RateDecision, Revocation, RevocationCache, RevokeTarget, StoredResult, TaskRecord, TaskState,
};
use queue_core::{Clock, Envelope, Error, Heartbeat, Result, Storage, TaskId, WorkerStatus};
use redis::aio::ConnectionLike;
use redis::{
    AsyncConnectionConfig, ConnectionInfo, FromRedisValue, IntoConnectionInfo, RedisResult,
};

use crate::conn::{Conn, Connector};
use crate::lanes::{Lane, Lanes};
use crate::locate::LeaseQueues;
use crate::options::RedisOptions;
use crate::owned::OwnedPool;
use crate::redact::Redactor;
use crate::scripts::{self, Call, LuaScript, Scripts};
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};

/// The connections for blocking waits (see `wait.rs`).
pub(crate) enum BlockingPool {
    /// One server: a `deadpool-redis` pool.
    Single(Pool),
    /// A cluster: a cluster connection per wait.
    Cluster(Box<ClusterBlocking>),
}

/// Cluster connections for blocking waits: at most `permits` at a time, idle ones kept.
pub(crate) struct ClusterBlocking {
    pub(crate) client: redis::cluster::ClusterClient,
    pub(crate) idle: std::sync::Mutex<Vec<redis::cluster_async::ClusterConnection>>,
    pub(crate) permits: Arc<tokio::sync::Semaphore>,
}

/// Skiff's Redis store. See the [crate docs](crate) for the key layout and guarantees.
///
/// Cheap to share: wrap it in an `Arc` (the facade makes it an `Arc<dyn Storage>`).
///
/// # Examples
///
/// ```no_run
/// use std::sync::Arc;
/// use queue_core::{Queue, Storage};
/// use queue_redis::RedisStorage;
///
/// # #[allow(dead_code)]
/// # async fn demo() -> queue_core::Result<()> {
/// let store: Arc<dyn Storage> = Arc::new(RedisStorage::connect("redis://127.0.0.1:6379/0").await?);
/// let queue = Queue::new(store);
/// # let _ = queue; Ok(()) }
/// ```
pub struct RedisStorage {
    pub(crate) lanes: Lanes,
    pub(crate) blocking: BlockingPool,
    pub(crate) scripts: Scripts,
    /// Whether calls run as Redis Functions (else scripts); see the `scripts` module.
    pub(crate) functions: AtomicBool,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) prefix: String,
    pub(crate) redactor: Redactor,
    pub(crate) block_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) promote_limit: usize,
    /// "No revocation exists", as last read (see `control.rs`).
    pub(crate) revocations: RevocationCache,
    /// How far this process's clock may be from the server's (`RedisOptions::max_clock_skew`).
    pub(crate) max_clock_skew: Option<Duration>,
    /// The queue of each lease handed out and not completed (see `locate.rs`).
    pub(crate) leases: LeaseQueues,
    /// `RedisOptions::wait_replicas` and `wait_timeout` (ms).
    pub(crate) wait_replicas: u32,
    pub(crate) wait_timeout_ms: u64,
    /// Connections that single-task enqueues drive from their own task (see `owned.rs`); none
    /// on a cluster or with `wait_replicas`.
    pub(crate) owned: Option<OwnedPool>,
}

impl fmt::Debug for RedisStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStorage")
            .field("url", &self.redactor.url())
            .field("prefix", &self.prefix)
            .field("cluster", &self.lanes.is_cluster())
            .field("lanes", &self.lanes.len())
            .field("connected", &self.lanes.connected())
            .finish_non_exhaustive()
    }
}

/// What a clock too far from the server's is told.
/// Reads a Redis URL without connecting; a bad one is an [`Error::InvalidInput`] with the
/// password scrubbed.
pub(crate) fn connection_info(url: &str, redactor: &Redactor) -> Result<ConnectionInfo> {
    url.into_connection_info()
        .map_err(|e| redactor.invalid("invalid Redis URL", e))
}

fn skew_message(skew_ms: i128, bound: Duration) -> String {
    let side = if skew_ms > 0 { "ahead of" } else { "behind" };
    format!(
        "this process's clock is {:.1} s {side} the Redis server's (at most {:?} allowed): \
         leases, locks and etas are written with each client's clock, so a clock this far off \
         would expire other workers' leases or keep its own too long. Synchronise the clocks \
         (NTP), or set RedisOptions::max_clock_skew",
        skew_ms.unsigned_abs() as f64 / 1000.0,
        bound
    )
}

impl RedisStorage {
    /// Connects to the server at `url` with default [`RedisOptions`].
    ///
    /// `redis://[:password@]host[:port][/db]`, `redis://user:password@…`, or `rediss://…` for
    /// TLS (server certificates checked against the Web PKI roots);
    /// `redis+cluster://host:port[,host:port…]/` for a Redis Cluster (see the
    /// [crate docs](crate#redis-cluster)). Fails with
    /// [`Error::Storage`](queue_core::Error::Storage) if the server cannot be reached or refuses
    /// the credentials; no message ever contains the password.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn demo() -> queue_core::Result<()> {
    /// let store = queue_redis::RedisStorage::connect("redis://:secret@127.0.0.1:6379/0").await?;
    /// # let _ = store; Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<Self> {
        Self::open(RedisOptions::new(url)).await
    }

    /// Opens the store with `options`, and checks that the server answers.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use queue_redis::{RedisOptions, RedisStorage};
    ///
    /// # #[allow(dead_code)]
    /// # async fn demo() -> queue_core::Result<()> {
    /// let store = RedisStorage::open(
    ///     RedisOptions::new("redis://127.0.0.1:6379/2").key_prefix("billing").pool_size(8),
    /// )
    /// .await?;
    /// # let _ = store; Ok(()) }
    /// ```
    pub async fn open(mut options: RedisOptions) -> Result<Self> {
        options.take_url_options()?;
        options.validate()?;
        let redactor = Redactor::for_url(&options.url);
        if options.url.starts_with("rediss") {
            // Only one provider is compiled in; a second install attempt is harmless.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let mut owned = None;
        let (lanes, blocking) = match crate::conn::cluster_seeds(&options.url) {
            Some(seeds) => {
                for seed in &seeds {
                    connection_info(seed, &redactor)?;
                }
                let seeds = Self::discover(&options, &seeds, &redactor).await?;
                let cluster = |response| {
                    crate::conn::cluster_client(&seeds, options.connect_timeout, response)
                        .map_err(|e| redactor.error("configuring the Redis Cluster client", e))
                };
                let lanes = Lanes::new(
                    Connector::Cluster(cluster(Some(options.response_timeout))?),
                    options.pool_size,
                );
                let blocking = BlockingPool::Cluster(Box::new(ClusterBlocking {
                    client: cluster(None)?,
                    idle: std::sync::Mutex::new(Vec::new()),
                    permits: Arc::new(tokio::sync::Semaphore::new(
                        options.blocking_pool_size.max(1),
                    )),
                }));
                (lanes, blocking)
            }
            None => {
                let info = connection_info(&options.url, &redactor)?;
                let client = redis::Client::open(info.clone())
                    .map_err(|e| redactor.error("configuring the Redis client", e))?;
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(options.connect_timeout))
                    .set_response_timeout(Some(options.response_timeout));
                let lanes = Lanes::new(Connector::Single(client, config), options.pool_size);
                if options.wait_replicas == 0 {
                    owned = OwnedPool::new(
                        info.clone(),
                        options.connect_timeout,
                        options.response_timeout,
                    )
                    .map_err(|e| redactor.error("configuring the Redis client", e))?;
                }
                // Blocking commands wait as long as they were told to; the caller bounds them.
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(options.connect_timeout))
                    .set_response_timeout(None);
                let manager = deadpool_redis::Manager::new_with_config(info, config)
                    .map_err(|e| redactor.error("configuring the Redis client", e))?;
                let pool = Pool::builder(manager)
                    .max_size(options.blocking_pool_size)
                    .runtime(Runtime::Tokio1)
                    .wait_timeout(Some(options.response_timeout))
                    .create_timeout(Some(options.connect_timeout))
                    .recycle_timeout(Some(options.connect_timeout))
                    .build()
                    .map_err(|e| redactor.error("building the connection pool", e))?;
                (lanes, BlockingPool::Single(pool))
            }
        };
        let max_clock_skew = options.skew_bound();
        let store = Self {
            lanes,
            blocking,
            scripts: Scripts::new(),
            functions: AtomicBool::new(false),
            clock: options.clock,
            prefix: options.key_prefix,
            redactor,
            block_timeout: options.block_timeout,
            connect_timeout: options.connect_timeout,
            promote_limit: options.promote_limit,
            revocations: RevocationCache::default(),
            max_clock_skew,
            leases: LeaseQueues::default(),
            wait_replicas: options.wait_replicas,
            wait_timeout_ms: u64::try_from(options.wait_timeout.as_millis()).unwrap_or(u64::MAX),
            owned,
        };
        let mut conn = store.conn().await?;
        redis::cmd("PING")
            .query_async::<()>(&mut *conn)
            .await
            .map_err(|e| store.redactor.error("PING", e))?;
        if let Some(bound) = store.max_clock_skew {
            let skew = store.clock_skew().await?;
            if skew.unsigned_abs() > bound.as_millis() {
                return Err(Error::InvalidInput(skew_message(skew, bound)));
            }
        }
        store.check_layout().await?;
        if options.functions {
            // Servers before 7.0 (no FUNCTION command) and users without the right to load
            // functions run the same code as scripts instead.
            let loaded = scripts::load_library(&store.scripts.library)
                .query_async::<redis::Value>(&mut *conn)
                .await;
            let functions = match loaded {
                Ok(_) => true,
                Err(e) if scripts::already_loaded(&e) => true,
                Err(e) => {
                    tracing::debug!(error = %store.redactor.scrub(&e.to_string()), "Redis Functions unavailable; running scripts with EVALSHA");
                    false
                }
            };
            store.functions.store(functions, Ordering::Relaxed);
        }
        Ok(store)
    }

    /// The seeds of a cluster client: those of the URL and every node the cluster knows now
    /// (so the store can connect again while the node its URL names is down).
    async fn discover(
        options: &RedisOptions,
        seeds: &[String],
        redactor: &Redactor,
    ) -> Result<Vec<String>> {
        let probe = crate::conn::cluster_client(
            seeds,
            options.connect_timeout,
            Some(options.response_timeout),
        )
        .map_err(|e| redactor.error("configuring the Redis Cluster client", e))?;
        let mut conn = probe
            .get_async_connection()
            .await
            .map_err(|e| redactor.error("connecting to the Redis Cluster", e))?;
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut conn)
            .await
            .map_err(|e| redactor.error("CLUSTER NODES", e))?;
        let found = crate::conn::node_addresses(&nodes);
        Ok(crate::conn::cluster_seeds_with(&options.url, &found).unwrap_or_else(|| seeds.to_vec()))
    }

    /// How far this process's clock is ahead of the Redis server's, in milliseconds (negative:
    /// behind), from the server's `TIME` and this store's clock read around it.
    pub(crate) async fn clock_skew(&self) -> Result<i128> {
        let mut conn = self.conn().await?;
        let before = to_millis(self.clock.now());
        let (secs, micros): (i64, i64) = redis::cmd("TIME")
            .query_async(&mut *conn)
            .await
            .map_err(|e| self.redactor.error("TIME", e))?;
        let after = to_millis(self.clock.now());
        let server = i128::from(secs) * 1000 + i128::from(micros) / 1000;
        let local = (i128::from(before) + i128::from(after)) / 2;
        Ok(local - server)
    }

    /// Checks the clock against the server's again (each consumer's `purge_expired`, once a
    /// minute) and logs an error when it has drifted past the bound.
    pub(crate) async fn recheck_clock(&self) {
        let Some(bound) = self.max_clock_skew else {
            return;
        };
        match self.clock_skew().await {
            Ok(skew) if skew.unsigned_abs() > bound.as_millis() => {
                tracing::error!("{}", skew_message(skew, bound));
            }
            Ok(_) => {}
            Err(err) => tracing::debug!(error = %err, "could not read the Redis server's time"),
        }
    }

    /// Whether this store calls its Lua code as Redis Functions (`FCALL` of a library loaded
    /// once), rather than as scripts (`EVALSHA`): true on Redis 7.0 and later unless
    /// [`RedisOptions::functions`] turned it off.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn demo(store: &queue_redis::RedisStorage) {
    /// if !store.runs_functions() {
    ///     eprintln!("Redis before 7.0: each call runs the shared Lua helpers again");
    /// }
    /// # }
    /// ```
    pub fn runs_functions(&self) -> bool {
        self.functions.load(Ordering::Relaxed)
    }

    /// The key prefix of this store.
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// The current time of the store's clock, in milliseconds.
    pub(crate) fn now_ms(&self) -> i64 {
        to_millis(self.clock.now())
    }

    /// A shared multiplexed connection for ordinary commands (see the `lanes` module).
    pub(crate) async fn conn(&self) -> Result<Lane> {
        self.lanes
            .get()
            .await
            .map_err(|e| self.redactor.error("connecting", e))
    }

    /// Starts a script call routed by `key` (a key of the hash tag the call works in) with
    /// the arguments every script takes: prefix and now.
    pub(crate) fn call<'a>(&self, script: &'a LuaScript, key: &str, now: i64) -> Call<'a> {
        let mut call = Call::new(script, self.functions.load(Ordering::Relaxed), key);
        call.arg(self.prefix.as_str()).arg(now);
        call
    }

    /// Starts a script call on the keys of `queue` (see [`call`](Self::call)).
    pub(crate) fn qcall<'a>(&self, script: &'a LuaScript, queue: &str, now: i64) -> Call<'a> {
        self.call(script, &self.qkey(queue, "task"), now)
    }

    /// Starts a script call on the store-wide group `group` (see [`call`](Self::call)).
    pub(crate) fn wcall<'a>(&self, script: &'a LuaScript, group: &str, now: i64) -> Call<'a> {
        self.call(script, &self.wkey(group, group), now)
    }

    /// Key `suffix` of queue `queue`: `P:{queue}:suffix` (see `lua/common.lua`).
    pub(crate) fn qkey(&self, queue: &str, suffix: &str) -> String {
        format!("{}:{{{queue}}}:{suffix}", self.prefix)
    }

    /// Key `name` of the store-wide group `group`: `P:{~group}:name` (see `lua/common.lua`).
    pub(crate) fn wkey(&self, group: &str, name: &str) -> String {
        format!("{}:{{~{group}}}:{name}", self.prefix)
    }

    /// Runs a script call (then, if it may write, waits for the replicas:
    /// [`replicated`](Self::replicated)).
    pub(crate) async fn run<T: FromRedisValue>(&self, call: Call<'_>, what: &str) -> Result<T> {
        let mut conn = self.conn().await?;
        match self.invoke(&mut *conn, &call).await {
            Ok(v) => {
                if call.script.writes {
                    self.replicated(&mut conn.conn, &call.key, what).await?;
                }
                Ok(v)
            }
            Err(e) => {
                self.lanes.failed(conn.lane, &e).await;
                Err(self.redactor.error(what, e))
            }
        }
    }

    /// With [`RedisOptions::wait_replicas`] set: `WAIT n timeout` on `conn` after a change
    /// made on it to `key`'s slot, and an error unless `n` replicas acknowledged it in time.
    /// On a cluster it goes to the master of `key`'s slot, over the connection the change
    /// went on.
    pub(crate) async fn replicated(&self, conn: &mut Conn, key: &str, what: &str) -> Result<()> {
        if self.wait_replicas == 0 {
            return Ok(());
        }
        let mut wait = redis::cmd("WAIT");
        wait.arg(self.wait_replicas).arg(self.wait_timeout_ms);
        let acked = match conn {
            Conn::Single(c) => wait.query_async::<i64>(c).await,
            Conn::Cluster(c) => {
                let to = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                    Route::with_key(key, SlotAddr::Master),
                ));
                c.route_command(wait, to)
                    .await
                    .and_then(|v| redis::from_redis_value::<i64>(v).map_err(Into::into))
            }
        };
        let acked = acked.map_err(|e| self.redactor.error(what, e))?;
        if acked < i64::from(self.wait_replicas) {
            return Err(Error::storage_msg(
                "redis",
                format!(
                    "{what}: {acked} of {} replicas acknowledged the change within {} ms; it is \
                     applied on the master but a failover could lose it (repeating the call is \
                     safe)",
                    self.wait_replicas, self.wait_timeout_ms
                ),
            ));
        }
        Ok(())
    }

    /// Runs the command `first` and the script call `call` on one shared connection at once
    /// (pipelined: one round trip on a single server). Returns both replies. `first_writes`
    /// names a key of the slot `first` changes, if it changes one: with
    /// [`RedisOptions::wait_replicas`] on a cluster, where the two go to different masters,
    /// that master is waited for too (on a single server the one `WAIT` covers both).
    pub(crate) async fn run_with<F: FromRedisValue, T: FromRedisValue>(
        &self,
        first: &redis::Cmd,
        first_writes: Option<&str>,
        call: Call<'_>,
        what: &str,
    ) -> Result<(F, T)> {
        let lane = self.conn().await?;
        let (mut a, mut b) = (lane.conn.clone(), lane.conn.clone());
        let (x, y) = futures::join!(
            first.query_async::<F>(&mut a),
            self.invoke::<T>(&mut b, &call)
        );
        match (x, y) {
            (Ok(x), Ok(y)) => {
                if call.script.writes {
                    self.replicated(&mut b, &call.key, what).await?;
                }
                if let (Some(key), Conn::Cluster(_)) = (first_writes, &a) {
                    self.replicated(&mut a, key, what).await?;
                }
                Ok((x, y))
            }
            (Err(e), _) | (_, Err(e)) => {
                self.lanes.failed(lane.lane, &e).await;
                Err(self.redactor.error(what, e))
            }
        }
    }

    /// Runs a script call on `conn`; when the server has lost the script or library, loads it
    /// again and retries once.
    pub(crate) async fn invoke<T: FromRedisValue>(
        &self,
        conn: &mut impl ConnectionLike,
        call: &Call<'_>,
    ) -> RedisResult<T> {
        match call.cmd.query_async(conn).await {
            Err(e) => match call.reload(&e, &self.scripts.library) {
                Some(load) => {
                    match load.query_async::<redis::Value>(conn).await {
                        Err(e) if !scripts::already_loaded(&e) => return Err(e),
                        _ => {}
                    }
                    call.cmd.query_async(conn).await
                }
                None => Err(e),
            },
            ok => ok,
        }
    }

    /// Runs a plain command.
    pub(crate) async fn cmd<T: FromRedisValue>(&self, cmd: &redis::Cmd, what: &str) -> Result<T> {
        let mut conn = self.conn().await?;
        match cmd.query_async(&mut *conn).await {
            Ok(v) => Ok(v),
            Err(e) => {
                self.lanes.failed(conn.lane, &e).await;
                Err(self.redactor.error(what, e))
            }
        }
    }

    /// A key directly under the prefix, without a hash tag: `P:rest` (rate windows; the
    /// store-wide keys of the old layout).
    pub(crate) fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.prefix)
    }
}

#[async_trait]
impl Storage for RedisStorage {
    fn backend(&self) -> &'static str {
        "redis"
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    async fn enqueue(&self, batch: Vec<Envelope>) -> Result<Vec<EnqueueOutcome>> {
        self.enqueue_batch(batch).await
    }

    async fn fetch(&self, queue: &str, max: usize, lease: Duration) -> Result<Vec<Delivery>> {
        self.fetch_batch(queue, max, lease).await
    }

    async fn wait_for_work(&self, queue: &str, timeout: Duration) -> Result<()> {
        self.wait_work(queue, timeout).await
    }

    async fn complete(&self, batch: Vec<Completion>) -> Result<Vec<AckStatus>> {
        self.complete_batch(batch).await
    }

    async fn extend(&self, leases: &[Lease], lease: Duration) -> Result<Vec<AckStatus>> {
        self.extend_leases(leases, lease).await
    }

    async fn requeue_expired(&self, queue: &str, max: usize) -> Result<u64> {
        self.requeue_expired_leases(queue, max).await
    }

    async fn get_result(&self, id: TaskId) -> Result<Option<StoredResult>> {
        self.read_result(id).await
    }

    async fn wait_result(&self, id: TaskId, timeout: Duration) -> Result<Option<StoredResult>> {
        self.wait_for_result(id, timeout).await
    }

    async fn delete_result(&self, id: TaskId) -> Result<bool> {
        self.remove_result(id).await
    }

    async fn purge_expired(&self, max: usize) -> Result<u64> {
        self.recheck_clock().await;
        self.purge_expired_entries(max).await
    }

    async fn reschedule(&self, id: TaskId, eta: DateTime<Utc>) -> Result<bool> {
        self.reschedule_task(id, eta).await
    }

    async fn revoke(&self, revocation: Revocation) -> Result<()> {
        self.store_revocation(revocation).await
    }

    async fn restore(&self, target: &RevokeTarget) -> Result<bool> {
        self.remove_revocation(target).await
    }

    async fn check_revoked(&self, tasks: &[(TaskId, &str)]) -> Result<Vec<bool>> {
        self.revoked(tasks).await
    }

    async fn acquire_lock(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
        self.lock_acquire(name, owner, ttl).await
    }

    async fn release_lock(&self, name: &str, owner: &str) -> Result<bool> {
        self.lock_release(name, owner).await
    }

    async fn flush_locks(&self) -> Result<u64> {
        self.lock_flush().await
    }

    async fn rate_limit(&self, key: &str, limit: u32, window: Duration) -> Result<RateDecision> {
        self.rate_hit(key, limit, window).await
    }

    async fn list_dead(&self, queue: Option<&str>, page: Page) -> Result<Vec<DeadTask>> {
        self.dead_list(queue, page).await
    }

    async fn get_dead(&self, id: TaskId) -> Result<Option<DeadTask>> {
        self.dead_get(id).await
    }

    async fn requeue_dead(&self, ids: &[TaskId]) -> Result<u64> {
        self.dead_requeue(ids).await
    }

    async fn requeue_all_dead(&self, queue: Option<&str>) -> Result<u64> {
        self.dead_requeue_all(queue).await
    }

    async fn purge_dead(&self, queue: Option<&str>) -> Result<u64> {
        self.dead_purge(queue).await
    }

    async fn discard_dead(&self, ids: &[TaskId]) -> Result<u64> {
        self.dead_discard(ids).await
    }

    async fn counts(&self, queue: Option<&str>) -> Result<Counts> {
        self.count_tasks(queue).await
    }

    async fn list(
        &self,
        state: TaskState,
        queue: Option<&str>,
        page: Page,
    ) -> Result<Vec<TaskRecord>> {
        self.list_tasks(state, queue, page).await
    }

    async fn get_task(&self, id: TaskId) -> Result<Option<TaskRecord>> {
        self.task(id).await
    }

    async fn queues(&self) -> Result<Vec<String>> {
        self.queue_names().await
    }

    async fn flush(&self) -> Result<()> {
        self.flush_all().await
    }

    async fn set_paused(&self, queue: &str, paused: bool) -> Result<bool> {
        self.pause(queue, paused).await
    }

    async fn paused_queues(&self) -> Result<Vec<String>> {
        self.paused_list().await
    }

    async fn purge_queue(&self, queue: &str) -> Result<u64> {
        self.purge_pending(queue).await
    }

    async fn request_cancel(&self, id: TaskId, ttl: Duration) -> Result<CancelRequest> {
        self.cancel_request(id, ttl).await
    }

    async fn heartbeat(&self, beat: &Heartbeat) -> Result<Vec<TaskId>> {
        self.beat(beat).await
    }

    async fn remove_worker(&self, worker_id: &str) -> Result<bool> {
        self.worker_remove(worker_id).await
    }

    async fn workers(&self) -> Result<Vec<WorkerStatus>> {
        self.live_workers().await
    }

    async fn get_progress(&self, id: TaskId) -> Result<Option<Vec<u8>>> {
        self.progress(id).await
    }
}
