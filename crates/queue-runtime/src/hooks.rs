//! Hooks: code the consumer runs around each task and around its own life.
//!
//! * [`pre_execute`](crate::ConsumerBuilder::pre_execute) runs before each task body (after
//!   the revocation, expiry, lock and rate-limit checks). An `Err` cancels the task: it is
//!   dropped with [`FailureKind::Canceled`](queue_core::FailureKind::Canceled) and an
//!   [`Event::Canceled`](crate::Event::Canceled), without running.
//! * [`post_execute`](crate::ConsumerBuilder::post_execute) sees each run task's outcome
//!   (success, retry, dead letter, drop) before it is written. Keep it quick: it runs on the
//!   execution's task.
//! * [`on_startup`](crate::ConsumerBuilder::on_startup) runs once before the first fetch;
//!   [`on_shutdown`](crate::ConsumerBuilder::on_shutdown) once after the last outcome is
//!   written (graceful stops only: a dropped consumer runs nothing more).
//! * [`on_event`](crate::ConsumerBuilder::on_event) is called with every [`Event`] on a task of
//!   its own, so a slow callback never blocks execution (it falls behind and misses events, as
//!   a slow subscriber does).
//!
//! Several hooks of a kind run in the order they were added.

use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::Stream;
use queue_core::{Outcome, TaskContext, TaskError};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::ConsumerBuilder;
use queue_core::Event;

pub(crate) type PreHook =
    Arc<dyn Fn(TaskContext) -> BoxFuture<'static, Result<(), TaskError>> + Send + Sync>;
pub(crate) type PostHook = Arc<dyn Fn(&TaskContext, &Outcome) + Send + Sync>;
pub(crate) type LifeHook = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;
pub(crate) type EventHook = Arc<dyn Fn(&Event) + Send + Sync>;

/// Every hook of a consumer.
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    pub(crate) pre: Vec<PreHook>,
    pub(crate) post: Vec<PostHook>,
    pub(crate) startup: Vec<LifeHook>,
    pub(crate) shutdown: Vec<LifeHook>,
    pub(crate) events: Vec<EventHook>,
}

impl Hooks {
    /// Runs the pre-execute hooks in order; the first `Err` wins.
    pub(crate) async fn before(&self, ctx: &TaskContext) -> Result<(), TaskError> {
        for hook in &self.pre {
            hook(ctx.clone()).await?;
        }
        Ok(())
    }

    /// Runs the post-execute hooks; a panicking hook is logged and does not stop the others.
    pub(crate) fn after(&self, ctx: &TaskContext, outcome: &Outcome) {
        for hook in &self.post {
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(ctx, outcome)));
            if ran.is_err() {
                tracing::error!(task = %ctx.task, "a post_execute hook panicked");
            }
        }
    }

    /// Runs lifecycle hooks in order.
    pub(crate) async fn life(hooks: &[LifeHook]) {
        for hook in hooks {
            hook().await;
        }
    }

    /// Feeds events to the `on_event` callbacks until `done` is cancelled, then delivers what
    /// is already queued and returns.
    pub(crate) async fn feed(
        callbacks: Vec<EventHook>,
        mut rx: broadcast::Receiver<Event>,
        done: CancellationToken,
    ) {
        let call = |event: &Event| {
            for cb in &callbacks {
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(event)));
                if ran.is_err() {
                    tracing::error!(event = event.kind(), "an on_event callback panicked");
                }
            }
        };
        loop {
            let next = tokio::select! {
                next = rx.recv() => next,
                () = done.cancelled() => break,
            };
            match next {
                Ok(event) => call(&event),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(
                        missed = n,
                        "an on_event callback fell behind and missed events"
                    );
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
        while let Ok(event) = rx.try_recv() {
            call(&event);
        }
    }
}

