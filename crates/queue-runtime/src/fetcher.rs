//! The fetch loop: leases tasks from the store and starts their executions.
//!
//! Two semaphores bound the work: `leases` (one permit per task this consumer holds, running or
//! waiting: `workers + prefetch`) and `runs` (one permit per worker). The fetcher waits for a
//! free lease permit (never for the store while it holds all it may), takes as many as it may
//! hold now — `workers` plus as many ahead as the tasks are short, see the `pace` module — and
//! asks the store for at most that many tasks. Unused permits go back at once. While more than
//! half of the tasks it may lease ahead are still waiting for a worker, it leases nothing: it
//! waits until at least that half is free and then leases for all of it in one fetch. When the store
//! has nothing, the fetcher waits on [`Storage::wait_for_work`] (at most `poll_interval`)
//! instead of looping. Store errors are logged and retried after a capped exponential backoff
//! (50 ms to 5 s).
//!
//! A third bound covers the outcomes not yet written: an execution's permits go back when it
//! hands its outcome to the acker, but its lease is held (and renewed) until the store takes
//! the outcome. When the store writes outcomes slower than tasks end, the fetcher stops
//! leasing once `workers + prefetch + 4 × ack_batch` leases are held, and waits for the acker.
//!
//! Each fetched task runs in its own Tokio task (see the `executor` module) once it has a run
//! permit; a task still waiting for one when the consumer stops is handed back unstarted. Both
//! permits are returned when its outcome is handed to the acker, and the lease is renewed until
//! the outcome is written.

use std::sync::Arc;
use std::time::Duration;

use queue_core::{Delivery, Storage, TaskId};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::builder::Config;
use crate::executor::Executor;
use crate::inflight::{Handoff, Slot};
use crate::outcome::attempt_number;
use crate::pace::Pace;
use crate::picker::Picker;
use crate::shutdown::log_join;

/// The fetch loop. See the [module docs](self).
pub(crate) struct Fetcher {
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) config: Arc<Config>,
    /// One permit per task held (running or waiting to run): `workers + prefetch`.
    pub(crate) leases: Arc<Semaphore>,
    /// One permit per worker.
    pub(crate) runs: Arc<Semaphore>,
    /// Told when an execution gives its lease permit back.
    pub(crate) freed: Arc<Notify>,
    pub(crate) pace: Arc<Pace>,
    /// Which queues each fetch asks.
    pub(crate) picker: Picker,
    pub(crate) tasks: JoinSet<()>,
    pub(crate) executor: Arc<Executor>,
    pub(crate) handoff: Handoff,
    pub(crate) stop: CancellationToken,
    /// Cancelled by a graceful shutdown once it has started counting: tasks leased ahead and
    /// not yet started then go back to the store.
    pub(crate) hand_back: CancellationToken,
}

