//! Metrics and health: Prometheus counters fed by a consumer's [`Event`] stream, and a health
//! check of the store.
//!
//! # Metrics
//!
//! [`Metrics`] folds a consumer's events into per-task counters and a run-time histogram, and
//! renders them in the Prometheus text format for a `/metrics` endpoint:
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `skiff_tasks_processed_total` | counter | `task` | tasks that succeeded ([`Event::Complete`]) |
//! | `skiff_tasks_failed_total` | counter | `task` | failed attempts (error, panic, timeout: [`Event::Error`]) |
//! | `skiff_tasks_retried_total` | counter | `task` | failed attempts written back for a retry ([`Event::Retrying`]) |
//! | `skiff_tasks_dead_total` | counter | `task` | tasks sent to the dead-letter queue ([`Event::DeadLettered`], [`Event::UnknownTask`]) |
//! | `skiff_task_events_total` | counter | `task`, `event` | every event, by [`Event::kind`] |
//! | `skiff_task_duration_seconds` | histogram | `task` | run time of successful attempts |
//! | `skiff_events_lost_total` | counter | | events missed because the observer fell behind |
//! | `skiff_queue_tasks` | gauge | `state` | the store's [`Counts`], as of the last [`Metrics::set_counts`] |
//! | `skiff_queue_paused` | gauge | `queue` | 1 for a paused queue, 0 for a running one, as of the last [`Metrics::set_paused`] |
//!
//! The event stream is a broadcast channel: an observer that falls behind misses events rather
//! than slowing the consumer down. Missed events are counted in `skiff_events_lost_total`, and
//! the observer goes on.
//!
//! # Health
//!
//! [`health`] asks the store for its counts: an error (or no answer within
//! [`HealthOptions::timeout`]) means the store is unreachable; a backlog (ready + scheduled)
//! over [`HealthOptions::max_backlog`] means the workers do not keep up.
//!
//! ```
//! use skiff::{health, HealthOptions, Metrics, Queue};
//!
//! # #[tokio::main] async fn main() {
//! let queue = Queue::memory();
//! let status = health(&queue, HealthOptions { max_backlog: Some(10_000), ..Default::default() }).await;
//! assert!(status.ok, "{:?}", status.reason);
//!
//! let metrics = Metrics::new();
//! // metrics.observe(running.events()); — see `Metrics::observe`
//! metrics.set_counts(&status.counts.unwrap_or_default());
//! assert!(metrics.render().contains("skiff_queue_tasks{state=\"ready\"} 0"));
//! # }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry as PromRegistry;
use queue_core::{Counts, Queue};
use queue_runtime::Event;
use serde::Serialize;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    task: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    task: String,
    event: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: String,
}

type HistogramFamily = Family<TaskLabels, Histogram, fn() -> Histogram>;

/// Buckets from 1 ms to about 33 s, doubling.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

struct Inner {
    registry: PromRegistry,
    processed: Family<TaskLabels, Counter>,
    failed: Family<TaskLabels, Counter>,
    retried: Family<TaskLabels, Counter>,
    dead: Family<TaskLabels, Counter>,
    events: Family<EventLabels, Counter>,
    duration: HistogramFamily,
    lost: Counter,
    queue: Family<StateLabels, Gauge>,
    paused: Family<QueueLabels, Gauge>,
}

