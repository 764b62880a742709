//! The control plane from the producer's side: pause and resume queues, purge one, cancel a
//! task (running or not), see the live workers and a task's progress.

use serde::de::DeserializeOwned;

use crate::{
    CancelRequest, Error, Queue, Result, RevokeTarget, TaskHandle, TaskId, WorkerStatus,
    CANCEL_REQUEST_TTL,
};

impl Queue {
    /// Pauses queue `name`: it still accepts tasks, but no consumer of any process takes one
    /// from it until [`resume`](Queue::resume); running tasks finish. The state is kept in
    /// the store. Returns whether it was running before.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let queue = queue_core::Queue::memory();
    /// assert!(queue.pause("emails").await?);
    /// assert_eq!(queue.paused_queues().await?, vec!["emails".to_owned()]);
    /// assert!(queue.resume("emails").await?);
    /// # Ok::<(), queue_core::Error>(()) }).unwrap();
    /// ```
    pub async fn pause(&self, name: &str) -> Result<bool> {
        check_name(name)?;
        self.storage().set_paused(name, true).await
    }

    /// Resumes a paused queue: its consumers take tasks from it again at once. Returns whether
    /// it was paused.
    pub async fn resume(&self, name: &str) -> Result<bool> {
        check_name(name)?;
        self.storage().set_paused(name, false).await
    }

    /// The paused queues, by name.
    pub async fn paused_queues(&self) -> Result<Vec<String>> {
        self.storage().paused_queues().await
    }

    /// Deletes the waiting tasks of queue `name` (ready and scheduled; running tasks finish,
    /// dead letters stay). Returns how many were deleted.
    pub async fn purge(&self, name: &str) -> Result<u64> {
        check_name(name)?;
        self.storage().purge_queue(name).await
    }

    /// Cancels task `id`. A running task is stopped within about a second: its worker learns
    /// of the request at its next heartbeat, fires the task's
    /// [`cancellation`](crate::TaskContext::cancellation) token and drops an async task's
    /// future; the task ends as a failure of kind `canceled`, without a retry or follow-ups. A
    /// task that has not started is revoked (it never runs). Returns what was found.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use queue_core::CancelRequest;
    /// let queue = queue_core::Queue::memory();
    /// assert_eq!(queue.cancel(queue_core::TaskId::new()).await?, CancelRequest::NotFound);
    /// # Ok::<(), queue_core::Error>(()) }).unwrap();
    /// ```
    pub async fn cancel(&self, id: TaskId) -> Result<CancelRequest> {
        let found = self
            .storage()
            .request_cancel(id, CANCEL_REQUEST_TTL)
            .await?;
        if found == CancelRequest::Pending {
            // It may be fetched before the revocation is read; the request above covers that:
            // its worker cancels it at the first heartbeat.
            let until = crate::clock::after(self.clock().now(), CANCEL_REQUEST_TTL);
            self.revoke_with(RevokeTarget::Id(id), Some(until), true)
                .await?;
        }
        Ok(found)
    }

    /// The live workers of this store (every process), oldest first, with what each runs.
    pub async fn workers(&self) -> Result<Vec<WorkerStatus>> {
        self.storage().workers().await
    }
}

impl<T: DeserializeOwned> TaskHandle<T> {
    /// Cancels this task; see [`Queue::cancel`].
    pub async fn cancel(&self) -> Result<CancelRequest> {
        self.queue().cancel(self.id()).await
    }

    /// The newest progress the task reported ([`TaskContext::progress`](crate::TaskContext::progress))
    /// while it runs or waits for a retry, decoded as `P` (e.g. [`Progress`](crate::Progress)).
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] when the stored value is not a `P`.
    pub async fn progress<P: DeserializeOwned>(&self) -> Result<Option<P>> {
        self.queue()
            .storage()
            .get_progress(self.id())
            .await?
            .map(|bytes| crate::envelope::from_msgpack(&bytes))
            .transpose()
    }
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::InvalidInput("a queue name must not be empty".into()));
    }
    Ok(())
}
