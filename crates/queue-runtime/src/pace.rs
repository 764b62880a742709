//! How far ahead of its workers a consumer leases: only as far as its tasks are short.
//!
//! A consumer that leases only as many tasks as it has free workers does one store round trip
//! per batch with nothing else to do meanwhile: with tasks of a few microseconds the workers
//! idle while the store works, and the store idles while they run. Leasing one batch ahead
//! lets the next fetch overlap the current batch.
//!
//! A task leased ahead waits in this consumer instead of in the store, where another consumer
//! might have taken it, so the consumer leases ahead only as many tasks as its workers are
//! expected to start within [`HORIZON`]: `workers × HORIZON / mean task duration`, capped at
//! the builder's `prefetch` (by default twice `workers`). Tasks of a second or more lease nothing
//! ahead; no-op tasks a full batch. Until the first execution has finished the mean is unknown
//! and nothing is leased ahead. Tasks leased ahead are in flight: their leases are renewed,
//! and a graceful shutdown hands them back unstarted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long a task leased ahead is expected to wait for a worker, at most.
pub(crate) const HORIZON: Duration = Duration::from_millis(5);

/// A moving average of task durations (see the [module docs](self)).
#[derive(Debug, Default)]
pub(crate) struct Pace {
    /// Mean duration in nanoseconds (0: nothing measured yet).
    mean_ns: AtomicU64,
}

impl Pace {
    /// Records one execution's duration. Concurrent updates may lose one another; the mean
    /// stays a fair estimate.
    pub(crate) fn record(&self, took: Duration) {
        let took = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX).max(1);
        let mean = self.mean_ns.load(Ordering::Relaxed);
        let next = if mean == 0 {
            took
        } else {
            // Exponential moving average over ~16 executions.
            let diff = i128::from(took) - i128::from(mean);
            u64::try_from(i128::from(mean) + diff / 16)
                .unwrap_or(1)
                .max(1)
        };
        self.mean_ns.store(next, Ordering::Relaxed);
    }

    /// How many tasks beyond `workers` may be leased now, at most `max`.
    pub(crate) fn ahead(&self, workers: usize, max: usize) -> usize {
        let mean = self.mean_ns.load(Ordering::Relaxed);
        if mean == 0 || max == 0 {
            return 0;
        }
        let horizon = u64::try_from(HORIZON.as_nanos()).unwrap_or(u64::MAX);
        let per_worker = horizon / mean;
        usize::try_from(per_worker)
            .unwrap_or(usize::MAX)
            .saturating_mul(workers)
            .min(max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_ahead_until_measured() {
        assert_eq!(Pace::default().ahead(64, 64), 0);
    }

    #[test]
    fn short_tasks_lease_up_to_the_cap_and_long_ones_nothing() {
        let pace = Pace::default();
        pace.record(Duration::from_micros(10));
        assert_eq!(pace.ahead(64, 64), 64);
        assert_eq!(pace.ahead(64, 0), 0, "prefetch 0 turns it off");

        let slow = Pace::default();
        slow.record(Duration::from_secs(1));
        assert_eq!(slow.ahead(64, 64), 0);

        let middling = Pace::default();
        middling.record(Duration::from_millis(1));
        assert_eq!(middling.ahead(4, 64), 20, "4 workers x 5 ms / 1 ms");
    }

    #[test]
    fn the_mean_follows_a_change_of_pace() {
        let pace = Pace::default();
        pace.record(Duration::from_micros(10));
        for _ in 0..200 {
            pace.record(Duration::from_secs(2));
        }
        assert_eq!(pace.ahead(64, 64), 0, "tasks became long: nothing ahead");
    }
}
