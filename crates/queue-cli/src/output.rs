//! What a command prints: a [`Report`] holds both the JSON document and the human form.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use comfy_table::presets::NOTHING;
use comfy_table::{CellAlignment, Table};
use serde_json::Value;

/// A failed command: one line for stderr, and the exit code (1, or 2 when nothing was tried).
#[derive(Debug)]
pub(crate) struct CliError {
    message: String,
    pub(crate) code: u8,
}

impl CliError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: 1,
        }
    }

    /// A command that was not run (not confirmed): exit code 2.
    pub(crate) fn refused(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: 2,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<skiff::Error> for CliError {
    fn from(err: skiff::Error) -> Self {
        Self::new(err.to_string())
    }
}

/// Asks on the terminal whether to `what`; without a terminal to ask on, refuses. Either way
/// a refusal changes nothing and exits 2.
pub(crate) fn confirm(what: &str) -> Result<(), CliError> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    if !(stdin.is_terminal() && std::io::stderr().is_terminal()) {
        return Err(CliError::refused(format!(
            "refusing to {what} without --yes (no terminal to ask on); nothing changed"
        )));
    }
    eprint!("skiff: {what}? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let confirmed = stdin.lock().read_line(&mut answer).is_ok()
        && matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes");
    if confirmed {
        Ok(())
    } else {
        Err(CliError::refused(format!(
            "not confirmed: did not {what}; nothing changed"
        )))
    }
}

/// The result of a command in both forms.
pub(crate) struct Report {
    pub(crate) json: Value,
    pub(crate) human: String,
}

impl Report {
    pub(crate) fn new(json: Value, human: impl Into<String>) -> Self {
        Self {
            json,
            human: human.into(),
        }
    }

    pub(crate) fn json_text(&self) -> String {
        serde_json::to_string_pretty(&self.json).unwrap_or_else(|_| self.json.to_string())
    }

    pub(crate) fn human_text(&self) -> String {
        self.human.trim_end().to_owned()
    }
}

/// An aligned table without borders: a header row of upper-case names, columns two spaces
/// apart, numbers right-aligned.
pub(crate) fn table(header: &[&str], rows: Vec<Vec<String>>, numeric: &[usize]) -> String {
    let mut table = Table::new();
    table.load_preset(NOTHING);
    table.set_header(header.iter().map(|h| h.to_uppercase()));
    for row in rows {
        table.add_row(row);
    }
    for (i, column) in table.column_iter_mut().enumerate() {
        column.set_padding((0, 2));
        if numeric.contains(&i) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
        .lines()
        .map(|line| line.trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A two-column FIELD / VALUE table.
pub(crate) fn fields(rows: Vec<(&str, String)>) -> String {
    table(
        &["field", "value"],
        rows.into_iter()
            .map(|(k, v)| vec![k.to_owned(), v])
            .collect(),
        &[],
    )
}

/// A time as RFC 3339 UTC with milliseconds.
pub(crate) fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Compact JSON cut to `max` characters for a table cell.
pub(crate) fn short(value: &Value, max: usize) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    truncate(&text, max)
}

pub(crate) fn truncate(text: &str, max: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let mut cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// `message` on one line with the password of `url` (if any) hidden, as written and
/// percent-decoded, and any other URL in it redacted.
pub(crate) fn scrub(url: &str, message: &str) -> String {
    let text = message.split_whitespace().collect::<Vec<_>>().join(" ");
    let text = text.replace(url, &skiff::redact(url));
    let text = skiff::redact::scrub(&text, &skiff::redact::secrets(url));
    skiff::redact::redact_text(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_hides_passwords_and_joins_lines() {
        let url = "redis://:hunter2@db:6379/0";
        assert_eq!(
            scrub(
                url,
                "cannot reach redis://:hunter2@db:6379/0\n(auth hunter2)"
            ),
            "cannot reach redis://:***@db:6379/0 (auth ***)"
        );
        assert_eq!(scrub("sqlite://a.db", "x\ny"), "x y");
        let url = "postgres://app@db/app?password=s3cret&sslmode=require";
        assert_eq!(
            scrub(url, &format!("cannot reach {url}: auth s3cret")),
            "cannot reach postgres://app@db/app?password=***&sslmode=require: auth ***"
        );
    }

    #[test]
    fn tables_are_aligned_without_borders() {
        let text = table(
            &["id", "n"],
            vec![
                vec!["a".into(), "1".into()],
                vec!["bbb".into(), "22".into()],
            ],
            &[1],
        );
        assert_eq!(text, "ID    N\na     1\nbbb  22");
    }

    #[test]
    fn truncation_marks_the_cut() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }
}
