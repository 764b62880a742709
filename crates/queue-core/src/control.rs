//! Control from the producer's side: revoke and restore tasks, move them in time, take locks
//! shared by every process on the store, and work the dead-letter queue.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use crate::{
    DeadTask, Error, Page, Queue, Result, Revocation, RevokeTarget, Storage, Task, TaskHandle,
    TaskId,
};

impl Queue {
    /// Revokes one task: it is dropped (with a `revoked` event) instead of run.
    pub async fn revoke(&self, id: TaskId) -> Result<()> {
        self.revoke_with(RevokeTarget::Id(id), None, false).await
    }

    /// Revokes every task of kind `T` until [restored](Queue::restore_task).
    pub async fn revoke_task<T: Task>(&self) -> Result<()> {
        self.revoke_with(RevokeTarget::Task(T::NAME.to_owned()), None, false)
            .await
    }

    /// Revokes with every option: a target, an end time (`None` = until restored) and whether
    /// it lapses after stopping one task (Huey's `revoke_once`).
    ///
    /// # Examples
    ///
    /// ```
    /// use queue_core::{Queue, RevokeTarget};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let queue = Queue::memory();
    /// let until = chrono::Utc::now() + chrono::Duration::hours(1);
    /// queue.revoke_with(RevokeTarget::Task("nightly_report".into()), Some(until), false).await?;
    /// assert!(queue.restore(&RevokeTarget::Task("nightly_report".into())).await?);
    /// # Ok::<(), queue_core::Error>(()) }).unwrap();
    /// ```
    pub async fn revoke_with(
        &self,
        target: RevokeTarget,
        until: Option<DateTime<Utc>>,
        once: bool,
    ) -> Result<()> {
        self.storage()
            .revoke(Revocation {
                target,
                until,
                once,
            })
            .await
    }

    /// Removes a revocation. Returns whether there was one.
    pub async fn restore(&self, target: &RevokeTarget) -> Result<bool> {
        self.storage().restore(target).await
    }

    /// Restores every task of kind `T`.
    pub async fn restore_task<T: Task>(&self) -> Result<bool> {
        self.restore(&RevokeTarget::Task(T::NAME.to_owned())).await
    }

    /// A lock named `name`, shared by every process on this store. Configure it, then
    /// [`acquire`](LockBuilder::acquire) or [`try_acquire`](LockBuilder::try_acquire).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use queue_core::Queue;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let queue = Queue::memory();
    /// let guard = queue.lock("reports").ttl(Duration::from_secs(30)).acquire(Duration::ZERO).await?;
    /// assert!(queue.lock("reports").try_acquire().await?.is_none(), "held by the guard");
    /// guard.release().await?;
    /// assert!(queue.lock("reports").try_acquire().await?.is_some());
    /// # Ok::<(), queue_core::Error>(()) }).unwrap();
    /// ```
    pub fn lock(&self, name: impl Into<String>) -> LockBuilder {
        LockBuilder {
            storage: self.storage().clone(),
            name: name.into(),
            ttl: Duration::from_secs(30),
        }
    }

    /// Dead tasks (of `queue`, or all), oldest first.
    pub async fn dead_letters(&self, queue: Option<&str>, page: Page) -> Result<Vec<DeadTask>> {
        self.storage().list_dead(queue, page).await
    }

    /// Puts dead tasks back on their queues. Returns how many.
    pub async fn requeue_dead(&self, ids: &[TaskId]) -> Result<u64> {
        self.storage().requeue_dead(ids).await
    }

    /// Puts every dead task (of `queue`, or all) back. Returns how many.
    pub async fn requeue_all_dead(&self, queue: Option<&str>) -> Result<u64> {
        self.storage().requeue_all_dead(queue).await
    }

    /// Deletes dead tasks (of `queue`, or all). Returns how many.
    pub async fn purge_dead(&self, queue: Option<&str>) -> Result<u64> {
        self.storage().purge_dead(queue).await
    }

    /// Deletes these dead tasks for good (a dashboard's "discard" of one task or a selection).
    /// Returns how many were in the dead-letter queue; ids that are not dead (unknown, pending,
    /// running, already discarded or requeued) are ignored. A discarded task can no longer be
    /// listed or requeued, and its failure result goes with it, as with
    /// [`purge_dead`](Queue::purge_dead). See [`Storage::discard_dead`] for how a long list is
    /// split.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use queue_core::{
    ///     to_msgpack, Completion, Envelope, FailureKind, Outcome, Page, Queue, TaskFailure,
    /// };
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let queue = Queue::memory();
    /// let store = queue.storage();
    /// // Two tasks fail for good and land in the dead-letter queue.
    /// for _ in 0..2 {
    ///     let env = Envelope::new("emails", "send_email", to_msgpack(&())?, queue.clock().now());
    ///     queue.enqueue_envelope(env).await?;
    ///     let got = store.fetch("emails", 1, Duration::from_secs(30)).await?;
    ///     let failure = TaskFailure::new(FailureKind::Error, "mailbox full", 1);
    ///     let dead = Completion::new(got[0].lease, Outcome::Dead { failure }, None);
    ///     store.complete(vec![dead]).await?;
    /// }
    /// let dead = queue.dead_letters(None, Page::first(10)).await?;
    ///
    /// assert_eq!(queue.discard_dead(&[dead[0].id]).await?, 1);
    /// assert_eq!(queue.discard_dead(&[dead[0].id]).await?, 0, "already gone");
    /// let left = queue.dead_letters(None, Page::first(10)).await?;
    /// assert_eq!(left.iter().map(|d| d.id).collect::<Vec<_>>(), [dead[1].id]);
    /// assert_eq!(queue.requeue_dead(&[dead[0].id]).await?, 0, "nothing to requeue");
    /// # Ok::<(), queue_core::Error>(()) }).unwrap();
    /// ```
    pub async fn discard_dead(&self, ids: &[TaskId]) -> Result<u64> {
        self.storage().discard_dead(ids).await
    }
}

