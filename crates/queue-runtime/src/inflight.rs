//! The leases a consumer holds, from fetch until the store has their outcome.
//!
//! A task is *in flight* from the moment it is fetched until its outcome is acknowledged by
//! the store: first while it runs, then while its outcome waits in the acker's batch. The
//! renewer extends every in-flight lease, so a task whose outcome is slow to be written is not
//! redelivered meanwhile.
//!
//! A [`Slot`] is one execution's claim: it holds the concurrency permit and, when the execution
//! ends, hands the outcome to the acker and gives the permit back. A slot dropped without an
//! outcome hands the task back to the queue instead (`Outcome::Defer` with `eta = now`), so
//! another worker picks it up at once — when the execution was aborted by a graceful shutdown
//! (after [`Stats::releasing`] is set) or the runtime itself panicked. When the whole consumer
//! is dropped (a crash), nothing more is written: the leases run out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use queue_core::blocking::BlockingThreads;
use queue_core::{
    CancellationToken, Clock, Completion, FailureKind, Lease, Outcome, ProgressSlot, RunningTask,
    TaskFailure, TaskId,
};
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit};
use tokio_util::task::TaskTracker;

use queue_core::Event;

/// How long after a panic outside its body a task is tried again.
const PANIC_RETRY_DELAY: std::time::Duration = std::time::Duration::from_millis(500);

/// An outcome on its way to the store, with the event to send once it is written.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) completion: Completion,
    pub(crate) event: Event,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Running, or waiting in the acker's batch.
    Open,
    /// Its outcome is being written right now.
    Acking,
}

#[derive(Debug)]
struct Entry {
    task: String,
    queue: String,
    /// When it was fetched.
    since: DateTime<Utc>,
    /// Fired when an operator cancels the task (learned from a heartbeat).
    cancel: CancellationToken,
    /// The progress the task reports, sent with the next heartbeat.
    progress: ProgressSlot,
    phase: Phase,
    /// The store said the lease is gone; reported once, no longer renewed.
    stale: bool,
    /// A store lock (name, owner) the running task holds; renewed with the lease.
    lock: Option<(String, String)>,
}

/// Every lease this consumer holds.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    map: Mutex<HashMap<Lease, Entry>>,
    /// Told each time an outcome is written and its lease forgotten.
    written: Notify,
}

impl InFlight {
    fn lock(&self) -> MutexGuard<'_, HashMap<Lease, Entry>> {
        // The map stays consistent across a panic elsewhere (each call is one short update).
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn insert(
        &self,
        lease: Lease,
        task: &str,
        queue: &str,
        since: DateTime<Utc>,
    ) -> (CancellationToken, ProgressSlot) {
        let (cancel, progress) = (CancellationToken::new(), ProgressSlot::default());
        self.lock().insert(
            lease,
            Entry {
                task: task.to_owned(),
                queue: queue.to_owned(),
                since,
                cancel: cancel.clone(),
                progress: progress.clone(),
                phase: Phase::Open,
                stale: false,
                lock: None,
            },
        );
        (cancel, progress)
    }

    /// The tasks running or waiting to run (not those whose outcome is being written), for a
    /// heartbeat, and the progress they reported since the last one.
    pub(crate) fn report(&self) -> (Vec<RunningTask>, Vec<(Lease, Vec<u8>)>) {
        let map = self.lock();
        let mut running = Vec::with_capacity(map.len());
        let mut progress = Vec::new();
        for (lease, e) in map.iter().filter(|(_, e)| !e.stale) {
            running.push(RunningTask {
                id: lease.id,
                task: e.task.clone(),
                queue: e.queue.clone(),
                since: e.since,
            });
            if let Some(bytes) = e.progress.take() {
                progress.push((*lease, bytes));
            }
        }
        running.sort_by_key(|r| (r.since, r.id));
        (running, progress)
    }

    /// Puts back progress a heartbeat could not deliver, unless the task reported newer.
    pub(crate) fn restore_progress(&self, unsent: Vec<(Lease, Vec<u8>)>) {
        let map = self.lock();
        for (lease, bytes) in unsent {
            if let Some(e) = map.get(&lease) {
                e.progress.restore(bytes);
            }
        }
    }

    /// Fires the cancellation of the running tasks among `ids`. Returns how many it fired.
    pub(crate) fn cancel(&self, ids: &[TaskId]) -> usize {
        let map = self.lock();
        let mut fired = 0;
        for (lease, e) in map.iter() {
            if ids.contains(&lease.id) && e.phase == Phase::Open && !e.cancel.is_cancelled() {
                e.cancel.cancel();
                fired += 1;
            }
        }
        fired
    }

