//! The Skiff consumer: runs the tasks of a queue with bounded concurrency.
//!
//! A [`Consumer`] fetches tasks from a [`Queue`](queue_core::Queue)'s store under a lease, runs
//! up to `workers` of them at once (each in its own Tokio task, so a panic or a timeout fails
//! only that task), writes their outcomes back in batches together with any follow-up tasks,
//! renews the leases of running tasks, and stops gracefully. Retries are written to the store
//! with an eta; no worker sleeps on one.
//!
//! ```
//! use std::time::Duration;
//! use futures::future::BoxFuture;
//! use queue_core::{Queue, Task, TaskContext, TaskError};
//! use queue_runtime::{Consumer, Event};
//!
//! // What `#[skiff::task]` writes for `async fn add(a: i64, b: i64) -> Result<i64, TaskError>`.
//! struct Add;
//! impl Task for Add {
//!     const NAME: &'static str = "add";
//!     type Args = (i64, i64);
//!     type Output = i64;
//!     fn run(_ctx: TaskContext, (a, b): (i64, i64)) -> BoxFuture<'static, Result<i64, TaskError>> {
//!         Box::pin(async move { Ok(a + b) })
//!     }
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), queue_core::Error> {
//! let queue = Queue::memory();
//! let handle = Add::call((2, 3)).enqueue(&queue).await?;
//!
//! let consumer = Consumer::builder(queue.clone())
//!     .workers(8)
//!     .register_task::<Add>() // or `.register(add)` for a `#[task]` function
//!     .build()?;
//! let mut events = consumer.events();
//! let running = consumer.spawn();
//!
//! assert_eq!(handle.get(Duration::from_secs(5)).await?, 5);
//! assert!(matches!(events.recv().await, Ok(Event::Executing { .. })));
//!
//! let report = running.shutdown(Duration::from_secs(30)).await?;
//! assert_eq!(report.released, 0);
//! # Ok(()) }
//! ```
//!
//! # How it works
//!
//! * **Fetching** (`fetcher` module): one loop per consumer asks the store for at most as many
//!   tasks as there are free workers, and waits on the store's wake-up when there is nothing.
//! * **Executing** (`executor`): revoked and expired tasks are dropped, unknown task names and
//!   undecodable arguments are dead-lettered, everything else runs under its timeout; the
//!   result decides the outcome (success, retry at an eta, dead letter, drop).
//! * **Acknowledging** (`acker`): outcomes are written in batches (128 or 5 ms by default); a
//!   worker's slot is free as soon as its outcome is handed over.
//! * **Renewing** (`renewer`): all leases of the consumer are extended in one store call about
//!   every lease/3, until their outcomes are written.
//! * **Locks and rate limits** (`limits`): `#[task(lock = "...")]` holds a store lock while the
//!   task runs; `#[task(rate_limit = "100/s")]` counts runs in the store. Either one, when it
//!   says no, puts the task back for later without counting an attempt.
//! * **Periodic tasks** ([`periodic`]): a ticker enqueues each fire of a [`Schedule`] once
//!   across every consumer of the store.
//! * **Stopping** ([`shutdown`]): see [`RunningConsumer::shutdown`].
//! * **Observing** ([`events`]): a broadcast stream of [`Event`]s (also as a `Stream`:
//!   [`event_stream`], or a callback: `on_event`), and a `tracing` span per execution (`task`
//!   with `id`, `task`, `attempt`, `queue`).
//! * **Hooks** ([`hooks`]): `pre_execute` (may cancel a task), `post_execute`, `on_startup`,
//!   `on_shutdown`.

#![doc(test(attr(deny(warnings))))]

mod acker;
mod backoff;
mod builder;
mod consumer;
mod crontab;
mod executor;
mod fetcher;
mod heartbeat;
pub mod hooks;
mod inflight;
mod limits;
mod outcome;
mod pace;
pub mod periodic;
mod picker;
mod renewer;
mod schedule;
pub mod shutdown;
mod throughput;

pub use builder::{default_workers, ConsumerBuilder, MAX_LEASED, MIN_LEASE};
pub use chrono_tz::Tz;
pub use consumer::Consumer;
pub use crontab::{crontab, Crontab};
pub use hooks::event_stream;
pub use periodic::{IntoSchedule, MissedTicks};
pub use queue_core::{events, Event};
pub use schedule::Schedule;
pub use shutdown::{RunningConsumer, ShutdownReport};
