//! [`TaskCall`]: one call of a task, configured and then enqueued.

use std::marker::PhantomData;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::envelope::to_msgpack;
use crate::{EnqueueOutcome, Envelope, Queue, Result, Task, TaskHandle, TaskId};

#[derive(Clone, Copy, Debug)]
enum When {
    After(Duration),
    At(DateTime<Utc>),
}

impl When {
    fn resolve(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Self::After(d) => crate::clock::after(now, d),
            Self::At(t) => t,
        }
    }
}

/// One call of task `T` with its arguments: configure it, then [`enqueue`](TaskCall::enqueue)
/// it. `#[task]` functions return one.
///
/// # Examples
///
/// ```
/// # use futures::future::BoxFuture;
/// # use queue_core::{Task, TaskContext, TaskError};
/// # struct Add;
/// # impl Task for Add {
/// #     const NAME: &'static str = "add";
/// #     type Args = (i64, i64);
/// #     type Output = i64;
/// #     fn run(_: TaskContext, (a, b): (i64, i64)) -> BoxFuture<'static, Result<i64, TaskError>> {
/// #         Box::pin(async move { Ok(a + b) })
/// #     }
/// # }
/// use std::time::Duration;
/// use queue_core::Queue;
///
/// # tokio_test_block_on(async {
/// let queue = Queue::immediate();
/// let handle = Add::call((2, 3)).priority(10).enqueue(&queue).await?;
/// assert_eq!(handle.get(Duration::from_secs(1)).await?, 5);
/// # Ok::<(), queue_core::Error>(()) }).unwrap();
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
#[must_use = "a task call does nothing until it is enqueued"]
pub struct TaskCall<T: Task> {
    args: T::Args,
    id: Option<TaskId>,
    queue: Option<String>,
    priority: Option<i16>,
    when: Option<When>,
    expires: Option<When>,
    unique_key: Option<String>,
    _task: PhantomData<fn() -> T>,
}

impl<T: Task> TaskCall<T> {
    /// A call of `T` with `args` and `T`'s default options.
    pub fn new(args: T::Args) -> Self {
        Self {
            args,
            id: None,
            queue: None,
            priority: None,
            when: None,
            expires: None,
            unique_key: None,
            _task: PhantomData,
        }
    }

    /// Runs no earlier than `delay` from now.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.when = Some(When::After(delay));
        self
    }

    /// Runs no earlier than `eta`.
    pub fn eta(mut self, eta: DateTime<Utc>) -> Self {
        self.when = Some(When::At(eta));
        self
    }

    /// Overrides the task's priority (higher runs first).
    pub fn priority(mut self, priority: i16) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Sends the call to another queue than the task's own.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Uses a fixed id. Enqueueing is a no-op while a task with this id is pending or running.
    pub fn id(mut self, id: TaskId) -> Self {
        self.id = Some(id);
        self
    }

    /// Enqueueing is a no-op, returning the existing task's handle, while a task with this key
    /// is pending or running.
    pub fn unique_key(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }

    /// Drops the task if it has not started `after` from now.
    pub fn expires(mut self, after: Duration) -> Self {
        self.expires = Some(When::After(after));
        self
    }

    /// Drops the task if it has not started by `deadline`.
    pub fn expires_at(mut self, deadline: DateTime<Utc>) -> Self {
        self.expires = Some(When::At(deadline));
        self
    }

    /// The call's arguments.
    pub fn args(&self) -> &T::Args {
        &self.args
    }

    /// Whether enqueueing it always stores a new task: no fixed id and no unique key, either
    /// of which may make it a no-op that points at another task.
    pub(crate) fn is_fresh(&self) -> bool {
        self.id.is_none() && self.unique_key.is_none()
    }

    /// The envelope this call stores, as of `now`.
    pub fn into_envelope(self, now: DateTime<Utc>) -> Result<Envelope> {
        let mut env = task_envelope::<T>(to_msgpack(&self.args)?, now);
        if let Some(queue) = self.queue {
            env.queue = queue;
        }
        if let Some(id) = self.id {
            env.id = id;
        }
        if let Some(priority) = self.priority {
            env.priority = priority;
        }
        env.eta = self.when.map(|w| w.resolve(now));
        if let Some(expires) = self.expires {
            env.expires_at = Some(expires.resolve(now));
        }
        env.unique_key = self.unique_key;
        env.validate()?;
        Ok(env)
    }

    /// Stores the call in `queue` and returns a typed handle to its result at once. On an
    /// immediate-mode queue ([`Queue::immediate`]) the task runs before this returns.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may or may not have stored the task.
    pub async fn enqueue(self, queue: &Queue) -> Result<TaskHandle<T::Output>> {
        if queue.is_immediate() {
            return queue.run_immediately(self).await;
        }
        let env = self.into_envelope(queue.clock().now())?;
        let outcome = queue.enqueue_envelope(env).await?;
        Ok(queue.handle(outcome.id()))
    }
}

