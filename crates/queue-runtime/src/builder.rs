//! [`ConsumerBuilder`]: how a [`Consumer`] is configured.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono_tz::Tz;
use queue_core::task::erase;
use queue_core::{ErasedTask, Error, Queue, Registry, Result, Task, TaskFn, DEFAULT_QUEUE};

use crate::hooks::Hooks;
use crate::periodic::{IntoSchedule, MissedTicks, Periodic};
use crate::{Consumer, Schedule};

/// The shortest lease a consumer accepts.
pub const MIN_LEASE: Duration = Duration::from_secs(1);

/// What a consumer was built with. Read-only once built.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) workers: usize,
    /// Most tasks leased beyond `workers` (see `pace.rs`); `None`: `workers`.
    pub(crate) prefetch: Option<usize>,
    /// The queues consumed, with their weights (at least one).
    pub(crate) queues: Vec<(String, u32)>,
    /// Take from the first queue with work, in order, instead of by weight.
    pub(crate) strict: bool,
    pub(crate) heartbeat: Duration,
    pub(crate) lease: Duration,
    pub(crate) result_ttl: Option<Duration>,
    pub(crate) max_result_bytes: usize,
    pub(crate) ack_batch: usize,
    pub(crate) ack_delay: Duration,
    pub(crate) poll_interval: Duration,
    pub(crate) periodic: bool,
    pub(crate) missed_ticks: MissedTicks,
    pub(crate) time_zone: Tz,
    pub(crate) shutdown_timeout: Duration,
}

impl Config {
    /// Most tasks leased beyond `workers`: the builder's `prefetch`, by default twice the
    /// workers (within [`MAX_LEASED`]).
    pub(crate) fn prefetch(&self) -> usize {
        self.prefetch.unwrap_or_else(|| {
            self.workers
                .saturating_mul(2)
                .min(MAX_LEASED.saturating_sub(self.workers))
        })
    }

    /// How often running tasks' leases are renewed.
    pub(crate) fn renew_every(&self) -> Duration {
        self.lease / 3
    }

    /// How long a heartbeat keeps this consumer among the live workers.
    pub(crate) fn heartbeat_ttl(&self) -> Duration {
        self.heartbeat
            .saturating_mul(10)
            .max(Duration::from_secs(10))
    }

    /// The names of the queues consumed, in order.
    pub(crate) fn queue_names(&self) -> Vec<String> {
        self.queues.iter().map(|(q, _)| q.clone()).collect()
    }

    /// How often tasks of crashed workers are requeued.
    pub(crate) fn requeue_every(&self) -> Duration {
        self.lease / 2
    }
}

/// The most tasks one consumer may hold at once: `workers` plus
/// [`prefetch`](ConsumerBuilder::prefetch).
pub const MAX_LEASED: usize = 1_000_000;

/// The default number of concurrent executions: four per available CPU (tasks are mostly
/// I/O-bound), or 8 when the CPU count is unknown.
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().saturating_mul(4))
        .unwrap_or(8)
}

/// Configures a [`Consumer`]; start with [`Consumer::builder`].
///
/// | setting | default |
/// |---|---|
/// | [`workers`](Self::workers) | [`default_workers`]: 4 × CPUs |
/// | [`prefetch`](Self::prefetch) | 2 × `workers`, while tasks are short |
/// | [`queue`](Self::queue) / [`queues`](Self::queues) | [`DEFAULT_QUEUE`] |
/// | [`strict_priority`](Self::strict_priority) | `false` (by weight) |
/// | [`heartbeat_interval`](Self::heartbeat_interval) | 1 s |
/// | [`lease`](Self::lease) | 30 s, renewed every lease/3 |
/// | [`result_ttl`](Self::result_ttl) | 7 days |
/// | [`max_result_bytes`](Self::max_result_bytes) | [`DEFAULT_MAX_PAYLOAD_BYTES`](queue_core::DEFAULT_MAX_PAYLOAD_BYTES) (16 MiB) |
/// | [`ack_batch`](Self::ack_batch) | 128 outcomes or 5 ms |
/// | [`poll_interval`](Self::poll_interval) | 5 s |
/// | [`periodic`](Self::periodic) | `true` |
/// | [`missed_ticks`](Self::missed_ticks) | [`MissedTicks::RunLatest`] |
/// | [`time_zone`](Self::time_zone) | UTC |
/// | [`shutdown_timeout`](Self::shutdown_timeout) | 30 s |
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
/// let consumer = Consumer::builder(Queue::memory())
///     .workers(64)
///     .queue("emails")
///     .register_task::<Ping>()
///     .lease(Duration::from_secs(30))
///     .ack_batch(256, Duration::from_millis(2))
///     .build()?;
/// assert_eq!(consumer.queue_name(), "emails");
/// # Ok::<(), queue_core::Error>(())
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct ConsumerBuilder {
    queue: Queue,
    registry: Registry,
    config: Config,
    periodic: Vec<(Arc<dyn ErasedTask>, std::result::Result<Schedule, String>)>,
    pub(crate) hooks: Hooks,
}

