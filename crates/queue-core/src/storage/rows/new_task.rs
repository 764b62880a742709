//! [`NewTask`]: an envelope on its way into a store's table.

use crate::clock::to_millis;
use crate::{Envelope, Result, TaskId};

/// A task ready to be inserted: the columns a store indexes or filters on, beside the encoded
/// envelope (`raw`), which stays the task's source of truth.
///
/// # Examples
///
/// ```
/// use chrono::Utc;
/// use queue_core::storage::rows::NewTask;
/// use queue_core::Envelope;
///
/// let env = Envelope::new("emails", "send", vec![0xc0], Utc::now());
/// let row = NewTask::from_envelope(env.clone())?;
/// assert_eq!((row.id, row.queue.as_str(), row.eta), (env.id, "emails", None));
/// assert_eq!(Envelope::decode(&row.raw)?, env);
///
/// let mut bad = env;
/// bad.queue = String::new();
/// assert!(NewTask::from_envelope(bad).is_err(), "validated");
/// # Ok::<(), queue_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTask {
    /// The task's id.
    pub id: TaskId,
    /// Its queue.
    pub queue: String,
    /// Its task name.
    pub task: String,
    /// Its priority (higher first).
    pub priority: i16,
    /// When it is due, in milliseconds; `None` = when it is stored.
    pub eta: Option<i64>,
    /// Deliveries counted so far.
    pub deliveries: u32,
    /// Attempts counted so far.
    pub attempts: u32,
    /// Deliveries allowed before it is dead-lettered as poison
    /// ([`Envelope::delivery_limit`]).
    pub limit: u32,
    /// Its unique key, if any.
    pub unique_key: Option<String>,
    /// The encoded envelope ([`Envelope::encode`]).
    pub raw: Vec<u8>,
}

impl NewTask {
    /// Validates ([`Envelope::validate`]) and encodes a new envelope.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for an envelope a store must not
    /// accept; an encoding error.
    pub fn from_envelope(env: Envelope) -> Result<Self> {
        env.validate()?;
        Self::from_stored(env)
    }

    /// Encodes an envelope that was stored before (no validation: it was valid then).
    ///
    /// # Errors
    ///
    /// An encoding error.
    pub fn from_stored(env: Envelope) -> Result<Self> {
        let raw = env.encode()?;
        let limit = env.delivery_limit();
        Ok(Self {
            id: env.id,
            priority: env.priority,
            eta: env.eta.map(to_millis),
            deliveries: env.deliveries,
            attempts: env.attempt,
            limit,
            queue: env.queue,
            task: env.task,
            unique_key: env.unique_key,
            raw,
        })
    }

    /// A dead task's envelope as a new run of it (`requeue_dead`): no attempts or deliveries
    /// counted, due at once (its eta is dropped). Its id and unique key stay.
    ///
    /// # Errors
    ///
    /// An encoding error.
    pub fn requeued(mut env: Envelope) -> Result<Self> {
        env.attempt = 0;
        env.deliveries = 0;
        env.eta = None;
        Self::from_stored(env)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn envelope() -> Envelope {
        let mut env = Envelope::new(
            "q",
            "t",
            vec![0xc0],
            Utc.timestamp_millis_opt(1_000).unwrap(),
        );
        env.priority = 3;
        env.eta = Some(Utc.timestamp_millis_opt(5_000).unwrap());
        env.attempt = 2;
        env.deliveries = 4;
        env.max_deliveries = 9;
        env.unique_key = Some("k".into());
        env
    }

    #[test]
    fn columns_follow_the_envelope() {
        let env = envelope();
        let row = NewTask::from_envelope(env.clone()).unwrap();
        assert_eq!(row.id, env.id);
        assert_eq!((row.queue.as_str(), row.task.as_str()), ("q", "t"));
        assert_eq!((row.priority, row.eta), (3, Some(5_000)));
        assert_eq!((row.attempts, row.deliveries, row.limit), (2, 4, 9));
        assert_eq!(row.unique_key.as_deref(), Some("k"));
        assert_eq!(Envelope::decode(&row.raw).unwrap(), env);
    }

    #[test]
    fn a_new_envelope_is_validated_a_stored_one_is_not() {
        let mut env = envelope();
        env.task = String::new();
        assert!(NewTask::from_envelope(env.clone()).is_err());
        assert!(NewTask::from_stored(env).is_ok());
    }

    #[test]
    fn a_requeued_task_starts_afresh() {
        let env = envelope();
        let row = NewTask::requeued(env.clone()).unwrap();
        assert_eq!((row.attempts, row.deliveries, row.eta), (0, 0, None));
        assert_eq!((row.id, row.unique_key), (env.id, env.unique_key));
        let stored = Envelope::decode(&row.raw).unwrap();
        assert_eq!(
            (stored.attempt, stored.deliveries, stored.eta),
            (0, 0, None)
        );
    }
}
