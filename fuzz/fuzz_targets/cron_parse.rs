//! Cron expressions (`parse_cron`, `Schedule::cron`) and crontab fields (`crontab()`): never
//! panic; a schedule that parses yields fire times after a fixed instant without hanging, in
//! UTC and in a time zone with daylight-saving changes.
#![no_main]

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use queue_runtime::{crontab, Schedule};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let t = Utc.with_ymd_and_hms(2024, 3, 31, 0, 59, 30).unwrap();
    let _ = queue_core::cron_expr::parse_cron(text);
    if let Ok(schedule) = Schedule::cron(text) {
        for s in [
            schedule.clone(),
            schedule.in_time_zone(chrono_tz::Europe::Paris),
        ] {
            let mut at = t;
            for _ in 0..3 {
                match s.next_after(at) {
                    Some(next) => {
                        assert!(next > at, "{s}: next fire {next} is not after {at}");
                        at = next;
                    }
                    None => break,
                }
            }
            if let Some(last) = s.latest_at_or_before(t) {
                assert!(last <= t, "{s}: latest fire {last} is after {t}");
            }
            let _ = s.to_string();
        }
    }
    // Crontab fields: the text split at `;` into second, minute, hour, day, month, weekday.
    let mut fields = text.split(';');
    let mut next = || fields.next().unwrap_or("*").to_owned();
    let tab = crontab()
        .second(next())
        .minute(next())
        .hour(next())
        .day(next())
        .month(next())
        .day_of_week(next());
    if let Ok(expr) = tab.to_cron() {
        let schedule = tab.build();
        assert!(
            schedule.is_ok(),
            "crontab gave `{expr}`, which does not parse: {schedule:?}"
        );
    }
});
