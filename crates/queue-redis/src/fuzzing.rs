//! Entry points for the fuzz targets in the repository's `fuzz/` directory (feature
//! `fuzzing`): thin wrappers around the crate-private parsers of what the store reads back
//! from Redis and of its URL. Not a public API; no semver guarantees.

use queue_core::storage::{DeadTask, EnqueueOutcome, StoredResult, TaskRecord};
use queue_core::{Envelope, Result, TaskFailure};
/// The reply type the row parsers take.
pub use redis::Value;

use crate::redact::Redactor;

/// The envelope bytes of a stored task value (`<score>|<run>|<limit>|<name length>|<name><raw>`).
pub fn task_envelope(value: &[u8]) -> Option<&[u8]> {
    crate::wire::task_envelope(value)
}

/// A result value as the results hash stores it.
pub fn result_value(expires: &str, failure: Option<&TaskFailure>, output: &[u8]) -> Vec<u8> {
    crate::wire::result_value(expires, failure, output)
}

/// Reads back a stored result value; `None` if it expired by `now` or is malformed.
pub fn parse_result(raw: &[u8], now: i64) -> Option<StoredResult> {
    crate::wait::parse_result(raw, now)
}

/// One row of the admin script's task listing.
pub fn task_row(row: Value, now: i64) -> Result<TaskRecord> {
    crate::admin::parse_row(row, now).map(|row| row.record)
}

/// One row of the dead-letter listing.
pub fn dead_row(row: Value) -> Result<DeadTask> {
    crate::store::RedisStorage::dead_row(row)
}

/// The outcomes of `batch` from the enqueue script's reply.
pub fn enqueue_outcomes(batch: &[Envelope], reply: Vec<Value>) -> Result<Vec<EnqueueOutcome>> {
    crate::hot::enqueue_outcomes(batch, reply)
}

/// Whose a key found under the store's prefix is (`Debug` of the private answer).
pub fn classify_key(rest: &[u8]) -> String {
    format!("{:?}", crate::admin::classify(rest))
}

/// Parses a Redis URL as [`RedisStorage::open`](crate::RedisStorage::open) does, without
/// connecting; on success the URL as messages show it (password hidden).
pub fn parse_url(url: &str) -> Result<String> {
    crate::RedisOptions::new(url).validate()?;
    let redactor = Redactor::for_url(url);
    crate::store::connection_info(url, &redactor)?;
    Ok(redactor.url().to_owned())
}

/// A message about `url` with its password scrubbed, as the store's errors are.
pub fn scrub(url: &str, message: &str) -> String {
    Redactor::for_url(url).scrub(message)
}
