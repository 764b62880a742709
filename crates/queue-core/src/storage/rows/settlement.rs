//! [`Settlement`]: a completion as a store writes it.

use std::time::Duration;

use crate::clock::{duration_millis, to_millis};
use crate::storage::{Completion, Lease, Outcome, StoredResult};
use crate::{Envelope, Result, TaskFailure};

use super::NewTask;

/// How a delivery ends, as a store applies it to the task's row.
#[derive(Clone, Debug, PartialEq)]
pub enum Ending {
    /// Success or drop: the row goes; `result` (an encoded [`StoredResult`]: the output or the
    /// failure) is kept as the task's result.
    Finish {
        /// The encoded result.
        result: Vec<u8>,
    },
    /// Dead: the row moves to the dead-letter queue; the failure is also its result.
    Dead {
        /// Why.
        failure: TaskFailure,
    },
    /// Retry (`retry`: counts an attempt) or defer (uncounts the delivery): the row goes back
    /// to the queue, due at `eta`.
    Later {
        /// When it is due again, in milliseconds.
        eta: i64,
        /// `true` for a retry, `false` for a deferral.
        retry: bool,
    },
}

/// A [`Completion`] checked and encoded before a store writes it: what happens to the row, the
/// follow-up tasks to insert with it, and how long its result is kept.
///
/// # Examples
///
/// ```
/// use queue_core::storage::rows::{Ending, NewTask, Settlement};
/// use queue_core::{Completion, Lease, LeaseToken, Outcome, StoredResult, TaskId};
///
/// let lease = Lease { id: TaskId::new(), token: LeaseToken(7) };
/// let done = Completion::new(lease, Outcome::Success { result: vec![0xc0] }, None);
/// let s = Settlement::new(done, NewTask::from_envelope)?;
/// let Ending::Finish { result } = &s.ending else { unreachable!() };
/// assert_eq!(StoredResult::decode(result)?, StoredResult::Success(vec![0xc0]));
/// # Ok::<(), queue_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Settlement {
    /// The delivery it completes.
    pub lease: Lease,
    /// What happens to the row.
    pub ending: Ending,
    /// Tasks to insert with the outcome, in order (none for a retry or a deferral).
    pub follow_ups: Vec<NewTask>,
    /// How long the result is kept; `None` = forever.
    pub result_ttl: Option<Duration>,
}

