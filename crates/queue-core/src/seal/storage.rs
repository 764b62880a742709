//! [`SealedStorage`]: any store, with every write sealed and every read opened.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::Sealing;
use crate::storage::{
    AckStatus, CancelRequest, Completion, Counts, DeadTask, Delivery, EnqueueOutcome, Lease,
    Outcome, Page, RateDecision, Revocation, RevokeTarget, Storage, StoredResult, TaskRecord,
    TaskState,
};
use crate::{Clock, FailureKind, Heartbeat, Result, TaskFailure, TaskId, WorkerStatus};

/// How long the failure of a task refused at fetch is kept as its result (the consumer's
/// default result TTL).
const REFUSED_RESULT_TTL: Duration = crate::storage::DEAD_RESULT_TTL;

/// A store whose tasks are signed and encrypted by a [`Sealing`]: enqueued envelopes and
/// follow-ups are sealed, fetched ones checked and opened (a task that fails the check is
/// dead-lettered with the reason instead of being handed out), results encrypted on the way in
/// and decrypted on the way out, and listings show arguments decrypted when the key is known.
///
/// Built by [`Queue::with_sealing`](crate::Queue::with_sealing); the inner store keeps only
/// sealed data.
pub struct SealedStorage {
    inner: Arc<dyn Storage>,
    sealing: Arc<Sealing>,
    /// With a queue filter: the delivered tasks that passed their check, whose results are
    /// sealed and whose follow-ups are signed. (Without a filter every delivered task is
    /// checked.) An id leaves the set once a completion of it is written.
    checked: Option<Mutex<HashSet<TaskId>>>,
}

impl SealedStorage {
    /// `inner` with `sealing` applied.
    pub fn new(inner: Arc<dyn Storage>, sealing: Arc<Sealing>) -> Self {
        let filtered = sealing.queues.is_some();
        Self {
            inner,
            sealing,
            checked: filtered.then(Mutex::default),
        }
    }

    /// The signing and encryption applied.
    pub fn sealing(&self) -> &Sealing {
        &self.sealing
    }

    /// The store underneath, which holds the sealed data.
    pub fn inner(&self) -> &Arc<dyn Storage> {
        &self.inner
    }

    /// Whether the delivery of `id` was checked: only then are its result sealed and its
    /// follow-ups signed (a worker must not sign what an unchecked task asks for).
    fn was_checked(&self, id: TaskId) -> bool {
        self.checked.as_ref().is_none_or(|ids| {
            ids.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(&id)
        })
    }

    fn open_result(
        &self,
        id: TaskId,
        result: Option<StoredResult>,
    ) -> Result<Option<StoredResult>> {
        match result {
            Some(StoredResult::Success(bytes)) => Ok(Some(StoredResult::Success(
                self.sealing.open_result(id, bytes)?,
            ))),
            other => Ok(other),
        }
    }

    fn reveal_record(&self, mut record: TaskRecord) -> TaskRecord {
        if let Ok(env) = &mut record.envelope {
            self.sealing.reveal(env);
        }
        record
    }

    fn reveal_dead(&self, mut dead: DeadTask) -> DeadTask {
        if let Ok(env) = &mut dead.envelope {
            self.sealing.reveal(env);
        }
        dead
    }
}

