//! The acker: writes outcomes to the store in batches.
//!
//! Executions send their [`Pending`] outcome over an unbounded channel (sending never waits, so
//! an execution's permit is free as soon as its outcome is handed over). The acker collects
//! them and calls [`Storage::complete`] once per batch: when `max` are pending, or `max_delay`
//! after the first of the batch arrived.
//!
//! A batch the store does not take (it is down) is kept and retried with capped backoff, never
//! dropped; the renewer keeps its leases alive meanwhile. A refused batch is split for the next
//! try, so one completion the store cannot take holds back nothing else (see `Acker::flush`).
//! The acker gives up on an outcome only at shutdown, when told to, or when the store refuses
//! it alone, and its dead-lettering too, while it takes other writes: those tasks are delivered
//! again once their leases run out (at-least-once).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use queue_core::{AckStatus, Completion, FailureKind, Lease, Outcome, Storage, TaskFailure};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::inflight::{InFlight, Pending};
use queue_core::{Event, Events};

/// Times one completion may be refused on its own, while the store takes other writes, before
/// its task is dead-lettered instead.
pub(crate) const REFUSALS_BEFORE_DEAD: u32 = 3;

/// What replaces a completion the store keeps refusing: the task is dead-lettered with the
/// store's reason, without its result or follow-ups (whatever made the store refuse it).
fn refused_outcome(completion: &Completion, err: &queue_core::Error) -> Completion {
    let message = format!("the store refused this task's outcome: {err}");
    let message: String = message.chars().take(1000).collect();
    Completion::new(
        completion.lease,
        Outcome::Dead {
            failure: TaskFailure::new(FailureKind::Error, message, 0),
        },
        completion.result_ttl,
    )
}

/// See the [module docs](self).
pub(crate) struct Acker {
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) inflight: Arc<InFlight>,
    pub(crate) events: Events,
    pub(crate) max: usize,
    pub(crate) max_delay: Duration,
    /// The lease duration (a probe of whether the store takes writes renews leases).
    pub(crate) lease: Duration,
    /// Cancelled at shutdown when the final flush has taken too long.
    pub(crate) give_up: CancellationToken,
}

impl Acker {
    /// Runs until every sender is gone and the last batch is written (or given up). Returns
    /// how many outcomes could not be written.
    pub(crate) async fn run(self, mut rx: mpsc::UnboundedReceiver<Pending>) -> u64 {
        let mut unwritten = 0;
        // `max` may be far larger than any batch ever gets (a batch flushed only by time).
        let mut batch = Vec::with_capacity(self.max.min(1024));
        loop {
            let Some(first) = rx.recv().await else { break };
            batch.push(first);
            let deadline = queue_core::clock::deadline(self.max_delay);
            let mut closed = false;
            while batch.len() < self.max {
                // Take whatever is already queued before looking at the clock.
                match rx.try_recv() {
                    Ok(p) => {
                        batch.push(p);
                        continue;
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        closed = true;
                        break;
                    }
                    Err(mpsc::error::TryRecvError::Empty) => {}
                }
                tokio::select! {
                    biased;
                    next = rx.recv() => match next {
                        Some(p) => batch.push(p),
                        None => {
                            closed = true;
                            break;
                        }
                    },
                    () = tokio::time::sleep_until(deadline) => break,
                }
            }
            unwritten += self.flush(std::mem::take(&mut batch)).await;
            if closed {
                break;
            }
        }
        unwritten
    }

