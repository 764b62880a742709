//! [`MemoryStorage`]: the whole [`Storage`] contract in process memory.
//!
//! For unit tests and immediate mode: nothing survives the process. It keeps envelopes encoded,
//! exactly like the real stores, so it meets garbage and version checks the same way.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::clock::{duration_millis, from_millis, system_clock, to_millis};
use crate::storage::{
    AckStatus, CancelRequest, Completion, Counts, DeadTask, Delivery, EnqueueOutcome, Lease,
    Outcome, Page, RateDecision, Revocation, RevokeTarget, StoredResult, TaskRecord, TaskState,
};
use crate::{
    Clock, Envelope, FailureKind, Heartbeat, LeaseToken, Result, Storage, TaskFailure, TaskId,
    WorkerStatus,
};

/// An in-memory store. See the [module docs](self).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use queue_core::{MemoryStorage, Queue};
///
/// let queue = Queue::new(Arc::new(MemoryStorage::new()));
/// assert!(!queue.is_immediate());
/// ```
#[derive(Debug)]
pub struct MemoryStorage {
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    /// Bumped whenever work may have become available.
    work: watch::Sender<u64>,
    /// Bumped whenever a result is written.
    results: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct State {
    seq: u64,
    tasks: HashMap<TaskId, Stored>,
    queues: HashMap<String, QueueIndex>,
    unique: HashMap<String, TaskId>,
    results: HashMap<TaskId, (StoredResult, Option<i64>)>,
    dead: HashMap<TaskId, Dead>,
    revocations: HashMap<RevokeTarget, Revocation>,
    locks: HashMap<String, (String, i64)>,
    rates: HashMap<String, (i64, u32)>,
    paused: BTreeSet<String>,
    /// Worker id -> (newest heartbeat, live until).
    workers: HashMap<String, (WorkerStatus, i64)>,
    /// Cancel requests: task id -> kept until.
    cancels: HashMap<TaskId, i64>,
    /// The newest progress of pending tasks.
    progress: HashMap<TaskId, Vec<u8>>,
}

#[derive(Debug, Default)]
struct QueueIndex {
    /// Due tasks: (priority desc, seq).
    ready: BTreeSet<(Reverse<i16>, u64, TaskId)>,
    /// Tasks waiting for their eta: (run_at, seq).
    scheduled: BTreeSet<(i64, u64, TaskId)>,
    /// Leased tasks: (lease expiry, id).
    leased: BTreeSet<(i64, TaskId)>,
}

#[derive(Debug)]
struct Stored {
    raw: Vec<u8>,
    queue: String,
    priority: i16,
    seq: u64,
    run_at: i64,
    lease: Option<(LeaseToken, i64)>,
    deliveries: u32,
    attempts: u32,
    limit: u32,
    unique_key: Option<String>,
}

#[derive(Debug)]
struct Dead {
    seq: u64,
    queue: String,
    task: String,
    failure: TaskFailure,
    failed_at: i64,
    raw: Vec<u8>,
}

impl Default for MemoryStorage {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStorage {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        Self::with_clock(system_clock())
    }

    /// An empty store reading time from `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            state: Mutex::new(State::default()),
            work: watch::channel(0).0,
            results: watch::channel(0).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // breaks the next caller more than the panic did; keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now(&self) -> i64 {
        to_millis(self.clock.now())
    }

