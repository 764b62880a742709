//! One execution: a fetched task in, an outcome handed to the acker out.
//!
//! Each execution runs in its own Tokio task (spawned by the fetcher into a `JoinSet`). Before
//! running it checks revocation (decided by the fetcher, one store call per batch), expiry, that
//! the task kind is registered and that the arguments decode. The task body runs under
//! `catch_unwind` and the envelope's timeout, so a panic or an overrun fails that task only.
//! Nothing here sleeps for a retry: a retry is an eta written to the store.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use queue_core::{
    chord_inputs, panic_message, CancellationToken, ChordInputs, Clock, Completion, Delivery,
    Envelope, FailureKind, Outcome, Registry, Storage, TaskContext, TaskError, TaskFailure,
};
use tokio::time::Instant;

use crate::hooks::Hooks;
use crate::inflight::{InFlight, Slot};
use crate::limits::{admit, Blocked, Limits};
use crate::outcome::{
    attempt_number, follow_ups, judge_failure, outcome_event, random_unit, Failed,
};
use crate::pace::Pace;
use queue_core::{Event, Events};

/// What every execution shares.
pub(crate) struct Executor {
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) events: Events,
    pub(crate) result_ttl: Option<Duration>,
    /// Results larger than this fail their task ([`ConsumerBuilder::max_result_bytes`](crate::ConsumerBuilder::max_result_bytes)).
    pub(crate) max_result_bytes: usize,
    pub(crate) inflight: Arc<InFlight>,
    /// The lease duration, also the TTL of task locks.
    pub(crate) lease: Duration,
    /// Locks and rate limits by task name.
    pub(crate) limits: Arc<HashMap<&'static str, Limits>>,
    pub(crate) hooks: Arc<Hooks>,
    /// Durations of the tasks that ran, for leasing ahead.
    pub(crate) pace: Arc<Pace>,
}

/// What an execution decided, and the event that reports it if not the outcome's own.
struct Ran {
    outcome: Outcome,
    duration: Duration,
    event: Option<Event>,
}

impl From<(Outcome, Duration)> for Ran {
    fn from((outcome, duration): (Outcome, Duration)) -> Self {
        Self {
            outcome,
            duration,
            event: None,
        }
    }
}

impl Executor {
    /// Runs one delivery to its outcome and hands the outcome to the acker through `slot`.
    pub(crate) async fn execute(self: Arc<Self>, delivery: Delivery, revoked: bool, slot: Slot) {
        let env = delivery.envelope;
        let Ran {
            outcome,
            duration,
            event,
        } = self.run(&env, &slot, revoked).await;
        let outcome = match outcome {
            Outcome::Success { result } if result.len() > self.max_result_bytes => Outcome::Dead {
                failure: TaskFailure::new(
                    FailureKind::Error,
                    format!(
                        "its result is {} bytes, over the limit of {} (ConsumerBuilder::max_result_bytes)",
                        result.len(),
                        self.max_result_bytes
                    ),
                    env.attempt.saturating_add(1),
                ),
            },
            other => other,
        };
        if duration > Duration::ZERO {
            self.pace.record(duration);
        }
        // An operator's cancel ends the task and its workflow: no error handler runs.
        let canceled = slot.cancellation().is_cancelled()
            && matches!(&outcome, Outcome::Drop { failure } if failure.kind == FailureKind::Canceled);
        let follow = if canceled {
            Vec::new()
        } else {
            follow_ups(&env, &outcome, self.clock.now())
        };
        let event = event.unwrap_or_else(|| outcome_event(&env, &outcome, duration));
        match &outcome {
            Outcome::Success { .. } => tracing::debug!(?duration, "task complete"),
            Outcome::Retry { eta, .. } => tracing::info!(%eta, "task will be retried"),
            Outcome::Dead { failure } => tracing::warn!(%failure, "task dead-lettered"),
            Outcome::Drop { failure } => tracing::info!(%failure, "task dropped"),
            Outcome::Defer { .. } => {}
        }
        let mut completion = Completion::new(slot.lease(), outcome, self.result_ttl);
        completion.follow_ups = follow;
        slot.finish(completion, event);
    }

