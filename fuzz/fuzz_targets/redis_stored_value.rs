//! What the Redis store reads back from Redis: stored task values (`task_envelope`, then the
//! envelope), stored results (`parse_result`, and its round trip with `result_value`), the
//! rows of the admin and dead-letter listings, the enqueue script's reply, and key names met
//! by `flush_all`. Never panics; a result written by `result_value` reads back the same.
//!
//! The first byte picks what the rest is fed to.
#![no_main]

use chrono::Utc;
use libfuzzer_sys::fuzz_target;
use queue_core::storage::StoredResult;
use queue_core::{Envelope, FailureKind, TaskFailure};
use queue_redis::fuzzing::{self, Value};

const KINDS: [FailureKind; 12] = [
    FailureKind::Error,
    FailureKind::Panic,
    FailureKind::Timeout,
    FailureKind::Canceled,
    FailureKind::Revoked,
    FailureKind::Expired,
    FailureKind::Undecodable,
    FailureKind::UnknownTask,
    FailureKind::DeliveryLimit,
    FailureKind::NewerFormat,
    FailureKind::BadSignature,
    FailureKind::UnknownKey,
];

/// A reply value read from the fuzzer's bytes: a tag byte, then its contents.
fn value(data: &mut &[u8], depth: u32) -> Value {
    let Some((&tag, rest)) = data.split_first() else {
        return Value::Nil;
    };
    *data = rest;
    match tag % 6 {
        0 => Value::Nil,
        1 => {
            let mut n = [0u8; 8];
            let k = data.len().min(8);
            n[..k].copy_from_slice(&data[..k]);
            *data = &data[k..];
            Value::Int(i64::from_le_bytes(n))
        }
        2 | 3 => {
            let len = data.first().map_or(0, |l| usize::from(*l));
            let body = data.get(1..).unwrap_or_default();
            let len = len.min(body.len());
            let bytes = body[..len].to_vec();
            *data = &body[len..];
            if tag % 6 == 2 {
                Value::BulkString(bytes)
            } else {
                Value::SimpleString(String::from_utf8_lossy(&bytes).into_owned())
            }
        }
        4 if depth < 3 => {
            let n = data.first().map_or(0, |n| usize::from(*n % 16));
            *data = data.get(1..).unwrap_or_default();
            Value::Array((0..n).map(|_| value(data, depth + 1)).collect())
        }
        _ => Value::Okay,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let now = 1_700_000_000_000;
    match mode % 5 {
        0 => {
            if let Some(raw) = fuzzing::task_envelope(rest) {
                assert!(rest.ends_with(raw), "the envelope is the value's tail");
                let _ = Envelope::decode(raw);
            }
        }
        1 => {
            let _ = fuzzing::parse_result(rest, now);
        }
        2 => {
            // result_value, then parse_result: the same result comes back.
            let [expiry, kind, a, b, c, d, output @ ..] = rest else {
                return;
            };
            let attempts = u32::from_le_bytes([*a, *b, *c, *d]);
            let expires = match expiry % 3 {
                0 => String::new(),
                1 => (now + 1 + i64::from(*expiry)).to_string(),
                _ => i64::MAX.to_string(),
            };
            let expected = match KINDS.get(usize::from(*kind)) {
                Some(kind) => StoredResult::Failure(TaskFailure::new(
                    *kind,
                    String::from_utf8_lossy(output).into_owned(),
                    attempts,
                )),
                None => StoredResult::Success(output.to_vec()),
            };
            let failure = match &expected {
                StoredResult::Failure(f) => Some(f),
                StoredResult::Success(_) => None,
            };
            let stored = fuzzing::result_value(&expires, failure, output_of(&expected));
            assert_eq!(
                fuzzing::parse_result(&stored, now),
                Some(expected),
                "result round trip"
            );
        }
        3 => {
            let mut cursor = rest;
            let row = value(&mut cursor, 0);
            let _ = fuzzing::task_row(row.clone(), now);
            let _ = fuzzing::dead_row(row.clone());
            let batch: Vec<Envelope> = (0..3)
                .map(|_| Envelope::new("default", "t", Vec::new(), Utc::now()))
                .collect();
            if let Value::Array(items) = row {
                let _ = fuzzing::enqueue_outcomes(&batch, items);
            }
        }
        _ => {
            let _ = fuzzing::classify_key(rest);
        }
    }
});

fn output_of(result: &StoredResult) -> &[u8] {
    match result {
        StoredResult::Success(output) => output,
        StoredResult::Failure(_) => &[],
    }
}
