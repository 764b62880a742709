//! Shared helpers: a queue on a memory store, hand-written tasks, waiting for conditions.
//!
//! Tests whose outcome depends on time (leases, locks, periodic fires, grace periods, measured
//! task durations) run on paused Tokio time (`#[tokio::test(start_paused = true)]`) with a
//! store from [`queue_on_tokio_time`]: the consumer's timers and the store's clock then move
//! together, and only when every task is idle, so a slow or loaded machine cannot change
//! their outcome. The other tests wait for conditions with generous deadlines, never for a
//! fixed time.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use queue_core::clock::to_delta;
use queue_core::{Clock, MemoryStorage, Queue};
use queue_runtime::{Consumer, ConsumerBuilder, Event};
use tokio::sync::broadcast;

/// Defines a task kind by hand (what `#[task]` writes).
macro_rules! task {
    ($ty:ident, $name:literal, ($($arg:ident : $at:ty),*) -> $out:ty, $opts:expr, |$ctx:ident| $body:block) => {
        pub struct $ty;
        impl queue_core::Task for $ty {
            const NAME: &'static str = $name;
            type Args = ($($at,)*);
            type Output = $out;
            fn options() -> queue_core::TaskOptions {
                $opts
            }
            #[allow(unused_variables)]
            fn run(
                $ctx: queue_core::TaskContext,
                ($($arg,)*): Self::Args,
            ) -> futures::future::BoxFuture<'static, Result<$out, queue_core::TaskError>> {
                Box::pin(async move $body)
            }
        }
    };
}

/// A queue on a fresh memory store.
pub fn queue() -> Queue {
    Queue::new(Arc::new(MemoryStorage::new()))
}

/// A clock that reads Tokio's time, so that with paused time it only moves when the runtime
/// is idle (or the test calls `tokio::time::advance`), in step with every Tokio timer.
#[derive(Debug)]
pub struct TokioClock {
    start: tokio::time::Instant,
    at: DateTime<Utc>,
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        self.at + to_delta(self.start.elapsed())
    }
}

/// A queue on a fresh memory store that reads a [`TokioClock`] (starting at a whole second).
/// For tests on paused time.
pub fn queue_on_tokio_time() -> Queue {
    Queue::new(Arc::new(MemoryStorage::with_clock(tokio_clock())))
}

/// A [`TokioClock`] starting now, at a whole second.
pub fn tokio_clock() -> Arc<dyn Clock> {
    Arc::new(TokioClock {
        start: tokio::time::Instant::now(),
        at: DateTime::from_timestamp(1_700_000_000, 0).expect("a valid time"),
    })
}

/// A builder with quick acks and a short poll interval.
pub fn builder(queue: &Queue) -> ConsumerBuilder {
    Consumer::builder(queue.clone())
        .workers(8)
        .ack_batch(16, Duration::from_millis(2))
        .poll_interval(Duration::from_millis(200))
}

/// How long a test waits for something that should happen, before it fails. Generous: on
/// paused time it costs nothing, and on real time only a broken test waits it out.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Polls `check` every 5 ms until it holds, failing the test after [`DEADLINE`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not happen within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Receives events until `pred` matches one, failing after [`DEADLINE`]. Returns every event
/// seen.
pub async fn until_event(
    rx: &mut broadcast::Receiver<Event>,
    mut pred: impl FnMut(&Event) -> bool,
) -> Vec<Event> {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(DEADLINE, async {
        loop {
            match rx.recv().await {
                Ok(e) => {
                    let hit = pred(&e);
                    seen.push(e);
                    if hit {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("event stream closed"),
            }
        }
    })
    .await;
    assert!(
        found.is_ok(),
        "event not seen within {DEADLINE:?}; saw {seen:#?}"
    );
    seen
}

/// The long wait of a test: a result that should arrive, a shutdown that should finish.
pub const WAIT: Duration = DEADLINE;