    /// How many leases are held.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// The leases to renew: all that the store has not reported stale.
    pub(crate) fn renewable(&self) -> Vec<Lease> {
        self.lock()
            .iter()
            .filter(|(_, e)| !e.stale)
            .map(|(l, _)| *l)
            .collect()
    }

    /// The store locks held by running tasks, as `(name, owner)`.
    pub(crate) fn held_locks(&self) -> Vec<(String, String)> {
        self.lock()
            .values()
            .filter_map(|e| e.lock.clone())
            .collect()
    }

    /// Records (or, with `None`, forgets) the store lock the task of `lease` holds.
    pub(crate) fn set_lock(&self, lease: &Lease, lock: Option<(String, String)>) {
        if let Some(e) = self.lock().get_mut(lease) {
            e.lock = lock;
        }
    }

    /// Marks leases whose outcomes are being written (a renewal racing the write may be told
    /// the lease is gone; that is not a lost lease).
    pub(crate) fn set_acking(&self, leases: &[Lease], acking: bool) {
        let mut map = self.lock();
        for lease in leases {
            if let Some(e) = map.get_mut(lease) {
                e.phase = if acking { Phase::Acking } else { Phase::Open };
            }
        }
    }

    /// Records that the store refused to renew `lease`. Returns the task name if this is news
    /// worth reporting (not already reported, and not explained by a completion in progress).
    pub(crate) fn mark_stale(&self, lease: &Lease) -> Option<String> {
        let mut map = self.lock();
        let e = map.get_mut(lease)?;
        if e.stale || e.phase == Phase::Acking {
            return None;
        }
        e.stale = true;
        Some(e.task.clone())
    }

    /// Forgets a lease once its outcome is written (or refused). Returns whether it had
    /// already been reported stale.
    pub(crate) fn remove(&self, lease: &Lease) -> Option<bool> {
        let removed = self.lock().remove(lease).map(|e| e.stale);
        self.written.notify_waiters();
        removed
    }

    /// Returns once fewer than `limit` leases are held (the acker forgets one as its outcome
    /// is written).
    pub(crate) async fn wait_below(&self, limit: usize) {
        loop {
            let written = self.written.notified();
            tokio::pin!(written);
            written.as_mut().enable();
            if self.len() < limit {
                return;
            }
            written.await;
        }
    }
}

/// Counters of what the consumer handed to the acker.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Executions that ended with an outcome.
    pub(crate) finished: AtomicU64,
    /// Executions stopped without an outcome and handed back to the queue.
    pub(crate) released: AtomicU64,
    /// Set by a graceful shutdown before it aborts running executions: their slots then hand
    /// their tasks back as they are dropped.
    pub(crate) releasing: AtomicBool,
    /// Finished executions per minute and queue, for the heartbeat.
    pub(crate) throughput: crate::throughput::Throughput,
}

/// What a slot needs to hand its outcome over. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Handoff {
    pub(crate) inflight: Arc<InFlight>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) tx: mpsc::UnboundedSender<Pending>,
    /// Told each time an execution gives its lease permit back (the fetcher may wait for it).
    pub(crate) freed: Arc<Notify>,
    /// Hand-backs waiting for a plain `fn`'s thread to return (a shutdown waits for them).
    pub(crate) lingering: TaskTracker,
}

/// One execution's claim on a lease and a concurrency permit. See the [module docs](self).
pub(crate) struct Slot {
    lease: Lease,
    task: String,
    queue: String,
    cancel: CancellationToken,
    progress: ProgressSlot,
    permit: Option<OwnedSemaphorePermit>,
    handoff: Handoff,
    armed: bool,
    /// The blocking-pool threads the task body started: the slot is not given up while one
    /// runs.
    threads: BlockingThreads,
    /// Whether a drop during a shutdown may wait for [`threads`](Self::threads) in the
    /// background (false for the slot that does that waiting).
    linger: bool,
}

impl Slot {
    /// Records `lease` as in flight and claims it for one execution holding `permit`.
    pub(crate) fn new(
        lease: Lease,
        task: &str,
        queue: &str,
        permit: Option<OwnedSemaphorePermit>,
        handoff: Handoff,
    ) -> Self {
        let since = handoff.clock.now();
        let (cancel, progress) = handoff.inflight.insert(lease, task, queue, since);
        Self {
            lease,
            task: task.to_owned(),
            queue: queue.to_owned(),
            cancel,
            progress,
            permit,
            handoff,
            armed: true,
            threads: BlockingThreads::new(),
            linger: true,
        }
    }

    /// The blocking-pool threads of the task body, to run the body in
    /// ([`BlockingThreads::scope`]) and to wait for.
    pub(crate) fn threads(&self) -> &BlockingThreads {
        &self.threads
    }

    /// The lease this slot holds.
    pub(crate) fn lease(&self) -> Lease {
        self.lease
    }

