//! Typed tasks: the [`Task`] trait (written by `#[task]`), its options and context, and the
//! [`Registry`] that lets a consumer run tasks by name.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
pub use tokio_util::sync::CancellationToken;

use crate::envelope::{from_msgpack, to_msgpack, DEFAULT_QUEUE};
use crate::{Error, RetryPolicy, TaskCall, TaskError, TaskId};

/// A kind of task: a name, typed arguments and output, options, and the code to run.
///
/// `#[skiff::task]` writes this for an `async fn` (or a plain `fn`, run on the blocking pool).
/// Implement it by hand when a macro does not fit.
///
/// # Examples
///
/// ```
/// use futures::future::BoxFuture;
/// use queue_core::{Task, TaskContext, TaskError, TaskOptions};
///
/// struct Add;
///
/// impl Task for Add {
///     const NAME: &'static str = "add";
///     type Args = (i64, i64);
///     type Output = i64;
///
///     fn options() -> TaskOptions {
///         TaskOptions::new().retries(2)
///     }
///
///     fn run(_ctx: TaskContext, (a, b): (i64, i64)) -> BoxFuture<'static, Result<i64, TaskError>> {
///         Box::pin(async move { Ok(a + b) })
///     }
/// }
///
/// let call = Add::call((1, 2));
/// assert_eq!(call.args(), &(1, 2));
/// ```
pub trait Task: Send + Sync + 'static {
    /// The name the task is stored and registered under. Unique within a consumer.
    const NAME: &'static str;
    /// The arguments, as a tuple of the function's parameters.
    type Args: Serialize + DeserializeOwned + Send + 'static;
    /// What the task returns on success.
    type Output: Serialize + DeserializeOwned + Send + 'static;

    /// Default options of every call of this task.
    fn options() -> TaskOptions {
        TaskOptions::new()
    }

    /// Runs the task.
    fn run(
        ctx: TaskContext,
        args: Self::Args,
    ) -> BoxFuture<'static, Result<Self::Output, TaskError>>;

    /// A call of this task with `args`, ready to configure and enqueue.
    fn call(args: Self::Args) -> TaskCall<Self>
    where
        Self: Sized,
    {
        TaskCall::new(args)
    }
}

/// Options of a task: where it goes, how it is retried, how long it may run.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use queue_core::TaskOptions;
///
/// let opts = TaskOptions::new()
///     .queue("emails")
///     .priority(100)
///     .retries(3)
///     .retry_delay(Duration::from_secs(60))
///     .retry_backoff(2.0)
///     .timeout(Duration::from_secs(30));
/// assert_eq!(opts.retry_policy().delay(2), Duration::from_secs(120));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct TaskOptions {
    /// Queue name.
    pub queue: String,
    /// Priority (higher first).
    pub priority: i16,
    /// Retries after a failure.
    pub retries: u32,
    /// Delay before the first retry.
    pub retry_delay: Duration,
    /// Multiply the delay by this for each further retry (`None` = fixed delay).
    pub retry_backoff: Option<f64>,
    /// Upper bound of the delay with backoff.
    pub retry_max_delay: Duration,
    /// Fraction of each retry delay to randomise.
    pub retry_jitter: f64,
    /// Time limit of one attempt.
    pub timeout: Option<Duration>,
    /// Dropped if not started within this long of being enqueued.
    pub expires: Option<Duration>,
    /// Name of a store-wide lock held while the task runs; a task that finds it taken is
    /// retried later with a `locked` event.
    pub lock: Option<String>,
    /// Store-wide rate limit of the task; over-limit tasks are delayed, not failed.
    pub rate_limit: Option<RateLimit>,
    /// Cron expression (seconds field first) on which the consumer enqueues the task by
    /// itself, once per fire time across the cluster. Only for tasks without arguments.
    pub periodic: Option<String>,
}

/// A rate limit: at most `limit` runs per `per`, shared by every process on the store.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use queue_core::task::RateLimit;
///
/// let r: RateLimit = "100/s".parse().unwrap();
/// assert_eq!((r.limit, r.per), (100, Duration::from_secs(1)));
/// assert_eq!("5/m".parse::<RateLimit>().unwrap().per, Duration::from_secs(60));
/// assert!("lots/s".parse::<RateLimit>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Runs allowed per window.
    pub limit: u32,
    /// The window.
    pub per: Duration,
}

