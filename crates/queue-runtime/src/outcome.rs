//! Pure decisions: what an attempt's result means for the task (retry, dead-letter, drop), which
//! follow-ups to enqueue with it, and which event reports it.
//!
//! Nothing here touches the store or the clock; the executor passes `now` in.

use std::time::Duration;

use chrono::{DateTime, Utc};
use queue_core::{
    Envelope, FailureKind, Outcome, StoredResult, TaskError, TaskErrorKind, TaskFailure,
};

use queue_core::Event;

/// How a failed attempt failed, before it is judged.
#[derive(Debug)]
pub(crate) enum Failed {
    /// It returned an error.
    Err(TaskError),
    /// It panicked (the message of the payload).
    Panicked(String),
    /// It ran past its time limit.
    TimedOut(Duration),
    /// An operator canceled it while it ran.
    Canceled,
}

/// The number of this attempt, from 1.
pub(crate) fn attempt_number(env: &Envelope) -> u32 {
    env.attempt.saturating_add(1)
}

/// The outcome of a failed attempt, and the failure it records.
///
/// `env.attempt` counts the failed attempts before this one, so this is attempt
/// `env.attempt + 1`, and another is allowed while `env.attempt + 1 <= max_retries`. Errors,
/// panics and timeouts are retried by the task's policy; `RetryAfter(d)` is retried after `d`
/// (while retries are left); `Cancel` drops the task; `Fatal` dead-letters it. `unit` is a random
/// number in `0.0..1.0` for the policy's jitter.
pub(crate) fn judge_failure(
    env: &Envelope,
    failed: Failed,
    now: DateTime<Utc>,
    unit: f64,
) -> (Outcome, TaskFailure) {
    let number = attempt_number(env);
    let (kind, message, retry) = match failed {
        Failed::Err(err) => {
            let retry = match err.kind() {
                TaskErrorKind::RetryAfter(d) => Some(Some(d)),
                TaskErrorKind::Cancel | TaskErrorKind::Fatal => None,
                // `Retry` and kinds added later retry by policy.
                _ => Some(None),
            };
            let kind = if err.kind() == TaskErrorKind::Cancel {
                FailureKind::Canceled
            } else {
                FailureKind::Error
            };
            (kind, err.message().to_owned(), retry)
        }
        Failed::Panicked(message) => (FailureKind::Panic, message, Some(None)),
        Failed::TimedOut(limit) => (
            FailureKind::Timeout,
            format!("ran past its timeout of {limit:?}"),
            Some(None),
        ),
        Failed::Canceled => (
            FailureKind::Canceled,
            "canceled by an operator while it ran".to_owned(),
            None,
        ),
    };
    let failure = TaskFailure::new(kind, message, number);
    if kind == FailureKind::Canceled {
        return (
            Outcome::Drop {
                failure: failure.clone(),
            },
            failure,
        );
    }
    let outcome = match retry {
        Some(after) if env.retry.should_retry(number) => {
            let delay = after.unwrap_or_else(|| env.retry.delay_with_jitter(number, unit));
            Outcome::Retry {
                eta: queue_core::clock::after(now, delay),
                failure: failure.clone(),
            }
        }
        _ => Outcome::Dead {
            failure: failure.clone(),
        },
    };
    (outcome, failure)
}

/// The follow-up envelopes to enqueue with `outcome`: on success those with
/// `when = Success`, on a final failure (dead or dropped) those with `when = Failure`; none for
/// a retry or a deferral. Arguments are filled by [`Envelope::follow_ups_for`].
pub(crate) fn follow_ups(env: &Envelope, outcome: &Outcome, now: DateTime<Utc>) -> Vec<Envelope> {
    let Some(result) = StoredResult::of(outcome) else {
        return Vec::new();
    };
    env.follow_ups_for(&result, now).unwrap_or_else(|e| {
        tracing::error!(id = %env.id, "could not build the follow-ups of a task; none are enqueued: {e}");
        Vec::new()
    })
}

/// The event that reports `outcome` once it is written.
pub(crate) fn outcome_event(env: &Envelope, outcome: &Outcome, duration: Duration) -> Event {
    let (id, task) = (env.id, env.task.clone());
    match outcome {
        Outcome::Success { .. } => Event::Complete { id, task, duration },
        Outcome::Retry { eta, .. } => Event::Retrying {
            id,
            task,
            eta: *eta,
        },
        Outcome::Defer { .. } => Event::Released { id, task },
        Outcome::Dead { failure } if failure.kind == FailureKind::UnknownTask => {
            Event::UnknownTask { id, task }
        }
        Outcome::Dead { failure } => Event::DeadLettered {
            id,
            task,
            failure: failure.clone(),
        },
        Outcome::Drop { failure } => match failure.kind {
            FailureKind::Revoked => Event::Revoked { id, task },
            FailureKind::Expired => Event::Expired { id, task },
            _ => Event::Canceled {
                id,
                task,
                failure: failure.clone(),
            },
        },
    }
}

