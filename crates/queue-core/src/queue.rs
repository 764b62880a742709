//! [`Queue`]: the producer's side of a store.

use std::collections::HashMap;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use serde::de::DeserializeOwned;

use crate::memory::MemoryStorage;
use crate::seal::{SealedStorage, Sealing};
use crate::task::erase;
use crate::{
    Clock, Counts, EnqueueOutcome, Envelope, ErasedTask, Error, Event, Events, FailureKind, Result,
    Storage, StoredResult, Task, TaskCall, TaskContext, TaskErrorKind, TaskFailure, TaskHandle,
    TaskId,
};

/// A handle to a store for enqueueing tasks and reading their results. Cheap to clone.
///
/// Build one from any [`Storage`] with [`Queue::new`]; the `skiff` crate's `Queue::connect`
/// opens one from a URL.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

struct Inner {
    storage: Arc<dyn Storage>,
    immediate: Option<Arc<MemoryStorage>>,
    events: Events,
    sealed: Option<Arc<SealedStorage>>,
    max_args_bytes: usize,
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("backend", &self.inner.storage.backend())
            .field("immediate", &self.inner.immediate.is_some())
            .field("sealing", &self.sealing())
            .finish()
    }
}

impl Queue {
    /// A queue on `storage`.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self {
            inner: Arc::new(Inner {
                storage,
                immediate: None,
                events: Events::new(),
                sealed: None,
                max_args_bytes: crate::DEFAULT_MAX_PAYLOAD_BYTES,
            }),
        }
    }

    /// A queue on a new in-memory store (for tests; lost when the process ends).
    pub fn memory() -> Self {
        Self::new(Arc::new(MemoryStorage::new()))
    }

    /// A queue in immediate mode, as Huey's `immediate=True`: `enqueue` runs the task inline
    /// before it returns and stores its result in memory, so handles work as usual. Retries run
    /// at once (delays are not waited for), delays and etas are ignored, and no consumer is
    /// needed. For tests and local development.
    ///
    /// # Examples
    ///
    /// ```
    /// # use futures::future::BoxFuture;
    /// # use queue_core::{Task, TaskContext, TaskError};
    /// # struct Shout;
    /// # impl Task for Shout {
    /// #     const NAME: &'static str = "shout";
    /// #     type Args = (String,);
    /// #     type Output = String;
    /// #     fn run(_: TaskContext, (s,): (String,)) -> BoxFuture<'static, Result<String, TaskError>> {
    /// #         Box::pin(async move { Ok(s.to_uppercase()) })
    /// #     }
    /// # }
    /// use std::time::Duration;
    /// use queue_core::Queue;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let queue = Queue::immediate();
    /// let handle = Shout::call(("hi".into(),)).enqueue(&queue).await?;
    /// assert!(handle.is_complete().await?);
    /// assert_eq!(handle.get(Duration::ZERO).await?, "HI");
    /// # Ok::<(), queue_core::Error>(()) }).unwrap();
    /// ```
    pub fn immediate() -> Self {
        let memory = Arc::new(MemoryStorage::new());
        Self {
            inner: Arc::new(Inner {
                storage: memory.clone(),
                immediate: Some(memory),
                events: Events::new(),
                sealed: None,
                max_args_bytes: crate::DEFAULT_MAX_PAYLOAD_BYTES,
            }),
        }
    }

    /// This queue with its tasks signed and encrypted by `sealing` ([`crate::seal`]): what it
    /// and the consumers built from it write is sealed, what they read is checked and opened.
    /// The returned queue shares this one's store and event bus. A `sealing` that is
    /// [off](Sealing::is_off), or a queue in [immediate mode](Queue::immediate) (nothing leaves
    /// the process), returns a clone of this queue as it is.
    ///
    /// # Examples
    ///
    /// ```
    /// use queue_core::seal::{Keyring, Sealing};
    /// use queue_core::Queue;
    ///
    /// let keys = Keyring::parse("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")?;
    /// let queue = Queue::memory().with_sealing(Sealing::new().signing(keys));
    /// assert!(queue.sealing().is_some_and(|s| s.signs()));
    /// # Ok::<(), queue_core::Error>(())
    /// ```
    pub fn with_sealing(&self, sealing: Sealing) -> Self {
        if sealing.is_off() || self.is_immediate() {
            return self.clone();
        }
        let base = match &self.inner.sealed {
            Some(sealed) => sealed.inner().clone(),
            None => self.inner.storage.clone(),
        };
        let sealed = Arc::new(SealedStorage::new(base, Arc::new(sealing)));
        Self {
            inner: Arc::new(Inner {
                storage: sealed.clone(),
                immediate: self.inner.immediate.clone(),
                events: self.inner.events.clone(),
                sealed: Some(sealed),
                max_args_bytes: self.inner.max_args_bytes,
            }),
        }
    }

    /// This queue with a limit on each task's encoded arguments (default
    /// [`DEFAULT_MAX_PAYLOAD_BYTES`](crate::DEFAULT_MAX_PAYLOAD_BYTES), 16 MiB): an enqueue
    /// with larger arguments is refused with [`Error::InvalidInput`] and stores nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use queue_core::{Envelope, Error, Queue};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let queue = Queue::memory().with_max_args_bytes(1024);
    /// let env = Envelope::new("default", "upload", vec![0xc4; 4096], queue.clock().now());
    /// let err = queue.enqueue_envelope(env).await.unwrap_err();
    /// assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    /// assert!(err.to_string().contains("over the limit of 1024"));
    /// assert_eq!(queue.counts().await?.ready, 0);
    /// # Ok::<(), queue_core::Error>(()) }).unwrap();
    /// ```
    pub fn with_max_args_bytes(&self, bytes: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                storage: self.inner.storage.clone(),
                immediate: self.inner.immediate.clone(),
                events: self.inner.events.clone(),
                sealed: self.inner.sealed.clone(),
                max_args_bytes: bytes,
            }),
        }
    }

    /// Refuses an envelope (or one of its follow-ups) whose arguments are over the limit.
    pub(crate) fn check_size(&self, env: &Envelope) -> Result<()> {
        let max = self.inner.max_args_bytes;
        if env.args.len() > max {
            return Err(Error::InvalidInput(format!(
                "the arguments of task `{}` are {} bytes, over the limit of {max} (Queue::with_max_args_bytes)",
                env.task,
                env.args.len()
            )));
        }
        env.follow_ups
            .iter()
            .try_for_each(|f| self.check_size(&f.envelope))
    }

    /// The signing and encryption this queue applies, if any ([`Queue::with_sealing`]).
    pub fn sealing(&self) -> Option<&Sealing> {
        self.inner.sealed.as_deref().map(SealedStorage::sealing)
    }

    /// Whether this queue runs tasks inline ([`Queue::immediate`]).
    pub fn is_immediate(&self) -> bool {
        self.inner.immediate.is_some()
    }

    /// The store.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.inner.storage
    }

    /// Subscribes to the queue's events: `Enqueued` and `Scheduled` from producers using this
    /// handle (or its clones), and everything consumers built from it report. A subscriber that
    /// falls behind misses events but never slows anything down.
    ///
    /// # Examples
    ///
    /// ```
    /// # use futures::future::BoxFuture;
    /// # use queue_core::{Task, TaskContext, TaskError};
    /// # struct Ping;
    /// # impl Task for Ping {
    /// #     const NAME: &'static str = "ping";
    /// #     type Args = ();
    /// #     type Output = ();
    /// #     fn run(_: TaskContext, (): ()) -> BoxFuture<'static, Result<(), TaskError>> {
    /// #         Box::pin(async { Ok(()) })
    /// #     }
    /// # }
    /// use queue_core::{Event, Queue};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let queue = Queue::memory();
    /// let mut events = queue.events();
    /// let handle = Ping::call(()).enqueue(&queue).await?;
    /// assert!(matches!(events.recv().await, Ok(Event::Enqueued { id, .. }) if id == handle.id()));
    /// # Ok::<(), queue_core::Error>(()) }).unwrap();
    /// ```
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// The sending side of the queue's events, for consumers built from this queue.
    pub fn event_bus(&self) -> &Events {
        &self.inner.events
    }

    /// The store's clock.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.inner.storage.clock()
    }

    /// A typed handle to task `id`'s result.
    pub fn handle<T: DeserializeOwned>(&self, id: TaskId) -> TaskHandle<T> {
        TaskHandle::new(id, self.clone())
    }

    /// Stores one envelope.
    pub async fn enqueue_envelope(&self, envelope: Envelope) -> Result<EnqueueOutcome> {
        let mut outcomes = self.enqueue_envelopes(vec![envelope]).await?;
        outcomes.pop().ok_or_else(|| {
            Error::storage_msg(self.inner.storage.backend(), "enqueue returned no outcome")
        })
    }

    /// Stores a batch of envelopes in one store operation.
    ///
    /// Envelopes without a trace context get the current span's ([`crate::trace`]; only with
    /// the `opentelemetry` feature).
    pub async fn enqueue_envelopes(&self, mut batch: Vec<Envelope>) -> Result<Vec<EnqueueOutcome>> {
        for env in &mut batch {
            env.validate()?;
            self.check_size(env)?;
            if env.trace.is_empty() {
                crate::trace::inject_current(&mut env.trace);
            }
        }
        let expected = batch.len();
        // Only build events when someone listens: enqueue is a hot path.
        let announce = self.inner.events.has_subscribers().then(|| {
            batch
                .iter()
                .map(|e| (e.task.clone(), e.eta))
                .collect::<Vec<_>>()
        });
        let outcomes = self.inner.storage.enqueue(batch).await?;
        if outcomes.len() != expected {
            return Err(Error::storage_msg(
                self.inner.storage.backend(),
                format!(
                    "enqueue returned {} outcomes for {expected} envelopes",
                    outcomes.len()
                ),
            ));
        }
        if let Some(announce) = announce {
            let now = self.clock().now();
            for (outcome, (task, eta)) in outcomes.iter().zip(announce) {
                if let EnqueueOutcome::Enqueued(id) = *outcome {
                    self.inner.events.emit(match eta {
                        Some(eta) if eta > now => Event::Scheduled { id, task, eta },
                        _ => Event::Enqueued { id, task },
                    });
                }
            }
        }
        Ok(outcomes)
    }

    /// How many tasks are in each state, over all queues.
    pub async fn counts(&self) -> Result<Counts> {
        self.inner.storage.counts(None).await
    }

    pub(crate) async fn run_immediately<T: Task>(
        &self,
        call: TaskCall<T>,
    ) -> Result<TaskHandle<T::Output>> {
        let env = call.into_envelope(self.clock().now())?;
        let id = env.id;
        let mut tasks = HashMap::new();
        tasks.insert(T::NAME, erase::<T>());
        self.run_inline(env, &tasks).await?;
        Ok(self.handle(id))
    }

    /// Immediate mode: runs `env` and then its follow-ups inline, storing each result.
    pub(crate) async fn run_inline(
        &self,
        env: Envelope,
        tasks: &HashMap<&'static str, Arc<dyn ErasedTask>>,
    ) -> Result<()> {
        let memory = self
            .inner
            .immediate
            .as_ref()
            .ok_or_else(|| Error::InvalidInput("queue is not in immediate mode".into()))?;
        let mut work = vec![env];
        while let Some(mut env) = work.pop() {
            if !env.chord_members.is_empty() {
                match self.chord_inputs(&env).await? {
                    ChordInputs::Ready(args) => env.args = args,
                    ChordInputs::Failed(failure) | ChordInputs::Lost(failure) => {
                        memory.put_result(env.id, StoredResult::Failure(failure), None);
                        continue;
                    }
                    ChordInputs::Waiting => {
                        return Err(Error::InvalidInput(
                            "a chord member has no result in immediate mode".into(),
                        ))
                    }
                }
            }
            let result = match tasks.get(env.task.as_str()) {
                Some(task) => run_with_retries(&env, task.as_ref()).await,
                None => StoredResult::Failure(TaskFailure::new(
                    FailureKind::UnknownTask,
                    format!(
                        "no task named `{}` is known to this immediate-mode call",
                        env.task
                    ),
                    0,
                )),
            };
            work.extend(env.follow_ups_for(&result, self.clock().now())?);
            memory.put_result(env.id, result, None);
        }
        Ok(())
    }
}