impl std::str::FromStr for RateLimit {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |why: &str| {
            Error::InvalidInput(format!(
                "rate limit `{s}` {why}; write COUNT/UNIT with UNIT s, m or h, e.g. \"100/s\""
            ))
        };
        let (count, unit) = s.trim().split_once('/').ok_or_else(|| bad("has no `/`"))?;
        let limit: u32 = count
            .trim()
            .parse()
            .map_err(|_| bad("does not start with a whole number"))?;
        if limit == 0 {
            return Err(bad("allows nothing"));
        }
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(bad("has an unknown unit")),
        };
        Ok(Self { limit, per })
    }
}

impl Default for TaskOptions {
    fn default() -> Self {
        Self {
            queue: DEFAULT_QUEUE.to_owned(),
            priority: 0,
            retries: 0,
            retry_delay: Duration::ZERO,
            retry_backoff: None,
            retry_max_delay: Duration::from_secs(3600),
            retry_jitter: 0.0,
            timeout: None,
            expires: None,
            lock: None,
            rate_limit: None,
            periodic: None,
        }
    }
}

impl TaskOptions {
    /// The defaults: queue `"default"`, priority 0, no retries, no timeout.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the queue.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// Sets the priority.
    pub fn priority(mut self, priority: i16) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the number of retries.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Sets the delay before a retry.
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    /// Multiplies the retry delay by `factor` for each further retry.
    pub fn retry_backoff(mut self, factor: f64) -> Self {
        self.retry_backoff = Some(factor);
        self
    }

    /// Caps the retry delay when backing off.
    pub fn retry_max_delay(mut self, max: Duration) -> Self {
        self.retry_max_delay = max;
        self
    }

    /// Randomises this fraction of each retry delay.
    pub fn retry_jitter(mut self, fraction: f64) -> Self {
        self.retry_jitter = fraction;
        self
    }

    /// Sets the time limit of one attempt.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Drops the task if it has not started this long after being enqueued.
    pub fn expires(mut self, after: Duration) -> Self {
        self.expires = Some(after);
        self
    }

    /// Holds the store-wide lock `name` while the task runs.
    pub fn lock(mut self, name: impl Into<String>) -> Self {
        self.lock = Some(name.into());
        self
    }

    /// Limits how often the task runs across every process on the store.
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate_limit = Some(limit);
        self
    }

    /// Enqueues the task on this cron schedule (seconds field first, UTC).
    pub fn periodic(mut self, cron: impl Into<String>) -> Self {
        self.periodic = Some(cron.into());
        self
    }

    /// The retry policy these options describe.
    pub fn retry_policy(&self) -> RetryPolicy {
        let policy = match self.retry_backoff {
            Some(factor) => RetryPolicy::exponential(
                self.retries,
                self.retry_delay,
                factor,
                self.retry_max_delay.max(self.retry_delay),
            ),
            None => RetryPolicy::fixed(self.retries, self.retry_delay),
        };
        policy.with_jitter(self.retry_jitter)
    }
}

/// What a running task knows about itself. Ask for it with `#[task(context)]` and a first
/// parameter of this type.
#[derive(Clone, Debug)]
pub struct TaskContext {
    /// The task's id.
    pub id: TaskId,
    /// The task's name.
    pub task: &'static str,
    /// The queue it came from.
    pub queue: String,
    /// This attempt, from 1.
    pub attempt: u32,
    /// Retries left after this attempt if it fails.
    pub retries_left: u32,
    /// How many times the task has been delivered, counting this delivery.
    pub deliveries: u32,
    /// When it was first enqueued.
    pub enqueued_at: DateTime<Utc>,
    /// Fired when an operator cancels this task while it runs
    /// ([`Queue::cancel`](crate::Queue::cancel)). An async task's future is dropped right
    /// after; a plain `fn` (which cannot be stopped from outside) should check
    /// [`is_cancelled`](CancellationToken::is_cancelled) and return early.
    pub cancellation: CancellationToken,
    /// Where [`TaskContext::progress`] writes; the worker's heartbeat stores the newest value.
    pub progress_slot: ProgressSlot,
}

