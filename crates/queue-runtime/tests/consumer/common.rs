//! Shared helpers: a queue on a memory store, hand-written tasks, waiting for conditions.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use queue_core::{MemoryStorage, Queue};
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

/// A builder with quick acks and a short poll interval.
pub fn builder(queue: &Queue) -> ConsumerBuilder {
    Consumer::builder(queue.clone())
        .workers(8)
        .ack_batch(16, Duration::from_millis(2))
        .poll_interval(Duration::from_millis(200))
}

/// Polls `check` until it holds, failing the test after 10 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Receives events until `pred` matches one, failing after 10 s. Returns every event seen.
pub async fn until_event(
    rx: &mut broadcast::Receiver<Event>,
    mut pred: impl FnMut(&Event) -> bool,
) -> Vec<Event> {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(10), async {
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
    assert!(found.is_ok(), "event not seen; saw {seen:#?}");
    seen
}

/// The long wait of a test: a result that should arrive.
pub const WAIT: Duration = Duration::from_secs(10);