impl<T: DeserializeOwned> TaskHandle<T> {
    /// Moves the task (while it waits, not while it runs) to run at `eta`. Returns whether it
    /// was found waiting.
    pub async fn reschedule(&self, eta: DateTime<Utc>) -> Result<bool> {
        let storage = self.queue().storage();
        let moved = storage.reschedule(self.id(), eta).await?;
        let bus = self.queue().event_bus();
        if moved && bus.has_subscribers() {
            let task = match storage.get_task(self.id()).await? {
                Some(record) => record.envelope.map(|e| e.task).unwrap_or_default(),
                None => String::new(),
            };
            bus.emit(crate::Event::Scheduled {
                id: self.id(),
                task,
                eta,
            });
        }
        Ok(moved)
    }

    /// Moves the waiting task to run `delay` from now.
    pub async fn reschedule_in(&self, delay: Duration) -> Result<bool> {
        let eta = crate::clock::after(self.queue().clock().now(), delay);
        self.reschedule(eta).await
    }

    /// Revokes the task: if it has not started, it is dropped instead of run.
    pub async fn revoke(&self) -> Result<()> {
        self.queue().revoke(self.id()).await
    }

    /// Undoes [`revoke`](TaskHandle::revoke).
    pub async fn restore(&self) -> Result<bool> {
        self.queue().restore(&RevokeTarget::Id(self.id())).await
    }
}

/// A lock being configured; see [`Queue::lock`].
#[derive(Debug, Clone)]
#[must_use = "a lock builder does nothing until acquired"]
pub struct LockBuilder {
    storage: Arc<dyn Storage>,
    name: String,
    ttl: Duration,
}

impl std::fmt::Debug for dyn Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Storage({})", self.backend())
    }
}

impl LockBuilder {
    /// How long the lock outlives a holder that stops renewing it (a crashed process). The
    /// guard renews it every `ttl / 3` while held. Default 30 s.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl.max(Duration::from_millis(30));
        self
    }

    /// Takes the lock if it is free.
    pub async fn try_acquire(self) -> Result<Option<LockGuard>> {
        let owner = TaskId::new().to_string();
        if self
            .storage
            .acquire_lock(&self.name, &owner, self.ttl)
            .await?
        {
            Ok(Some(LockGuard::start(
                self.storage,
                self.name,
                owner,
                self.ttl,
            )))
        } else {
            Ok(None)
        }
    }

    /// Takes the lock, waiting up to `wait` for it to be free; fails with
    /// [`Error::Locked`] after that.
    pub async fn acquire(self, wait: Duration) -> Result<LockGuard> {
        let deadline = crate::clock::deadline(wait);
        let owner = TaskId::new().to_string();
        let mut pause = Duration::from_millis(5);
        loop {
            if self
                .storage
                .acquire_lock(&self.name, &owner, self.ttl)
                .await?
            {
                return Ok(LockGuard::start(self.storage, self.name, owner, self.ttl));
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(Error::Locked(self.name));
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }
}

/// A held lock. Renewed in the background while held; released by
/// [`release`](LockGuard::release), or on drop (in the background), or by its TTL if the
/// process dies.
#[derive(Debug)]
#[must_use = "dropping the guard releases the lock"]
pub struct LockGuard {
    storage: Arc<dyn Storage>,
    name: String,
    owner: String,
    stop: Option<oneshot::Sender<()>>,
}

impl LockGuard {
    fn start(storage: Arc<dyn Storage>, name: String, owner: String, ttl: Duration) -> Self {
        let (stop, mut stopped) = oneshot::channel();
        let (s, n, o) = (storage.clone(), name.clone(), owner.clone());
        tokio::spawn(async move {
            let every = ttl / 3;
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    () = tokio::time::sleep(every) => {
                        match s.acquire_lock(&n, &o, ttl).await {
                            Ok(true) => {}
                            Ok(false) => {
                                tracing::warn!(lock = %n, "lost a lock while holding it (it expired and was taken)");
                                break;
                            }
                            Err(e) => tracing::warn!(lock = %n, error = %e, "could not renew a lock"),
                        }
                    }
                }
            }
        });
        Self {
            storage,
            name,
            owner,
            stop: Some(stop),
        }
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Releases the lock now. Returns whether it was still held.
    pub async fn release(mut self) -> Result<bool> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.storage.release_lock(&self.name, &self.owner).await
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let Some(stop) = self.stop.take() else { return };
        let _ = stop.send(());
        let (s, n, o) = (self.storage.clone(), self.name.clone(), self.owner.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = s.release_lock(&n, &o).await {
                    tracing::warn!(lock = %n, error = %e, "could not release a lock; it lapses with its TTL");
                }
            });
        }
    }
}
