//! The [`Storage`] trait: what every backend (memory, SQLite, Redis) must do, and the types its
//! operations take and return.
//!
//! # The delivery contract
//!
//! * **At-least-once.** [`Storage::fetch`] hands a task out under a lease; the task stays in the
//!   store until [`Storage::complete`] writes its outcome. A lease that runs out without being
//!   completed or [extended](Storage::extend) makes the task deliverable again.
//! * **Fencing.** Each delivery carries a fresh [`LeaseToken`]. Completing or extending with a
//!   token that is not the task's current one is refused ([`AckStatus::Stale`]).
//! * **Poison.** Each fetch increments the task's delivery count. A fetch that would hand out a
//!   task past its [`Envelope::delivery_limit`] dead-letters it instead, with
//!   [`FailureKind::DeliveryLimit`](crate::FailureKind::DeliveryLimit).
//! * **Order.** Higher priority first; FIFO within a priority by enqueue order.
//! * **Time.** A task is not delivered before its eta. All times come from the store's
//!   [`Clock`].
//! * **Atomic completions.** Each [`Completion`] (outcome + result + follow-up envelopes) is
//!   applied all-or-nothing.
//! * **Garbage.** A stored envelope that does not decode (or has a newer format) is moved to
//!   the dead-letter queue by `fetch` with the reason; it is never handed out or dropped.
//!
//! The trait is object safe: the runtime holds an `Arc<dyn Storage>`.
//!
//! For backend authors: [`RevocationCache`] keeps the "no revocation exists" answer that lets
//! [`Storage::check_revoked`] skip its read in the usual case; [`RateWindow`] is the window
//! arithmetic of [`Storage::rate_limit`]; [`rows`] holds what stores that keep tasks as rows of
//! tables (SQLite, PostgreSQL) do alike around their SQL.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Clock, Envelope, Error, LeaseToken, Result, TaskFailure, TaskId};

pub use crate::revocations::RevocationCache;

mod rate_window;
pub mod rows;

pub use rate_window::RateWindow;

/// The most ids [`Storage::discard_dead`] is sure to remove in one atomic store operation; a
/// store may split a longer list into parts of this size (the Redis store does, so that no
/// script call holds the server for long).
pub const DISCARD_DEAD_BATCH: usize = 500;

/// How long a store keeps the failure result of a task it dead-letters itself, at fetch (a
/// poison task past its delivery limit, an undecodable or newer-format envelope) or when
/// [`SealedStorage`](crate::seal::SealedStorage) refuses it: 7 days, the consumers' default
/// [`result_ttl`](https://docs.rs/queue-runtime). Its dead-letter record stays until it is
/// requeued, discarded or purged.
pub const DEAD_RESULT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// A task handed to a worker: the right to complete it while the lease holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The task.
    pub id: TaskId,
    /// The token of this delivery.
    pub token: LeaseToken,
}

/// One task handed out by [`Storage::fetch`].
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The task, with `deliveries` and `attempt` as the store counts them now.
    pub envelope: Envelope,
    /// The lease to complete or extend it with.
    pub lease: Lease,
    /// When the lease runs out unless extended.
    pub lease_expires_at: DateTime<Utc>,
}

/// What [`Storage::enqueue`] did with one envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnqueueOutcome {
    /// Stored under this id.
    Enqueued(TaskId),
    /// Not stored: a pending or running task already has the same unique key or id. Carries
    /// that task's id.
    Duplicate(TaskId),
}

impl EnqueueOutcome {
    /// The id of the stored task, new or existing.
    pub fn id(&self) -> TaskId {
        match *self {
            Self::Enqueued(id) | Self::Duplicate(id) => id,
        }
    }
}

