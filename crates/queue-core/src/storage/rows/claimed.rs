//! [`ClaimedRow`]: a row a fetch has just leased, checked before it is handed out.

use crate::clock::from_millis;
use crate::storage::{Delivery, Lease};
use crate::{Envelope, Error, FailureKind, LeaseToken, Result, TaskFailure, TaskId};

/// A row a fetch has just leased, as the claim returned it: the counters the store keeps in
/// columns (they are newer than the copies inside the envelope) and the new lease.
///
/// [`deliver`](Self::deliver) checks it as the [delivery contract](crate::storage) asks: an
/// envelope that does not decode (or is newer than this build) and a task delivered past its
/// [`delivery_limit`](Envelope::delivery_limit) go to the dead-letter queue instead.
///
/// # Examples
///
/// ```
/// use chrono::Utc;
/// use queue_core::storage::rows::ClaimedRow;
/// use queue_core::{Envelope, TaskId};
///
/// let env = Envelope::new("q", "t", vec![0xc0], Utc::now());
/// let row = ClaimedRow { id: env.id, token: 7, deliveries: 1, attempts: 0, max_deliveries: 4, priority: 0 };
/// let delivery = row.deliver(Ok(env), "q", 30_000).unwrap_or_else(|_| unreachable!());
/// assert_eq!((delivery.envelope.deliveries, delivery.lease.token.0), (1, 7));
///
/// let garbage = ClaimedRow { id: TaskId::new(), token: 8, deliveries: 1, attempts: 0, max_deliveries: 4, priority: 0 };
/// let rejected = garbage.deliver(Envelope::decode(b"\xff"), "q", 30_000).err().unwrap_or_else(|| unreachable!());
/// assert_eq!(rejected.task, "?");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClaimedRow {
    /// The task's id.
    pub id: TaskId,
    /// The new lease token as the store keeps it (positive).
    pub token: i64,
    /// Deliveries counted, this one included.
    pub deliveries: i64,
    /// Attempts counted.
    pub attempts: i64,
    /// Deliveries allowed ([`Envelope::delivery_limit`] when it was stored).
    pub max_deliveries: i64,
    /// Its priority.
    pub priority: i64,
}

/// A claimed row that goes to the dead-letter queue instead of to a worker.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejected {
    /// The lease the claim took on it.
    pub lease: Lease,
    /// Why: [`FailureKind::Undecodable`], [`FailureKind::NewerFormat`] or
    /// [`FailureKind::DeliveryLimit`].
    pub failure: TaskFailure,
    /// Its task name; `"?"` when the envelope does not decode.
    pub task: String,
}

impl ClaimedRow {
    /// The lease the claim took.
    pub fn lease(&self) -> Lease {
        Lease {
            id: self.id,
            token: LeaseToken(u64::try_from(self.token).unwrap_or(0)),
        }
    }

    /// Hands the row out as a [`Delivery`] whose lease runs out at `lease_expires_at`
    /// (milliseconds), its envelope (`envelope`: the row's decoded, or why it does not decode)
    /// carrying the row's counters and priority; or says why it goes to the dead-letter queue
    /// (logged as a warning with `queue`).
    ///
    /// # Errors
    ///
    /// [`Rejected`] for an envelope that does not decode or is newer than this build, and for
    /// a task delivered more times than its limit (poison).
    pub fn deliver(
        self,
        envelope: Result<Envelope>,
        queue: &str,
        lease_expires_at: i64,
    ) -> std::result::Result<Delivery, Rejected> {
        let attempts = u32::try_from(self.attempts).unwrap_or(0);
        let deliveries = u32::try_from(self.deliveries).unwrap_or(u32::MAX);
        let id = self.id;
        let lease = self.lease();
        let mut env = match envelope {
            Ok(env) => env,
            Err(err) => {
                let kind = if matches!(err, Error::NewerFormat { .. }) {
                    FailureKind::NewerFormat
                } else {
                    FailureKind::Undecodable
                };
                tracing::warn!(%id, queue, error = %err, "dead-lettering an undecodable task");
                let failure = TaskFailure::new(kind, err.to_string(), attempts);
                return Err(Rejected {
                    lease,
                    failure,
                    task: "?".to_owned(),
                });
            }
        };
        let limit = u32::try_from(self.max_deliveries).unwrap_or(u32::MAX);
        if deliveries > limit {
            let failure = TaskFailure::new(
                FailureKind::DeliveryLimit,
                format!(
                    "delivered {} times without completing (limit {limit}); treated as poison",
                    deliveries - 1
                ),
                attempts,
            );
            tracing::warn!(%id, queue, task = %env.task, "dead-lettering a poison task");
            return Err(Rejected {
                lease,
                failure,
                task: env.task,
            });
        }
        env.deliveries = deliveries;
        env.attempt = attempts;
        env.priority = i16::try_from(self.priority).unwrap_or(env.priority);
        Ok(Delivery {
            envelope: env,
            lease,
            lease_expires_at: from_millis(lease_expires_at),
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn row(deliveries: i64, max_deliveries: i64) -> ClaimedRow {
        ClaimedRow {
            id: TaskId::new(),
            token: 11,
            deliveries,
            attempts: 2,
            max_deliveries,
            priority: 5,
        }
    }

    fn envelope() -> Envelope {
        Envelope::new("q", "t", vec![0xc0], Utc::now())
    }

    #[test]
    fn a_good_row_is_delivered_with_its_counters() {
        let row = row(3, 4);
        let d = row.deliver(Ok(envelope()), "q", 9_000).unwrap();
        assert_eq!(d.lease, row.lease());
        assert_eq!(d.lease.token, LeaseToken(11));
        assert_eq!(
            (
                d.envelope.deliveries,
                d.envelope.attempt,
                d.envelope.priority
            ),
            (3, 2, 5)
        );
        assert_eq!(d.lease_expires_at, from_millis(9_000));
    }

    #[test]
    fn a_row_past_its_limit_is_poison() {
        let r = row(5, 4).deliver(Ok(envelope()), "q", 0).unwrap_err();
        assert_eq!(r.failure.kind, FailureKind::DeliveryLimit);
        assert_eq!(r.failure.attempts, 2);
        assert!(r.failure.message.contains("delivered 4 times"), "{r:?}");
        assert_eq!(r.task, "t");
    }

    #[test]
    fn an_undecodable_or_newer_envelope_is_rejected() {
        let r = row(1, 4)
            .deliver(Envelope::decode(b"\xff"), "q", 0)
            .unwrap_err();
        assert_eq!(r.failure.kind, FailureKind::Undecodable);
        assert_eq!(r.task, "?");
        let newer = Err(Error::NewerFormat {
            found: 99,
            supported: 1,
        });
        let r = row(1, 4).deliver(newer, "q", 0).unwrap_err();
        assert_eq!(r.failure.kind, FailureKind::NewerFormat);
    }

    #[test]
    fn out_of_range_counters_do_not_panic() {
        let r = row(-1, 4).deliver(Ok(envelope()), "q", 0).unwrap_err();
        assert_eq!(
            r.failure.kind,
            FailureKind::DeliveryLimit,
            "-1 deliveries = many"
        );
        assert!(
            row(5, -1).deliver(Ok(envelope()), "q", 0).is_ok(),
            "-1 limit = none"
        );
        let mut high = row(1, 4);
        high.priority = i64::from(i16::MAX) + 1;
        high.token = -1;
        let d = high.deliver(Ok(envelope()), "q", 0).unwrap();
        assert_eq!(d.envelope.priority, 0, "the envelope's own priority stays");
        assert_eq!(d.lease.token, LeaseToken(0));
    }
}
