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
//!   `NOSCRIPT` (see the `scripts` module). A batch is one call, so a fetch of 100 tasks or a
//!   completion of 100 outcomes is one round trip, and an `enqueue` of more than 256
//!   envelopes is calls of 256 pipelined on one connection. A single-command change (revoke,
//!   restore) is that command.
//! * **No command per task.** A pending task is a few fields of its queue's task hash, not a
//!   key of its own, and a result is a field of the results hash; so a script reads and writes
//!   a whole batch with one variadic `HMGET` / `HSET` / `HDEL` / `ZADD` per key. (One key per
//!   task cost a `redis.call` per task and field: Lua's call overhead, not Redis's work, was
//!   most of the server's time.)
//! * **Key layout.** Every key of queue `Q` carries the hash tag `{Q}`:
//!   `skiff:{Q}:ready` (ZSET, score = `seq − priority · 2³⁷`, exact in a double, so higher
//!   priority first and FIFO within a priority, and short for the default priority 0),
//!   `skiff:{Q}:scheduled` (ZSET by run time), `skiff:{Q}:leased` (ZSET by lease expiry, member
//!   `id|token`), `skiff:{Q}:task` (hash: per task, under its id, its ready score, run time,
//!   delivery limit, name and envelope bytes), `skiff:{Q}:dlv`, `skiff:{Q}:att` and
//!   `skiff:{Q}:uk` (deliveries that ended without an outcome, attempts and unique keys of the
//!   tasks that have any), `skiff:{Q}:progress` (the newest progress of running tasks),
//!   `skiff:{Q}:seq`, `skiff:{Q}:dead` and `skiff:{Q}:wake`. The full layout is in
//!   `src/lua/common.lua`.
//!   Store-wide keys: `skiff:ids` (id → queue of pending tasks, for lookups by id alone),
//!   `skiff:unique`, `skiff:results` (hash id → result), `skiff:result-exp` (ZSET of results
//!   with a TTL, by expiry), `skiff:result-waiters`, `skiff:dead:<id>`, `skiff:dead`,
//!   `skiff:revoked`, `skiff:lock:<name>`, `skiff:rate:<key>`, `skiff:queues`, and for the
//!   control plane `skiff:paused` (SET of paused queues), `skiff:workers` and
//!   `skiff:worker-exp` (each worker's newest heartbeat and until when it is live),
//!   `skiff:cancel` (ZSET task id → cancel request kept until).
//! * **Bounded work.** A fetch moves at most [`RedisOptions::promote_limit`] due scheduled tasks
//!   and expired leases to ready, then pops at most `max` (no `unpack` of unbounded tables);
//!   a backlog of any size is drained over successive fetches.
//! * **Revocation checks** (once per fetched batch) cost nothing while no revocation exists:
//!   each fetch answers whether any does (one `EXISTS` in its script), so a revocation written
//!   by any process before a batch is fetched applies to it.
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
//!   pays an extra `PING`. Blocking waits use a pool of their own.
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
//! The hash tags put all of one queue's keys in one slot, but the scripts also touch the
//! store-wide keys above (the id index, unique keys, results, the dead-letter index), and they
//! build key names from the prefix instead of declaring them in `KEYS`. So this store needs a
//! single Redis node (or a primary with replicas / Sentinel); on a Cluster, the cross-slot
//! scripts would be refused. A cluster mode would move unique keys, results and dead tasks under
//! `{Q}` with per-slot id indexes, and split batches by queue.
//!
//! # Differences from the memory store
//!
//! None in the contract. Listing several queues at once (`queue: None`) orders ready tasks by
//! priority, then by each queue's own enqueue sequence; the memory store has one sequence for all
//! queues.

#![doc(test(attr(deny(warnings))))]

mod admin;
mod control;
mod dead;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod hot;
mod lanes;
mod options;
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
