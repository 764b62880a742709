//! What a consumer finished per minute and queue over the last hour, for its heartbeat.
//!
//! The store keeps no history of finished tasks, so each live worker reports its own: a
//! dashboard sums the reports ([`queue_core::MinuteCount`]). Counting is one short lock per
//! finished task and a search of the few buckets of the current minute; a bucket (one
//! allocation for its queue name) is made once per queue and minute, and buckets older than
//! an hour are dropped as new ones are made.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use queue_core::MinuteCount;

/// How many minutes are kept.
const MINUTES: i64 = 60;

#[derive(Debug)]
struct Bucket {
    queue: String,
    /// Minutes since the epoch.
    minute: i64,
    processed: u64,
    failed: u64,
}

/// Per-minute counts of finished executions, by queue.
#[derive(Debug, Default)]
pub(crate) struct Throughput {
    /// Oldest first; the current minute's buckets at the end.
    buckets: Mutex<Vec<Bucket>>,
}

fn minute_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(60)
}

impl Throughput {
    /// Counts one execution of `queue` that ended at `at`, in success (`ok`) or failure.
    pub(crate) fn record(&self, queue: &str, at: DateTime<Utc>, ok: bool) {
        let minute = minute_of(at);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        // Newest first: the current minute's buckets are at the end.
        let found = buckets
            .iter_mut()
            .rev()
            .take_while(|b| b.minute >= minute)
            .find(|b| b.minute == minute && b.queue == queue);
        let bucket = match found {
            Some(bucket) => bucket,
            None => {
                buckets.retain(|b| b.minute > minute - MINUTES);
                buckets.push(Bucket {
                    queue: queue.to_owned(),
                    minute,
                    processed: 0,
                    failed: 0,
                });
                let last = buckets.len() - 1;
                &mut buckets[last]
            }
        };
        if ok {
            bucket.processed += 1;
        } else {
            bucket.failed += 1;
        }
    }

    /// The counts of the last hour before `now` (older buckets are dropped).
    pub(crate) fn report(&self, now: DateTime<Utc>) -> Vec<MinuteCount> {
        let oldest = minute_of(now) - MINUTES;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        buckets.retain(|b| b.minute > oldest);
        buckets
            .iter()
            .filter_map(|b| {
                Some(MinuteCount {
                    queue: b.queue.clone(),
                    minute: DateTime::from_timestamp(b.minute.checked_mul(60)?, 0)?,
                    processed: b.processed,
                    failed: b.failed,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i64, second: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 / 60 * 60 + minute * 60 + second, 0)
            .unwrap_or_default()
    }

    #[test]
    fn counts_by_queue_and_minute_and_forgets_after_an_hour() {
        let t = Throughput::default();
        t.record("a", at(0, 1), true);
        t.record("a", at(0, 59), false);
        t.record("b", at(0, 30), true);
        t.record("a", at(1, 0), true);
        let report = t.report(at(1, 10));
        let got: Vec<_> = report
            .iter()
            .map(|c| (c.queue.as_str(), c.minute, c.processed, c.failed))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", at(0, 0), 1, 1),
                ("b", at(0, 0), 1, 0),
                ("a", at(1, 0), 1, 0)
            ]
        );
        // Minute 0 is an hour old at minute 60.
        assert_eq!(t.report(at(59, 59)).len(), 3);
        let later = t.report(at(60, 0));
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].minute, at(1, 0));
        // A new bucket drops the old ones too.
        t.record("c", at(120, 0), true);
        assert_eq!(t.report(at(120, 0)).len(), 1);
    }
}
