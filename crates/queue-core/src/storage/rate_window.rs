//! [`RateWindow`]: the fixed window of [`Storage::rate_limit`](crate::Storage::rate_limit).

use std::time::Duration;

use crate::clock::duration_millis;
use crate::storage::RateDecision;

/// The fixed window of a rate limit that a hit at some time falls in: windows are `length`
/// long and aligned to the Unix epoch, so every store and process agrees on them without
/// talking to each other. Each store counts hits per key and window its own way; this is the
/// arithmetic they share.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use queue_core::storage::RateWindow;
///
/// let w = RateWindow::at(61_500, Duration::from_secs(60));
/// assert_eq!((w.start, w.end, w.length), (60_000, 120_000, 60_000));
/// assert!(w.decision(true, 61_500).allowed);
/// assert_eq!(w.decision(false, 61_500).retry_after, Duration::from_millis(58_500));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateWindow {
    /// Its first millisecond (a multiple of `length`).
    pub start: i64,
    /// The first millisecond of the next window.
    pub end: i64,
    /// Its length in milliseconds (at least 1).
    pub length: i64,
}

impl RateWindow {
    /// The window of `length` (1 ms at least) that `now` (milliseconds) falls in.
    pub fn at(now: i64, length: Duration) -> Self {
        let length = duration_millis(length).max(1);
        let start = now - now.rem_euclid(length);
        Self {
            start,
            end: start.saturating_add(length),
            length,
        }
    }

    /// The answer to a hit at `now` that was counted (`allowed`) or refused: a refused one is
    /// told to wait for the next window.
    pub fn decision(&self, allowed: bool, now: i64) -> RateDecision {
        RateDecision {
            allowed,
            retry_after: if allowed {
                Duration::ZERO
            } else {
                Duration::from_millis(u64::try_from(self.end - now).unwrap_or(0))
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_align_to_the_epoch() {
        let second = Duration::from_secs(1);
        assert_eq!(RateWindow::at(0, second).start, 0);
        assert_eq!(RateWindow::at(999, second).start, 0);
        assert_eq!(RateWindow::at(1_000, second).start, 1_000);
        let before_epoch = RateWindow::at(-1, second);
        assert_eq!((before_epoch.start, before_epoch.end), (-1_000, 0));
    }

    #[test]
    fn a_zero_length_is_one_millisecond() {
        let w = RateWindow::at(5, Duration::ZERO);
        assert_eq!((w.start, w.end, w.length), (5, 6, 1));
    }

    #[test]
    fn a_refusal_waits_for_the_next_window() {
        let w = RateWindow::at(1_250, Duration::from_secs(1));
        assert_eq!(w.decision(true, 1_250).retry_after, Duration::ZERO);
        let refused = w.decision(false, 1_250);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_millis(750));
        let near_the_end = RateWindow::at(i64::MAX - 1, Duration::from_secs(1));
        assert_eq!(near_the_end.end, i64::MAX, "saturates");
    }
}