/// The hook setters of the builder.
impl ConsumerBuilder {
    /// Runs `hook` before each task body, with the task's context. An `Err` cancels the task:
    /// it is dropped (result: a `Canceled` failure) with an [`Event::Canceled`], not retried.
    /// See the [module docs](self).
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
    /// #     fn run(_: TaskContext, _: ()) -> BoxFuture<'static, Result<(), TaskError>> {
    /// #         Box::pin(async { Ok(()) })
    /// #     }
    /// # }
    /// use queue_core::Queue;
    /// use queue_runtime::Consumer;
    ///
    /// let consumer = Consumer::builder(Queue::memory())
    ///     .register_task::<Ping>()
    ///     .pre_execute(|ctx| async move {
    ///         if ctx.attempt > 10 {
    ///             return Err(TaskError::cancel("too many attempts"));
    ///         }
    ///         Ok(())
    ///     })
    ///     .post_execute(|ctx, outcome| tracing::info!(task = ctx.task, ?outcome, "ran"))
    ///     .on_startup(|| async { tracing::info!("warming caches") })
    ///     .on_shutdown(|| async { tracing::info!("flushing metrics") })
    ///     .on_event(|event| tracing::debug!(kind = event.kind(), "event"))
    ///     .build()?;
    /// # drop(consumer);
    /// # Ok::<(), queue_core::Error>(())
    /// ```
    pub fn pre_execute<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), TaskError>> + Send + 'static,
    {
        self.hooks.pre.push(pre_hook(hook));
        self
    }

    /// Calls `hook` with each run task's context and outcome, before the outcome is written.
    pub fn post_execute<F>(mut self, hook: F) -> Self
    where
        F: Fn(&TaskContext, &Outcome) + Send + Sync + 'static,
    {
        self.hooks.post.push(Arc::new(hook));
        self
    }

    /// Runs `hook` once when the consumer starts, before it fetches anything.
    pub fn on_startup<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.hooks.startup.push(life_hook(hook));
        self
    }

    /// Runs `hook` once when a graceful shutdown has finished (outcomes written).
    pub fn on_shutdown<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.hooks.shutdown.push(life_hook(hook));
        self
    }

    /// Calls `callback` with every [`Event`], on a task of its own: a slow callback never
    /// slows execution (it misses events instead, with a warning).
    pub fn on_event<F>(mut self, callback: F) -> Self
    where
        F: Fn(&Event) + Send + Sync + 'static,
    {
        self.hooks.events.push(Arc::new(callback));
        self
    }
}

/// Boxes a pre-execute hook.
pub(crate) fn pre_hook<F, Fut>(f: F) -> PreHook
where
    F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), TaskError>> + Send + 'static,
{
    Arc::new(move |ctx| Box::pin(f(ctx)))
}

/// Boxes a lifecycle hook.
pub(crate) fn life_hook<F, Fut>(f: F) -> LifeHook
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Arc::new(move || Box::pin(f()))
}

/// The events of a receiver as a [`Stream`], skipping over the events a slow reader missed.
/// Ends when the consumer is gone.
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// # use futures::future::BoxFuture;
/// # use queue_core::{Task, TaskContext, TaskError};
/// # struct Ping;
/// # impl Task for Ping {
/// #     const NAME: &'static str = "ping";
/// #     type Args = ();
/// #     type Output = ();
/// #     fn run(_: TaskContext, _: ()) -> BoxFuture<'static, Result<(), TaskError>> {
/// #         Box::pin(async { Ok(()) })
/// #     }
/// # }
/// use queue_core::Queue;
/// use queue_runtime::{event_stream, Consumer, Event};
///
/// # #[tokio::main] async fn main() -> Result<(), queue_core::Error> {
/// let queue = Queue::memory();
/// let consumer = Consumer::builder(queue.clone()).register_task::<Ping>().build()?;
/// let mut events = Box::pin(event_stream(consumer.events()));
/// let running = consumer.spawn();
/// Ping::call(()).enqueue(&queue).await?;
/// while let Some(event) = events.next().await {
///     if let Event::Complete { task, .. } = event {
///         assert_eq!(task, "ping");
///         break;
///     }
/// }
/// running.shutdown(std::time::Duration::from_secs(5)).await?;
/// # Ok(()) }
/// ```
pub fn event_stream(rx: broadcast::Receiver<Event>) -> impl Stream<Item = Event> + Send {
    futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(event) => return Some((event, rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}