/// How a delivery ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// It succeeded; `result` is the msgpack-encoded output, kept as its result.
    Success {
        /// The encoded output.
        result: Vec<u8>,
    },
    /// It failed and is tried again at `eta`; counts as an attempt.
    Retry {
        /// When to try again.
        eta: DateTime<Utc>,
        /// What went wrong this time.
        failure: TaskFailure,
    },
    /// It did not run (a lock was taken, a rate limit was hit, the worker is shutting down) and
    /// goes back to the queue at `eta`. Neither an attempt nor a delivery is counted.
    Defer {
        /// When to deliver it again.
        eta: DateTime<Utc>,
    },
    /// It failed for good: it goes to the dead-letter queue, and its result is the failure.
    Dead {
        /// Why.
        failure: TaskFailure,
    },
    /// It ends without running or without retry (revoked, expired, canceled): removed, not
    /// dead-lettered; its result is the failure.
    Drop {
        /// Why.
        failure: TaskFailure,
    },
}

/// The outcome of one delivery, written by [`Storage::complete`].
#[derive(Clone, Debug)]
pub struct Completion {
    /// The delivery being completed.
    pub lease: Lease,
    /// How it ended.
    pub outcome: Outcome,
    /// Envelopes to enqueue atomically with the outcome (next pipeline stage, error handler…).
    /// Ignored for `Defer` and `Retry`.
    pub follow_ups: Vec<Envelope>,
    /// How long the result is kept; `None` = forever. Ignored for `Defer` and `Retry`.
    pub result_ttl: Option<Duration>,
}

impl Completion {
    /// A completion with no follow-ups whose result is kept for `result_ttl`.
    pub fn new(lease: Lease, outcome: Outcome, result_ttl: Option<Duration>) -> Self {
        Self {
            lease,
            outcome,
            follow_ups: Vec::new(),
            result_ttl,
        }
    }
}

/// Whether a completion or extension was applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckStatus {
    /// Applied.
    Acked,
    /// Refused: the lease token is not the task's current one (the lease ran out and the task
    /// was delivered again, or it was already completed).
    Stale,
}

/// The stored result of a finished task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum StoredResult {
    /// The msgpack-encoded output.
    Success(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Why it did not succeed.
    Failure(TaskFailure),
}

impl StoredResult {
    /// Encodes the result for a store.
    pub fn encode(&self) -> Result<Vec<u8>> {
        rmp_serde::to_vec_named(self).map_err(|e| Error::encode("result", e))
    }

    /// Decodes what [`StoredResult::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        rmp_serde::from_slice(bytes).map_err(|e| Error::decode("result", e))
    }

    /// The stored result of an outcome, if the outcome ends the task.
    pub fn of(outcome: &Outcome) -> Option<Self> {
        match outcome {
            Outcome::Success { result } => Some(Self::Success(result.clone())),
            Outcome::Dead { failure } | Outcome::Drop { failure } => {
                Some(Self::Failure(failure.clone()))
            }
            Outcome::Retry { .. } | Outcome::Defer { .. } => None,
        }
    }
}

/// Where a pending task stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Due now, waiting for a worker.
    Ready,
    /// Waiting for its eta.
    Scheduled,
    /// Handed to a worker under a lease.
    Leased,
}

/// A pending task as listed by [`Storage::list`].
#[derive(Clone, Debug)]
pub struct TaskRecord {
    /// The task's id.
    pub id: TaskId,
    /// Its queue.
    pub queue: String,
    /// Where it stands.
    pub state: TaskState,
    /// When it is (or was) due.
    pub run_at: DateTime<Utc>,
    /// When the current lease runs out (leased tasks only).
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// The decoded envelope, or why it does not decode.
    pub envelope: std::result::Result<Envelope, String>,
}

/// A dead-lettered task.
#[derive(Clone, Debug)]
pub struct DeadTask {
    /// The task's id.
    pub id: TaskId,
    /// Its queue.
    pub queue: String,
    /// Its task name (`"?"` when the envelope does not decode).
    pub task: String,
    /// Why it is here.
    pub failure: TaskFailure,
    /// When it was dead-lettered.
    pub failed_at: DateTime<Utc>,
    /// The decoded envelope, or why it does not decode.
    pub envelope: std::result::Result<Envelope, String>,
}