    /// Decides the outcome: the checks before running, then the run itself.
    async fn run(&self, env: &Envelope, slot: &Slot, revoked: bool) -> Ran {
        let lease = slot.lease();
        let not_run = |kind, message: String| {
            let failure = TaskFailure::new(kind, message, env.attempt);
            let outcome = match kind {
                FailureKind::Revoked | FailureKind::Expired => Outcome::Drop { failure },
                _ => Outcome::Dead { failure },
            };
            Ran::from((outcome, Duration::ZERO))
        };
        if revoked {
            return not_run(FailureKind::Revoked, "revoked before it ran".into());
        }
        let now = self.clock.now();
        if let Some(expires_at) = env.expires_at.filter(|at| *at < now) {
            return not_run(
                FailureKind::Expired,
                format!("expired at {expires_at} before it started"),
            );
        }
        let Some(kind) = self.registry.get(&env.task) else {
            return not_run(
                FailureKind::UnknownTask,
                format!(
                    "no task named `{}` is registered with this consumer (registered: {}); \
                     register it, then requeue the task from the dead-letter queue",
                    env.task,
                    self.registry.names().join(", ")
                ),
            );
        };
        let ctx = TaskContext {
            id: env.id,
            task: kind.name(),
            queue: env.queue.clone(),
            attempt: attempt_number(env),
            retries_left: env.retry.max_retries.saturating_sub(env.attempt),
            deliveries: env.deliveries,
            enqueued_at: env.enqueued_at,
            cancellation: slot.cancellation(),
            progress_slot: slot.progress(),
        };
        let chord_args;
        let mut args = env.args.as_slice();
        if !env.chord_members.is_empty() {
            match chord_inputs(self.storage.as_ref(), env).await {
                Ok(ChordInputs::Ready(ready)) => {
                    chord_args = ready;
                    args = &chord_args;
                }
                Ok(ChordInputs::Failed(failure)) => {
                    return (Outcome::Drop { failure }, Duration::ZERO).into()
                }
                // A member's result is gone: waiting would never end.
                Ok(ChordInputs::Lost(failure)) => {
                    return (Outcome::Dead { failure }, Duration::ZERO).into()
                }
                Ok(ChordInputs::Waiting) => {
                    let eta = now + chord_backoff(env, now);
                    return (Outcome::Defer { eta }, Duration::ZERO).into();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not read a chord's member results; trying again later");
                    let eta = now + chord_backoff(env, now);
                    return (Outcome::Defer { eta }, Duration::ZERO).into();
                }
            }
        }
        let held = match self.limits.get(kind.name()) {
            None => None,
            Some(limits) => {
                match admit(
                    limits,
                    &self.storage,
                    &self.inflight,
                    env,
                    lease,
                    self.lease,
                    now,
                )
                .await
                {
                    Ok(held) => held,
                    Err(blocked) => return self.blocked(env, blocked),
                }
            }
        };
        if let Err(err) = self.hooks.before(&ctx).await {
            if let Some(held) = held {
                held.release().await;
            }
            let failure = TaskFailure::new(
                FailureKind::Canceled,
                format!("canceled by a pre_execute hook: {}", err.message()),
                env.attempt,
            );
            let outcome = Outcome::Drop { failure };
            self.hooks.after(&ctx, &outcome);
            return (outcome, Duration::ZERO).into();
        }
        let post_ctx = (!self.hooks.post.is_empty()).then(|| ctx.clone());
        let body = match kind.start(ctx, args) {
            Ok(body) => body,
            Err(e) => return not_run(FailureKind::Undecodable, e.to_string()),
        };
        self.events.emit(Event::Executing {
            id: env.id,
            task: env.task.clone(),
            attempt: attempt_number(env),
        });
        tracing::debug!("task executing");
        let started = Instant::now();
        let threads = slot.threads();
        let ran = guarded(threads.scope(body), env.timeout, slot.cancellation()).await;
        let duration = started.elapsed();
        if threads.running() > 0 {
            // A plain `fn` outlives its timeout or cancel: keep the lease, the lock and the
            // slot until it returns, so no second copy runs beside it.
            tracing::warn!("the task's plain fn still runs on a blocking thread after it was stopped; its lease and lock are kept until it returns");
            threads.idle().await;
        }
        if let Some(held) = held {
            held.release().await;
        }
        let outcome = match ran {
            Ok(result) => Outcome::Success { result },
            Err(failed) => {
                let timed_out = match failed {
                    Failed::TimedOut(limit) => Some(limit),
                    _ => None,
                };
                let (outcome, failure) =
                    judge_failure(env, failed, self.clock.now(), random_unit());
                tracing::warn!(%failure, "task attempt failed");
                self.events.emit(Event::Error {
                    id: env.id,
                    task: env.task.clone(),
                    failure,
                });
                if let Some(timeout) = timed_out {
                    self.events.emit(Event::Timeout {
                        id: env.id,
                        task: env.task.clone(),
                        timeout,
                    });
                }
                outcome
            }
        };
        if let Some(ctx) = post_ctx {
            self.hooks.after(&ctx, &outcome);
        }
        (outcome, duration).into()
    }

