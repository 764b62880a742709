//! The injectable clock. Every store and the runtime read time through a [`Clock`], so tests can
//! move time forward with [`ManualClock::advance`] instead of sleeping.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The wall clock as a shareable trait object, the default for every store.
pub fn system_clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// A clock that only moves when told to. For tests of timing logic.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use queue_core::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// let t0 = clock.now();
/// clock.advance(Duration::from_secs(60));
/// assert_eq!((clock.now() - t0).num_seconds(), 60);
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    /// A manual clock starting at the current wall-clock time.
    pub fn new() -> Self {
        Self::starting_at(Utc::now())
    }

    /// A manual clock starting at `start`.
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += to_delta(by);
    }

    /// Sets the clock to `at`.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The latest time a task may be due or expire: the end of year 9999 (UTC), in milliseconds
/// since the Unix epoch. Delays and expiries that would end later are clamped to it; an
/// explicit eta or expiry later than it is refused.
pub const MAX_TIME_MILLIS: i64 = 253_402_300_799_999;

/// [`MAX_TIME_MILLIS`] as a time: 9999-12-31T23:59:59.999Z.
///
/// # Examples
///
/// ```
/// assert_eq!(queue_core::clock::max_time().to_rfc3339(), "9999-12-31T23:59:59.999+00:00");
/// ```
pub fn max_time() -> DateTime<Utc> {
    from_millis(MAX_TIME_MILLIS)
}

/// `now + d`, clamped to [`max_time`]: a delay of `Duration::MAX` (say, a server's absurd
/// `Retry-After`) means "at the end of year 9999", never an overflow.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use queue_core::clock::{after, max_time};
/// let now = chrono::Utc::now();
/// assert_eq!(after(now, Duration::MAX), max_time());
/// assert_eq!(after(now, Duration::from_secs(1)), now + chrono::TimeDelta::seconds(1));
/// ```
pub fn after(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now.checked_add_signed(to_delta(d))
        .map_or_else(max_time, |t| t.min(max_time()))
}

/// The longest any wait lasts (`handle.get`, lock acquisition, a store's wait for work):
/// longer timeouts, `Duration::MAX` included, are clamped to it.
pub const MAX_WAIT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The Tokio instant `timeout` from now, with `timeout` clamped to [`MAX_WAIT`] (so that
/// `Duration::MAX` never overflows an `Instant`).
///
/// # Examples
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let far = queue_core::clock::deadline(std::time::Duration::MAX);
/// assert!(far > tokio::time::Instant::now());
/// # });
/// ```
pub fn deadline(timeout: Duration) -> tokio::time::Instant {
    tokio::time::Instant::now() + timeout.min(MAX_WAIT)
}

/// Converts a std duration to a chrono delta, saturating at chrono's maximum.
pub fn to_delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// Milliseconds since the Unix epoch, the unit every store keeps times in.
pub fn to_millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The inverse of [`to_millis`]; out-of-range values clamp to the representable range.
pub fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(if ms < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

/// Saturating `Duration` -> milliseconds.
pub fn duration_millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
