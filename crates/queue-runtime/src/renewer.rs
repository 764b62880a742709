//! Background upkeep: lease renewal, and requeueing / purging for the whole store.
//!
//! * The **renewer** extends every lease this consumer holds (running tasks and outcomes not
//!   yet written) in one [`Storage::extend`] call about every `lease / 3`; a call that fails
//!   is tried again after a short backoff (50 ms doubling up to `lease / 12`), so a store
//!   back from an outage shorter than the lease has the leases renewed before they run
//!   out. A lease the store reports stale is reported once
//!   ([`Event::Stale`](crate::Event::Stale)) and no longer renewed: another worker may now
//!   own the task. The store locks held by running tasks (`#[task(lock = ...)]`) are renewed
//!   at the same time, one call per lock.
//! * **Housekeeping** makes the tasks of crashed workers deliverable again
//!   ([`Storage::requeue_expired`], every `lease / 2`) and removes expired results, locks and
//!   counters ([`Storage::purge_expired`], every minute). Backends may do the first in `fetch`
//!   too; both calls are cheap and bounded.

use std::sync::Arc;
use std::time::Duration;

use queue_core::{AckStatus, Storage};
use tokio::time::{interval_at, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::inflight::InFlight;
use queue_core::{Event, Events};

/// Most tasks requeued or results purged in one housekeeping call.
const HOUSEKEEPING_BATCH: usize = 1000;

/// The first wait before a failed renewal is tried again (doubling up to a quarter of the
/// renewal period).
const RETRY_MIN: Duration = Duration::from_millis(50);

/// How often expired results are purged.
const PURGE_EVERY: Duration = Duration::from_secs(60);

fn every(period: Duration) -> tokio::time::Interval {
    let period = period.max(Duration::from_millis(10));
    let mut tick = interval_at(queue_core::clock::deadline(period), period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick
}

/// Renews in-flight leases until `stop` is cancelled.
pub(crate) async fn renew(
    storage: Arc<dyn Storage>,
    inflight: Arc<InFlight>,
    events: Events,
    lease: Duration,
    period: Duration,
    stop: CancellationToken,
) {
    let mut tick = every(period);
    // A renewal that fails is tried again soon, not a period later: after two missed
    // renewals the next regular one would fall when the leases run out.
    let mut retry = Backoff::new(RETRY_MIN, (period / 4).max(RETRY_MIN));
    let mut failing = false;
    loop {
        let again = failing.then(|| retry.next_delay());
        tokio::select! {
            () = stop.cancelled() => return,
            () = next_renewal(&mut tick, again) => {}
        }
        renew_locks(storage.as_ref(), &inflight, lease).await;
        let leases = inflight.renewable();
        if leases.is_empty() {
            failing = false;
            continue;
        }
        let statuses = match storage.extend(&leases, lease).await {
            Ok(statuses) => statuses,
            Err(err) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(error = %err, leases = leases.len(),
                        "could not renew leases; retrying until the store answers");
                } else {
                    tracing::debug!(error = %err, "could not renew leases; retrying");
                }
                continue;
            }
        };
        if std::mem::take(&mut failing) {
            tracing::info!(leases = leases.len(), "leases renewed again");
            retry.reset();
            // The next renewal a period from now, not at once for the ticks missed meanwhile.
            tick.reset();
        }
        if statuses.len() != leases.len() {
            tracing::error!(
                sent = leases.len(),
                answered = statuses.len(),
                "the store answered a lease renewal with the wrong number of statuses"
            );
        }
        for (l, status) in leases.iter().zip(statuses) {
            if status != AckStatus::Stale {
                continue;
            }
            if let Some(task) = inflight.mark_stale(l) {
                tracing::warn!(id = %l.id, %task,
                    "lost the lease of a running task; it may be delivered to another worker");
                events.emit(Event::Stale { id: l.id, task });
            }
        }
    }
}

/// Waits for the next regular renewal, or `again` after a failed one.
async fn next_renewal(tick: &mut tokio::time::Interval, again: Option<Duration>) {
    match again {
        Some(wait) => tokio::time::sleep(wait).await,
        None => {
            tick.tick().await;
        }
    }
}

/// Renews the store locks of running tasks (`#[task(lock = ...)]`) for another `ttl`: one
/// call per lock. A lock found taken by someone else (it lapsed, say after a long store
/// outage) is logged; the task keeps running.
async fn renew_locks(storage: &dyn Storage, inflight: &InFlight, ttl: Duration) {
    for (name, owner) in inflight.held_locks() {
        match storage.acquire_lock(&name, &owner, ttl).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(lock = %name,
                "a running task lost its lock (it lapsed and was taken by another task)"),
            Err(err) => tracing::warn!(lock = %name, error = %err,
                "could not renew a running task's lock; retrying at the next renewal"),
        }
    }
}

/// Requeues expired leases of `queues` and purges expired results until `stop` is cancelled.
pub(crate) async fn housekeeping(
    storage: Arc<dyn Storage>,
    queues: Vec<String>,
    requeue_period: Duration,
    stop: CancellationToken,
) {
    let mut requeue = every(requeue_period);
    let mut purge = every(PURGE_EVERY);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = requeue.tick() => {
                for queue in &queues {
                    match storage.requeue_expired(queue, HOUSEKEEPING_BATCH).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(queue = %queue, tasks = n,
                            "requeued tasks whose lease ran out (a worker stopped without finishing them)"),
                        Err(err) => tracing::warn!(error = %err, "could not requeue expired leases"),
                    }
                }
            }
            _ = purge.tick() => {
                match storage.purge_expired(HOUSEKEEPING_BATCH).await {
                    Ok(n) => tracing::debug!(purged = n, "purged expired results"),
                    Err(err) => tracing::warn!(error = %err, "could not purge expired results"),
                }
            }
        }
    }
}