/// How many tasks are in each state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Due and waiting for a worker.
    pub ready: u64,
    /// Waiting for an eta.
    pub scheduled: u64,
    /// Held by workers.
    pub leased: u64,
    /// In the dead-letter queue.
    pub dead: u64,
    /// Stored results (not yet expired).
    pub results: u64,
}

/// A page of a listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    /// Entries to skip.
    pub offset: u64,
    /// Entries to return at most.
    pub limit: u32,
}

impl Page {
    /// The first `limit` entries.
    pub const fn first(limit: u32) -> Self {
        Self { offset: 0, limit }
    }
}

/// What a revocation applies to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RevokeTarget {
    /// One task.
    Id(TaskId),
    /// Every task of this name.
    Task(String),
}

/// A revocation: tasks it matches are dropped (with a `revoked` event) instead of run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// What it applies to.
    pub target: RevokeTarget,
    /// It lapses at this time; `None` = until restored.
    pub until: Option<DateTime<Utc>>,
    /// It lapses after it has stopped one task.
    pub once: bool,
}

/// What [`Storage::request_cancel`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelRequest {
    /// The task is running: the worker holding its lease learns of the request at its next
    /// heartbeat.
    Running,
    /// The task is pending (ready or scheduled): the request is kept for the delivery that
    /// may be under way; [`Queue::cancel`](crate::Queue::cancel) also revokes it.
    Pending,
    /// No pending or running task has this id.
    NotFound,
}

/// The answer of [`Storage::rate_limit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether this hit is within the limit (and was counted).
    pub allowed: bool,
    /// When refused: how long until the window has room again.
    pub retry_after: Duration,
}

