//! Retry policy: how many times a failed task is tried again, and how long to wait before each.
//!
//! The delay is a pure function of the attempt number, so it is easy to reason about and test.
//! Retries are never slept in a worker: the runtime writes the task back with
//! `eta = now + policy.delay(attempt)`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How long to wait before a retry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Backoff {
    /// The same delay before every retry.
    Fixed {
        /// The delay, in milliseconds.
        delay_ms: u64,
    },
    /// `base * factor^(attempt - 1)`, capped at `max`.
    Exponential {
        /// Delay before the first retry, in milliseconds.
        base_ms: u64,
        /// Growth per retry (2.0 doubles).
        factor: f64,
        /// Upper bound, in milliseconds.
        max_ms: u64,
    },
}

/// Retries and backoff of a task.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use queue_core::RetryPolicy;
///
/// let p = RetryPolicy::exponential(5, Duration::from_secs(1), 2.0, Duration::from_secs(10));
/// assert_eq!(p.delay(1), Duration::from_secs(1));
/// assert_eq!(p.delay(2), Duration::from_secs(2));
/// assert_eq!(p.delay(3), Duration::from_secs(4));
/// assert_eq!(p.delay(5), Duration::from_secs(10)); // capped
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// How many times a failed task is tried again (0 = never).
    pub max_retries: u32,
    /// The delay before each retry.
    pub backoff: Backoff,
    /// Fraction (0.0..=1.0) of each delay that is randomised away, to spread a burst of
    /// retries. 0.0 = no jitter.
    #[serde(default)]
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::none()
    }
}

impl RetryPolicy {
    /// No retries.
    pub const fn none() -> Self {
        Self {
            max_retries: 0,
            backoff: Backoff::Fixed { delay_ms: 0 },
            jitter: 0.0,
        }
    }

    /// `retries` retries, each after the same `delay`.
    pub fn fixed(retries: u32, delay: Duration) -> Self {
        Self {
            max_retries: retries,
            backoff: Backoff::Fixed {
                delay_ms: millis(delay),
            },
            jitter: 0.0,
        }
    }

    /// `retries` retries after `base`, `base*factor`, `base*factor^2`, … capped at `max`.
    pub fn exponential(retries: u32, base: Duration, factor: f64, max: Duration) -> Self {
        Self {
            max_retries: retries,
            backoff: Backoff::Exponential {
                base_ms: millis(base),
                factor: if factor.is_finite() && factor >= 1.0 {
                    factor
                } else {
                    1.0
                },
                max_ms: millis(max),
            },
            jitter: 0.0,
        }
    }

    /// The same policy with `fraction` (clamped to 0.0..=1.0) of each delay randomised.
    pub fn with_jitter(mut self, fraction: f64) -> Self {
        self.jitter = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// Whether a task that has failed `attempts` times may be tried again.
    pub fn should_retry(&self, attempts: u32) -> bool {
        attempts <= self.max_retries
    }

    /// The delay before retry number `attempt` (1 = the first retry), without jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let attempt = attempt.max(1);
        match self.backoff {
            Backoff::Fixed { delay_ms } => Duration::from_millis(delay_ms),
            Backoff::Exponential {
                base_ms,
                factor,
                max_ms,
            } => {
                let exp = i32::try_from(attempt - 1).unwrap_or(i32::MAX);
                let raw = base_ms as f64 * factor.powi(exp);
                let capped = if raw.is_finite() {
                    raw.min(max_ms as f64)
                } else {
                    max_ms as f64
                };
                Duration::from_millis(capped as u64)
            }
        }
    }

    /// The delay before retry `attempt` with jitter applied, given `unit`, a random number in
    /// `0.0..1.0` chosen by the caller (so this stays a pure function). A jitter outside
    /// `0.0..=1.0` (as an envelope read from a store may hold) is clamped like
    /// [`with_jitter`](Self::with_jitter) does.
    pub fn delay_with_jitter(&self, attempt: u32, unit: f64) -> Duration {
        let base = self.delay(attempt);
        let jitter = if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        if jitter <= 0.0 {
            return base;
        }
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        base.mul_f64(1.0 - jitter * unit)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_never_retries() {
        let p = RetryPolicy::none();
        assert!(!p.should_retry(1));
    }

    #[test]
    fn fixed_is_constant() {
        let p = RetryPolicy::fixed(3, Duration::from_millis(250));
        for a in 1..=10 {
            assert_eq!(p.delay(a), Duration::from_millis(250));
        }
        assert!(p.should_retry(3));
        assert!(!p.should_retry(4));
    }

    #[test]
    fn exponential_grows_and_caps() {
        let p =
            RetryPolicy::exponential(10, Duration::from_millis(100), 3.0, Duration::from_secs(2));
        let got: Vec<u128> = (1..=6).map(|a| p.delay(a).as_millis()).collect();
        assert_eq!(got, vec![100, 300, 900, 2000, 2000, 2000]);
        // Huge attempt numbers do not overflow.
        assert_eq!(p.delay(u32::MAX), Duration::from_secs(2));
        // Attempt 0 is treated as the first retry.
        assert_eq!(p.delay(0), Duration::from_millis(100));
    }

    #[test]
    fn exponential_rejects_shrinking_factors() {
        let p =
            RetryPolicy::exponential(3, Duration::from_millis(100), 0.5, Duration::from_secs(1));
        assert_eq!(p.delay(3), Duration::from_millis(100));
        let p = RetryPolicy::exponential(
            3,
            Duration::from_millis(100),
            f64::NAN,
            Duration::from_secs(1),
        );
        assert_eq!(p.delay(3), Duration::from_millis(100));
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let p = RetryPolicy::fixed(3, Duration::from_millis(1000)).with_jitter(0.25);
        for i in 0..=100 {
            let unit = f64::from(i) / 100.0;
            let d = p.delay_with_jitter(1, unit).as_millis();
            assert!((750..=1000).contains(&d), "{d}");
        }
        assert_eq!(p.delay_with_jitter(1, 0.0), Duration::from_millis(1000));
        let none = RetryPolicy::fixed(3, Duration::from_millis(1000));
        assert_eq!(none.delay_with_jitter(1, 0.9), Duration::from_millis(1000));
        assert_eq!(RetryPolicy::none().with_jitter(7.0).jitter, 1.0);
    }

    #[test]
    fn a_stored_jitter_out_of_range_is_clamped() {
        // An envelope read back from a store holds whatever its writer put there; only
        // `with_jitter` clamps.
        let stored: RetryPolicy = crate::from_msgpack(
            &crate::to_msgpack(&serde_json::json!({
                "max_retries": 3,
                "backoff": {"kind": "fixed", "delay_ms": 1000},
                "jitter": 5.0,
            }))
            .unwrap(),
        )
        .unwrap();
        assert_eq!(stored.jitter, 5.0);
        assert_eq!(stored.delay_with_jitter(1, 0.5), Duration::from_millis(500));
        for jitter in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.0] {
            let mut p = RetryPolicy::fixed(3, Duration::from_millis(1000));
            p.jitter = jitter;
            assert_eq!(
                p.delay_with_jitter(1, 0.5),
                Duration::from_millis(1000),
                "{jitter}"
            );
        }
        let mut p = RetryPolicy::fixed(3, Duration::from_millis(1000));
        p.jitter = 1.5;
        assert_eq!(p.delay_with_jitter(1, 1.0), Duration::ZERO);
    }
}