    fn wake_workers(&self) {
        self.work.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn wake_results(&self) {
        self.results.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Stores `raw` as a ready task of `queue` without decoding it. For tests of how a
    /// consumer deals with garbage in the store.
    pub fn insert_raw(&self, queue: &str, id: TaskId, raw: Vec<u8>) {
        let now = self.now();
        let mut st = self.lock();
        st.seq += 1;
        let seq = st.seq;
        st.tasks.insert(
            id,
            Stored {
                raw,
                queue: queue.to_owned(),
                priority: 0,
                seq,
                run_at: now,
                lease: None,
                deliveries: 0,
                attempts: 0,
                limit: crate::envelope::DELIVERY_MARGIN + 1,
                unique_key: None,
            },
        );
        st.queues
            .entry(queue.to_owned())
            .or_default()
            .ready
            .insert((Reverse(0), seq, id));
        drop(st);
        self.wake_workers();
    }

    /// Stores a result directly (immediate mode).
    pub fn put_result(&self, id: TaskId, result: StoredResult, ttl: Option<Duration>) {
        let expires = ttl.map(|t| self.now().saturating_add(duration_millis(t)));
        self.lock().results.insert(id, (result, expires));
        self.wake_results();
    }
}

impl State {
    fn index(&mut self, queue: &str) -> &mut QueueIndex {
        if !self.queues.contains_key(queue) {
            self.queues.insert(queue.to_owned(), QueueIndex::default());
        }
        // Just inserted if missing.
        self.queues.entry(queue.to_owned()).or_default()
    }

    /// Puts a pending (not leased) task into the ready or scheduled index.
    fn place(&mut self, id: TaskId, now: i64) {
        let Some(t) = self.tasks.get(&id) else { return };
        let (queue, priority, seq, run_at) = (t.queue.clone(), t.priority, t.seq, t.run_at);
        let idx = self.index(&queue);
        if run_at <= now {
            idx.ready.insert((Reverse(priority), seq, id));
        } else {
            idx.scheduled.insert((run_at, seq, id));
        }
    }

    /// Removes a task from whichever index holds it.
    fn unplace(&mut self, id: TaskId) {
        let Some(t) = self.tasks.get(&id) else { return };
        let (priority, seq, run_at, lease) = (t.priority, t.seq, t.run_at, t.lease);
        if let Some(idx) = self.queues.get_mut(&t.queue) {
            idx.ready.remove(&(Reverse(priority), seq, id));
            idx.scheduled.remove(&(run_at, seq, id));
            if let Some((_, expires)) = lease {
                idx.leased.remove(&(expires, id));
            }
        }
    }

    fn insert(&mut self, env: &Envelope, now: i64) -> Result<EnqueueOutcome> {
        if self.tasks.contains_key(&env.id) {
            return Ok(EnqueueOutcome::Duplicate(env.id));
        }
        if let Some(key) = &env.unique_key {
            if let Some(existing) = self.unique.get(key) {
                return Ok(EnqueueOutcome::Duplicate(*existing));
            }
        }
        let raw = env.encode()?;
        self.seq += 1;
        self.tasks.insert(
            env.id,
            Stored {
                raw,
                queue: env.queue.clone(),
                priority: env.priority,
                seq: self.seq,
                run_at: env.eta.map(to_millis).unwrap_or(now),
                lease: None,
                deliveries: env.deliveries,
                attempts: env.attempt,
                limit: env.delivery_limit(),
                unique_key: env.unique_key.clone(),
            },
        );
        if let Some(key) = &env.unique_key {
            self.unique.insert(key.clone(), env.id);
        }
        // A new run of a task replaces an old result of the same id.
        self.results.remove(&env.id);
        self.place(env.id, now);
        Ok(EnqueueOutcome::Enqueued(env.id))
    }

    /// Removes a pending task entirely; returns it.
    fn remove(&mut self, id: TaskId) -> Option<Stored> {
        self.unplace(id);
        let t = self.tasks.remove(&id)?;
        self.progress.remove(&id);
        if let Some(key) = &t.unique_key {
            if self.unique.get(key) == Some(&id) {
                self.unique.remove(key);
            }
        }
        Some(t)
    }

    /// Removes dead task `id` with its failure result, unless the id has a newer result (a
    /// fixed id run again). Whether it was dead.
    fn forget_dead(&mut self, id: &TaskId) -> bool {
        let Some(dead) = self.dead.remove(id) else {
            return false;
        };
        if matches!(self.results.get(id), Some((StoredResult::Failure(f), _)) if *f == dead.failure)
        {
            self.results.remove(id);
        }
        true
    }

    /// Moves a removed task to the dead-letter queue with its failure as its result, kept
    /// until `result_expiry` (ms; `None`: forever).
    fn bury(
        &mut self,
        id: TaskId,
        t: Stored,
        task: String,
        failure: TaskFailure,
        now: i64,
        result_expiry: Option<i64>,
    ) {
        self.seq += 1;
        self.results
            .insert(id, (StoredResult::Failure(failure.clone()), result_expiry));
        self.dead.insert(
            id,
            Dead {
                seq: self.seq,
                queue: t.queue,
                task,
                failure,
                failed_at: now,
                raw: t.raw,
            },
        );
    }

    /// Moves due scheduled tasks and up to `max_expired` expired leases of `queue` to ready.
    fn promote(&mut self, queue: &str, now: i64, max_expired: usize) {
        let Some(idx) = self.queues.get_mut(queue) else {
            return;
        };
        let due: Vec<_> = idx
            .scheduled
            .iter()
            .take_while(|(run_at, _, _)| *run_at <= now)
            .copied()
            .collect();
        let expired: Vec<_> = idx
            .leased
            .iter()
            .take_while(|(expires, _)| *expires <= now)
            .take(max_expired)
            .copied()
            .collect();
        for key in due {
            idx.scheduled.remove(&key);
            if let Some(t) = self.tasks.get(&key.2) {
                idx.ready.insert((Reverse(t.priority), t.seq, key.2));
            }
        }
        for key in expired {
            idx.leased.remove(&key);
            if let Some(t) = self.tasks.get_mut(&key.1) {
                t.lease = None;
                idx.ready.insert((Reverse(t.priority), t.seq, key.1));
            }
        }
    }

    fn record(&self, id: TaskId, now: i64) -> Option<TaskRecord> {
        let t = self.tasks.get(&id)?;
        let state = match t.lease {
            Some(_) => TaskState::Leased,
            None if t.run_at <= now => TaskState::Ready,
            None => TaskState::Scheduled,
        };
        Some(TaskRecord {
            id,
            queue: t.queue.clone(),
            state,
            run_at: from_millis(t.run_at),
            lease_expires_at: t.lease.map(|(_, e)| from_millis(e)),
            envelope: decode_stored(t),
        })
    }

    fn dead_task(id: TaskId, d: &Dead) -> DeadTask {
        DeadTask {
            id,
            queue: d.queue.clone(),
            task: d.task.clone(),
            failure: d.failure.clone(),
            failed_at: from_millis(d.failed_at),
            envelope: Envelope::decode(&d.raw).map_err(|e| e.to_string()),
        }
    }

    fn revoked(&mut self, target: RevokeTarget, now: i64) -> bool {
        let Some(rev) = self.revocations.get(&target) else {
            return false;
        };
        if rev.until.is_some_and(|u| to_millis(u) <= now) {
            self.revocations.remove(&target);
            return false;
        }
        if rev.once {
            self.revocations.remove(&target);
        }
        true
    }
}

fn decode_stored(t: &Stored) -> std::result::Result<Envelope, String> {
    Envelope::decode(&t.raw)
        .map(|mut env| {
            env.deliveries = t.deliveries;
            env.attempt = t.attempts;
            env.priority = t.priority;
            env
        })
        .map_err(|e| e.to_string())
}

fn apply_page<T>(items: impl Iterator<Item = T>, page: Page) -> Vec<T> {
    items
        .skip(usize::try_from(page.offset).unwrap_or(usize::MAX))
        .take(page.limit as usize)
        .collect()
}

#[async_trait]
impl Storage for MemoryStorage {
    fn backend(&self) -> &'static str {
        "memory"
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    async fn enqueue(&self, batch: Vec<Envelope>) -> Result<Vec<EnqueueOutcome>> {
        for env in &batch {
            env.validate()?;
        }
        let now = self.now();
        let mut st = self.lock();
        let outcomes = batch
            .iter()
            .map(|env| st.insert(env, now))
            .collect::<Result<Vec<_>>>()?;
        drop(st);
        self.wake_workers();
        Ok(outcomes)
    }

    async fn fetch(&self, queue: &str, max: usize, lease: Duration) -> Result<Vec<Delivery>> {
        let now = self.now();
        let expires = now.saturating_add(duration_millis(lease));
        let dead_expiry = now.saturating_add(duration_millis(crate::storage::DEAD_RESULT_TTL));
        let mut st = self.lock();
        if st.paused.contains(queue) {
            return Ok(Vec::new());
        }
        st.promote(queue, now, usize::MAX);
        let mut out = Vec::new();
        while out.len() < max {
            let Some(key) = st
                .queues
                .get_mut(queue)
                .and_then(|idx| idx.ready.pop_first())
            else {
                break;
            };
            let id = key.2;
            let Some(t) = st.tasks.get_mut(&id) else {
                continue;
            };
            t.deliveries = t.deliveries.saturating_add(1);
            let decoded = decode_stored(t);
            let (env, limit, deliveries) = match decoded {
                Ok(env) => {
                    let (limit, deliveries) = (t.limit, t.deliveries);
                    (env, limit, deliveries)
                }
                Err(reason) => {
                    let kind = if reason.contains("newer than this build") {
                        FailureKind::NewerFormat
                    } else {
                        FailureKind::Undecodable
                    };
                    if let Some(t) = st.remove(id) {
                        let failure = TaskFailure::new(kind, reason, t.attempts);
                        st.bury(id, t, "?".into(), failure, now, Some(dead_expiry));
                    }
                    continue;
                }
            };
            if deliveries > limit {
                if let Some(t) = st.remove(id) {
                    let failure = TaskFailure::new(
                        FailureKind::DeliveryLimit,
                        format!("delivered {} times without completing (limit {limit}); treated as poison", deliveries - 1),
                        t.attempts,
                    );
                    st.bury(id, t, env.task.clone(), failure, now, Some(dead_expiry));
                }
                continue;
            }
            let token = LeaseToken::random();
            if let Some(t) = st.tasks.get_mut(&id) {
                t.lease = Some((token, expires));
            }
            st.index(queue).leased.insert((expires, id));
            out.push(Delivery {
                envelope: env,
                lease: Lease { id, token },
                lease_expires_at: from_millis(expires),
            });
        }
        drop(st);
        self.wake_results();
        Ok(out)
    }

    async fn wait_for_work(&self, queue: &str, timeout: Duration) -> Result<()> {
        let mut rx = self.work.subscribe();
        rx.borrow_and_update();
        let now = self.now();
        let next = {
            let st = self.lock();
            match st.queues.get(queue) {
                // Paused: only a resume (or anything else that wakes) ends the wait early.
                _ if st.paused.contains(queue) => None,
                Some(idx) if !idx.ready.is_empty() => return Ok(()),
                Some(idx) => {
                    let sched = idx.scheduled.first().map(|k| k.0);
                    let lease = idx.leased.first().map(|k| k.0);
                    sched.into_iter().chain(lease).min()
                }
                None => None,
            }
        };
        let mut wait = timeout;
        if let Some(next) = next {
            let until = u64::try_from(next.saturating_sub(now)).unwrap_or(0);
            wait = wait.min(Duration::from_millis(until));
        }
        let _ = tokio::time::timeout(wait, rx.changed()).await;
        Ok(())
    }

    async fn complete(&self, batch: Vec<Completion>) -> Result<Vec<AckStatus>> {
        for c in &batch {
            for env in &c.follow_ups {
                env.validate()?;
            }
        }
        let now = self.now();
        let mut st = self.lock();
        let mut statuses = Vec::with_capacity(batch.len());
        let mut woke = false;
        for c in batch {
            let id = c.lease.id;
            let current = st.tasks.get(&id).and_then(|t| t.lease).map(|(tok, _)| tok);
            if current != Some(c.lease.token) {
                statuses.push(AckStatus::Stale);
                continue;
            }
            let result = StoredResult::of(&c.outcome);
            let result_expiry = c.result_ttl.map(|t| now.saturating_add(duration_millis(t)));
            match c.outcome {
                Outcome::Retry { eta, .. } | Outcome::Defer { eta } => {
                    let is_retry = matches!(c.outcome, Outcome::Retry { .. });
                    st.unplace(id);
                    if let Some(t) = st.tasks.get_mut(&id) {
                        t.lease = None;
                        t.run_at = to_millis(eta);
                        if is_retry {
                            t.attempts = t.attempts.saturating_add(1);
                        } else {
                            t.deliveries = t.deliveries.saturating_sub(1);
                        }
                    }
                    st.place(id, now);
                    woke = true;
                }
                Outcome::Success { .. } | Outcome::Drop { .. } => {
                    st.remove(id);
                }
                Outcome::Dead { failure } => {
                    if let Some(t) = st.remove(id) {
                        let task = Envelope::decode(&t.raw)
                            .map(|e| e.task)
                            .unwrap_or_else(|_| "?".into());
                        st.bury(id, t, task, failure, now, result_expiry);
                    }
                }
            }
            if let Some(result) = result {
                // A revocation by id goes with its task.
                st.revocations.remove(&RevokeTarget::Id(id));
                st.results.insert(id, (result, result_expiry));
                for env in &c.follow_ups {
                    st.insert(env, now)?;
                    woke = true;
                }
            }
            statuses.push(AckStatus::Acked);
        }
        drop(st);
        self.wake_results();
        if woke {
            self.wake_workers();
        }
        Ok(statuses)
    }

    async fn extend(&self, leases: &[Lease], lease: Duration) -> Result<Vec<AckStatus>> {
        let now = self.now();
        let expires = now.saturating_add(duration_millis(lease));
        let mut st = self.lock();
        let mut out = Vec::with_capacity(leases.len());
        for l in leases {
            let Some(t) = st.tasks.get_mut(&l.id) else {
                out.push(AckStatus::Stale);
                continue;
            };
            match t.lease {
                Some((tok, old)) if tok == l.token => {
                    t.lease = Some((tok, expires));
                    let queue = t.queue.clone();
                    let idx = st.index(&queue);
                    idx.leased.remove(&(old, l.id));
                    idx.leased.insert((expires, l.id));
                    out.push(AckStatus::Acked);
                }
                _ => out.push(AckStatus::Stale),
            }
        }
        Ok(out)
    }

    async fn requeue_expired(&self, queue: &str, max: usize) -> Result<u64> {
        let now = self.now();
        let mut st = self.lock();
        let before = st.queues.get(queue).map_or(0, |i| i.leased.len());
        st.promote(queue, now, max);
        let after = st.queues.get(queue).map_or(0, |i| i.leased.len());
        drop(st);
        if before > after {
            self.wake_workers();
        }
        Ok((before - after) as u64)
    }

    async fn get_result(&self, id: TaskId) -> Result<Option<StoredResult>> {
        let now = self.now();
        let st = self.lock();
        Ok(st
            .results
            .get(&id)
            .filter(|(_, exp)| exp.is_none_or(|e| e > now))
            .map(|(r, _)| r.clone()))
    }

    async fn wait_result(&self, id: TaskId, timeout: Duration) -> Result<Option<StoredResult>> {
        let deadline = crate::clock::deadline(timeout);
        let mut rx = self.results.subscribe();
        loop {
            rx.borrow_and_update();
            if let Some(r) = self.get_result(id).await? {
                return Ok(Some(r));
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return Ok(None);
            }
        }
    }

    async fn delete_result(&self, id: TaskId) -> Result<bool> {
        Ok(self.lock().results.remove(&id).is_some())
    }

    async fn purge_expired(&self, max: usize) -> Result<u64> {
        let now = self.now();
        let mut st = self.lock();
        let expired: Vec<TaskId> = st
            .results
            .iter()
            .filter(|(_, (_, exp))| exp.is_some_and(|e| e <= now))
            .map(|(id, _)| *id)
            .take(max)
            .collect();
        for id in &expired {
            st.results.remove(id);
        }
        let mut n = expired.len() as u64;
        let locks_before = st.locks.len();
        st.locks.retain(|_, (_, exp)| *exp > now);
        n += (locks_before - st.locks.len()) as u64;
        st.revocations
            .retain(|_, r| r.until.is_none_or(|u| to_millis(u) > now));
        Ok(n)
    }

    async fn reschedule(&self, id: TaskId, eta: DateTime<Utc>) -> Result<bool> {
        let now = self.now();
        let mut st = self.lock();
        match st.tasks.get(&id) {
            Some(t) if t.lease.is_none() => {}
            _ => return Ok(false),
        }
        st.unplace(id);
        if let Some(t) = st.tasks.get_mut(&id) {
            t.run_at = to_millis(eta);
        }
        st.place(id, now);
        drop(st);
        self.wake_workers();
        Ok(true)
    }

    async fn revoke(&self, revocation: Revocation) -> Result<()> {
        self.lock()
            .revocations
            .insert(revocation.target.clone(), revocation);
        Ok(())
    }

    async fn restore(&self, target: &RevokeTarget) -> Result<bool> {
        Ok(self.lock().revocations.remove(target).is_some())
    }

    async fn check_revoked(&self, tasks: &[(TaskId, &str)]) -> Result<Vec<bool>> {
        let now = self.now();
        let mut st = self.lock();
        Ok(tasks
            .iter()
            .map(|(id, name)| {
                st.revoked(RevokeTarget::Id(*id), now)
                    || st.revoked(RevokeTarget::Task((*name).to_owned()), now)
            })
            .collect())
    }

    async fn acquire_lock(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
        let now = self.now();
        let mut st = self.lock();
        let free = match st.locks.get(name) {
            None => true,
            Some((holder, expires)) => holder == owner || *expires <= now,
        };
        if free {
            st.locks.insert(
                name.to_owned(),
                (owner.to_owned(), now.saturating_add(duration_millis(ttl))),
            );
        }
        Ok(free)
    }

    async fn release_lock(&self, name: &str, owner: &str) -> Result<bool> {
        let now = self.now();
        let mut st = self.lock();
        match st.locks.get(name) {
            Some((holder, expires)) if holder == owner && *expires > now => {
                st.locks.remove(name);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn flush_locks(&self) -> Result<u64> {
        let mut st = self.lock();
        let n = st.locks.len() as u64;
        st.locks.clear();
        Ok(n)
    }

    async fn rate_limit(&self, key: &str, limit: u32, window: Duration) -> Result<RateDecision> {
        // The time is read under the lock: read before it, a call that waited for the lock
        // could carry an older window than the one stored, and moving the window back reset
        // its count (11 runs in a window of 10 under load).
        let mut st = self.lock();
        let now = self.now();
        let window_ms = duration_millis(window).max(1);
        let start = now - now.rem_euclid(window_ms);
        let entry = st.rates.entry(key.to_owned()).or_insert((start, 0));
        if start > entry.0 {
            *entry = (start, 0);
        }
        let start = entry.0;
        if entry.1 < limit {
            entry.1 += 1;
            Ok(RateDecision {
                allowed: true,
                retry_after: Duration::ZERO,
            })
        } else {
            let wait = u64::try_from(start + window_ms - now).unwrap_or(0);
            Ok(RateDecision {
                allowed: false,
                retry_after: Duration::from_millis(wait),
            })
        }
    }

    async fn list_dead(&self, queue: Option<&str>, page: Page) -> Result<Vec<DeadTask>> {
        let st = self.lock();
        let mut dead: Vec<_> = st
            .dead
            .iter()
            .filter(|(_, d)| queue.is_none_or(|q| d.queue == q))
            .collect();
        dead.sort_by_key(|(_, d)| (d.failed_at, d.seq));
        Ok(apply_page(
            dead.into_iter().map(|(id, d)| State::dead_task(*id, d)),
            page,
        ))
    }

    async fn get_dead(&self, id: TaskId) -> Result<Option<DeadTask>> {
        Ok(self.lock().dead.get(&id).map(|d| State::dead_task(id, d)))
    }

    async fn requeue_dead(&self, ids: &[TaskId]) -> Result<u64> {
        let now = self.now();
        let mut st = self.lock();
        let mut n = 0;
        for id in ids {
            let Some(d) = st.dead.get(id) else { continue };
            let Ok(mut env) = Envelope::decode(&d.raw) else {
                continue;
            };
            env.attempt = 0;
            env.deliveries = 0;
            env.eta = None;
            // A pending task with the same id or unique key: leave this one dead, never lose it.
            let key_taken = env
                .unique_key
                .as_ref()
                .is_some_and(|k| st.unique.contains_key(k));
            if st.tasks.contains_key(id) || key_taken {
                continue;
            }
            st.dead.remove(id);
            st.results.remove(id);
            if let EnqueueOutcome::Enqueued(_) = st.insert(&env, now)? {
                n += 1;
            }
        }
        drop(st);
        if n > 0 {
            self.wake_workers();
        }
        Ok(n)
    }

    async fn requeue_all_dead(&self, queue: Option<&str>) -> Result<u64> {
        let ids: Vec<TaskId> = {
            let st = self.lock();
            st.dead
                .iter()
                .filter(|(_, d)| queue.is_none_or(|q| d.queue == q))
                .map(|(id, _)| *id)
                .collect()
        };
        self.requeue_dead(&ids).await
    }

    async fn purge_dead(&self, queue: Option<&str>) -> Result<u64> {
        let mut st = self.lock();
        let ids: Vec<TaskId> = st
            .dead
            .iter()
            .filter(|(_, d)| queue.is_none_or(|q| d.queue == q))
            .map(|(id, _)| *id)
            .collect();
        Ok(ids.iter().filter(|id| st.forget_dead(id)).count() as u64)
    }

    async fn discard_dead(&self, ids: &[TaskId]) -> Result<u64> {
        // Every id under one lock: the whole list is one atomic step here.
        let mut st = self.lock();
        let n = ids.iter().filter(|id| st.forget_dead(id)).count();
        Ok(n as u64)
    }

    async fn counts(&self, queue: Option<&str>) -> Result<Counts> {
        let now = self.now();
        let st = self.lock();
        let mut c = Counts::default();
        for t in st.tasks.values() {
            if queue.is_some_and(|q| q != t.queue) {
                continue;
            }
            match t.lease {
                Some(_) => c.leased += 1,
                None if t.run_at <= now => c.ready += 1,
                None => c.scheduled += 1,
            }
        }
        c.dead = st
            .dead
            .values()
            .filter(|d| queue.is_none_or(|q| d.queue == q))
            .count() as u64;
        c.results = st
            .results
            .values()
            .filter(|(_, exp)| exp.is_none_or(|e| e > now))
            .count() as u64;
        Ok(c)
    }

    async fn list(
        &self,
        state: TaskState,
        queue: Option<&str>,
        page: Page,
    ) -> Result<Vec<TaskRecord>> {
        let now = self.now();
        let st = self.lock();
        let mut records: Vec<(TaskRecord, (i64, i64, u64))> = st
            .tasks
            .iter()
            .filter(|(_, t)| queue.is_none_or(|q| q == t.queue))
            .filter_map(|(id, t)| {
                let r = st.record(*id, now)?;
                let key = match r.state {
                    TaskState::Ready => (-i64::from(t.priority), 0, t.seq),
                    TaskState::Scheduled => (t.run_at, 0, t.seq),
                    TaskState::Leased => (t.lease.map_or(0, |(_, e)| e), 0, t.seq),
                };
                (r.state == state).then_some((r, key))
            })
            .collect();
        records.sort_by_key(|(_, k)| *k);
        Ok(apply_page(records.into_iter().map(|(r, _)| r), page))
    }

    async fn get_task(&self, id: TaskId) -> Result<Option<TaskRecord>> {
        let now = self.now();
        Ok(self.lock().record(id, now))
    }

    async fn queues(&self) -> Result<Vec<String>> {
        let st = self.lock();
        let mut names: BTreeSet<String> = st.tasks.values().map(|t| t.queue.clone()).collect();
        names.extend(st.dead.values().map(|d| d.queue.clone()));
        Ok(names.into_iter().collect())
    }

    async fn flush(&self) -> Result<()> {
        *self.lock() = State::default();
        self.wake_results();
        Ok(())
    }

    async fn set_paused(&self, queue: &str, paused: bool) -> Result<bool> {
        let changed = {
            let mut st = self.lock();
            if paused {
                st.paused.insert(queue.to_owned())
            } else {
                st.paused.remove(queue)
            }
        };
        if changed && !paused {
            self.wake_workers();
        }
        Ok(changed)
    }

    async fn paused_queues(&self) -> Result<Vec<String>> {
        Ok(self.lock().paused.iter().cloned().collect())
    }

    async fn purge_queue(&self, queue: &str) -> Result<u64> {
        let mut st = self.lock();
        let ids: Vec<TaskId> = st
            .queues
            .get(queue)
            .map(|idx| {
                let ready = idx.ready.iter().map(|k| k.2);
                ready.chain(idx.scheduled.iter().map(|k| k.2)).collect()
            })
            .unwrap_or_default();
        let mut purged = 0;
        for id in ids {
            if st.tasks.get(&id).is_some_and(|t| t.lease.is_none()) && st.remove(id).is_some() {
                purged += 1;
            }
        }
        Ok(purged)
    }

    async fn request_cancel(&self, id: TaskId, ttl: Duration) -> Result<CancelRequest> {
        let now = self.now();
        let mut st = self.lock();
        let Some(state) = st.record(id, now).map(|r| r.state) else {
            return Ok(CancelRequest::NotFound);
        };
        st.cancels.retain(|_, until| *until > now);
        st.cancels
            .insert(id, now.saturating_add(duration_millis(ttl)));
        Ok(match state {
            TaskState::Leased => CancelRequest::Running,
            TaskState::Ready | TaskState::Scheduled => CancelRequest::Pending,
        })
    }

    async fn heartbeat(&self, beat: &Heartbeat) -> Result<Vec<TaskId>> {
        let now = self.now();
        let mut st = self.lock();
        for (lease, progress) in &beat.progress {
            let current = st
                .tasks
                .get(&lease.id)
                .is_some_and(|t| t.lease.is_some_and(|(token, _)| token == lease.token));
            if current {
                st.progress.insert(lease.id, progress.clone());
            }
        }
        let until = now.saturating_add(duration_millis(beat.ttl));
        st.workers.retain(|_, (_, live_until)| *live_until > now);
        st.workers.insert(
            beat.worker.id.clone(),
            (WorkerStatus::of(beat, from_millis(now)), until),
        );
        Ok(beat
            .running
            .iter()
            .filter(|r| st.cancels.get(&r.id).is_some_and(|until| *until > now))
            .map(|r| r.id)
            .collect())
    }

    async fn remove_worker(&self, worker_id: &str) -> Result<bool> {
        Ok(self.lock().workers.remove(worker_id).is_some())
    }

    async fn workers(&self) -> Result<Vec<WorkerStatus>> {
        let now = self.now();
        let st = self.lock();
        let mut live: Vec<WorkerStatus> = st
            .workers
            .values()
            .filter(|(_, until)| *until > now)
            .map(|(w, _)| w.clone())
            .collect();
        live.sort_by(|a, b| (a.info.started_at, &a.info.id).cmp(&(b.info.started_at, &b.info.id)));
        Ok(live)
    }

    async fn get_progress(&self, id: TaskId) -> Result<Option<Vec<u8>>> {
        Ok(self.lock().progress.get(&id).cloned())
    }
}
