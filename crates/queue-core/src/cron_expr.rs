//! Cron expressions of periodic tasks: the one parser behind `queue_runtime::Schedule::cron`
//! (run time) and `#[task(periodic = "…")]` (compile time), so both accept the same
//! expressions and refuse a bad one with the same message, naming the bad field.
//!
//! An expression has six or seven fields, seconds first: `second minute hour day-of-month
//! month day-of-week [year]`, e.g. `"0 */5 * * * *"` (every five minutes); or a shorthand
//! such as `@hourly` or `@daily`. The [`cron`] crate reads it.

use std::str::FromStr;

use crate::{Error, Result};

/// The names of the fields of a cron expression and what each accepts, in order.
const CRON_FIELDS: [(&str, &str); 7] = [
    ("second", "0-59"),
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day of month", "1-31"),
    ("month", "1-12 or JAN-DEC"),
    ("day of week", "SUN-SAT, or 1-7 from Sunday"),
    ("year", "1970-2100"),
];

/// Parses a cron expression (seconds field first). Fails with [`Error::InvalidInput`] whose
/// message names the bad field, or says how many fields were expected.
///
/// # Examples
///
/// ```
/// use queue_core::cron_expr::parse_cron;
///
/// assert!(parse_cron("0 */5 * * * *").is_ok());
/// assert!(parse_cron("@daily").is_ok());
/// let err = parse_cron("0 61 * * * *").unwrap_err().to_string();
/// assert!(err.contains("invalid minute field `61`"), "{err}");
/// let err = parse_cron("*/5 * * * *").unwrap_err().to_string();
/// assert!(err.contains("no seconds field"), "{err}");
/// ```
pub fn parse_cron(expr: &str) -> Result<cron::Schedule> {
    let text = expr.trim();
    let fields: Vec<&str> = text.split_whitespace().collect();
    let example = "e.g. \"0 */5 * * * *\" (every five minutes)";
    if !text.starts_with('@') && !(6..=7).contains(&fields.len()) {
        let hint = if fields.len() == 5 {
            " (a 5-field crontab has no seconds field: put `0 ` in front)"
        } else {
            ""
        };
        return Err(Error::InvalidInput(format!(
            "cron expression `{text}` has {} fields; expected 6 or 7: second minute hour \
             day-of-month month day-of-week [year]{hint}, {example}",
            fields.len()
        )));
    }
    let err = match cron::Schedule::from_str(text) {
        Ok(schedule) => return Ok(schedule),
        Err(err) => err,
    };
    if text.starts_with('@') {
        return Err(Error::InvalidInput(format!(
            "unknown shorthand `{text}` in cron expression; expected @yearly, @monthly, \
             @weekly, @daily or @hourly, or six or seven fields, {example}"
        )));
    }
    // Name the first field that fails on its own, every other field `*`.
    for (i, field) in fields.iter().enumerate() {
        let probe: Vec<&str> = (0..fields.len())
            .map(|j| if j == i { *field } else { "*" })
            .collect();
        if cron::Schedule::from_str(&probe.join(" ")).is_err() {
            let (name, range) = CRON_FIELDS[i];
            return Err(Error::InvalidInput(format!(
                "invalid {name} field `{field}` in cron expression `{text}`; expected `*`, \
                 `*/n`, `a`, `a-b`, `a-b/n` or a list of those within {range}"
            )));
        }
    }
    Err(Error::InvalidInput(format!(
        "invalid cron expression `{text}`: {err}; {example}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(expr: &str) -> String {
        match parse_cron(expr) {
            Err(Error::InvalidInput(m)) => m,
            other => panic!("expected an invalid-input error for `{expr}`, got {other:?}"),
        }
    }

    #[test]
    fn good_expressions_parse() {
        for expr in [
            "0 */5 * * * *",
            " 0 0 9 * * MON-FRI ",
            "0 0 0 1 JAN * 2030",
            "@hourly",
            "@daily",
        ] {
            assert!(parse_cron(expr).is_ok(), "{expr}");
        }
    }

    #[test]
    fn bad_fields_are_named() {
        let e = message("0 61 * * * *");
        assert!(e.starts_with("invalid minute field `61`"), "{e}");
        assert!(e.contains("within 0-59"), "{e}");
        assert!(message("0 0 25 * * *").contains("invalid hour field `25`"));
        assert!(message("0 0 9 * * FUNDAY").contains("invalid day of week field `FUNDAY`"));
    }

    #[test]
    fn field_counts_are_checked() {
        let e = message("*/5 * * * *");
        assert!(
            e.contains("has 5 fields") && e.contains("no seconds field"),
            "{e}"
        );
        let e = message("* * * * * * * *");
        assert!(
            e.contains("has 8 fields") && !e.contains("no seconds"),
            "{e}"
        );
        assert!(message("").contains("has 0 fields"));
        assert!(message("@fortnightly").contains("unknown shorthand `@fortnightly`"));
    }
}