/// Where a chord callback stands.
#[derive(Debug)]
pub enum ChordInputs {
    /// Every member succeeded: the callback's arguments.
    Ready(Vec<u8>),
    /// A member failed for good: the callback's failure.
    Failed(TaskFailure),
    /// Some member has no result yet.
    Waiting,
    /// A member has no result and is neither pending nor dead-lettered: its result expired or
    /// was deleted, or it was never stored. The callback can never run: its failure (the
    /// consumer dead-letters it).
    Lost(TaskFailure),
}

impl Queue {
    /// Reads the results of a chord callback's members.
    pub async fn chord_inputs(&self, callback: &Envelope) -> Result<ChordInputs> {
        chord_inputs(self.storage().as_ref(), callback).await
    }
}

/// Reads the results of a chord callback's members from `storage`: the callback's arguments
/// once every member succeeded, its failure once one failed, or `Waiting`.
pub async fn chord_inputs(storage: &dyn Storage, callback: &Envelope) -> Result<ChordInputs> {
    let mut outputs = Vec::with_capacity(callback.chord_members.len());
    for id in &callback.chord_members {
        match storage.get_result(*id).await? {
            Some(StoredResult::Success(bytes)) => outputs.push(bytes),
            Some(StoredResult::Failure(f)) => {
                return Ok(ChordInputs::Failed(TaskFailure::new(
                    f.kind,
                    format!("chord member {id} failed: {}", f.message),
                    0,
                )))
            }
            None => match missing_member(storage, *id).await? {
                Some(Ok(bytes)) => outputs.push(bytes),
                Some(Err(inputs)) => return Ok(inputs),
                None => return Ok(ChordInputs::Waiting),
            },
        }
    }
    Ok(ChordInputs::Ready(crate::envelope::chord_args(&outputs)))
}