/// An envelope of task `T` with encoded `args` and `T`'s default options.
pub(crate) fn task_envelope<T: Task>(args: Vec<u8>, now: DateTime<Utc>) -> Envelope {
    let opts = T::options();
    let mut env = Envelope::new(opts.queue.clone(), T::NAME, args, now);
    env.priority = opts.priority;
    env.expires_at = opts.expires.map(|d| crate::clock::after(now, d));
    env.retry = opts.retry_policy();
    env.timeout = opts.timeout;
    env
}

impl Queue {
    /// Enqueues many calls of one task kind in one store operation.
    ///
    /// # Examples
    ///
    /// ```
    /// # use futures::future::BoxFuture;
    /// # use queue_core::{Task, TaskContext, TaskError};
    /// # struct Double;
    /// # impl Task for Double {
    /// #     const NAME: &'static str = "double";
    /// #     type Args = (u32,);
    /// #     type Output = u32;
    /// #     fn run(_: TaskContext, (n,): (u32,)) -> BoxFuture<'static, Result<u32, TaskError>> {
    /// #         Box::pin(async move { Ok(n * 2) })
    /// #     }
    /// # }
    /// use queue_core::Queue;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let queue = Queue::memory();
    /// let handles = queue.enqueue_many((0..100).map(|n| Double::call((n,)))).await?;
    /// assert_eq!(handles.len(), 100);
    /// assert_eq!(queue.counts().await?.ready, 100);
    /// # Ok::<(), queue_core::Error>(()) }).unwrap();
    /// ```
    pub async fn enqueue_many<T: Task>(
        &self,
        calls: impl IntoIterator<Item = TaskCall<T>>,
    ) -> Result<Vec<TaskHandle<T::Output>>> {
        if self.is_immediate() {
            let mut handles = Vec::new();
            for call in calls {
                handles.push(call.enqueue(self).await?);
            }
            return Ok(handles);
        }
        let now = self.clock().now();
        let batch = calls
            .into_iter()
            .map(|c| c.into_envelope(now))
            .collect::<Result<Vec<_>>>()?;
        let outcomes = self.enqueue_envelopes(batch).await?;
        Ok(outcomes
            .iter()
            .map(EnqueueOutcome::id)
            .map(|id| self.handle(id))
            .collect())
    }

    /// What a store's transactional enqueue (`EnqueueIn` of the SQLite and PostgreSQL stores)
    /// shares: on an immediate-mode queue the calls run at once ([`enqueue_many`](Self::enqueue_many));
    /// otherwise their envelopes (at this queue's clock, with the current trace) go to `store`,
    /// which writes them with the caller's transaction, and its outcomes become handles. No
    /// `Enqueued` event is sent: the transaction may still roll back.
    ///
    /// # Errors
    ///
    /// What building an envelope (an invalid call) or `store` returns.
    pub async fn enqueue_with<T, F, Fut>(
        &self,
        calls: Vec<TaskCall<T>>,
        store: F,
    ) -> Result<Vec<TaskHandle<T::Output>>>
    where
        T: Task,
        F: FnOnce(Vec<Envelope>) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<EnqueueOutcome>>>,
    {
        if self.is_immediate() {
            return self.enqueue_many(calls).await;
        }
        let now = self.clock().now();
        let mut batch = calls
            .into_iter()
            .map(|c| c.into_envelope(now))
            .collect::<Result<Vec<_>>>()?;
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        for env in &mut batch {
            self.check_size(env)?;
            if env.trace.is_empty() {
                crate::trace::inject_current(&mut env.trace);
            }
            // The caller's transaction writes past the queue's store: seal here.
            if let Some(sealing) = self.sealing() {
                sealing.seal(env)?;
            }
        }
        let outcomes = store(batch).await?;
        Ok(outcomes.iter().map(|o| self.handle(o.id())).collect())
    }
}