    /// Writes one batch, retrying while the store fails. Returns how many outcomes were not
    /// written when told to give up (at shutdown).
    ///
    /// A batch the store refuses is split in halves for the next attempt, down to single
    /// completions, so one completion the store cannot take (say, a result over Redis's
    /// `proto-max-bulk-len`) does not hold back the others. A single completion refused
    /// [`REFUSALS_BEFORE_DEAD`] times while the store takes other writes (other completions
    /// of the batch, or else the renewal of its own lease) is replaced by a dead-lettering of
    /// its task with the store's reason ([`refused_outcome`]); if that is refused as many
    /// times, the outcome is given up (logged as an error) and its lease let go, so it holds
    /// back no later batch: the task is delivered again when the lease runs out.
    async fn flush(&self, batch: Vec<Pending>) -> u64 {
        let leases: Vec<Lease> = batch.iter().map(|p| p.completion.lease).collect();
        self.inflight.set_acking(&leases, true);
        let mut groups = vec![batch];
        let mut refusals: HashMap<Lease, u32> = HashMap::new();
        let mut backoff = Backoff::store();
        loop {
            let mut failed = Vec::new();
            let mut last_error = None;
            let mut written_any = false;
            for group in groups {
                let completions: Vec<Completion> =
                    group.iter().map(|p| p.completion.clone()).collect();
                match self.storage.complete(completions).await {
                    Ok(statuses) => {
                        self.settle(group, &statuses);
                        written_any = true;
                    }
                    Err(err) => {
                        last_error = Some(err);
                        failed.push(group);
                    }
                }
            }
            let Some(err) = last_error else { return 0 };
            let outcomes: usize = failed.iter().map(Vec::len).sum();
            if self.give_up.is_cancelled() {
                tracing::error!(
                    error = %err,
                    outcomes,
                    "could not write task outcomes before shutdown; those tasks will be \
                     delivered again when their leases run out"
                );
                let left: Vec<Lease> = failed
                    .iter()
                    .flatten()
                    .map(|p| p.completion.lease)
                    .collect();
                self.inflight.set_acking(&left, false);
                return outcomes as u64;
            }
            // A completion refused on its own while the store takes writes is the
            // completion's fault, not the store's. Without another completion written, the
            // probe is a write too (renewing the refused leases): a store that answers reads
            // but takes no writes (a read-only replica after a failover, out of memory) is an
            // outage, and a finished task's outcome must wait for it to end.
            let store_answers = written_any || self.takes_writes(&failed).await;
            groups = Vec::with_capacity(failed.len() * 2);
            for mut group in failed {
                if group.len() > 1 {
                    let half = group.split_off(group.len() / 2);
                    groups.push(group);
                    groups.push(half);
                    continue;
                }
                if store_answers {
                    let lease = group[0].completion.lease;
                    let count = refusals.entry(lease).or_insert(0);
                    *count += 1;
                    if *count == REFUSALS_BEFORE_DEAD {
                        tracing::error!(
                            id = %lease.id,
                            error = %err,
                            "the store refuses this task's outcome while it takes others; \
                             dead-lettering the task with the reason"
                        );
                        group[0].completion = refused_outcome(&group[0].completion, &err);
                    } else if *count == 2 * REFUSALS_BEFORE_DEAD {
                        // Its dead-lettering is refused too: the task's row itself cannot be
                        // written. Kept, it would hold every later outcome behind it; its
                        // lease is let go instead, and the task is delivered again when the
                        // lease runs out (its delivery limit ends it in the end).
                        tracing::error!(
                            id = %lease.id,
                            error = %err,
                            "the store refuses this task's outcome and its dead-lettering \
                             while it takes others; giving up on it: the task will be \
                             delivered again when its lease runs out"
                        );
                        self.inflight.remove(&lease);
                        continue;
                    }
                }
                groups.push(group);
            }
            if groups.is_empty() {
                // What was left has been given up on.
                return 0;
            }
            if written_any {
                // Progress: go on with the rest at once.
                backoff.reset();
                continue;
            }
            let wait = backoff.next_delay();
            tracing::warn!(
                error = %err,
                outcomes,
                retry_in = ?wait,
                "could not write task outcomes; keeping them and retrying"
            );
            let waiting: Vec<Lease> = groups
                .iter()
                .flatten()
                .map(|p| p.completion.lease)
                .collect();
            self.inflight.set_acking(&waiting, false);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.give_up.cancelled() => {}
            }
            self.inflight.set_acking(&waiting, true);
        }
    }

    /// Whether the store takes writes now: the leases of the completions refused on their own
    /// can be renewed. `false` if there are none.
    async fn takes_writes(&self, failed: &[Vec<Pending>]) -> bool {
        let alone: Vec<Lease> = failed
            .iter()
            .filter(|g| g.len() == 1)
            .map(|g| g[0].completion.lease)
            .collect();
        !alone.is_empty() && self.storage.extend(&alone, self.lease).await.is_ok()
    }

    /// Forgets the written leases and reports each outcome (or its staleness).
    fn settle(&self, group: Vec<Pending>, statuses: &[AckStatus]) {
        let (leases, events): (Vec<Lease>, Vec<Event>) = group
            .into_iter()
            .map(|p| (p.completion.lease, p.event))
            .unzip();
        let leases = &leases[..];
        if statuses.len() != leases.len() {
            tracing::error!(
                sent = leases.len(),
                answered = statuses.len(),
                "the store answered a batch of completions with the wrong number of statuses"
            );
        }
        for (i, (lease, event)) in leases.iter().zip(events).enumerate() {
            let reported_stale = self.inflight.remove(lease).unwrap_or(false);
            match statuses.get(i) {
                Some(AckStatus::Acked) => self.events.emit(event),
                Some(AckStatus::Stale) if !reported_stale => {
                    tracing::warn!(
                        id = %lease.id,
                        task = %event.task(),
                        "the store refused a task's outcome: its lease had run out and the \
                         task may have run again elsewhere"
                    );
                    self.events.emit(Event::Stale {
                        id: lease.id,
                        task: event.task().to_owned(),
                    });
                }
                Some(AckStatus::Stale) | None => {}
            }
        }
    }
}
