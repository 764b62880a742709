//! Stopping a consumer: [`RunningConsumer`], [`ShutdownReport`], and the graceful path that
//! [`Consumer::run_until`](crate::Consumer::run_until) and [`RunningConsumer::shutdown`] share.
//!
//! # Stopping safely
//!
//! A graceful shutdown
//!
//! 1. stops fetching (no new task is leased);
//! 2. waits up to the timeout for running tasks, whose outcomes are written as usual;
//! 3. aborts the tasks still running and hands them back to the queue (`Outcome::Defer` with
//!    `eta = now`), so another worker picks them up at once instead of after their lease — a
//!    plain `fn` still running on a blocking thread keeps its lease and lock until it returns,
//!    and the shutdown waits for it (see [`queue_core::blocking`]);
//! 4. flushes the outcomes not yet written, and returns a [`ShutdownReport`].
//!
//! Dropping the consumer's future (or the [`RunningConsumer`]) instead stops everything at once,
//! like a crash: nothing more is written, and the tasks it held are delivered again when their
//! leases run out. No task is lost either way.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use queue_core::{panic_message, Error, Result};
use tokio::sync::broadcast;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use queue_core::{Event, Events};

/// What a graceful shutdown did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Tasks that were running when the shutdown began and finished within the timeout (their
    /// outcomes were written).
    pub completed: u64,
    /// Tasks still running at the timeout: stopped and handed back to the queue for another
    /// worker.
    pub released: u64,
    /// Outcomes the store did not take before the consumer gave up (it was unreachable). Those
    /// tasks are delivered again when their leases run out.
    pub unacked: u64,
}

/// The stop request shared by a running consumer and whoever stops it.
#[derive(Clone, Debug)]
pub(crate) struct Stop {
    token: CancellationToken,
    grace: Arc<Mutex<Duration>>,
}

impl Stop {
    pub(crate) fn new(grace: Duration) -> Self {
        Self {
            token: CancellationToken::new(),
            grace: Arc::new(Mutex::new(grace)),
        }
    }

    /// Asks the consumer to stop, waiting up to `grace` (or the configured default) for
    /// running tasks.
    pub(crate) fn trigger(&self, grace: Option<Duration>) {
        if let Some(grace) = grace {
            *self.grace.lock().unwrap_or_else(|e| e.into_inner()) = grace;
        }
        self.token.cancel();
    }

    pub(crate) fn token(&self) -> &CancellationToken {
        &self.token
    }

    pub(crate) fn grace(&self) -> Duration {
        *self.grace.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Waits up to `grace` for the executions in `tasks`, then aborts the rest and waits for them
/// to unwind (each aborted execution hands its task back to the queue as it is dropped).
pub(crate) async fn drain(tasks: &mut JoinSet<()>, grace: Duration) {
    let all_done = tokio::time::timeout(grace, async {
        while let Some(joined) = tasks.join_next().await {
            log_join(joined);
        }
    })
    .await
    .is_ok();
    if !all_done {
        tracing::info!(
            running = tasks.len(),
            "shutdown timeout reached; handing running tasks back to the queue"
        );
        tasks.abort_all();
        while let Some(joined) = tasks.join_next().await {
            log_join(joined);
        }
    }
}

/// Logs an execution that ended abnormally. A task's own panic is caught inside the execution;
/// a panic seen here is a bug in the runtime (the task was handed back to the queue).
pub(crate) fn log_join(joined: std::result::Result<(), tokio::task::JoinError>) {
    if let Err(err) = joined {
        if err.is_panic() {
            let message = panic_message(&*err.into_panic());
            tracing::error!(%message, "an execution panicked outside its task");
        }
    }
}

/// A consumer running in the background, from [`Consumer::spawn`](crate::Consumer::spawn).
///
/// Stop it with [`shutdown`](Self::shutdown). Dropping it (or calling
/// [`abort`](Self::abort)) stops the consumer at once, as a crash would: its tasks come back
/// when their leases run out.
#[must_use = "dropping a RunningConsumer stops the consumer at once; call `.shutdown(timeout)`"]
#[derive(Debug)]
pub struct RunningConsumer {
    handle: Option<JoinHandle<Result<ShutdownReport>>>,
    stop: Stop,
    events: Events,
}

impl RunningConsumer {
    pub(crate) fn new(
        handle: JoinHandle<Result<ShutdownReport>>,
        stop: Stop,
        events: Events,
    ) -> Self {
        Self {
            handle: Some(handle),
            stop,
            events,
        }
    }

    /// Subscribes to the consumer's [`Event`]s.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Whether the consumer has stopped (it only stops on its own if it was shut down).
    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Stops fetching, waits up to `timeout` for running tasks, hands the rest back to the
    /// queue, writes the outstanding outcomes, and reports what it did. See the
    /// [module docs](crate::shutdown) for the steps.
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
    /// use std::time::Duration;
    /// use queue_core::Queue;
    /// use queue_runtime::Consumer;
    ///
    /// # #[tokio::main] async fn main() -> Result<(), queue_core::Error> {
    /// let running = Consumer::builder(Queue::memory()).register_task::<Ping>().build()?.spawn();
    /// let report = running.shutdown(Duration::from_secs(30)).await?;
    /// assert_eq!(report.released, 0);
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes stops the consumer at once, like
    /// [`abort`](Self::abort).
    pub async fn shutdown(mut self, timeout: Duration) -> Result<ShutdownReport> {
        self.stop.trigger(Some(timeout));
        let Some(handle) = self.handle.as_mut() else {
            return Ok(ShutdownReport::default());
        };
        let joined = handle.await;
        self.handle = None;
        match joined {
            Ok(report) => report,
            Err(err) if err.is_panic() => Err(Error::ShutDown(format!(
                "the consumer panicked: {}",
                panic_message(&*err.into_panic())
            ))),
            Err(err) => Err(Error::ShutDown(format!(
                "the consumer was cancelled: {err}"
            ))),
        }
    }

    /// Stops the consumer at once without writing anything more, as a crash would. Its tasks
    /// are delivered again when their leases run out.
    ///
    /// Unlike a crash, a plain `fn` task already running on a blocking thread cannot be
    /// stopped: it runs on to its end, its lease no longer renewed, so another consumer may
    /// start the same task meanwhile. [`shutdown`](Self::shutdown) keeps such a task's lease
    /// until it returns.
    pub fn abort(mut self) {
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}

impl Drop for RunningConsumer {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}
