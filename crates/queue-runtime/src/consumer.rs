//! [`Consumer`]: the fetch loop and how a consumer is started and stopped.
//!
//! Fetching is done by the `fetcher` module; each task runs in the `executor`.

use std::fmt;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use queue_core::{Queue, Registry, Result, WorkerInfo};
use tokio::sync::{broadcast, mpsc, Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::acker::Acker;
use crate::builder::{Config, ConsumerBuilder};
use crate::executor::Executor;
use crate::fetcher::Fetcher;
use crate::heartbeat;
use crate::hooks::Hooks;
use crate::inflight::{Handoff, InFlight, Stats};
use crate::limits::limits_of;
use crate::pace::Pace;
use crate::periodic::{Periodic, Ticker};
use crate::picker::Picker;
use crate::renewer;
use crate::shutdown::{drain, RunningConsumer, ShutdownReport, Stop};
use queue_core::{Event, Events};

/// How long a shutdown waits for the last outcomes to be written before giving up on an
/// unreachable store (those tasks are delivered again after their leases).
const FINAL_FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs tasks from one queue of a store: fetches them under a lease, runs up to `workers` at
/// once, writes their outcomes back in batches, and renews their leases while they run.
///
/// Build one with [`Consumer::builder`]; run it with [`run`](Self::run),
/// [`run_until`](Self::run_until) or [`spawn`](Self::spawn). See the [crate docs](crate) for an
/// example.
pub struct Consumer {
    queue: Queue,
    registry: Arc<Registry>,
    config: Arc<Config>,
    events: Events,
    periodic: Vec<Periodic>,
    hooks: Arc<Hooks>,
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("queues", &self.config.queues)
            .field("workers", &self.config.workers)
            .field("tasks", &self.registry.names())
            .finish_non_exhaustive()
    }
}

impl Consumer {
    /// A builder for a consumer of `queue`'s store. See [`ConsumerBuilder`] for the settings.
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
    /// let consumer = Consumer::builder(Queue::memory()).workers(4).register_task::<Ping>().build()?;
    /// assert_eq!(consumer.workers(), 4);
    /// # Ok::<(), queue_core::Error>(())
    /// ```
    pub fn builder(queue: Queue) -> ConsumerBuilder {
        ConsumerBuilder::new(queue)
    }

    pub(crate) fn from_parts(
        queue: Queue,
        registry: Registry,
        config: Config,
        periodic: Vec<Periodic>,
        hooks: Hooks,
    ) -> Self {
        let events = queue.event_bus().clone();
        Self {
            queue,
            registry: Arc::new(registry),
            config: Arc::new(config),
            events,
            periodic,
            hooks: Arc::new(hooks),
        }
    }

    /// Subscribes to this consumer's [`Event`]s. Subscribe before running it to see every
    /// event; a subscriber that falls behind misses events but never slows the consumer.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// The (first) queue this consumer takes tasks from.
    pub fn queue_name(&self) -> &str {
        self.config.queues.first().map_or("", |(q, _)| q.as_str())
    }

    /// The queues this consumer takes tasks from, with their weights.
    pub fn queues(&self) -> &[(String, u32)] {
        &self.config.queues
    }

    /// The most tasks it runs at once.
    pub fn workers(&self) -> usize {
        self.config.workers
    }

