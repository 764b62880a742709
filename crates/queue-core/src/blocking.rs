//! The threads that plain-`fn` task bodies run on.
//!
//! A plain `fn` task (`#[task] fn ...`, or a hand-written task calling [`run_blocking`]) runs on
//! Tokio's blocking pool, and a thread cannot be stopped from outside: after a timeout, an
//! operator's cancel or a shutdown the worker stops waiting for it, but the thread runs on until
//! the function returns. If the worker then gave the task up, another copy could start beside
//! it (and the task's lock would be free for another holder).
//!
//! So a worker runs each body inside [`BlockingThreads::scope`], which counts the threads
//! [`run_blocking`] starts from it, and keeps the task's lease, lock and concurrency slot until
//! [`BlockingThreads::idle`] returns. The rule for users: **a plain `fn` task is never run
//! twice at once by well-behaved workers; one that ignores its timeout or
//! [`cancellation`](crate::TaskContext::cancellation) holds its worker slot (and a shutdown)
//! until it returns.**
//!
//! [`run_blocking`]: crate::run_blocking

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

tokio::task_local! {
    static THREADS: BlockingThreads;
}

/// Counts the blocking-pool threads started by one task body that have not returned yet.
///
/// Cheap to clone: clones share the count.
///
/// # Examples
///
/// ```
/// use queue_core::blocking::BlockingThreads;
/// use queue_core::{run_blocking, TaskError};
///
/// # #[tokio::main] async fn main() {
/// let threads = BlockingThreads::new();
/// let body = run_blocking(|| Ok::<_, TaskError>(2 + 2));
/// let sum = threads.scope(body).await.unwrap_or_default();
/// assert_eq!(sum, 4);
/// threads.idle().await; // returns at once: the thread has returned
/// assert_eq!(threads.running(), 0);
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct BlockingThreads(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    running: AtomicUsize,
    idle: Notify,
}

impl BlockingThreads {
    /// A new count, at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `body`; every [`run_blocking`](crate::run_blocking) call made while it is polled
    /// counts its thread here until the thread returns (or panics).
    pub async fn scope<F: Future>(&self, body: F) -> F::Output {
        THREADS.scope(self.clone(), body).await
    }

    /// How many threads started in [`scope`](Self::scope) are still running.
    pub fn running(&self) -> usize {
        self.0.running.load(Ordering::SeqCst)
    }

    /// Returns once no thread started in [`scope`](Self::scope) is running.
    pub async fn idle(&self) {
        loop {
            let idle = self.0.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.running() == 0 {
                return;
            }
            idle.await;
        }
    }

    /// Counts one more thread until the guard is dropped.
    fn enter(&self) -> ThreadGuard {
        self.0.running.fetch_add(1, Ordering::SeqCst);
        ThreadGuard(self.clone())
    }
}

/// One counted thread; dropped when the thread's closure returns or unwinds.
#[derive(Debug)]
pub(crate) struct ThreadGuard(BlockingThreads);

impl Drop for ThreadGuard {
    fn drop(&mut self) {
        if self.0 .0.running.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0 .0.idle.notify_waiters();
        }
    }
}

/// A guard for a thread about to start, when the caller runs inside a
/// [`BlockingThreads::scope`].
pub(crate) fn enter() -> Option<ThreadGuard> {
    THREADS.try_with(BlockingThreads::enter).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{run_blocking, TaskError};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread")]
    async fn a_thread_outlives_its_dropped_future_and_is_counted_until_it_returns() {
        let threads = BlockingThreads::new();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let body = run_blocking(move || {
            let _ = rx.recv();
            Ok::<_, TaskError>(())
        });
        // The future gives up (as on a timeout); the thread is still blocked in `recv`.
        let gave_up = tokio::time::timeout(Duration::from_millis(20), threads.scope(body)).await;
        assert!(gave_up.is_err());
        assert_eq!(threads.running(), 1);
        let waiting = tokio::spawn({
            let threads = threads.clone();
            async move { threads.idle().await }
        });
        tx.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(30), waiting)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(threads.running(), 0);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_panicking_thread_is_no_longer_counted() {
        let threads = BlockingThreads::new();
        let body = run_blocking(|| -> Result<(), TaskError> { panic!("boom") });
        let ran =
            futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(threads.scope(body)))
                .await;
        assert!(ran.is_err());
        threads.idle().await;
        assert_eq!(threads.running(), 0);
    }

    #[tokio::test]
    async fn outside_a_scope_nothing_is_counted() {
        assert!(enter().is_none());
        let out = run_blocking(|| Ok::<_, TaskError>(7)).await;
        assert_eq!(out.ok(), Some(7));
    }
}
