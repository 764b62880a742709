//! [`Schedule`]: when a periodic task fires.
//!
//! A schedule is either a cron expression (seconds field first, read by
//! [`queue_core::cron_expr::parse_cron`] like `#[task(periodic = "…")]` does at compile time,
//! evaluated in UTC or in a named time zone) or "every N seconds, aligned to the Unix epoch"
//! ([`Schedule::every`]), which a cron expression cannot say when N does not divide 60. Build
//! one from a string with [`Schedule::cron`], from Huey-style fields with
//! [`crontab()`](crate::crontab), or from a period with [`Schedule::every`].
//!
//! Fire times are whole instants computed from the schedule alone (never "last fire + period"),
//! so a ticker that wakes late does not drift.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use queue_core::clock::{duration_millis, from_millis, to_millis};
use queue_core::cron_expr::parse_cron;
use queue_core::{Error, Result};

#[derive(Clone)]
enum Kind {
    Cron(Box<cron::Schedule>),
    /// Milliseconds; fires at every multiple of it since the epoch.
    Every(i64),
}

/// When a periodic task fires. See the [module docs](self).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use chrono::{TimeZone, Utc};
/// use queue_runtime::Schedule;
///
/// let every_5_min = Schedule::cron("0 */5 * * * *")?;
/// let t = Utc.with_ymd_and_hms(2024, 1, 1, 10, 2, 30).unwrap();
/// assert_eq!(every_5_min.next_after(t), Some(Utc.with_ymd_and_hms(2024, 1, 1, 10, 5, 0).unwrap()));
/// assert_eq!(every_5_min.latest_at_or_before(t), Some(Utc.with_ymd_and_hms(2024, 1, 1, 10, 0, 0).unwrap()));
///
/// let every_7s = Schedule::every(Duration::from_secs(7))?; // 7 does not divide 60
/// assert_eq!(every_7s.next_after(t).map(|n| n.timestamp() % 7), Some(0));
///
/// let err = Schedule::cron("0 */5 25 * * *").unwrap_err().to_string();
/// assert!(err.contains("hour"), "{err}");
/// # Ok::<(), queue_core::Error>(())
/// ```
#[derive(Clone)]
pub struct Schedule {
    kind: Kind,
    tz: Tz,
    text: String,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({} {})", self.text, self.tz)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.tz == Tz::UTC {
            f.write_str(&self.text)
        } else {
            write!(f, "{} ({})", self.text, self.tz)
        }
    }
}

impl Schedule {
    /// A cron expression with a seconds field first: `second minute hour day-of-month month
    /// day-of-week [year]`, e.g. `"0 */5 * * * *"` (every five minutes). Also `@hourly`,
    /// `@daily`, … Evaluated in UTC unless [`in_time_zone`](Self::in_time_zone) says otherwise.
    ///
    /// Fails with [`Error::InvalidInput`] naming the bad field.
    pub fn cron(expr: &str) -> Result<Self> {
        let parsed = parse_cron(expr)?;
        Ok(Self {
            kind: Kind::Cron(Box::new(parsed)),
            tz: Tz::UTC,
            text: expr.trim().to_owned(),
        })
    }

    /// Fires at every multiple of `period` since the Unix epoch (so every consumer agrees on
    /// the fire times without talking to each other). `period` must be at least 10 ms.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use chrono::{TimeZone, Utc};
    /// use queue_runtime::Schedule;
    ///
    /// let s = Schedule::every(Duration::from_secs(90))?;
    /// let t = Utc.timestamp_opt(1_000, 0).unwrap();
    /// assert_eq!(s.latest_at_or_before(t).map(|x| x.timestamp()), Some(990));
    /// assert_eq!(s.next_after(t).map(|x| x.timestamp()), Some(1_080));
    /// # Ok::<(), queue_core::Error>(())
    /// ```
    pub fn every(period: Duration) -> Result<Self> {
        if period < Duration::from_millis(10) {
            return Err(Error::InvalidInput(format!(
                "a periodic schedule must fire at most every 10 ms, got every {period:?}"
            )));
        }
        Ok(Self {
            kind: Kind::Every(duration_millis(period)),
            tz: Tz::UTC,
            text: format!("every {period:?}"),
        })
    }

