//! Skiff's Redis store: [`RedisStorage`], the [`Storage`](queue_core::Storage) contract on
//! Redis (≥ 6.2; its Lua code runs as Functions on 7.0 and later): a few shared multiplexed
//! connections for commands and scripts, and a `deadpool-redis` pool for blocking waits.
//!
//! ```no_run
//! use std::sync::Arc;
//! use queue_core::{Queue, Storage};
//! use queue_redis::{RedisOptions, RedisStorage};
//!
//! # #[allow(dead_code)]
//! # async fn demo() -> queue_core::Result<()> {
//! // The simple way: defaults, key prefix "skiff".
//! let _simple = RedisStorage::connect("redis://127.0.0.1:6379/0").await?;
//! // Or with options.
//! let store = RedisStorage::open(
//!     RedisOptions::new("rediss://:secret@redis.internal:6380/0").key_prefix("billing"),
//! )
//! .await?;
//! let queue = Queue::new(Arc::new(store) as Arc<dyn Storage>);
//! # let _ = queue; Ok(()) }
//! ```
//!
//! # How it works
//!
//! * **One script per state change.** Enqueue, fetch, complete, extend, requeue, reschedule,
//!   revocation checks, locks, rate limits and the dead-letter operations are each one Lua
//!   script (`src/lua/*.lua`). On Redis 7.0 and later they are functions of one library,
//!   loaded once per server (`FUNCTION LOAD`) and called with `FCALL`; on older servers, or
//!   with [`RedisOptions::functions`]`(false)`, each call is `EVALSHA`, loaded again on
//!   `NOSCRIPT` (see the `scripts` module). A batch is one call per queue, so a fetch of 100
//!   tasks or a completion of 100 outcomes of one queue is one round trip, and an `enqueue`
//!   of more than 256 envelopes is calls of 256 pipelined on one connection.
//! * **No command per task.** A pending task is a few fields of its queue's task hash, not a
//!   key of its own, and a result is a field of the results hash; so a script reads and writes
//!   a whole batch with one variadic `HMGET` / `HSET` / `HDEL` / `ZADD` per key. (One key per
//!   task cost a `redis.call` per task and field: Lua's call overhead, not Redis's work, was
//!   most of the server's time.)
//! * **Key layout** (layout 2; the full map is in `src/lua/common.lua`). Every script call
//!   works on the keys of one hash tag, named in its `KEYS[1]` (a Redis Cluster routes the
//!   call by it, and the scripts refuse to build a key of another tag, on a single node too):
//!   - Everything one task's lifecycle writes lives under its queue's tag `{Q}`:
//!     `skiff:{Q}:ready` (ZSET, score = `seq − priority · 2³⁷`, exact in a double, so higher
//!     priority first and FIFO within a priority, and short for the default priority 0),
//!     `skiff:{Q}:scheduled` (ZSET by run time), `skiff:{Q}:leased` (ZSET by lease expiry,
//!     member `id|token`), `skiff:{Q}:task` (hash: per pending task, under its id, its ready
//!     score, run time, delivery limit, name and envelope bytes), `skiff:{Q}:dlv`,
//!     `skiff:{Q}:att` and `skiff:{Q}:uk` (deliveries that ended without an outcome, attempts
//!     and unique keys of the tasks that have any), `skiff:{Q}:unique` (unique key → id),
//!     `skiff:{Q}:results` (+ `result-exp`, `result-waiters`, `result-wake:<id>`),
//!     `skiff:{Q}:dead` (+ `dead-seq`, one hash `dead:<id>` per dead letter),
//!     `skiff:{Q}:progress`, `skiff:{Q}:paused`, `skiff:{Q}:outbox`, `skiff:{Q}:seq`,
//!     `skiff:{Q}:wake` and `skiff:{Q}:registered` (the registration mark, below).
//!   - Store-wide data, each group under a tag of its own and never in a call with a queue's
//!     keys: `skiff:{~queues}:queues` (the registry of queues) and `:layout`;
//!     `skiff:{~revoked}:revoked` and `:revoked-exp`; `skiff:{~locks}:lock:<name>` and
//!     `:lock-exp`; `skiff:{~workers}:workers`, `:worker-exp` and `:cancel`; and one key
//!     (slot) per rate window, `skiff:rate:<key>`.
//!   - **The registry of queues** is written once per queue and 10 minutes, not by every
//!     enqueue: an enqueue that finds its queue's registration mark (`skiff:{Q}:registered`,
//!     a key with a 10-minute TTL) missing enters the queue in the registry after its script
//!     call, then sets the mark. So a registry lost while marks remain (a failover that lost
//!     its last writes, a `DEL` by hand) lists each queue that is still used again within 10
//!     minutes, at the queue's next enqueue after its mark expired; until then lookups by id
//!     and listings over every queue miss that queue. A task enqueued by a call that has not
//!     returned yet may be in its queue a moment before the queue is in the registry.
//!   - **Ids and unique keys are per queue**: a fixed id or unique key is a duplicate of a
//!     pending task of the same queue; the same in two queues makes two tasks.
//!   - **Lookups by id alone** (`get_result`, `wait_result`, `get_task`, `get_dead`,
//!     `reschedule`, `request_cancel`, …) find the task's queue without a store-wide index:
//!     leases this client handed out are remembered, anything else is asked of every queue of
//!     the registry at once (see `locate.rs`). Their cost grows with the number of queues.
//!     `wait_result` for an id that is pending in no queue yet looks again every 100 ms.
//!   - **Dead letters** are per queue; listing every queue merges the queues' oldest by time.
//!   - **Follow-ups for another queue** (a next stage on another queue) wait in the completed
//!     task's outbox, written atomically with the outcome, and are moved right after the
//!     completion (or by `purge_expired` after a crash); see `hot.rs`.
//!   - **Older stores**: a store written by Skiff before this layout (layout 1, store-wide
//!     `skiff:ids`, `skiff:results`, …) is refused at open with what to do, never read as an
//!     empty one; see `layout.rs`.
//! * **Bounded work.** A fetch moves at most [`RedisOptions::promote_limit`] due scheduled tasks
//!   and expired leases to ready, then pops at most `max` (no `unpack` of unbounded tables);
//!   a backlog of any size is drained over successive fetches.
//! * **Revocation checks** (once per fetched batch) cost nothing while no revocation exists:
//!   each fetch asks whether any does (one `EXISTS`, sent with the fetch's call), so a
//!   revocation written by any process before a batch is fetched applies to it.
//! * **Time** comes from the store's [`Clock`](queue_core::Clock) and is passed to every script:
//!   lease expiry, eta, result, lock and revocation expiry, rate windows. Locks and rate windows
//!   also get a real `PEXPIRE` a minute longer than their TTL, for cleanup only; expired results
//!   are removed by [`Storage::purge_expired`](queue_core::Storage::purge_expired), which every
//!   consumer calls once a minute. So every client's clock must agree with the others': `open`
//!   compares this process's clock with the server's `TIME` and refuses one more than
//!   [`DEFAULT_MAX_CLOCK_SKEW`] (5 s) off ([`RedisOptions::max_clock_skew`]); `purge_expired`
//!   checks again and logs an error on drift. Within the bound, a skew of `d` shortens or
//!   lengthens what another client sees of a lease or lock by `d`.
//! * **Control plane** (see `plane.rs`): a pause is checked inside the fetch script, so no fetch
//!   that starts after it hands out a task of the queue, expired leases included; a resume wakes
//!   the queue's idle consumers like an enqueue. A heartbeat is one script call (status, fenced
//!   progress, cancel requests of its running tasks); a purge of a queue goes in atomic calls of
//!   1,000 tasks; expired heartbeats and cancel requests are removed 100 per call at most.
//! * **Idle waits block** on Redis (`BLPOP` on a per-queue wake-up list; `BLMOVE` on a per-result
//!   list) on connections of their own; see `wait.rs` for the details.
//! * **Connections.** Ordinary commands and scripts share a few multiplexed connections
//!   ([`RedisOptions::pool_size`], round-robin): concurrent calls pipeline on them, and no call
//!   pays an extra `PING`. Blocking waits use a pool of their own. An `enqueue` of one task
//!   (a producer awaiting each call) runs on one of at most 4 owned connections instead, which
//!   the calling task drives itself, so the call does not cross to a connection's driver task
//!   and back (see `owned.rs`; named `skiff-enqueue` in `CLIENT LIST`). A call cancelled
//!   midway closes its owned connection, a broken one is replaced, and when all 4 are busy a
//!   call takes a shared connection. Not used on a Redis Cluster or with
//!   [`RedisOptions::wait_replicas`], where single enqueues take the shared connections.
//! * **Connection loss** surfaces as [`Error::Storage`](queue_core::Error::Storage); a call
//!   waits at most [`RedisOptions::response_timeout`] (10 s) for its answer, blocking waits their
//!   own length plus 2 s. When a shared connection fails with an I/O error, a drop or a timeout,
//!   every shared connection is replaced by the next call on it (what broke one, a restart or a
//!   network partition, has most likely broken the others), so the store reconnects once the
//!   server is back. A task leased when the connection broke is either completed or, when its
//!   lease runs out, delivered again: never lost.
//! * **Secrets.** No error message, log line or `Debug` output contains the URL's password
//!   (see [`redact_url`]).
//!
//! # Redis Cluster
//!
//! `redis+cluster://[user:password@]host:port[,host:port…]/` (or `rediss+cluster://`) opens
//! the store on a Redis Cluster through the `redis` crate's async cluster client: the nodes
//! named are seeds, the store also seeds its client with every node the cluster has when it
//! opens, and the client follows `MOVED` / `ASK` and refreshes its slot map after a failover.
//!
//! ```no_run
//! # #[allow(dead_code)]
//! # async fn demo() -> queue_core::Result<()> {
//! let store = queue_redis::RedisStorage::connect("redis+cluster://10.0.0.5:7000/").await?;
//! # let _ = store; Ok(()) }
//! ```
//!
//! * The key layout above keeps every script call in one slot, so a cluster accepts them;
//!   single-node Redis uses the same layout. A queue is the unit of sharding: a cluster
//!   spreads queues over its masters, one queue's tasks live on one master.
//! * A call whose queues live on several masters (an `enqueue` batch over queues, a
//!   `complete` batch, a lookup by id in every queue) is a call per queue, sent at once.
//! * Idle waits block on the master that owns their queue, each on a cluster connection of
//!   its own, so one worker waits on queues of different masters at once (`wait.rs`).
//! * During a failover calls fail with [`Error::Storage`](queue_core::Error::Storage) (the
//!   client retries a few times first); they work again once a replica has taken over.
//!
//! # Replication
//!
//! Redis replicates asynchronously: after a failover (Cluster, Sentinel or by hand), what the
//! old master acknowledged but had not sent to its replica is gone — a task enqueued, or a
//! completion (that task then runs again). `?wait=N` in the URL
//! ([`RedisOptions::wait_replicas`]) follows every call that changes the store with
//! `WAIT N timeout` on the same connection (on a cluster, to the master of the call's slot),
//! and reports success only once `N` replicas have the change; otherwise the call fails
//! (the change stays applied on the master, and repeating the call is safe). The same option
//! works on one master with replicas. `redis+sentinel://` is not supported.

//! # Differences from the memory store
//!
//! None in the conformance suite's contract. Ids and unique keys are per queue (see above). Listing several queues at once (`queue: None`) orders ready tasks by
//! priority, then by each queue's own enqueue sequence; the memory store has one sequence for all
//! queues.

#![doc(test(attr(deny(warnings))))]

mod admin;
mod conn;
mod control;
mod dead;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod hot;
mod lanes;
mod layout;
mod locate;
mod options;
mod owned;
mod plane;
mod redact;
mod scripts;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod wait;
mod wire;

pub use options::{RedisOptions, DEFAULT_MAX_CLOCK_SKEW};
pub use redact::redact_url;
pub use store::RedisStorage;