/// Prometheus metrics of a consumer, fed by its [`Event`] stream. Cheap to clone; clones share
/// the same counters.
///
/// See the [module docs](self) for the metrics.
///
/// # Examples
///
/// ```
/// # use futures::future::BoxFuture;
/// # use skiff::{Task, TaskContext, TaskError};
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
/// use skiff::{Consumer, Metrics, Queue};
///
/// # #[tokio::main] async fn main() -> Result<(), skiff::Error> {
/// let queue = Queue::memory();
/// let consumer = Consumer::builder(queue.clone()).register_task::<Ping>().build()?;
/// let metrics = Metrics::new();
/// let observer = metrics.observe(consumer.events());
/// let running = consumer.spawn();
///
/// Ping::call(()).enqueue(&queue).await?.get(Duration::from_secs(5)).await?;
/// running.shutdown(Duration::from_secs(5)).await?;
/// // The observer ends once the consumer and the queue are gone (no more events can come),
/// // having recorded every event; its counters stay.
/// drop(queue);
/// let _ = observer.await;
/// let text = metrics.render();
/// assert!(text.contains("skiff_task_duration_seconds_count{task=\"ping\"}"), "{text}");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("lost", &self.inner.lost.get())
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty metrics, registered under the `skiff` prefix.
    pub fn new() -> Self {
        let mut registry = PromRegistry::with_prefix("skiff");
        let processed = Family::<TaskLabels, Counter>::default();
        let failed = Family::<TaskLabels, Counter>::default();
        let retried = Family::<TaskLabels, Counter>::default();
        let dead = Family::<TaskLabels, Counter>::default();
        let events = Family::<EventLabels, Counter>::default();
        let duration: HistogramFamily = Family::new_with_constructor(duration_histogram);
        let lost = Counter::default();
        let queue = Family::<StateLabels, Gauge>::default();
        let paused = Family::<QueueLabels, Gauge>::default();
        registry.register("tasks_processed", "Tasks that succeeded", processed.clone());
        registry.register(
            "tasks_failed",
            "Failed attempts (error, panic or timeout)",
            failed.clone(),
        );
        registry.register(
            "tasks_retried",
            "Failed attempts written back for a retry",
            retried.clone(),
        );
        registry.register(
            "tasks_dead",
            "Tasks sent to the dead-letter queue",
            dead.clone(),
        );
        registry.register("task_events", "Consumer events by kind", events.clone());
        registry.register(
            "task_duration_seconds",
            "Run time of successful attempts",
            duration.clone(),
        );
        registry.register(
            "events_lost",
            "Events missed because the observer fell behind",
            lost.clone(),
        );
        registry.register(
            "queue_tasks",
            "Tasks in the store by state, as last sampled",
            queue.clone(),
        );
        registry.register(
            "queue_paused",
            "1 for a paused queue, 0 for a running one, as last sampled",
            paused.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry,
                processed,
                failed,
                retried,
                dead,
                events,
                duration,
                lost,
                queue,
                paused,
            }),
        }
    }

    /// Counts one event.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use skiff::{Event, Metrics, TaskId};
    ///
    /// let metrics = Metrics::new();
    /// metrics.record(&Event::Complete { id: TaskId::new(), task: "send_email".into(), duration: Duration::from_millis(20) });
    /// assert!(metrics.render().contains("skiff_tasks_processed_total{task=\"send_email\"} 1"));
    /// ```
    pub fn record(&self, event: &Event) {
        let inner = &self.inner;
        let labels = TaskLabels {
            task: event.task().to_owned(),
        };
        inner
            .events
            .get_or_create(&EventLabels {
                task: labels.task.clone(),
                event: event.kind().to_owned(),
            })
            .inc();
        match event {
            Event::Complete { duration, .. } => {
                inner.processed.get_or_create(&labels).inc();
                inner
                    .duration
                    .get_or_create(&labels)
                    .observe(duration.as_secs_f64());
            }
            Event::Error { .. } => {
                inner.failed.get_or_create(&labels).inc();
            }
            Event::Retrying { .. } => {
                inner.retried.get_or_create(&labels).inc();
            }
            Event::DeadLettered { .. } | Event::UnknownTask { .. } => {
                inner.dead.get_or_create(&labels).inc();
            }
            _ => {}
        }
    }

    /// Counts `n` events the observer missed.
    pub fn record_lost(&self, n: u64) {
        self.inner.lost.inc_by(n);
    }

    /// How many events were missed so far.
    pub fn lost(&self) -> u64 {
        self.inner.lost.get()
    }

    /// Sets the `skiff_queue_tasks` gauges from the store's counts (for example from
    /// [`Queue::counts`] just before [`render`](Self::render)).
    pub fn set_counts(&self, counts: &Counts) {
        let set = |state: &str, n: u64| {
            self.inner
                .queue
                .get_or_create(&StateLabels {
                    state: state.to_owned(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        };
        set("ready", counts.ready);
        set("scheduled", counts.scheduled);
        set("leased", counts.leased);
        set("dead", counts.dead);
        set("results", counts.results);
    }

    /// Sets the `skiff_queue_paused` gauges: 1 for each queue of `paused`, 0 for the other
    /// queues of `queues` (for example [`Storage::queues`](crate::Storage::queues) and
    /// [`Queue::paused_queues`] just before [`render`](Self::render)). Queues named in
    /// neither are no longer reported.
    ///
    /// # Examples
    ///
    /// ```
    /// let metrics = skiff::Metrics::new();
    /// metrics.set_paused(&["emails".into(), "reports".into()], &["emails".into()]);
    /// let text = metrics.render();
    /// assert!(text.contains("skiff_queue_paused{queue=\"emails\"} 1"), "{text}");
    /// assert!(text.contains("skiff_queue_paused{queue=\"reports\"} 0"), "{text}");
    /// ```
    pub fn set_paused(&self, queues: &[String], paused: &[String]) {
        self.inner.paused.clear();
        for queue in queues.iter().chain(paused) {
            let value = i64::from(paused.contains(queue));
            self.inner
                .paused
                .get_or_create(&QueueLabels {
                    queue: queue.clone(),
                })
                .set(value);
        }
    }

    /// Spawns a task that records every event of `events` until the consumer is gone (the
    /// channel closes). Events missed because the task fell behind are counted
    /// (`skiff_events_lost_total`) and the task goes on.
    ///
    /// Subscribe before the consumer starts ([`Consumer::events`](crate::Consumer::events)) to
    /// see every event, or later with
    /// [`RunningConsumer::events`](crate::RunningConsumer::events).
    ///
    /// # Examples
    ///
    /// See [`Metrics`].
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn observe(&self, mut events: broadcast::Receiver<Event>) -> JoinHandle<()> {
        let metrics = self.clone();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(event) => metrics.record(&event),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "metrics fell behind the consumer's events");
                        metrics.record_lost(n);
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        })
    }

    /// The metrics in the Prometheus text exposition format (serve it as
    /// `text/plain; version=0.0.4`).
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(err) = encode(&mut out, &self.inner.registry) {
            // Writing to a String does not fail; say so in the output if it ever does.
            out.push_str(&format!("# skiff: could not encode metrics: {err}\n"));
        }
        out
    }
}