impl TaskContext {
    /// Reports how far the task has come: any small serializable value (at most
    /// [`ProgressSlot::MAX_BYTES`] encoded), such as a [`Progress`]. Cheap: the newest value is
    /// stored with the task at the worker's next heartbeat (about a second), not once per
    /// call; [`TaskHandle::progress`](crate::TaskHandle::progress) reads it.
    ///
    /// # Errors
    ///
    /// [`TaskError`] when the value does not encode or is too large (the task may go on).
    ///
    /// # Examples
    ///
    /// ```
    /// # #![allow(dead_code)]
    /// use queue_core::{Progress, TaskContext, TaskError};
    ///
    /// async fn resize(ctx: TaskContext, images: Vec<String>) -> Result<(), TaskError> {
    ///     for (i, image) in images.iter().enumerate() {
    ///         // … resize `image` …
    ///         ctx.progress(&Progress::new(100.0 * (i + 1) as f64 / images.len() as f64, image))?;
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub fn progress<P: Serialize + ?Sized>(&self, value: &P) -> Result<(), TaskError> {
        let bytes = to_msgpack(value).map_err(|e| TaskError::msg(e.to_string()))?;
        if bytes.len() > ProgressSlot::MAX_BYTES {
            return Err(TaskError::msg(format!(
                "progress of {} bytes is larger than the {} bytes a task may report",
                bytes.len(),
                ProgressSlot::MAX_BYTES
            )));
        }
        self.progress_slot.set(bytes);
        Ok(())
    }
}

/// A percentage and a message: the usual shape of [`TaskContext::progress`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// How much is done, 0 to 100.
    pub percent: f64,
    /// What it is doing now.
    pub message: String,
}

impl Progress {
    /// `percent` (clamped to 0..=100) done, now doing `message`.
    pub fn new(percent: f64, message: impl Into<String>) -> Self {
        Self {
            percent: if percent.is_nan() {
                0.0
            } else {
                percent.clamp(0.0, 100.0)
            },
            message: message.into(),
        }
    }
}

/// The newest progress a running task reported and its worker has not sent yet. Cheap to
/// clone; clones share the value.
#[derive(Clone, Debug, Default)]
pub struct ProgressSlot(Arc<Mutex<Option<Vec<u8>>>>);

impl ProgressSlot {
    /// The largest encoded progress value a task may report.
    pub const MAX_BYTES: usize = 16 * 1024;

    /// Replaces the unsent value.
    pub fn set(&self, bytes: Vec<u8>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(bytes);
    }

    /// Takes the unsent value, if any (the heartbeat sends it).
    pub fn take(&self) -> Option<Vec<u8>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Puts back a value that could not be sent, unless a newer one was set meanwhile.
    pub fn restore(&self, bytes: Vec<u8>) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(bytes);
    }
}

/// Something that names a task kind: the function `#[task]` writes (`send_email`) implements
/// it, so `consumer.register(send_email)` works. `Marker` only tells the impls apart.
pub trait TaskFn<Marker>: Send + Sync + 'static {
    /// The task kind.
    type Task: Task;
}

macro_rules! impl_task_fn {
    ($($arg:ident),*) => {
        impl<F, T, $($arg,)*> TaskFn<($($arg,)*)> for F
        where
            F: Fn($($arg),*) -> TaskCall<T> + Send + Sync + 'static,
            T: Task,
        {
            type Task = T;
        }
    };
}

impl_task_fn!();
impl_task_fn!(A1);
impl_task_fn!(A1, A2);
impl_task_fn!(A1, A2, A3);
impl_task_fn!(A1, A2, A3, A4);
impl_task_fn!(A1, A2, A3, A4, A5);
impl_task_fn!(A1, A2, A3, A4, A5, A6);
impl_task_fn!(A1, A2, A3, A4, A5, A6, A7);
impl_task_fn!(A1, A2, A3, A4, A5, A6, A7, A8);
impl_task_fn!(A1, A2, A3, A4, A5, A6, A7, A8, A9);
impl_task_fn!(A1, A2, A3, A4, A5, A6, A7, A8, A9, A10);
impl_task_fn!(A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11);
impl_task_fn!(A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12);