/// A task store. See the [module docs](self) for the contract every implementation keeps;
/// `queue_core::testing` (feature `testing`) checks it.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// The backend's name, for logs and errors (`"memory"`, `"sqlite"`, `"redis"`).
    fn backend(&self) -> &'static str;

    /// The clock the store reads time from. The runtime uses the same one.
    fn clock(&self) -> Arc<dyn Clock>;

    /// The store as [`Any`](std::any::Any), so that code which knows a backend can reach the
    /// store behind a `dyn Storage` (PostgreSQL's transactional enqueue finds its schema this
    /// way). `None` by default: a store that does not offer it cannot be downcast.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = queue_core::Queue::memory();
    /// // The memory store does not offer itself for downcasting.
    /// assert!(queue.storage().as_any().is_none());
    /// ```
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }

    // ----- the hot path -----

    /// Stores a batch of envelopes. An envelope whose id or unique key belongs to a task that
    /// is still pending or running is not stored ([`EnqueueOutcome::Duplicate`]). Returns one
    /// outcome per envelope, in order. An envelope whose id ended earlier starts a new run: the
    /// earlier run's result is gone for [`get_result`](Storage::get_result) from then on, and
    /// the new run's outcome becomes the id's result.
    ///
    /// On an error, part of the batch may be stored: a store may write a large batch in
    /// steps (Redis: 256 envelopes each), and a lost reply leaves any store's last step
    /// unknown. Enqueueing the same envelopes again is safe: the stored ones, still pending,
    /// come back as duplicates of themselves.
    async fn enqueue(&self, batch: Vec<Envelope>) -> Result<Vec<EnqueueOutcome>>;

    /// Leases up to `max` due tasks of `queue` for `lease`, highest priority first, FIFO within
    /// a priority. Tasks whose lease has run out count as due. Undecodable envelopes and tasks
    /// past their delivery limit are dead-lettered instead of returned.
    async fn fetch(&self, queue: &str, max: usize, lease: Duration) -> Result<Vec<Delivery>>;

    /// Waits until `queue` may have due work (something was enqueued or became due) or until
    /// `timeout`. May return early without work; must not return at once, again and again,
    /// while there is none (no hot loops).
    async fn wait_for_work(&self, queue: &str, timeout: Duration) -> Result<()>;

    /// Applies a batch of completions, each atomically. Returns one status per completion.
    async fn complete(&self, batch: Vec<Completion>) -> Result<Vec<AckStatus>>;

    /// Extends leases to `now + lease`. Returns one status per lease.
    async fn extend(&self, leases: &[Lease], lease: Duration) -> Result<Vec<AckStatus>>;

    /// Makes up to `max` tasks of `queue` whose lease has run out deliverable again. Returns how
    /// many. (Backends whose `fetch` already takes expired leases may return 0.)
    async fn requeue_expired(&self, queue: &str, max: usize) -> Result<u64>;

    // ----- results -----

    /// The stored result of a task, if it has one that has not expired.
    async fn get_result(&self, id: TaskId) -> Result<Option<StoredResult>>;

    /// Waits up to `timeout` for the result of a task; woken by the write, not by polling.
    async fn wait_result(&self, id: TaskId, timeout: Duration) -> Result<Option<StoredResult>>;

    /// Deletes a result. Returns whether there was one.
    async fn delete_result(&self, id: TaskId) -> Result<bool>;

    /// Removes up to `max` expired results (and expired locks and counters). Returns how many.
    async fn purge_expired(&self, max: usize) -> Result<u64>;

    // ----- scheduling and control -----

    /// Moves a pending (not leased) task to a new eta. Returns whether it was found.
    async fn reschedule(&self, id: TaskId, eta: DateTime<Utc>) -> Result<bool>;

    /// Stores a revocation.
    async fn revoke(&self, revocation: Revocation) -> Result<()>;

    /// Removes a revocation. Returns whether there was one.
    async fn restore(&self, target: &RevokeTarget) -> Result<bool>;

    /// For each `(id, task name)`: whether a revocation (by id or by name) applies now. A
    /// `once` revocation that applies is used up by this call.
    async fn check_revoked(&self, tasks: &[(TaskId, &str)]) -> Result<Vec<bool>>;

    /// Takes the lock `name` for `owner` for `ttl`. Succeeds if the lock is free, expired, or
    /// already held by `owner` (then its TTL is renewed).
    async fn acquire_lock(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool>;

    /// Releases the lock if `owner` holds it. Returns whether it did.
    async fn release_lock(&self, name: &str, owner: &str) -> Result<bool>;

    /// Releases every lock. Returns how many there were.
    async fn flush_locks(&self) -> Result<u64>;

    /// Counts one hit against `key`, allowing `limit` hits per `window` (fixed windows aligned
    /// to the epoch), shared by every process on the store.
    async fn rate_limit(&self, key: &str, limit: u32, window: Duration) -> Result<RateDecision>;

    // ----- dead-letter queue -----

    /// Lists dead tasks, oldest first.
    async fn list_dead(&self, queue: Option<&str>, page: Page) -> Result<Vec<DeadTask>>;

    /// One dead task.
    async fn get_dead(&self, id: TaskId) -> Result<Option<DeadTask>>;

    /// Puts dead tasks back on their queues with fresh attempt and delivery counts. Returns how
    /// many were requeued (undecodable ones are not).
    async fn requeue_dead(&self, ids: &[TaskId]) -> Result<u64>;

    /// Requeues every dead task (of `queue`, or all). Returns how many.
    async fn requeue_all_dead(&self, queue: Option<&str>) -> Result<u64>;

    /// Deletes dead tasks (of `queue`, or all) with their failure results (a newer result of
    /// the same id, from a fixed id run again after it died, stays). Returns how many.
    ///
    /// The dead-letter queue keeps one record per task id: a task that dies again (a fixed id
    /// enqueued again) replaces its earlier record. A failure result the store writes when it
    /// dead-letters a task itself, at [`fetch`](Storage::fetch), is kept for
    /// [`DEAD_RESULT_TTL`].
    async fn purge_dead(&self, queue: Option<&str>) -> Result<u64>;

    /// Removes these tasks from the dead-letter queue, with what the store keeps only for them
    /// (as `purge_dead` does for a whole queue); returns how many were there. Ids that are not
    /// dead are ignored.
    ///
    /// What goes is what [`purge_dead`](Storage::purge_dead) deletes for each of its tasks:
    /// the dead record (envelope, failure, time) and its place in the dead-letter indexes, so
    /// the task is no longer listed, counted, found by [`get_dead`](Storage::get_dead) or
    /// [requeued](Storage::requeue_dead), and its failure result (unless the id has a newer
    /// result). An id given twice counts once; a pending or running task of the same id is
    /// not touched.
    ///
    /// Up to [`DISCARD_DEAD_BATCH`] ids are removed in one atomic operation of the store (one
    /// transaction, one script). A longer list may be split into parts of that size, each atomic
    /// on its own: an error may leave earlier parts done, and calling again with the same ids
    /// is safe (what is gone is not counted again).
    async fn discard_dead(&self, ids: &[TaskId]) -> Result<u64>;

    // ----- introspection -----

    /// Counts by state (of `queue`, or all).
    async fn counts(&self, queue: Option<&str>) -> Result<Counts>;

    /// Lists pending tasks in one state: ready and scheduled in delivery order, leased by
    /// lease expiry.
    async fn list(
        &self,
        state: TaskState,
        queue: Option<&str>,
        page: Page,
    ) -> Result<Vec<TaskRecord>>;

    /// One pending task.
    async fn get_task(&self, id: TaskId) -> Result<Option<TaskRecord>>;

    /// The queues that have pending or dead tasks.
    async fn queues(&self) -> Result<Vec<String>>;

    /// Deletes everything: tasks, results, dead tasks, locks, revocations, counters, paused
    /// queues, workers and cancel requests.
    async fn flush(&self) -> Result<()>;

    // ----- the control plane -----

    /// Pauses (`true`) or resumes (`false`) `queue`. A paused queue still accepts enqueues,
    /// but [`fetch`](Storage::fetch) hands out nothing from it (running tasks finish), and
    /// [`wait_for_work`](Storage::wait_for_work) on it returns only at its timeout or when it
    /// is resumed. The state is stored: it survives restarts of workers and of the store.
    /// Returns whether the state changed.
    async fn set_paused(&self, queue: &str, paused: bool) -> Result<bool>;

    /// The paused queues, sorted by name.
    async fn paused_queues(&self) -> Result<Vec<String>>;

    /// Deletes the pending tasks of `queue` that are not running (ready and scheduled), with
    /// their unique keys. Returns how many. Running tasks and dead letters stay.
    async fn purge_queue(&self, queue: &str) -> Result<u64>;

    /// Records an operator's request to cancel task `id`, kept for `ttl`: a worker running it
    /// learns of it from its next [`heartbeat`](Storage::heartbeat).
    async fn request_cancel(&self, id: TaskId, ttl: Duration) -> Result<CancelRequest>;

    /// Stores a consumer's heartbeat (replacing its previous one, live until `beat.ttl` has
    /// passed) and the progress of its running tasks (written only where the lease is still
    /// the task's current one). Returns the ids of `beat.running` that have a cancel request.
    async fn heartbeat(&self, beat: &crate::Heartbeat) -> Result<Vec<TaskId>>;

    /// Removes a worker's heartbeat (it stopped). Returns whether there was one.
    async fn remove_worker(&self, worker_id: &str) -> Result<bool>;

    /// The live workers (whose last heartbeat is younger than its ttl), sorted by start time.
    async fn workers(&self) -> Result<Vec<crate::WorkerStatus>>;

    /// The newest progress a running or pending task reported (msgpack), if any.
    async fn get_progress(&self, id: TaskId) -> Result<Option<Vec<u8>>>;
}