    /// The task kinds it can run, sorted.
    pub fn task_names(&self) -> Vec<&'static str> {
        self.registry.names()
    }

    /// Whether it is configured to run the periodic ticker.
    pub fn periodic(&self) -> bool {
        self.config.periodic
    }

    /// The periodic tasks it knows, with their schedules, sorted by name.
    pub fn periodic_tasks(&self) -> Vec<(&'static str, String)> {
        let mut tasks: Vec<_> = self
            .periodic
            .iter()
            .map(|p| (p.task.name(), p.schedule.to_string()))
            .collect();
        tasks.sort();
        tasks
    }

    /// Runs until the future is dropped. Dropping it stops everything at once, like a crash
    /// (tasks held come back after their lease); use [`run_until`](Self::run_until) or
    /// [`spawn`](Self::spawn) for a graceful stop.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future loses no task: whatever it held is delivered again when its lease
    /// runs out.
    pub async fn run(self) -> Result<ShutdownReport> {
        self.run_until(std::future::pending::<()>()).await
    }

    /// Runs until `signal` completes, then shuts down gracefully, waiting up to the builder's
    /// [`shutdown_timeout`](ConsumerBuilder::shutdown_timeout) for running tasks. The signal's
    /// output is ignored, so `tokio::signal::ctrl_c()` can be passed as is.
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
    /// use queue_runtime::Consumer;
    ///
    /// # #[tokio::main] async fn main() -> Result<(), queue_core::Error> {
    /// let queue = Queue::memory();
    /// let handle = Add::call((2, 3)).enqueue(&queue).await?;
    /// let consumer = Consumer::builder(queue.clone()).register_task::<Add>().build()?;
    /// // Stop once the result is in (a service would pass `tokio::signal::ctrl_c()`).
    /// let report = consumer
    ///     .run_until(async { assert_eq!(handle.get(Duration::from_secs(5)).await.ok(), Some(5)) })
    ///     .await?;
    /// assert_eq!(report.released, 0);
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// As for [`run`](Self::run).
    pub async fn run_until<F: Future>(self, signal: F) -> Result<ShutdownReport> {
        let stop = Stop::new(self.config.shutdown_timeout);
        let run = self.run_with(stop.clone());
        tokio::pin!(run);
        tokio::select! {
            report = &mut run => return report,
            _ = signal => stop.trigger(None),
        }
        run.await
    }

    /// Runs the consumer in the background of the current Tokio runtime.
    ///
    /// # Examples
    ///
    /// See [`RunningConsumer::shutdown`].
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn spawn(self) -> RunningConsumer {
        let stop = Stop::new(self.config.shutdown_timeout);
        let events = self.events.clone();
        let handle = tokio::spawn(self.run_with(stop.clone()));
        RunningConsumer::new(handle, stop, events)
    }

    /// The consumer's whole life: start the helpers, fetch until stopped, shut down.
    async fn run_with(self, stop: Stop) -> Result<ShutdownReport> {
        let storage = self.queue.storage().clone();
        let config = self.config.clone();
        let inflight = Arc::new(InFlight::default());
        let stats = Arc::new(Stats::default());
        let (tx, rx) = mpsc::unbounded_channel();
        tracing::info!(
            queues = ?config.queues, workers = config.workers, backend = storage.backend(),
            tasks = ?self.registry.names(), "consumer starting"
        );

        let events_done = CancellationToken::new();
        let mut event_feed = (!self.hooks.events.is_empty()).then(|| {
            AbortOnDropHandle::new(tokio::spawn(Hooks::feed(
                self.hooks.events.clone(),
                self.events.subscribe(),
                events_done.clone(),
            )))
        });
        Hooks::life(&self.hooks.startup).await;

        let give_up = CancellationToken::new();
        let mut acker = AbortOnDropHandle::new(tokio::spawn(
            Acker {
                storage: storage.clone(),
                inflight: inflight.clone(),
                events: self.events.clone(),
                max: config.ack_batch,
                max_delay: config.ack_delay,
                lease: config.lease,
                give_up: give_up.clone(),
            }
            .run(rx),
        ));
        let background = CancellationToken::new();
        let _renewer = AbortOnDropHandle::new(tokio::spawn(renewer::renew(
            storage.clone(),
            inflight.clone(),
            self.events.clone(),
            config.lease,
            config.renew_every(),
            background.clone(),
        )));
        let worker = WorkerInfo::this_process(
            config.queues.clone(),
            u32::try_from(config.workers).unwrap_or(u32::MAX),
            storage.clock().now(),
        );
        let board = Arc::new(crate::periodic::Board::default());
        let sources = heartbeat::Sources {
            inflight: inflight.clone(),
            stats: stats.clone(),
            board: board.clone(),
        };
        let mut heartbeat = AbortOnDropHandle::new(tokio::spawn(heartbeat::beat(
            storage.clone(),
            sources,
            worker.clone(),
            config.heartbeat,
            config.heartbeat_ttl(),
            background.clone(),
        )));
        let _housekeeping = AbortOnDropHandle::new(tokio::spawn(renewer::housekeeping(
            storage.clone(),
            config.queue_names(),
            config.requeue_every(),
            background.clone(),
        )));

        let _ticker = (config.periodic && !self.periodic.is_empty()).then(|| {
            AbortOnDropHandle::new(tokio::spawn(
                Ticker {
                    storage: storage.clone(),
                    clock: storage.clock(),
                    entries: self.periodic.clone(),
                    missed: config.missed_ticks,
                    events: self.events.clone(),
                    stop: stop.token().clone(),
                    board,
                }
                .run(),
            ))
        });

        let freed = Arc::new(Notify::new());
        let lingering = tokio_util::task::TaskTracker::new();
        let hand_back = CancellationToken::new();
        let pace = Arc::new(Pace::default());
        let mut fetcher = Fetcher {
            storage: storage.clone(),
            config: config.clone(),
            leases: Arc::new(Semaphore::new(config.workers + config.prefetch())),
            runs: Arc::new(Semaphore::new(config.workers)),
            freed: freed.clone(),
            pace: pace.clone(),
            picker: Picker::new(config.queues.iter().map(|(_, w)| *w), config.strict),
            tasks: JoinSet::new(),
            executor: Arc::new(Executor {
                storage: storage.clone(),
                registry: self.registry.clone(),
                clock: storage.clock(),
                events: self.events.clone(),
                result_ttl: config.result_ttl,
                max_result_bytes: config.max_result_bytes,
                inflight: inflight.clone(),
                lease: config.lease,
                limits: Arc::new(limits_of(&self.registry)),
                hooks: self.hooks.clone(),
                pace,
            }),
            handoff: Handoff {
                inflight: inflight.clone(),
                stats: stats.clone(),
                clock: storage.clock(),
                tx,
                freed,
                lingering: lingering.clone(),
            },
            stop: stop.token().clone(),
            hand_back: hand_back.clone(),
        };
        fetcher.run().await;

        // Graceful shutdown: fetching has stopped.
        let finished_before = stats.finished.load(Ordering::Relaxed);
        let released_before = stats.released.load(Ordering::Relaxed);
        tracing::info!(
            running = fetcher.tasks.len(),
            grace = ?stop.grace(),
            "consumer stopping; waiting for running tasks"
        );
        stats.releasing.store(true, Ordering::SeqCst);
        hand_back.cancel();
        drain(&mut fetcher.tasks, stop.grace()).await;
        // Tasks whose plain `fn` still runs keep their leases until their threads return.
        lingering.close();
        if !lingering.is_empty() {
            tracing::warn!(
                tasks = lingering.len(),
                "waiting for plain fn tasks that ignore their cancellation to return"
            );
        }
        lingering.wait().await;
        drop(fetcher); // the last sender: the acker flushes what is left and ends

        let unacked = tokio::select! {
            done = &mut acker => done,
            () = tokio::time::sleep(FINAL_FLUSH_TIMEOUT) => {
                give_up.cancel();
                match tokio::time::timeout(std::time::Duration::from_secs(1), &mut acker).await {
                    Ok(done) => done,
                    Err(_) => Ok(inflight.len() as u64),
                }
            }
        }
        .unwrap_or_else(|err| {
            tracing::error!(error = %err, "the acker failed");
            inflight.len() as u64
        });
        background.cancel();
        // A heartbeat already sent would register the worker again after its removal: let
        // it land first (the loop ends at its next check of `background`).
        let _ = tokio::time::timeout(FINAL_FLUSH_TIMEOUT, &mut heartbeat).await;
        // Gone from the live workers at once rather than after its heartbeat's ttl.
        if let Err(err) = storage.remove_worker(&worker.id).await {
            tracing::debug!(error = %err, "could not remove this worker's heartbeat; it lapses");
        }
        Hooks::life(&self.hooks.shutdown).await;
        events_done.cancel();
        if let Some(feed) = event_feed.as_mut() {
            let _ = feed.await;
        }

        let report = ShutdownReport {
            completed: stats.finished.load(Ordering::Relaxed) - finished_before,
            released: stats.released.load(Ordering::Relaxed) - released_before,
            unacked,
        };
        tracing::info!(?report, "consumer stopped");
        Ok(report)
    }
}