impl Settlement {
    /// Encodes `c`'s result and turns its follow-ups into rows with `follow_up` (the store's
    /// [`NewTask::from_envelope`], plus its own checks). The follow-ups of a retry or a
    /// deferral are left out, as [`Completion::follow_ups`] says.
    ///
    /// # Errors
    ///
    /// The first error of `follow_up`; an encoding error.
    pub fn new(c: Completion, follow_up: impl FnMut(Envelope) -> Result<NewTask>) -> Result<Self> {
        let (ending, follows) = match c.outcome {
            Outcome::Success { result } => (finish(StoredResult::Success(result))?, true),
            Outcome::Drop { failure } => (finish(StoredResult::Failure(failure))?, true),
            Outcome::Dead { failure } => (Ending::Dead { failure }, true),
            Outcome::Retry { eta, .. } => (later(to_millis(eta), true), false),
            Outcome::Defer { eta } => (later(to_millis(eta), false), false),
        };
        let follow_ups = if follows {
            c.follow_ups
                .into_iter()
                .map(follow_up)
                .collect::<Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        Ok(Self {
            lease: c.lease,
            ending,
            follow_ups,
            result_ttl: c.result_ttl,
        })
    }

    /// [`new`](Self::new) for each completion of `batch`, in order.
    ///
    /// # Errors
    ///
    /// The first error of one of them.
    pub fn all(
        batch: Vec<Completion>,
        mut follow_up: impl FnMut(Envelope) -> Result<NewTask>,
    ) -> Result<Vec<Self>> {
        batch
            .into_iter()
            .map(|c| Self::new(c, &mut follow_up))
            .collect()
    }

    /// A dead-lettering the store decides itself (an envelope that does not decode, a poison
    /// task): no follow-ups, the failure kept as the result for `result_ttl`.
    pub fn bury(lease: Lease, failure: TaskFailure, result_ttl: Option<Duration>) -> Self {
        Self {
            lease,
            ending: Ending::Dead { failure },
            follow_ups: Vec::new(),
            result_ttl,
        }
    }

    /// When the result expires if it is written at `now` (milliseconds); `None` = never.
    pub fn result_expires(&self, now: i64) -> Option<i64> {
        self.result_ttl
            .map(|ttl| now.saturating_add(duration_millis(ttl)))
    }
}

fn finish(result: StoredResult) -> Result<Ending> {
    Ok(Ending::Finish {
        result: result.encode()?,
    })
}

fn later(eta: i64, retry: bool) -> Ending {
    Ending::Later { eta, retry }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::{FailureKind, LeaseToken, TaskId};

    fn lease() -> Lease {
        Lease {
            id: TaskId::new(),
            token: LeaseToken(9),
        }
    }

    fn failure() -> TaskFailure {
        TaskFailure::new(FailureKind::Error, "boom", 1)
    }

    /// `outcome` with one follow-up and a result kept for 5 s.
    fn settle(outcome: Outcome) -> Settlement {
        let mut c = Completion::new(lease(), outcome, Some(Duration::from_secs(5)));
        c.follow_ups
            .push(Envelope::new("q", "next", vec![0xc0], Utc::now()));
        Settlement::new(c, NewTask::from_envelope).unwrap()
    }

    fn decoded(ending: &Ending) -> StoredResult {
        match ending {
            Ending::Finish { result } => StoredResult::decode(result).unwrap(),
            other => panic!("not a finish: {other:?}"),
        }
    }

    #[test]
    fn success_and_drop_finish_with_their_result_and_follow_ups() {
        let s = settle(Outcome::Success { result: vec![0x01] });
        assert_eq!(decoded(&s.ending), StoredResult::Success(vec![0x01]));
        assert_eq!(s.follow_ups.len(), 1);
        assert_eq!(s.result_expires(1_000), Some(6_000));

        let s = settle(Outcome::Drop { failure: failure() });
        assert_eq!(decoded(&s.ending), StoredResult::Failure(failure()));
        assert_eq!(s.follow_ups.len(), 1);
    }

    #[test]
    fn dead_keeps_the_failure_and_the_follow_ups() {
        let s = settle(Outcome::Dead { failure: failure() });
        assert_eq!(s.ending, Ending::Dead { failure: failure() });
        assert_eq!(s.follow_ups[0].task, "next");
    }

    #[test]
    fn retry_and_defer_come_back_later_without_follow_ups() {
        let eta = Utc.timestamp_millis_opt(42_000).unwrap();
        let s = settle(Outcome::Retry {
            eta,
            failure: failure(),
        });
        assert_eq!(
            s.ending,
            Ending::Later {
                eta: 42_000,
                retry: true
            }
        );
        assert!(s.follow_ups.is_empty());

        let s = settle(Outcome::Defer { eta });
        assert_eq!(
            s.ending,
            Ending::Later {
                eta: 42_000,
                retry: false
            }
        );
        assert!(s.follow_ups.is_empty());
    }

    #[test]
    fn a_bad_follow_up_refuses_the_completion_and_its_batch() {
        let mut c = Completion::new(lease(), Outcome::Success { result: vec![] }, None);
        c.follow_ups
            .push(Envelope::new("", "next", vec![0xc0], Utc::now()));
        assert!(Settlement::new(c.clone(), NewTask::from_envelope).is_err());
        let good = Completion::new(lease(), Outcome::Success { result: vec![] }, None);
        assert!(Settlement::all(vec![good.clone(), c], NewTask::from_envelope).is_err());
        let settled = Settlement::all(vec![good.clone(), good], NewTask::from_envelope).unwrap();
        assert_eq!(settled.len(), 2);
    }

    #[test]
    fn a_burial_keeps_its_failure_for_its_ttl() {
        let s = Settlement::bury(lease(), failure(), None);
        assert_eq!(s.ending, Ending::Dead { failure: failure() });
        assert_eq!(s.result_expires(1_000), None);
        assert!(s.follow_ups.is_empty());
    }
}