    /// Evaluates a cron schedule in the named time zone (daylight-saving changes included).
    /// No effect on [`every`](Self::every) schedules, which are aligned to the epoch.
    ///
    /// # Examples
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use queue_runtime::Schedule;
    ///
    /// let nine_am_paris = Schedule::cron("0 0 9 * * *")?.in_time_zone(chrono_tz::Europe::Paris);
    /// let t = Utc.with_ymd_and_hms(2024, 1, 15, 0, 0, 0).unwrap();
    /// assert_eq!(nine_am_paris.next_after(t), Some(Utc.with_ymd_and_hms(2024, 1, 15, 8, 0, 0).unwrap()));
    /// # Ok::<(), queue_core::Error>(())
    /// ```
    pub fn in_time_zone(mut self, tz: Tz) -> Self {
        self.tz = tz;
        self
    }

    /// The time zone cron fields are read in.
    pub fn time_zone(&self) -> Tz {
        self.tz
    }

    /// The first fire time strictly after `t`, if the schedule fires again.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.kind {
            Kind::Every(p) => Some(from_millis(floor_to(to_millis(t), *p).checked_add(*p)?)),
            Kind::Cron(s) => s
                .after(&t.with_timezone(&self.tz))
                .next()
                .map(|d| d.with_timezone(&Utc)),
        }
    }

    /// The last fire time at or before `t`, if the schedule ever fired.
    pub fn latest_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.kind {
            Kind::Every(p) => Some(from_millis(floor_to(to_millis(t), *p))),
            Kind::Cron(s) => {
                // `after(x).next_back()` is the last fire strictly before `x`; cron fires on
                // whole seconds, so start just past `t`.
                let just_after = t + TimeDelta::milliseconds(1);
                s.after(&just_after.with_timezone(&self.tz))
                    .next_back()
                    .map(|d| d.with_timezone(&Utc))
                    .filter(|d| *d <= t)
            }
        }
    }
}

impl FromStr for Schedule {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::cron(s)
    }
}

fn floor_to(ms: i64, period: i64) -> i64 {
    ms - ms.rem_euclid(period)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 3, 1, h, m, s).unwrap()
    }

    #[test]
    fn cron_next_and_latest() {
        let s = Schedule::cron("0 */5 * * * *").unwrap();
        assert_eq!(
            s.next_after(at(10, 5, 0)),
            Some(at(10, 10, 0)),
            "strictly after"
        );
        assert_eq!(
            s.latest_at_or_before(at(10, 5, 0)),
            Some(at(10, 5, 0)),
            "at"
        );
        let t = at(10, 5, 0) + TimeDelta::milliseconds(400);
        assert_eq!(s.latest_at_or_before(t), Some(at(10, 5, 0)));
        assert_eq!(s.next_after(t), Some(at(10, 10, 0)));
        let every_sec = Schedule::cron("* * * * * *").unwrap();
        assert_eq!(every_sec.latest_at_or_before(t), Some(at(10, 5, 0)));
        assert_eq!(every_sec.next_after(t), Some(at(10, 5, 1)));
    }

    #[test]
    fn bad_fields_are_named() {
        let e = Schedule::cron("0 61 * * * *").unwrap_err().to_string();
        assert!(e.contains("invalid minute field `61`"), "{e}");
        let e = Schedule::cron("0 0 * * * FUNDAY").unwrap_err().to_string();
        assert!(e.contains("day of week"), "{e}");
        let e = Schedule::cron("*/5 * * * *").unwrap_err().to_string();
        assert!(
            e.contains("has 5 fields") && e.contains("no seconds field"),
            "{e}"
        );
        assert!(Schedule::cron("@daily").is_ok());
    }

    #[test]
    fn every_is_aligned_to_the_epoch() {
        let s = Schedule::every(Duration::from_secs(7)).unwrap();
        let t = Utc.timestamp_opt(100, 0).unwrap();
        assert_eq!(s.latest_at_or_before(t).unwrap().timestamp(), 98);
        assert_eq!(s.next_after(t).unwrap().timestamp(), 105);
        let exact = Utc.timestamp_opt(105, 0).unwrap();
        assert_eq!(s.latest_at_or_before(exact), Some(exact));
        assert!(Schedule::every(Duration::from_millis(1)).is_err());
    }

    #[test]
    fn time_zones_shift_cron_fields() {
        let s = Schedule::cron("0 0 9 * * *")
            .unwrap()
            .in_time_zone(chrono_tz::America::New_York);
        // 9:00 in New York in March before DST (EST, UTC-5) is 14:00 UTC.
        assert_eq!(s.next_after(at(0, 0, 0)), Some(at(14, 0, 0)));
        assert!(s.to_string().contains("America/New_York"));
    }
}