#[async_trait]
impl Storage for SealedStorage {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.inner.clock()
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        self.inner.as_any()
    }

    async fn enqueue(&self, mut batch: Vec<crate::Envelope>) -> Result<Vec<EnqueueOutcome>> {
        for env in &mut batch {
            self.sealing.seal(env)?;
        }
        self.inner.enqueue(batch).await
    }

    async fn fetch(&self, queue: &str, max: usize, lease: Duration) -> Result<Vec<Delivery>> {
        let fetched = self.inner.fetch(queue, max, lease).await?;
        let mut good = Vec::with_capacity(fetched.len());
        let mut refused = Vec::new();
        let checks_queue = self.sealing.applies_to(queue);
        for mut delivery in fetched {
            // The check follows the queue the task was fetched from, not the one it names.
            let opened = if checks_queue && delivery.envelope.queue != queue {
                Err(TaskFailure::new(
                    FailureKind::BadSignature,
                    format!(
                        "stored in queue `{queue}` but names queue `{}`",
                        delivery.envelope.queue
                    ),
                    delivery.envelope.attempt,
                ))
            } else {
                self.sealing.open(&mut delivery.envelope)
            };
            match opened {
                Ok(()) => {
                    if let Some(ids) = &self.checked {
                        if checks_queue {
                            ids.lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .insert(delivery.lease.id);
                        }
                    }
                    good.push(delivery);
                }
                Err(failure) => {
                    tracing::warn!(
                        id = %delivery.lease.id,
                        task = %delivery.envelope.task,
                        kind = %failure.kind,
                        reason = %failure.message,
                        "refused a task that did not pass its signature or encryption check; it goes to the dead-letter queue"
                    );
                    refused.push(Completion::new(
                        delivery.lease,
                        Outcome::Dead { failure },
                        Some(REFUSED_RESULT_TTL),
                    ));
                }
            }
        }
        if !refused.is_empty() {
            // If this write fails, the refused tasks stay leased until their lease runs out
            // and are checked again at their next delivery; the good ones are still handed out.
            if let Err(err) = self.inner.complete(refused).await {
                tracing::warn!(error = %err, "could not dead-letter refused tasks; they are checked again when their lease runs out");
            }
        }
        Ok(good)
    }

    async fn wait_for_work(&self, queue: &str, timeout: Duration) -> Result<()> {
        self.inner.wait_for_work(queue, timeout).await
    }

    async fn complete(&self, mut batch: Vec<Completion>) -> Result<Vec<AckStatus>> {
        for completion in &mut batch {
            if !self.was_checked(completion.lease.id) {
                continue;
            }
            if let Outcome::Success { result } = &mut completion.outcome {
                *result = self
                    .sealing
                    .seal_result(completion.lease.id, std::mem::take(result))?;
            }
            for env in &mut completion.follow_ups {
                self.sealing.seal(env)?;
            }
        }
        let ids: Vec<TaskId> = batch.iter().map(|c| c.lease.id).collect();
        let statuses = self.inner.complete(batch).await?;
        // Written (or refused as stale): the delivery is over. A failed write keeps the ids
        // for the caller's retry.
        if let Some(checked) = &self.checked {
            let mut checked = checked.lock().unwrap_or_else(PoisonError::into_inner);
            for id in ids {
                checked.remove(&id);
            }
        }
        Ok(statuses)
    }

    async fn extend(&self, leases: &[Lease], lease: Duration) -> Result<Vec<AckStatus>> {
        self.inner.extend(leases, lease).await
    }

    async fn requeue_expired(&self, queue: &str, max: usize) -> Result<u64> {
        self.inner.requeue_expired(queue, max).await
    }

    async fn get_result(&self, id: TaskId) -> Result<Option<StoredResult>> {
        let result = self.inner.get_result(id).await?;
        self.open_result(id, result)
    }

    async fn wait_result(&self, id: TaskId, timeout: Duration) -> Result<Option<StoredResult>> {
        let result = self.inner.wait_result(id, timeout).await?;
        self.open_result(id, result)
    }

    async fn delete_result(&self, id: TaskId) -> Result<bool> {
        self.inner.delete_result(id).await
    }

    async fn purge_expired(&self, max: usize) -> Result<u64> {
        self.inner.purge_expired(max).await
    }

    async fn reschedule(&self, id: TaskId, eta: DateTime<Utc>) -> Result<bool> {
        self.inner.reschedule(id, eta).await
    }

    async fn revoke(&self, revocation: Revocation) -> Result<()> {
        self.inner.revoke(revocation).await
    }

    async fn restore(&self, target: &RevokeTarget) -> Result<bool> {
        self.inner.restore(target).await
    }

    async fn check_revoked(&self, tasks: &[(TaskId, &str)]) -> Result<Vec<bool>> {
        self.inner.check_revoked(tasks).await
    }

    async fn acquire_lock(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
        self.inner.acquire_lock(name, owner, ttl).await
    }

    async fn release_lock(&self, name: &str, owner: &str) -> Result<bool> {
        self.inner.release_lock(name, owner).await
    }

    async fn flush_locks(&self) -> Result<u64> {
        self.inner.flush_locks().await
    }

    async fn rate_limit(&self, key: &str, limit: u32, window: Duration) -> Result<RateDecision> {
        self.inner.rate_limit(key, limit, window).await
    }

    async fn list_dead(&self, queue: Option<&str>, page: Page) -> Result<Vec<DeadTask>> {
        let dead = self.inner.list_dead(queue, page).await?;
        Ok(dead.into_iter().map(|d| self.reveal_dead(d)).collect())
    }

    async fn get_dead(&self, id: TaskId) -> Result<Option<DeadTask>> {
        Ok(self.inner.get_dead(id).await?.map(|d| self.reveal_dead(d)))
    }

    async fn requeue_dead(&self, ids: &[TaskId]) -> Result<u64> {
        self.inner.requeue_dead(ids).await
    }

    async fn requeue_all_dead(&self, queue: Option<&str>) -> Result<u64> {
        self.inner.requeue_all_dead(queue).await
    }

    async fn purge_dead(&self, queue: Option<&str>) -> Result<u64> {
        self.inner.purge_dead(queue).await
    }

    async fn discard_dead(&self, ids: &[TaskId]) -> Result<u64> {
        self.inner.discard_dead(ids).await
    }

    async fn counts(&self, queue: Option<&str>) -> Result<Counts> {
        self.inner.counts(queue).await
    }

    async fn list(
        &self,
        state: TaskState,
        queue: Option<&str>,
        page: Page,
    ) -> Result<Vec<TaskRecord>> {
        let records = self.inner.list(state, queue, page).await?;
        Ok(records.into_iter().map(|r| self.reveal_record(r)).collect())
    }

    async fn get_task(&self, id: TaskId) -> Result<Option<TaskRecord>> {
        Ok(self
            .inner
            .get_task(id)
            .await?
            .map(|r| self.reveal_record(r)))
    }

    async fn queues(&self) -> Result<Vec<String>> {
        self.inner.queues().await
    }

    async fn flush(&self) -> Result<()> {
        self.inner.flush().await
    }

    async fn set_paused(&self, queue: &str, paused: bool) -> Result<bool> {
        self.inner.set_paused(queue, paused).await
    }

    async fn paused_queues(&self) -> Result<Vec<String>> {
        self.inner.paused_queues().await
    }

    async fn purge_queue(&self, queue: &str) -> Result<u64> {
        self.inner.purge_queue(queue).await
    }

    async fn request_cancel(&self, id: TaskId, ttl: Duration) -> Result<CancelRequest> {
        self.inner.request_cancel(id, ttl).await
    }

    async fn heartbeat(&self, beat: &Heartbeat) -> Result<Vec<TaskId>> {
        self.inner.heartbeat(beat).await
    }

    async fn remove_worker(&self, worker_id: &str) -> Result<bool> {
        self.inner.remove_worker(worker_id).await
    }

    async fn workers(&self) -> Result<Vec<WorkerStatus>> {
        self.inner.workers().await
    }

    async fn get_progress(&self, id: TaskId) -> Result<Option<Vec<u8>>> {
        self.inner.get_progress(id).await
    }
}