    /// Fired when an operator cancels the task.
    pub(crate) fn cancellation(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Where the task reports its progress.
    pub(crate) fn progress(&self) -> ProgressSlot {
        self.progress.clone()
    }

    /// Hands the outcome to the acker and frees the permit. The lease stays in flight (and
    /// renewed) until the acker has written the outcome.
    pub(crate) fn finish(mut self, completion: Completion, event: Event) {
        self.armed = false;
        self.handoff.stats.finished.fetch_add(1, Ordering::Relaxed);
        if !matches!(completion.outcome, Outcome::Defer { .. }) {
            let ok = matches!(completion.outcome, Outcome::Success { .. });
            let now = self.handoff.clock.now();
            self.handoff.stats.throughput.record(&self.queue, now, ok);
        }
        if self.handoff.tx.send(Pending { completion, event }).is_err() {
            // Only when the whole consumer is being torn down: the lease runs out and the task
            // is delivered again.
            tracing::debug!(id = %self.lease.id, "acker gone; outcome not written");
        }
        drop(self.permit.take());
        self.handoff.freed.notify_one();
    }
}

impl Slot {
    /// Hands the task back to the queue without running it (`Defer`, `eta = now`).
    pub(crate) fn release(mut self) {
        self.send_release();
    }

    /// A panic outside the task body (a hook, building the outcome): the task is tried again
    /// in [`PANIC_RETRY_DELAY`] as a failed attempt that keeps its delivery counted, so a
    /// task that always makes the runtime panic reaches the dead-letter queue at its delivery
    /// limit instead of being handed back forever.
    fn send_panic_retry(&mut self) {
        self.armed = false;
        let now = self.handoff.clock.now();
        self.handoff
            .stats
            .throughput
            .record(&self.queue, now, false);
        let eta = queue_core::clock::after(now, PANIC_RETRY_DELAY);
        let failure = TaskFailure::new(
            FailureKind::Panic,
            "the runtime panicked while handling this task (a hook or its outcome)",
            0,
        );
        let completion = Completion::new(self.lease, Outcome::Retry { eta, failure }, None);
        let (id, task) = (self.lease.id, std::mem::take(&mut self.task));
        let event = Event::Released { id, task };
        let _ = self.handoff.tx.send(Pending { completion, event });
        drop(self.permit.take());
        self.handoff.freed.notify_one();
    }

    /// A shutdown stopped waiting for the task, but its plain `fn` still runs on a blocking
    /// thread: the lease stays in flight (renewed), with its lock and permit, and the task is
    /// handed back only once the thread returns, so no second copy starts beside it.
    fn linger_until_threads_return(&mut self) {
        self.armed = false;
        let rest = Slot {
            lease: self.lease,
            task: std::mem::take(&mut self.task),
            queue: std::mem::take(&mut self.queue),
            cancel: self.cancel.clone(),
            progress: self.progress.clone(),
            permit: self.permit.take(),
            handoff: self.handoff.clone(),
            armed: true,
            threads: self.threads.clone(),
            linger: false,
        };
        tracing::warn!(id = %rest.lease.id, task = %rest.task,
            "the task's plain fn still runs on a blocking thread; its lease and lock are kept until it returns");
        let tracker = self.handoff.lingering.clone();
        if tokio::runtime::Handle::try_current().is_ok() {
            tracker.spawn(async move {
                rest.threads.idle().await;
                rest.release();
            });
        }
        // Without a runtime the process is going away with its threads: `rest` is dropped
        // here and hands the task back at once.
    }

    fn send_release(&mut self) {
        self.armed = false;
        self.handoff.stats.released.fetch_add(1, Ordering::Relaxed);
        let eta = self.handoff.clock.now();
        let completion = Completion::new(self.lease, Outcome::Defer { eta }, None);
        let (id, task) = (self.lease.id, std::mem::take(&mut self.task));
        let event = if self.handoff.stats.releasing.load(Ordering::SeqCst) {
            Event::Interrupted { id, task }
        } else {
            Event::Released { id, task }
        };
        let _ = self.handoff.tx.send(Pending { completion, event });
        drop(self.permit.take());
        self.handoff.freed.notify_one();
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if std::thread::panicking() {
            tracing::error!(id = %self.lease.id, task = %self.task,
                "the runtime panicked while handling a task (a hook, or the outcome); it counts as a failed attempt");
            self.send_panic_retry();
        } else if self.handoff.stats.releasing.load(Ordering::SeqCst) {
            if self.linger && self.threads.running() > 0 {
                self.linger_until_threads_return();
            } else {
                self.send_release();
            }
        }
        // Otherwise the consumer is being dropped (a crash): write nothing; the lease runs out.
    }
}
