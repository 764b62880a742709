//! [`TaskRow`] and [`DeadRow`]: rows of listings and lookups, as the trait's records.

use crate::clock::from_millis;
use crate::storage::{DeadTask, StoredResult, TaskRecord, TaskState};
use crate::{Envelope, FailureKind, TaskFailure, TaskId};

/// A pending task's row as a listing reads it ([`Storage::list`](crate::Storage::list),
/// [`get_task`](crate::Storage::get_task)).
///
/// # Examples
///
/// ```
/// use chrono::Utc;
/// use queue_core::storage::rows::TaskRow;
/// use queue_core::{Envelope, TaskState};
///
/// let env = Envelope::new("q", "t", vec![0xc0], Utc::now());
/// let row = TaskRow {
///     id: env.id,
///     queue: "q".into(),
///     leased: false,
///     run_at: 5_000,
///     wake_at: 5_000,
///     deliveries: 1,
///     attempts: 1,
///     priority: 0,
///     raw: env.encode()?,
/// };
/// let record = row.into_record(1_000);
/// assert_eq!(record.state, TaskState::Scheduled);
/// assert_eq!(record.envelope.map(|e| e.attempt), Ok(1));
/// # Ok::<(), queue_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskRow {
    /// The task's id.
    pub id: TaskId,
    /// Its queue.
    pub queue: String,
    /// Whether it is leased (running).
    pub leased: bool,
    /// When it is (or was) due, in milliseconds.
    pub run_at: i64,
    /// When its lease runs out (read only when it is leased).
    pub wake_at: i64,
    /// Deliveries counted.
    pub deliveries: i64,
    /// Attempts counted.
    pub attempts: i64,
    /// Its priority.
    pub priority: i64,
    /// The encoded envelope.
    pub raw: Vec<u8>,
}

impl TaskRow {
    /// The record of this row at `now` (milliseconds): leased, ready (due) or scheduled, its
    /// envelope carrying the row's counters and priority, or why it does not decode.
    pub fn into_record(self, now: i64) -> TaskRecord {
        let state = if self.leased {
            TaskState::Leased
        } else if self.run_at <= now {
            TaskState::Ready
        } else {
            TaskState::Scheduled
        };
        let (deliveries, attempts, priority) = (self.deliveries, self.attempts, self.priority);
        let envelope = Envelope::decode(&self.raw)
            .map(|mut env| {
                env.deliveries = u32::try_from(deliveries).unwrap_or(0);
                env.attempt = u32::try_from(attempts).unwrap_or(0);
                env.priority = i16::try_from(priority).unwrap_or(env.priority);
                env
            })
            .map_err(|e| e.to_string());
        TaskRecord {
            id: self.id,
            queue: self.queue,
            state,
            run_at: from_millis(self.run_at),
            lease_expires_at: self.leased.then(|| from_millis(self.wake_at)),
            envelope,
        }
    }
}

/// A row of the dead-letter queue ([`Storage::list_dead`](crate::Storage::list_dead),
/// [`get_dead`](crate::Storage::get_dead)).
///
/// # Examples
///
/// ```
/// use queue_core::storage::rows::DeadRow;
/// use queue_core::{FailureKind, TaskId};
///
/// let row = DeadRow {
///     id: TaskId::new(),
///     queue: "q".into(),
///     task: "?".into(),
///     failure: b"garbage".to_vec(),
///     failed_at: 0,
///     raw: b"garbage".to_vec(),
/// };
/// let dead = row.into_dead_task();
/// assert_eq!(dead.failure.kind, FailureKind::Undecodable);
/// assert!(dead.envelope.is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadRow {
    /// The task's id.
    pub id: TaskId,
    /// Its queue.
    pub queue: String,
    /// Its task name (`"?"` when its envelope did not decode).
    pub task: String,
    /// Its failure, an encoded [`StoredResult::Failure`].
    pub failure: Vec<u8>,
    /// When it was dead-lettered, in milliseconds.
    pub failed_at: i64,
    /// The encoded envelope.
    pub raw: Vec<u8>,
}

impl DeadRow {
    /// The dead task of this row. A failure that does not decode reads as an
    /// [`Undecodable`](FailureKind::Undecodable) one; an envelope that does not decode, as why.
    pub fn into_dead_task(self) -> DeadTask {
        let failure = match StoredResult::decode(&self.failure) {
            Ok(StoredResult::Failure(f)) => f,
            _ => TaskFailure::new(
                FailureKind::Undecodable,
                "the stored failure does not decode",
                0,
            ),
        };
        DeadTask {
            id: self.id,
            queue: self.queue,
            task: self.task,
            failure,
            failed_at: from_millis(self.failed_at),
            envelope: Envelope::decode(&self.raw).map_err(|e| e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn row(leased: bool, run_at: i64) -> TaskRow {
        let mut env = Envelope::new("q", "t", vec![0xc0], Utc::now());
        env.priority = 1;
        TaskRow {
            id: env.id,
            queue: "q".into(),
            leased,
            run_at,
            wake_at: 7_000,
            deliveries: 2,
            attempts: 1,
            priority: 4,
            raw: env.encode().unwrap(),
        }
    }

    #[test]
    fn the_state_follows_the_lease_and_the_clock() {
        let leased = row(true, 0).into_record(1_000);
        assert_eq!(leased.state, TaskState::Leased);
        assert_eq!(leased.lease_expires_at, Some(from_millis(7_000)));
        let ready = row(false, 1_000).into_record(1_000);
        assert_eq!(
            (ready.state, ready.lease_expires_at),
            (TaskState::Ready, None)
        );
        let scheduled = row(false, 1_001).into_record(1_000);
        assert_eq!(scheduled.state, TaskState::Scheduled);
        assert_eq!(scheduled.run_at, from_millis(1_001));
    }

    #[test]
    fn the_envelope_carries_the_row_counters() {
        let env = row(false, 0).into_record(0).envelope.unwrap();
        assert_eq!((env.deliveries, env.attempt, env.priority), (2, 1, 4));
        let mut odd = row(false, 0);
        (odd.deliveries, odd.attempts, odd.priority) = (-1, i64::MAX, i64::MAX);
        let env = odd.into_record(0).envelope.unwrap();
        assert_eq!((env.deliveries, env.attempt, env.priority), (0, 0, 1));
    }

    #[test]
    fn garbage_reads_as_why() {
        let mut bad = row(false, 0);
        bad.raw = vec![0xff];
        assert!(bad.into_record(0).envelope.is_err());
    }

    #[test]
    fn a_dead_row_reads_its_failure() {
        let failure = TaskFailure::new(FailureKind::Error, "boom", 3);
        let env = Envelope::new("q", "t", vec![0xc0], Utc::now());
        let dead = DeadRow {
            id: env.id,
            queue: "q".into(),
            task: "t".into(),
            failure: StoredResult::Failure(failure.clone()).encode().unwrap(),
            failed_at: 2_000,
            raw: env.encode().unwrap(),
        }
        .into_dead_task();
        assert_eq!(dead.failure, failure);
        assert_eq!(dead.failed_at, from_millis(2_000));
        assert_eq!(dead.envelope.unwrap(), env);
        assert_eq!((dead.queue.as_str(), dead.task.as_str()), ("q", "t"));
    }
}