    /// A task that may not run now goes back to the queue, reported by its own event.
    fn blocked(&self, env: &Envelope, blocked: Blocked) -> Ran {
        let (id, task) = (env.id, env.task.clone());
        let (eta, event) = match blocked {
            Blocked::RateLimited { eta } => {
                tracing::debug!(%eta, "task over its rate limit; deferred");
                (eta, Some(Event::RateLimited { id, task, eta }))
            }
            Blocked::Locked { lock, eta } => {
                tracing::debug!(%lock, %eta, "task's lock is taken; deferred");
                (
                    eta,
                    Some(Event::Locked {
                        id,
                        task,
                        lock,
                        eta,
                    }),
                )
            }
            Blocked::Unavailable { eta } => (eta, None),
        };
        Ran {
            outcome: Outcome::Defer { eta },
            duration: Duration::ZERO,
            event,
        }
    }
}

/// How long a chord callback waits before it looks at its members again: a tenth of how long it
/// has waited so far, between 50 ms and 2 s, so short chords finish fast and long ones cost little.
fn chord_backoff(env: &Envelope, now: chrono::DateTime<chrono::Utc>) -> chrono::TimeDelta {
    let waited = (now - env.enqueued_at).num_milliseconds().max(0);
    chrono::TimeDelta::milliseconds((waited / 10).clamp(50, 2_000))
}

/// Runs a task body, turning a panic, a timeout or a cancellation into a failure. A
/// cancellation drops the body (an async task stops at its next `.await`; a plain `fn` on the
/// blocking pool runs on, and should check its token: its caller waits for its thread).
async fn guarded(
    body: impl Future<Output = Result<Vec<u8>, TaskError>>,
    timeout: Option<Duration>,
    cancel: CancellationToken,
) -> Result<Vec<u8>, Failed> {
    let caught = AssertUnwindSafe(body).catch_unwind();
    let limited = async {
        match timeout {
            Some(limit) => tokio::time::timeout(limit, caught)
                .await
                .map_err(|_| Failed::TimedOut(limit)),
            None => Ok(caught.await),
        }
    };
    let ran = tokio::select! {
        biased;
        () = cancel.cancelled() => return Err(Failed::Canceled),
        ran = limited => ran?,
    };
    match ran {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(err)) => Err(Failed::Err(err)),
        Err(panic) => Err(Failed::Panicked(panic_message(&*panic))),
    }
}
