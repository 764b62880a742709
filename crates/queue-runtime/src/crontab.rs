//! [`crontab()`]: Huey-style schedules, field by field.
//!
//! Each field takes Huey's syntax: `*`, `*/n`, `a`, `a-b`, `a-b/n`, and comma-separated lists
//! of those. Fields left out are `*`, except `second`, which is `0` (Huey has no seconds).
//! `day_of_week` counts from 0 = Sunday to 6 = Saturday, and 7 is Sunday too. The fields are
//! checked when the schedule is built, and translated to a cron expression (days of the week
//! become names `SUN`…`SAT`, which the `cron` crate reads unambiguously).

use chrono_tz::Tz;
use queue_core::{Error, Result};

use crate::Schedule;

/// A Huey-style schedule being built; see [`crontab()`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use = "a crontab does nothing until built or passed to `periodic_task`"]
pub struct Crontab {
    second: String,
    minute: String,
    hour: String,
    day: String,
    month: String,
    day_of_week: String,
    tz: Option<Tz>,
}

/// A Huey-style schedule: every field `*` (every minute, at second 0) until set.
///
/// # Examples
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use queue_runtime::crontab;
///
/// // Every 15 minutes from 9:00 to 17:45, Monday to Friday.
/// let office_hours = crontab().minute("*/15").hour("9-17").day_of_week("1-5").build()?;
/// let friday_evening = Utc.with_ymd_and_hms(2024, 3, 1, 17, 50, 0).unwrap();
/// let monday_morning = Utc.with_ymd_and_hms(2024, 3, 4, 9, 0, 0).unwrap();
/// assert_eq!(office_hours.next_after(friday_evening), Some(monday_morning));
///
/// let err = crontab().hour("9-25").build().unwrap_err().to_string();
/// assert!(err.contains("hour"), "{err}");
/// # Ok::<(), queue_core::Error>(())
/// ```
pub fn crontab() -> Crontab {
    Crontab {
        second: "0".into(),
        minute: "*".into(),
        hour: "*".into(),
        day: "*".into(),
        month: "*".into(),
        day_of_week: "*".into(),
        tz: None,
    }
}

impl Crontab {
    /// Seconds, 0–59 (default `0`).
    pub fn second(mut self, spec: impl Into<String>) -> Self {
        self.second = spec.into();
        self
    }

    /// Minutes, 0–59.
    pub fn minute(mut self, spec: impl Into<String>) -> Self {
        self.minute = spec.into();
        self
    }

    /// Hours, 0–23.
    pub fn hour(mut self, spec: impl Into<String>) -> Self {
        self.hour = spec.into();
        self
    }

    /// Days of the month, 1–31.
    pub fn day(mut self, spec: impl Into<String>) -> Self {
        self.day = spec.into();
        self
    }

    /// Months, 1–12.
    pub fn month(mut self, spec: impl Into<String>) -> Self {
        self.month = spec.into();
        self
    }

    /// Days of the week, 0–6 from Sunday; 7 is Sunday too.
    pub fn day_of_week(mut self, spec: impl Into<String>) -> Self {
        self.day_of_week = spec.into();
        self
    }

    /// Reads the fields in this time zone instead of UTC.
    pub fn time_zone(mut self, tz: Tz) -> Self {
        self.tz = Some(tz);
        self
    }

    /// The cron expression (seconds first) this crontab stands for.
    ///
    /// Fails with [`Error::InvalidInput`] naming the bad field.
    ///
    /// # Examples
    ///
    /// ```
    /// use queue_runtime::crontab;
    ///
    /// let expr = crontab().minute("0").hour("3").day_of_week("0,6").to_cron()?;
    /// assert_eq!(expr, "0 0 3 * * SUN,SAT");
    /// # Ok::<(), queue_core::Error>(())
    /// ```
    pub fn to_cron(&self) -> Result<String> {
        let fields = [
            ("second", &self.second, 0, 59),
            ("minute", &self.minute, 0, 59),
            ("hour", &self.hour, 0, 23),
            ("day", &self.day, 1, 31),
            ("month", &self.month, 1, 12),
            ("day_of_week", &self.day_of_week, 0, 7),
        ];
        let mut out = Vec::with_capacity(fields.len());
        for (name, spec, min, max) in fields {
            let values = expand(spec, min, max).map_err(|why| {
                Error::InvalidInput(format!(
                    "crontab field `{name}` = `{spec}` {why}; expected `*`, `*/n`, `a`, `a-b`, \
                     `a-b/n` or a comma-separated list of those, within {min}-{max}"
                ))
            })?;
            out.push(render(name, &values, min, max));
        }
        Ok(out.join(" "))
    }