/// A random number in `0.0..1.0` for retry jitter.
pub(crate) fn random_unit() -> f64 {
    let (bits, _) = uuid::Uuid::new_v4().as_u64_pair();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use queue_core::clock::to_delta;
    use queue_core::{
        from_msgpack, to_msgpack, FollowUp, FollowUpInput, FollowUpWhen, RetryPolicy,
    };

    fn env(retries: u32, attempt: u32) -> Envelope {
        let mut e = Envelope::new("q", "t", to_msgpack(&()).unwrap(), Utc::now());
        e.retry = RetryPolicy::fixed(retries, Duration::from_secs(10));
        e.attempt = attempt;
        e
    }

    #[test]
    fn errors_retry_while_retries_are_left() {
        let now = Utc::now();
        let (o, f) = judge_failure(&env(2, 0), Failed::Err(TaskError::msg("x")), now, 0.5);
        assert_eq!(f.attempts, 1);
        assert!(
            matches!(o, Outcome::Retry { eta, .. } if eta == now + to_delta(Duration::from_secs(10)))
        );
        let (o, _) = judge_failure(&env(2, 1), Failed::Panicked("p".into()), now, 0.5);
        assert!(matches!(o, Outcome::Retry { .. }));
        let (o, f) = judge_failure(
            &env(2, 2),
            Failed::TimedOut(Duration::from_secs(1)),
            now,
            0.5,
        );
        assert_eq!((f.kind, f.attempts), (FailureKind::Timeout, 3));
        assert!(matches!(o, Outcome::Dead { .. }));
        let (o, _) = judge_failure(&env(0, 0), Failed::Err(TaskError::msg("x")), now, 0.5);
        assert!(matches!(o, Outcome::Dead { .. }));
    }

    #[test]
    fn retry_after_cancel_and_fatal() {
        let now = Utc::now();
        let d = Duration::from_secs(3);
        let (o, _) = judge_failure(
            &env(1, 0),
            Failed::Err(TaskError::retry_after(d, "w")),
            now,
            0.0,
        );
        assert!(matches!(o, Outcome::Retry { eta, .. } if eta == now + to_delta(d)));
        let (o, _) = judge_failure(
            &env(1, 1),
            Failed::Err(TaskError::retry_after(d, "w")),
            now,
            0.0,
        );
        assert!(matches!(o, Outcome::Dead { .. }));
        let (o, f) = judge_failure(&env(5, 0), Failed::Err(TaskError::cancel("c")), now, 0.0);
        assert_eq!(f.kind, FailureKind::Canceled);
        assert!(matches!(o, Outcome::Drop { .. }));
        let (o, f) = judge_failure(&env(5, 0), Failed::Err(TaskError::fatal("f")), now, 0.0);
        assert_eq!(f.kind, FailureKind::Error);
        assert!(matches!(o, Outcome::Dead { .. }));
    }

    #[test]
    fn follow_ups_get_the_output_or_the_failure() {
        let now = Utc::now();
        let mut e = env(0, 0);
        let fixed_args = to_msgpack(&(7,)).unwrap();
        for (when, input) in [
            (FollowUpWhen::Success, FollowUpInput::Output),
            (FollowUpWhen::Success, FollowUpInput::Fixed),
            (FollowUpWhen::Failure, FollowUpInput::Failure),
        ] {
            let mut next = Envelope::new("q", "next", fixed_args.clone(), now);
            next.enqueued_at = DateTime::<Utc>::MIN_UTC;
            e.follow_ups.push(FollowUp {
                when,
                input,
                envelope: next,
            });
        }
        let ok = Outcome::Success {
            result: to_msgpack(&"out").unwrap(),
        };
        let on_ok = follow_ups(&e, &ok, now);
        assert_eq!(on_ok.len(), 2);
        let (s,): (String,) = from_msgpack(&on_ok[0].args).unwrap();
        assert_eq!(s, "out");
        assert_eq!(on_ok[1].args, fixed_args);
        assert!(on_ok.iter().all(|f| f.enqueued_at == now));

        let failure = TaskFailure::new(FailureKind::Error, "boom", 1);
        let dead = Outcome::Dead {
            failure: failure.clone(),
        };
        let on_dead = follow_ups(&e, &dead, now);
        assert_eq!(on_dead.len(), 1);
        let (f,): (TaskFailure,) = from_msgpack(&on_dead[0].args).unwrap();
        assert_eq!(f, failure);

        let retry = Outcome::Retry { eta: now, failure };
        assert!(follow_ups(&e, &retry, now).is_empty());
    }

    #[test]
    fn random_units_are_in_range() {
        for _ in 0..1000 {
            let u = random_unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