impl Fetcher {
    /// Fetches and starts tasks until `stop` is cancelled.
    pub(crate) async fn run(&mut self) {
        let mut backoff = Backoff::store();
        loop {
            while let Some(joined) = self.tasks.try_join_next() {
                log_join(joined);
            }
            // Wait for a task to be allowed, not for the store.
            let first = tokio::select! {
                biased;
                () = self.stop.cancelled() => return,
                permit = self.leases.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return, // never closed
                },
            };
            // Outcomes the store has not taken yet keep their leases (renewed until written):
            // while the store writes them slower than the tasks run, stop leasing more, or the
            // consumer would hold (and renew) an ever larger share of the queue.
            let limit = self.unwritten_limit();
            if self.handoff.inflight.len() >= limit {
                drop(first);
                tokio::select! {
                    () = self.stop.cancelled() => return,
                    () = self.handoff.inflight.wait_below(limit) => {}
                }
                continue;
            }
            let (allowed, smallest) = self.allowed();
            if allowed < smallest {
                // Holding all it may while the tasks are this long, or enough tasks leased
                // ahead to keep the workers busy while the next fetch is on its way: wait for
                // one to end.
                drop(first);
                tokio::select! {
                    () = self.stop.cancelled() => return,
                    () = self.freed.notified() => {}
                }
                continue;
            }
            let mut permits = vec![first];
            while permits.len() < allowed {
                match self.leases.clone().try_acquire_owned() {
                    Ok(permit) => permits.push(permit),
                    Err(_) => break,
                }
            }

            let fetched = self.fetch(permits.len()).await;
            let deliveries = match fetched {
                Ok(deliveries) => deliveries,
                Err(err) => {
                    drop(permits);
                    let wait = backoff.next_delay();
                    tracing::warn!(error = %err, retry_in = ?wait, "could not fetch tasks");
                    if self.pause(wait).await {
                        return;
                    }
                    continue;
                }
            };
            if deliveries.is_empty() {
                drop(permits);
                let waited = tokio::select! {
                    () = self.stop.cancelled() => return,
                    waited = self.wait_for_work() => waited,
                };
                match waited {
                    Ok(()) => backoff.reset(),
                    Err(err) => {
                        let wait = backoff.next_delay();
                        tracing::warn!(error = %err, retry_in = ?wait, "could not wait for work");
                        if self.pause(wait).await {
                            return;
                        }
                    }
                }
                continue;
            }
            match self.dispatch(deliveries, permits).await {
                true => backoff.reset(),
                false => {
                    if self.pause(backoff.next_delay()).await {
                        return;
                    }
                }
            }
        }
    }

    /// The most leases held, running or waiting for their outcome to be written, before the
    /// fetcher waits for the acker: the leases it may hold for running tasks plus four
    /// acknowledgement batches.
    fn unwritten_limit(&self) -> usize {
        let config = &self.config;
        (config.workers + config.prefetch()).saturating_add(config.ack_batch.saturating_mul(4))
    }

    /// How many tasks may be leased now, counting the one lease permit just taken (not yet a
    /// task) as free.
    ///
    /// Also returns the smallest batch worth a fetch: half the tasks it may lease ahead (at
    /// least 1). Fewer free means that more than half of those are still leased and waiting
    /// for a worker, enough to keep the workers busy while a fetch is on its way, so the
    /// fetcher waits for more tasks to end and then leases for all of them at once. Without
    /// this, short tasks made it alternate between a full batch and a batch of the one or two
    /// permits freed during that fetch (Redis, no-op tasks: 191, 1, 191, 1, …), and the
    /// workers ran out of tasks during each full batch's round trip. Tasks too long to lease
    /// ahead (see the `pace` module) are fetched as soon as a worker is free, as before; and
    /// whenever a worker may be idle with no task waiting, at least `ahead` are free, so the
    /// fetcher never waits then.
    fn allowed(&self) -> (usize, usize) {
        let workers = self.config.workers;
        let max = self.config.prefetch();
        let held = (workers + max).saturating_sub(self.leases.available_permits() + 1);
        let ahead = self.pace.ahead(workers, max);
        ((workers + ahead).saturating_sub(held), (ahead / 2).max(1))
    }

    /// Leases up to `n` tasks from the consumer's queues: as the picker plans, then what a
    /// queue could not give from the others (see the `picker` module). An error is returned
    /// only when nothing was fetched.
    async fn fetch(&mut self, n: usize) -> queue_core::Result<Vec<Delivery>> {
        let (queues, lease) = (&self.config.queues, self.config.lease);
        if queues.len() == 1 {
            return self.storage.fetch(&queues[0].0, n, lease).await;
        }
        let plan = self.picker.plan(n);
        let mut got = Vec::with_capacity(n);
        let mut short = vec![false; queues.len()];
        let mut error = None;
        for (i, asked) in plan.iter().enumerate().filter(|(_, k)| **k > 0) {
            match self.storage.fetch(&queues[i].0, *asked, lease).await {
                Ok(d) => {
                    short[i] = d.len() < *asked;
                    got.extend(d);
                }
                Err(e) => {
                    short[i] = true;
                    error = Some(e);
                }
            }
        }
        for i in self.picker.fallback_order() {
            let wanted = n.saturating_sub(got.len());
            if wanted == 0 {
                break;
            }
            if short[i] {
                continue;
            }
            match self.storage.fetch(&queues[i].0, wanted, lease).await {
                Ok(d) => got.extend(d),
                Err(e) => error = Some(e),
            }
        }
        match error {
            Some(e) if got.is_empty() => Err(e),
            _ => Ok(got),
        }
    }

    /// Waits until any of the consumer's queues may have work, or the poll interval passes.
    async fn wait_for_work(&self) -> queue_core::Result<()> {
        let poll = self.config.poll_interval;
        let waits = self
            .config
            .queues
            .iter()
            .map(|(q, _)| self.storage.wait_for_work(q, poll));
        futures::future::select_all(waits).await.0
    }

    /// Sleeps for `wait`; returns `true` if stopped meanwhile.
    async fn pause(&self, wait: Duration) -> bool {
        tokio::select! {
            () = self.stop.cancelled() => true,
            () = tokio::time::sleep(wait) => false,
        }
    }

    /// Checks the batch for revocations (one store call) and starts one execution per task.
    /// Returns `false` if the revocation check failed (the tasks were handed back).
    async fn dispatch(
        &mut self,
        deliveries: Vec<Delivery>,
        permits: Vec<OwnedSemaphorePermit>,
    ) -> bool {
        let mut permits = permits.into_iter();
        let mut slots: Vec<(Delivery, Slot)> = Vec::with_capacity(deliveries.len());
        for d in deliveries {
            let permit = permits.next();
            let has_permit = permit.is_some();
            let slot = Slot::new(
                d.lease,
                &d.envelope.task,
                &d.envelope.queue,
                permit,
                self.handoff.clone(),
            );
            if has_permit {
                slots.push((d, slot));
            } else {
                // The store returned more than asked: hand the surplus back at once.
                tracing::warn!(id = %d.lease.id, "the store returned more tasks than asked for");
                slot.release();
            }
        }
        drop(permits); // fetched fewer than asked: the rest are free again

        let asked: Vec<(TaskId, &str)> = slots
            .iter()
            .map(|(d, _)| (d.envelope.id, d.envelope.task.as_str()))
            .collect();
        let revoked = match self.storage.check_revoked(&asked).await {
            Ok(revoked) if revoked.len() == asked.len() => revoked,
            Ok(revoked) => {
                tracing::error!(
                    asked = asked.len(),
                    answered = revoked.len(),
                    "the store answered a revocation check with the wrong number of answers; \
                     handing the tasks back"
                );
                slots.into_iter().for_each(|(_, slot)| slot.release());
                return false;
            }
            Err(err) => {
                tracing::warn!(error = %err, tasks = asked.len(),
                    "could not check revocations; handing the tasks back");
                slots.into_iter().for_each(|(_, slot)| slot.release());
                return false;
            }
        };

        for ((delivery, slot), revoked) in slots.drain(..).zip(revoked) {
            let env = &delivery.envelope;
            let span = tracing::info_span!(
                "task",
                id = %env.id,
                task = %env.task,
                attempt = attempt_number(env),
                queue = %env.queue,
            );
            queue_core::trace::set_parent(&span, &env.trace);
            let executor = self.executor.clone();
            let runs = self.runs.clone();
            let (stop, hand_back) = (self.stop.clone(), self.hand_back.clone());
            let run = async move {
                let permit = tokio::select! {
                    biased;
                    () = stop.cancelled() => None,
                    permit = runs.acquire_owned() => permit.ok(),
                };
                if permit.is_none() || stop.is_cancelled() {
                    // Leased ahead and not started before the consumer began to stop: hand it
                    // back for another consumer (counted in the shutdown report).
                    hand_back.cancelled().await;
                    slot.release();
                    return;
                }
                // Boxed: the execution's state machine is large, and this future is moved a
                // few times on its way into its Tokio task (measured: memcpy was 7% of the
                // runtime's CPU with no-op tasks).
                Box::pin(executor.execute(delivery, revoked, slot)).await;
                drop(permit);
            };
            self.tasks.spawn(run.instrument(span));
        }
        true
    }
}