    /// Checks the fields and builds the [`Schedule`].
    ///
    /// Fails with [`Error::InvalidInput`] naming the bad field.
    pub fn build(&self) -> Result<Schedule> {
        let schedule = Schedule::cron(&self.to_cron()?)?;
        Ok(match self.tz {
            Some(tz) => schedule.in_time_zone(tz),
            None => schedule,
        })
    }
}

/// The values a field stands for, as a bitmap over `0..=max`.
fn expand(spec: &str, min: u32, max: u32) -> std::result::Result<u64, String> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err("is empty".into());
    }
    let number = |s: &str| -> std::result::Result<u32, String> {
        let n: u32 = s
            .trim()
            .parse()
            .map_err(|_| format!("has `{s}`, which is not a number"))?;
        if n < min || n > max {
            return Err(format!("has {n}, outside {min}-{max}"));
        }
        Ok(n)
    };
    let mut set = 0u64;
    for part in spec.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .trim()
                    .parse()
                    .map_err(|_| format!("has step `{s}`, which is not a number"))?;
                if step == 0 {
                    return Err("has a step of 0".into());
                }
                (r.trim(), step)
            }
            None => (part.trim(), 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (number(a)?, number(b)?);
            if a > b {
                return Err(format!("has the range {a}-{b}, which runs backwards"));
            }
            (a, b)
        } else if step != 1 {
            return Err(format!(
                "has `{part}`; a step needs `*` or a range before it"
            ));
        } else {
            let n = number(range)?;
            (n, n)
        };
        for v in (lo..=hi).step_by(step as usize) {
            set |= 1 << v;
        }
    }
    Ok(set)
}

/// A field's values as the `cron` crate reads them.
fn render(name: &str, values: &u64, min: u32, max: u32) -> String {
    let mut values = *values;
    if name == "day_of_week" {
        // 7 is Sunday, like 0; the cron crate numbers days differently, so use names.
        if values & (1 << 7) != 0 {
            values = (values & !(1 << 7)) | 1;
        }
        if values == 0b111_1111 {
            return "*".into();
        }
        const NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
        return (0..7)
            .filter(|d| values & (1 << d) != 0)
            .map(|d| NAMES[d])
            .collect::<Vec<_>>()
            .join(",");
    }
    let all = (min..=max).fold(0u64, |acc, v| acc | (1 << v));
    if values == all {
        return "*".into();
    }
    (min..=max)
        .filter(|v| values & (1 << v) != 0)
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use chrono::{Datelike, TimeZone, Utc};

    #[test]
    fn fields_translate_to_cron() {
        assert_eq!(crontab().to_cron().unwrap(), "0 * * * * *");
        assert_eq!(
            crontab().minute("*/15").hour("9-17").to_cron().unwrap(),
            "0 0,15,30,45 9,10,11,12,13,14,15,16,17 * * *"
        );
        assert_eq!(
            crontab().day_of_week("7").to_cron().unwrap(),
            "0 * * * * SUN"
        );
        assert_eq!(
            crontab().day_of_week("0-7").to_cron().unwrap(),
            "0 * * * * *"
        );
        assert_eq!(
            crontab().minute("0-30/10,45").to_cron().unwrap(),
            "0 0,10,20,30,45 * * * *"
        );
    }

    #[test]
    fn bad_fields_are_named() {
        for (c, field) in [
            (crontab().minute("60"), "minute"),
            (crontab().hour("*/0"), "hour"),
            (crontab().day("0"), "day"),
            (crontab().month("5-3"), "month"),
            (crontab().day_of_week("8"), "day_of_week"),
            (crontab().second("x"), "second"),
            (crontab().minute("5/2"), "minute"),
            (crontab().hour(""), "hour"),
        ] {
            let e = c.build().unwrap_err().to_string();
            assert!(e.contains(&format!("field `{field}`")), "{e}");
        }
    }

    #[test]
    fn sunday_is_zero_and_seven() {
        let start = Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap(); // a Friday
        for dow in ["0", "7"] {
            let s = crontab()
                .minute("0")
                .hour("0")
                .day_of_week(dow)
                .build()
                .unwrap();
            let next = s.next_after(start).unwrap();
            assert_eq!(next.weekday(), chrono::Weekday::Sun, "{dow}");
        }
        let weekdays = crontab()
            .minute("0")
            .hour("0")
            .day_of_week("1-5")
            .build()
            .unwrap();
        let next = weekdays.next_after(start).unwrap();
        assert_eq!(next.weekday(), chrono::Weekday::Mon);
    }
}