/// Runs a blocking closure on Tokio's blocking pool as a task body. A panic inside it is
/// resumed in the caller, so the runtime reports it as the task's panic. Used by `#[task]` on a
/// plain `fn`.
///
/// The thread cannot be stopped from outside: a worker keeps the task's lease, lock and slot
/// until it returns, even after a timeout, a cancel or a shutdown (see
/// [`blocking`](crate::blocking)). A long-running function should check
/// [`TaskContext::cancellation`] and return early.
pub fn run_blocking<F, T>(f: F) -> BoxFuture<'static, Result<T, TaskError>>
where
    F: FnOnce() -> Result<T, TaskError> + Send + 'static,
    T: Send + 'static,
{
    Box::pin(async move {
        // Counted from here (the body's first poll, inside the worker's scope) until the
        // closure returns or unwinds on its thread.
        let counted = crate::blocking::enter();
        let f = move || {
            let _counted = counted;
            f()
        };
        match tokio::task::spawn_blocking(f).await {
            Ok(result) => result,
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            Err(err) => Err(TaskError::msg(format!(
                "blocking task was cancelled: {err}"
            ))),
        }
    })
}

/// A task kind with its types erased, so tasks can be run by name from stored bytes.
pub trait ErasedTask: Send + Sync + 'static {
    /// The task's name.
    fn name(&self) -> &'static str;

    /// The task's default options.
    fn options(&self) -> TaskOptions;

    /// Decodes `args` and starts the task; the future yields the msgpack-encoded output.
    /// Fails with [`Error::Decode`] when the arguments do not decode as the task's `Args`.
    fn start(
        &self,
        ctx: TaskContext,
        args: &[u8],
    ) -> Result<BoxFuture<'static, Result<Vec<u8>, TaskError>>, Error>;
}

struct Erased<T>(PhantomData<fn() -> T>);

impl<T: Task> ErasedTask for Erased<T> {
    fn name(&self) -> &'static str {
        T::NAME
    }

    fn options(&self) -> TaskOptions {
        T::options()
    }

    fn start(
        &self,
        ctx: TaskContext,
        args: &[u8],
    ) -> Result<BoxFuture<'static, Result<Vec<u8>, TaskError>>, Error> {
        let args: T::Args = from_msgpack(args)?;
        Ok(Box::pin(async move {
            let output = T::run(ctx, args).await?;
            to_msgpack(&output)
                .map_err(|e| TaskError::fatal(format!("could not encode the task's output: {e}")))
        }))
    }
}

/// The erased form of task kind `T`.
pub fn erase<T: Task>() -> Arc<dyn ErasedTask> {
    Arc::new(Erased::<T>(PhantomData))
}

/// Task kinds by name: what a consumer can run.
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
/// #     type Output = String;
/// #     fn run(_: TaskContext, _: ()) -> BoxFuture<'static, Result<String, TaskError>> {
/// #         Box::pin(async { Ok("pong".to_owned()) })
/// #     }
/// # }
/// use queue_core::Registry;
///
/// let mut registry = Registry::new();
/// registry.register::<Ping>();
/// assert!(registry.get("ping").is_some());
/// ```
#[derive(Clone, Default)]
pub struct Registry {
    tasks: HashMap<&'static str, Arc<dyn ErasedTask>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds task kind `T`. A kind registered twice replaces the first.
    pub fn register<T: Task>(&mut self) -> &mut Self {
        self.tasks.insert(T::NAME, erase::<T>());
        self
    }

    /// Adds the task kind a `#[task]` function names.
    pub fn register_fn<M, F: TaskFn<M>>(&mut self, _f: F) -> &mut Self {
        self.register::<F::Task>()
    }

    /// Adds an erased task kind.
    pub fn insert(&mut self, task: Arc<dyn ErasedTask>) -> &mut Self {
        self.tasks.insert(task.name(), task);
        self
    }

    /// The task kind registered under `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn ErasedTask>> {
        self.tasks.get(name)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.tasks.keys().copied().collect();
        names.sort_unstable();
        names
    }

    /// How many kinds are registered.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("tasks", &self.names())
            .finish()
    }
}