/// What [`health`] checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthOptions {
    /// Unhealthy when more tasks than this are waiting (ready + scheduled); `None` = no limit.
    pub max_backlog: Option<u64>,
    /// Unhealthy when the store does not answer within this time.
    pub timeout: Duration,
}

impl Default for HealthOptions {
    /// No backlog limit, a 5 s timeout.
    fn default() -> Self {
        Self {
            max_backlog: None,
            timeout: Duration::from_secs(5),
        }
    }
}

/// The answer of [`health`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Health {
    /// Whether the store answered and the backlog is within the limit.
    pub ok: bool,
    /// Why not, when not ok.
    pub reason: Option<String>,
    /// The store's counts, when it answered.
    pub counts: Option<Counts>,
}

/// Checks that the store answers and that the backlog (ready + scheduled tasks) is within
/// [`HealthOptions::max_backlog`].
///
/// # Examples
///
/// ```
/// use skiff::{health, HealthOptions, Queue};
///
/// # #[tokio::main] async fn main() {
/// let status = health(&Queue::memory(), HealthOptions::default()).await;
/// assert!(status.ok);
/// assert_eq!(status.counts.map(|c| c.ready), Some(0));
/// # }
/// ```
///
/// # Cancel safety
///
/// Cancel safe: it only reads.
pub async fn health(queue: &Queue, options: HealthOptions) -> Health {
    let counts = match tokio::time::timeout(options.timeout, queue.counts()).await {
        Ok(Ok(counts)) => counts,
        Ok(Err(err)) => {
            return Health {
                ok: false,
                reason: Some(format!("store unreachable: {err}")),
                counts: None,
            }
        }
        Err(_) => {
            return Health {
                ok: false,
                reason: Some(format!(
                    "store unreachable: no answer within {:?}",
                    options.timeout
                )),
                counts: None,
            }
        }
    };
    let backlog = counts.ready.saturating_add(counts.scheduled);
    match options.max_backlog {
        Some(max) if backlog > max => Health {
            ok: false,
            reason: Some(format!(
                "backlog of {backlog} tasks (ready + scheduled) is over the limit of {max}"
            )),
            counts: Some(counts),
        },
        _ => Health {
            ok: true,
            reason: None,
            counts: Some(counts),
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use queue_core::{Envelope, FailureKind, TaskFailure, TaskId};

    use super::*;

    fn complete(task: &str, ms: u64) -> Event {
        Event::Complete {
            id: TaskId::new(),
            task: task.into(),
            duration: Duration::from_millis(ms),
        }
    }

    #[test]
    fn render_contains_the_counters_after_events() {
        let metrics = Metrics::new();
        let failure = TaskFailure::new(FailureKind::Error, "boom", 1);
        metrics.record(&complete("send_email", 20));
        metrics.record(&complete("send_email", 40));
        metrics.record(&Event::Error {
            id: TaskId::new(),
            task: "charge".into(),
            failure: failure.clone(),
        });
        metrics.record(&Event::Retrying {
            id: TaskId::new(),
            task: "charge".into(),
            eta: chrono::Utc::now(),
        });
        metrics.record(&Event::DeadLettered {
            id: TaskId::new(),
            task: "charge".into(),
            failure,
        });
        metrics.record(&Event::UnknownTask {
            id: TaskId::new(),
            task: "gone".into(),
        });
        metrics.record_lost(3);
        let text = metrics.render();
        for line in [
            "skiff_tasks_processed_total{task=\"send_email\"} 2",
            "skiff_tasks_failed_total{task=\"charge\"} 1",
            "skiff_tasks_retried_total{task=\"charge\"} 1",
            "skiff_tasks_dead_total{task=\"charge\"} 1",
            "skiff_tasks_dead_total{task=\"gone\"} 1",
            "skiff_task_events_total{task=\"charge\",event=\"retrying\"} 1",
            "skiff_task_duration_seconds_count{task=\"send_email\"} 2",
            "skiff_events_lost_total 3",
            "# TYPE skiff_task_duration_seconds histogram",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in\n{text}"
            );
        }
        assert!(
            text.contains("skiff_task_duration_seconds_sum{task=\"send_email\"} 0.06"),
            "{text}"
        );
        assert_eq!(metrics.lost(), 3);
    }

    #[tokio::test]
    async fn observe_counts_lagged_events_and_goes_on() {
        let (tx, rx) = broadcast::channel(2);
        // Five events into a channel of two: the observer has missed three before it starts.
        for _ in 0..5 {
            tx.send(complete("t", 1)).unwrap();
        }
        drop(tx);
        let metrics = Metrics::new();
        metrics.observe(rx).await.unwrap();
        assert_eq!(metrics.lost(), 3);
        // After the lag the observer went on with the two events still in the channel, and
        // stopped when the channel closed.
        assert!(metrics
            .render()
            .contains("skiff_tasks_processed_total{task=\"t\"} 2"));
    }

    #[test]
    fn queue_gauges_follow_counts() {
        let metrics = Metrics::new();
        metrics.set_counts(&Counts {
            ready: 4,
            scheduled: 2,
            leased: 1,
            dead: 7,
            results: 9,
        });
        let text = metrics.render();
        assert!(
            text.contains("skiff_queue_tasks{state=\"dead\"} 7"),
            "{text}"
        );
        assert!(
            text.contains("skiff_queue_tasks{state=\"ready\"} 4"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn health_reports_the_backlog_over_the_limit() {
        let queue = Queue::memory();
        let now = chrono::Utc::now();
        let batch = (0..3)
            .map(|_| Envelope::new("default", "t", vec![0x90], now))
            .collect();
        queue.enqueue_envelopes(batch).await.unwrap();

        let limit = |max| HealthOptions {
            max_backlog: Some(max),
            ..Default::default()
        };
        let ok = health(&queue, limit(3)).await;
        assert!(ok.ok, "{ok:?}");
        assert_eq!(ok.reason, None);
        assert_eq!(ok.counts.unwrap().ready, 3);

        let over = health(&queue, limit(2)).await;
        assert!(!over.ok);
        assert!(over.reason.unwrap().contains("backlog of 3"));
        assert_eq!(over.counts.unwrap().ready, 3);
    }

    /// A private `redis-server`, killed to make the store unreachable.
    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn health_reports_an_unreachable_store() {
        use std::process::{Command, Stdio};

        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH (apt-get install redis-server)");
        let url = format!("redis://127.0.0.1:{port}/0");
        let mut queue = None;
        for _ in 0..500 {
            if let Ok(q) = crate::connect(&url).await {
                queue = Some(q);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let queue = queue.expect("redis-server started");
        assert!(health(&queue, HealthOptions::default()).await.ok);

        server.kill().unwrap();
        server.wait().unwrap();
        let down = health(&queue, HealthOptions::default()).await;
        assert!(!down.ok);
        assert_eq!(down.counts, None);
        assert!(
            down.reason
                .as_deref()
                .unwrap()
                .starts_with("store unreachable"),
            "{down:?}"
        );
    }
}