impl fmt::Debug for ConsumerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerBuilder")
            .field("registry", &self.registry)
            .field("config", &self.config)
            .finish()
    }
}

impl ConsumerBuilder {
    pub(crate) fn new(queue: Queue) -> Self {
        Self {
            queue,
            registry: Registry::new(),
            config: Config {
                workers: default_workers(),
                prefetch: None,
                queues: vec![(DEFAULT_QUEUE.to_owned(), 1)],
                strict: false,
                heartbeat: Duration::from_secs(1),
                lease: Duration::from_secs(30),
                result_ttl: Some(Duration::from_secs(7 * 24 * 3600)),
                max_result_bytes: queue_core::DEFAULT_MAX_PAYLOAD_BYTES,
                ack_batch: 128,
                ack_delay: Duration::from_millis(5),
                poll_interval: Duration::from_secs(5),
                periodic: true,
                missed_ticks: MissedTicks::default(),
                time_zone: Tz::UTC,
                shutdown_timeout: Duration::from_secs(30),
            },
            periodic: Vec::new(),
            hooks: Hooks::default(),
        }
    }

    /// The most tasks run at once (at least 1).
    pub fn workers(mut self, workers: usize) -> Self {
        self.config.workers = workers;
        self
    }

    /// The most tasks leased beyond `workers`, ahead of a free worker (default: twice
    /// `workers`; 0: never lease more tasks than there are free workers).
    ///
    /// The consumer leases ahead only while tasks are short: as many as its workers are
    /// expected to start within 5 ms at the mean task duration it measures, at most
    /// `prefetch`. So no-op tasks overlap the next fetch with the current batch, while tasks of
    /// a second or more are never leased ahead, and a task is not held back from other
    /// consumers. While more than half of the tasks leased ahead still wait for a worker, it
    /// leases no more; then it tops them up in one fetch. Tasks leased ahead have their leases renewed, and a graceful shutdown hands
    /// them back unstarted.
    ///
    /// # Examples
    ///
    /// ```
    /// # use queue_core::Queue;
    /// # use queue_runtime::Consumer;
    /// // Long tasks on many consumers: lease strictly one task per free worker.
    /// let builder = Consumer::builder(Queue::memory()).workers(8).prefetch(0);
    /// # drop(builder);
    /// ```
    pub fn prefetch(mut self, max: usize) -> Self {
        self.config.prefetch = Some(max);
        self
    }

