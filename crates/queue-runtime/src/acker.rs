//! The acker: writes outcomes to the store in batches.
//!
//! Executions send their [`Pending`] outcome over an unbounded channel (sending never waits, so
//! an execution's permit is free as soon as its outcome is handed over). The acker collects
//! them and calls [`Storage::complete`] once per batch: when `max` are pending, or `max_delay`
//! after the first of the batch arrived.
//!
//! A batch the store does not take (it is down) is kept and retried with capped backoff, never
//! dropped; the renewer keeps its leases alive meanwhile. Only at shutdown does the acker give
//! up, when told to: the tasks whose outcomes were not written are then delivered again once
//! their leases run out (at-least-once).

use std::sync::Arc;
use std::time::Duration;

use queue_core::{AckStatus, Completion, Lease, Storage};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::inflight::{InFlight, Pending};
use queue_core::{Event, Events};

/// See the [module docs](self).
pub(crate) struct Acker {
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) inflight: Arc<InFlight>,
    pub(crate) events: Events,
    pub(crate) max: usize,
    pub(crate) max_delay: Duration,
    /// Cancelled at shutdown when the final flush has taken too long.
    pub(crate) give_up: CancellationToken,
}

impl Acker {
    /// Runs until every sender is gone and the last batch is written (or given up). Returns
    /// how many outcomes could not be written.
    pub(crate) async fn run(self, mut rx: mpsc::UnboundedReceiver<Pending>) -> u64 {
        let mut unwritten = 0;
        let mut batch = Vec::with_capacity(self.max);
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
    /// written (only when told to give up).
    async fn flush(&self, batch: Vec<Pending>) -> u64 {
        let leases: Vec<Lease> = batch.iter().map(|p| p.completion.lease).collect();
        let (completions, events): (Vec<Completion>, Vec<Event>) =
            batch.into_iter().map(|p| (p.completion, p.event)).unzip();
        self.inflight.set_acking(&leases, true);
        let mut backoff = Backoff::store();
        loop {
            match self.storage.complete(completions.clone()).await {
                Ok(statuses) => {
                    self.settle(&leases, events, &statuses);
                    return 0;
                }
                Err(err) if self.give_up.is_cancelled() => {
                    tracing::error!(
                        error = %err,
                        outcomes = completions.len(),
                        "could not write task outcomes before shutdown; those tasks will be \
                         delivered again when their leases run out"
                    );
                    self.inflight.set_acking(&leases, false);
                    return completions.len() as u64;
                }
                Err(err) => {
                    let wait = backoff.next_delay();
                    tracing::warn!(
                        error = %err,
                        outcomes = completions.len(),
                        retry_in = ?wait,
                        "could not write task outcomes; keeping them and retrying"
                    );
                    self.inflight.set_acking(&leases, false);
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = self.give_up.cancelled() => {}
                    }
                    self.inflight.set_acking(&leases, true);
                }
            }
        }
    }

    /// Forgets the written leases and reports each outcome (or its staleness).
    fn settle(&self, leases: &[Lease], events: Vec<Event>, statuses: &[AckStatus]) {
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
