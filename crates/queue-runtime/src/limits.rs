//! Store-wide locks and rate limits of tasks, checked by the executor before a task runs.
//!
//! * **Rate limits** (`#[task(rate_limit = "100/s")]`): one [`Storage::rate_limit`] hit on key
//!   `rate:{task}` per execution, shared by every process on the store. Over the limit, the
//!   task goes back to the queue (`Outcome::Defer`) to run when the window has room: it is
//!   neither failed nor dropped, and no attempt is counted.
//! * **Locks** (`#[task(lock = "name")]`): the store lock `name` is taken for the delivery
//!   (owner `{task id}:{lease token}`) with the lease as its TTL, renewed with the lease while
//!   the task runs, and released after it. A task that finds the lock taken is deferred by a
//!   short backoff. A crashed holder blocks others for at most one lease.
//!
//! The rate limit is checked first, so a task waiting for its lock never holds it; a deferred
//! task may still have used a rate-limit hit, so the limit is an upper bound.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use queue_core::task::RateLimit;
use queue_core::{Envelope, Lease, Registry, Storage};

use crate::inflight::InFlight;
use crate::outcome::random_unit;

/// The lock and rate limit of one task kind.
#[derive(Clone, Debug, Default)]
pub(crate) struct Limits {
    pub(crate) lock: Option<String>,
    pub(crate) rate: Option<RateLimit>,
}

/// The limits of every registered kind that has one, read once at build time.
pub(crate) fn limits_of(registry: &Registry) -> HashMap<&'static str, Limits> {
    registry
        .names()
        .into_iter()
        .filter_map(|name| {
            let opts = registry.get(name)?.options();
            let limits = Limits {
                lock: opts.lock,
                rate: opts.rate_limit,
            };
            (limits.lock.is_some() || limits.rate.is_some()).then_some((name, limits))
        })
        .collect()
}

/// Why a task may not run now.
#[derive(Debug)]
pub(crate) enum Blocked {
    /// Over its rate limit until `eta`.
    RateLimited { eta: DateTime<Utc> },
    /// Its lock is held elsewhere; try again at `eta`.
    Locked { lock: String, eta: DateTime<Utc> },
    /// The store could not answer; try again at `eta`.
    Unavailable { eta: DateTime<Utc> },
}

/// A store lock held by a running task: renewed by the renewer through the in-flight table,
/// released by [`HeldLock::release`] or, if the execution is aborted, on drop.
pub(crate) struct HeldLock {
    storage: Arc<dyn Storage>,
    inflight: Arc<InFlight>,
    lease: Lease,
    name: String,
    owner: String,
    released: bool,
}

impl HeldLock {
    /// Releases the lock now.
    pub(crate) async fn release(mut self) {
        self.inflight.set_lock(&self.lease, None);
        if let Err(err) = self.storage.release_lock(&self.name, &self.owner).await {
            tracing::warn!(lock = %self.name, error = %err,
                "could not release a task's lock; it lapses with its TTL (one lease)");
        }
        // Only now: a release cut off on its way (the execution aborted at the end of a
        // shutdown's grace period) is sent again from `drop`.
        self.released = true;
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        self.inflight.set_lock(&self.lease, None);
        let (storage, name, owner) = (
            self.storage.clone(),
            std::mem::take(&mut self.name),
            std::mem::take(&mut self.owner),
        );
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = storage.release_lock(&name, &owner).await;
            });
        }
    }
}

/// Checks the rate limit, then takes the lock. `Ok(None)`: no lock to hold.
pub(crate) async fn admit(
    limits: &Limits,
    storage: &Arc<dyn Storage>,
    inflight: &Arc<InFlight>,
    env: &Envelope,
    lease: Lease,
    lease_for: Duration,
    now: DateTime<Utc>,
) -> Result<Option<HeldLock>, Blocked> {
    if let Some(rate) = limits.rate {
        let key = format!("rate:{}", env.task);
        match storage.rate_limit(&key, rate.limit, rate.per).await {
            Ok(d) if d.allowed => {}
            Ok(d) => {
                // A little jitter so deferred tasks do not all come back at the same instant.
                let jitter = rate.per.mul_f64(0.05 * random_unit());
                let eta = queue_core::clock::after(
                    now,
                    d.retry_after
                        .max(Duration::from_millis(1))
                        .saturating_add(jitter),
                );
                return Err(Blocked::RateLimited { eta });
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not check a rate limit; trying later");
                return Err(Blocked::Unavailable {
                    eta: now + backoff(env, now),
                });
            }
        }
    }
    let Some(name) = &limits.lock else {
        return Ok(None);
    };
    let owner = format!("{}:{:x}", lease.id, lease.token.0);
    match storage.acquire_lock(name, &owner, lease_for).await {
        Ok(true) => {
            inflight.set_lock(&lease, Some((name.clone(), owner.clone())));
            Ok(Some(HeldLock {
                storage: storage.clone(),
                inflight: inflight.clone(),
                lease,
                name: name.clone(),
                owner,
                released: false,
            }))
        }
        Ok(false) => Err(Blocked::Locked {
            lock: name.clone(),
            eta: now + backoff(env, now),
        }),
        Err(err) => {
            tracing::warn!(lock = %name, error = %err, "could not take a task's lock; trying later");
            Err(Blocked::Unavailable {
                eta: now + backoff(env, now),
            })
        }
    }
}

/// How long a blocked task waits: a tenth of how long it has waited so far, between 50 ms and
/// 1 s, with jitter, so short waits end fast and long ones cost little.
fn backoff(env: &Envelope, now: DateTime<Utc>) -> TimeDelta {
    let waited = (now - env.enqueued_at).num_milliseconds().max(0);
    let base = (waited / 10).clamp(50, 1_000);
    let jitter = (base as f64 * 0.2 * random_unit()) as i64;
    TimeDelta::milliseconds(base + jitter)
}
