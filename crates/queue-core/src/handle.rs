//! [`TaskHandle`]: the typed result of an enqueued task.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::envelope::from_msgpack;
use crate::{Error, Queue, Result, StoredResult, TaskId};

/// A handle to the result of a task whose output is `T`.
///
/// Reading a result does not delete it; results are kept for the consumer's result TTL.
#[derive(Clone)]
pub struct TaskHandle<T> {
    id: TaskId,
    queue: Queue,
    _output: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle").field("id", &self.id).finish()
    }
}

impl<T: DeserializeOwned> TaskHandle<T> {
    /// A handle to task `id` on `queue`.
    pub fn new(id: TaskId, queue: Queue) -> Self {
        Self {
            id,
            queue,
            _output: PhantomData,
        }
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The queue the task was enqueued on.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Whether the task has finished (succeeded or failed for good).
    pub async fn is_complete(&self) -> Result<bool> {
        Ok(self.queue.storage().get_result(self.id).await?.is_some())
    }

    /// The result if the task has finished: `Ok(None)` while it has not, the typed output when
    /// it succeeded, [`Error::TaskFailed`] when it failed.
    pub async fn try_get(&self) -> Result<Option<T>> {
        match self.queue.storage().get_result(self.id).await? {
            Some(stored) => self.decode(stored).map(Some),
            None => Ok(None),
        }
    }

    /// Waits up to `timeout` for the result: the typed output, [`Error::TaskFailed`] when the
    /// task failed, or [`Error::Timeout`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future only stops waiting.
    pub async fn get(&self, timeout: Duration) -> Result<T> {
        match self.queue.storage().wait_result(self.id, timeout).await? {
            Some(stored) => self.decode(stored),
            None => Err(Error::Timeout {
                id: self.id,
                waited: timeout,
            }),
        }
    }

    fn decode(&self, stored: StoredResult) -> Result<T> {
        match stored {
            // A queue without the keys meets a sealed result here: say so rather than
            // failing to decode msgpack.
            StoredResult::Success(bytes) => {
                from_msgpack(&crate::seal::Sealing::new().open_result(self.id, bytes)?)
            }
            StoredResult::Failure(failure) => Err(Error::TaskFailed {
                id: self.id,
                failure,
            }),
        }
    }
}