/// A chord member without a result: `None` while it is pending; its output or the callback's
/// fate when it finished between the reads, sits in the dead-letter queue, or is gone.
async fn missing_member(
    storage: &dyn Storage,
    id: TaskId,
) -> Result<Option<std::result::Result<Vec<u8>, ChordInputs>>> {
    if storage.get_task(id).await?.is_some() {
        return Ok(None);
    }
    // It may have finished since its result was read: a completion writes the result and
    // removes the task in one step, so a second read of the result settles it.
    match storage.get_result(id).await? {
        Some(StoredResult::Success(bytes)) => return Ok(Some(Ok(bytes))),
        Some(StoredResult::Failure(f)) => {
            return Ok(Some(Err(ChordInputs::Failed(TaskFailure::new(
                f.kind,
                format!("chord member {id} failed: {}", f.message),
                0,
            )))))
        }
        None => {}
    }
    if let Some(dead) = storage.get_dead(id).await? {
        return Ok(Some(Err(ChordInputs::Failed(TaskFailure::new(
            dead.failure.kind,
            format!(
                "chord member {id} is in the dead-letter queue: {}",
                dead.failure.message
            ),
            0,
        )))));
    }
    Ok(Some(Err(ChordInputs::Lost(TaskFailure::new(
        FailureKind::Error,
        format!(
            "chord member {id} has no result and is not pending: its result expired or was \
             deleted (keep member results longer than the chord takes), or it was never stored"
        ),
        0,
    )))))
}