    /// The queue to consume (one; see [`queues`](Self::queues) for several).
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.config.queues = vec![(queue.into(), 1)];
        self
    }

    /// Several queues to consume, each with a weight: with every queue full, the tasks taken
    /// from each follow the weights (a queue of weight 6 gives six tasks for every one of a
    /// queue of weight 1); a queue with nothing due gives its share to the others. With
    /// [`strict_priority`](Self::strict_priority), the order of the list decides instead.
    ///
    /// # Examples
    ///
    /// ```
    /// # use queue_core::Queue;
    /// # use queue_runtime::Consumer;
    /// let builder = Consumer::builder(Queue::memory())
    ///     .queues([("critical", 6), ("default", 3), ("low", 1)]);
    /// # drop(builder);
    /// ```
    pub fn queues<Q: Into<String>>(mut self, queues: impl IntoIterator<Item = (Q, u32)>) -> Self {
        self.config.queues = queues.into_iter().map(|(q, w)| (q.into(), w)).collect();
        self
    }

    /// Takes tasks from the [`queues`](Self::queues) in their order: from the second only when
    /// the first has nothing due, and so on (weights are ignored). Off by default.
    pub fn strict_priority(mut self, strict: bool) -> Self {
        self.config.strict = strict;
        self
    }

    /// How often the consumer reports itself to the store (live workers, what each runs, the
    /// progress of its tasks) and learns of cancel requests for its running tasks (default
    /// 1 s). A consumer that stops reporting disappears from the live workers after ten
    /// intervals (at least 10 s).
    pub fn heartbeat_interval(mut self, every: Duration) -> Self {
        self.config.heartbeat = every;
        self
    }

    /// Registers the task kind a `#[task]` function names: `.register(send_email)`.
    pub fn register<M, F: TaskFn<M>>(mut self, task: F) -> Self {
        self.registry.register_fn(task);
        self
    }

    /// Registers task kind `T`.
    pub fn register_task<T: Task>(mut self) -> Self {
        self.registry.register::<T>();
        self
    }

    /// Registers every task kind of `registry` (a kind registered twice keeps the last).
    pub fn registry(mut self, registry: Registry) -> Self {
        for name in registry.names() {
            if let Some(task) = registry.get(name) {
                self.registry.insert(task.clone());
            }
        }
        self
    }

    /// How long a fetched task is leased (at least 1 s). The consumer renews the leases of
    /// running tasks about every `lease / 3`; a worker that dies loses its tasks to other
    /// workers after at most `lease`.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.config.lease = lease;
        self
    }

    /// How long results (and failures) are kept; `None` keeps them until deleted.
    pub fn result_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.config.result_ttl = ttl;
        self
    }

    /// The largest result (encoded) a task may return. A task whose result is larger fails
    /// for good with a message that says so, instead of its result being sent to a store that
    /// may refuse it.
    pub fn max_result_bytes(mut self, bytes: usize) -> Self {
        self.config.max_result_bytes = bytes;
        self
    }

    /// Outcomes are written to the store in batches: when `max` are pending, or `max_delay`
    /// after the first of a batch, whichever comes first.
    pub fn ack_batch(mut self, max: usize, max_delay: Duration) -> Self {
        self.config.ack_batch = max;
        self.config.ack_delay = max_delay;
        self
    }

    /// The longest one wait for work lasts while the queue is idle. Stores wake waiting
    /// consumers when work arrives, so this only bounds how long a missed wake-up costs.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.config.poll_interval = interval;
        self
    }

    /// Whether this consumer runs the periodic ticker, which enqueues periodic tasks on
    /// their schedules. Any number of consumers may run it: each fire is enqueued once across
    /// all of them (see [`periodic`](crate::periodic)). A consumer without it still runs
    /// periodic tasks others enqueue.
    pub fn periodic(mut self, enabled: bool) -> Self {
        self.config.periodic = enabled;
        self
    }

    /// Registers a task without arguments (other than an optional context) and enqueues it on
    /// `schedule`: a [`crontab()`](crate::crontab), a [`Schedule`], or a cron expression with
    /// a seconds field. A bad schedule makes [`build`](Self::build) fail, naming the field.
    /// A task with arguments does not compile.
    ///
    /// # Examples
    ///
    /// ```
    /// # use futures::future::BoxFuture;
    /// # use queue_core::{Task, TaskContext, TaskError, TaskCall};
    /// # #[allow(non_camel_case_types)] struct cleanup {}
    /// # impl Task for cleanup {
    /// #     const NAME: &'static str = "cleanup";
    /// #     type Args = ();
    /// #     type Output = ();
    /// #     fn run(_: TaskContext, _: ()) -> BoxFuture<'static, Result<(), TaskError>> {
    /// #         Box::pin(async { Ok(()) })
    /// #     }
    /// # }
    /// # fn cleanup() -> TaskCall<cleanup> { TaskCall::new(()) }
    /// use queue_core::Queue;
    /// use queue_runtime::{crontab, Consumer};
    ///
    /// // `cleanup` is a `#[task] async fn cleanup()`.
    /// let consumer = Consumer::builder(Queue::memory())
    ///     .periodic_task(cleanup, crontab().minute("*/15").hour("9-17").day_of_week("1-5"))
    ///     .build()?;
    /// assert_eq!(consumer.task_names(), ["cleanup"]);
    ///
    /// let bad = Consumer::builder(Queue::memory()).periodic_task(cleanup, crontab().hour("24")).build();
    /// assert!(bad.unwrap_err().to_string().contains("hour"));
    /// # Ok::<(), queue_core::Error>(())
    /// ```
    pub fn periodic_task<M, F>(self, task: F, schedule: impl IntoSchedule) -> Self
    where
        F: TaskFn<M>,
        F::Task: Task<Args = ()>,
    {
        let _ = task;
        self.periodic_task_kind::<F::Task>(schedule)
    }

    /// [`periodic_task`](Self::periodic_task) for a task kind named by its type.
    pub fn periodic_task_kind<T: Task<Args = ()>>(mut self, schedule: impl IntoSchedule) -> Self {
        self.registry.register::<T>();
        self.periodic.push((
            erase::<T>(),
            schedule.into_schedule().map_err(|e| match e {
                Error::InvalidInput(msg) => msg,
                other => other.to_string(),
            }),
        ));
        self
    }

    /// What the periodic ticker does about fire times missed while no consumer ran (default:
    /// run the latest one once).
    pub fn missed_ticks(mut self, missed: MissedTicks) -> Self {
        self.config.missed_ticks = missed;
        self
    }

    /// The time zone of the cron expressions of `#[task(periodic = "...")]` tasks (default
    /// UTC). Schedules passed to [`periodic_task`](Self::periodic_task) carry their own.
    pub fn time_zone(mut self, tz: Tz) -> Self {
        self.config.time_zone = tz;
        self
    }

    /// How long [`Consumer::run_until`] waits for running tasks after its signal fires, before
    /// it stops them and hands them back to the queue.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.config.shutdown_timeout = timeout;
        self
    }

    /// Checks the settings and builds the consumer.
    ///
    /// Fails with [`Error::InvalidInput`] when `workers` is 0, `workers + prefetch` is over
    /// [`MAX_LEASED`], the lease is under
    /// [`MIN_LEASE`], the poll interval or ack batch size is 0, the queue name is not valid, or
    /// no task is registered (a consumer without tasks would dead-letter everything it
    /// fetches).
    pub fn build(self) -> Result<Consumer> {
        let c = &self.config;
        let invalid = |msg: String| Err(Error::InvalidInput(msg));
        if c.workers == 0 {
            return invalid("workers must be at least 1".into());
        }
        if c.workers.saturating_add(c.prefetch()) > MAX_LEASED {
            return invalid(format!(
                "workers + prefetch must be at most {MAX_LEASED}, got {} + {}",
                c.workers,
                c.prefetch()
            ));
        }
        if c.lease < MIN_LEASE {
            return invalid(format!(
                "lease must be at least {MIN_LEASE:?}, got {:?}",
                c.lease
            ));
        }
        if c.poll_interval.is_zero() {
            return invalid("poll_interval must be more than zero".into());
        }
        if c.ack_batch == 0 {
            return invalid("ack_batch max must be at least 1".into());
        }
        if c.queues.is_empty() {
            return invalid("queues needs at least one queue".into());
        }
        for (i, (queue, weight)) in c.queues.iter().enumerate() {
            if queue.is_empty() || queue.len() > 200 || queue.contains(['{', '}']) {
                return invalid(format!(
                    "queue name `{queue}` must be 1 to 200 bytes without `{{` or `}}`"
                ));
            }
            if *weight == 0 && !c.strict {
                return invalid(format!("queue `{queue}` has weight 0; weights start at 1"));
            }
            if c.queues[..i].iter().any(|(q, _)| q == queue) {
                return invalid(format!("queue `{queue}` is listed twice"));
            }
        }
        if c.heartbeat.is_zero() {
            return invalid("heartbeat_interval must be more than zero".into());
        }
        if self.registry.is_empty() {
            return invalid(
                "no task is registered; add tasks with .register(my_task) before build()".into(),
            );
        }
        let periodic = self.periodic_entries()?;
        Ok(Consumer::from_parts(
            self.queue,
            self.registry,
            self.config,
            periodic,
            self.hooks,
        ))
    }

    /// The periodic tasks: those given with a schedule, then registered kinds whose options
    /// name a cron expression.
    fn periodic_entries(&self) -> Result<Vec<Periodic>> {
        let mut entries: Vec<Periodic> = Vec::new();
        for (task, schedule) in &self.periodic {
            let schedule = schedule.clone().map_err(|e| {
                Error::InvalidInput(format!("periodic task `{}`: {e}", task.name()))
            })?;
            entries.retain(|p| p.task.name() != task.name());
            entries.push(Periodic {
                task: task.clone(),
                schedule,
            });
        }
        for name in self.registry.names() {
            let Some(task) = self.registry.get(name) else {
                continue;
            };
            let Some(expr) = task.options().periodic else {
                continue;
            };
            if entries.iter().any(|p| p.task.name() == name) {
                continue;
            }
            let schedule = Schedule::cron(&expr)
                .map_err(|e| match e {
                    Error::InvalidInput(msg) => {
                        Error::InvalidInput(format!("periodic task `{name}`: {msg}"))
                    }
                    other => other,
                })?
                .in_time_zone(self.config.time_zone);
            entries.push(Periodic {
                task: task.clone(),
                schedule,
            });
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetch_defaults_to_twice_the_workers_within_the_leased_limit() {
        let builder = ConsumerBuilder::new(Queue::memory()).workers(64);
        assert_eq!(builder.config.prefetch(), 128);
        let builder = builder.prefetch(0);
        assert_eq!(builder.config.prefetch(), 0);
        let huge = ConsumerBuilder::new(Queue::memory()).workers(MAX_LEASED - 10);
        assert_eq!(huge.config.prefetch(), 10);
    }
}