/// Runs one task inline, retrying at once (no delays) while its policy allows.
async fn run_with_retries(env: &Envelope, task: &dyn ErasedTask) -> StoredResult {
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let ctx = TaskContext {
            id: env.id,
            task: task.name(),
            queue: env.queue.clone(),
            attempt,
            retries_left: env.retry.max_retries.saturating_sub(attempt - 1),
            deliveries: attempt,
            enqueued_at: env.enqueued_at,
            cancellation: crate::CancellationToken::new(),
            progress_slot: crate::ProgressSlot::default(),
        };
        let fut = match task.start(ctx, &env.args) {
            Ok(fut) => fut,
            Err(e) => {
                return StoredResult::Failure(TaskFailure::new(
                    FailureKind::Undecodable,
                    e.to_string(),
                    attempt,
                ))
            }
        };
        let guarded = AssertUnwindSafe(fut).catch_unwind();
        let ran = match env.timeout {
            Some(limit) => tokio::time::timeout(limit, guarded).await.ok(),
            None => Some(guarded.await),
        };
        let (failure, retryable) = match ran {
            Some(Ok(Ok(bytes))) => return StoredResult::Success(bytes),
            Some(Ok(Err(err))) => {
                let kind = match err.kind() {
                    TaskErrorKind::Cancel => FailureKind::Canceled,
                    _ => FailureKind::Error,
                };
                let retryable = matches!(
                    err.kind(),
                    TaskErrorKind::Retry | TaskErrorKind::RetryAfter(_)
                );
                (TaskFailure::new(kind, err.message(), attempt), retryable)
            }
            Some(Err(panic)) => (
                TaskFailure::new(FailureKind::Panic, panic_message(&*panic), attempt),
                true,
            ),
            None => (
                TaskFailure::new(
                    FailureKind::Timeout,
                    format!(
                        "ran past its timeout of {:?}",
                        env.timeout.unwrap_or_default()
                    ),
                    attempt,
                ),
                true,
            ),
        };
        if !(retryable && env.retry.should_retry(attempt)) {
            return StoredResult::Failure(failure);
        }
    }
}

/// The message of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_owned()
    }
}
