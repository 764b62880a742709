//! Property tests of the envelope's msgpack encoding: every envelope a producer can build
//! (all fields, optional ones set or not, odd strings, edge numbers and timestamps) decodes to
//! itself, one from a newer format is refused as such, and no bytes make `decode` panic. The
//! fuzz target `envelope_decode` (in `fuzz/`) explores the decoder further; these run with
//! the test suite and take a few seconds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use queue_core::seal::Signature;
use queue_core::{
    Backoff, Envelope, Error, FollowUp, FollowUpInput, FollowUpWhen, RetryPolicy, TaskId,
    FORMAT_VERSION,
};

/// Cases per property: enough to cover the shapes, small enough for CI.
const CASES: u32 = 256;

/// Any instant the envelope can hold: whole milliseconds across chrono's range, with the
/// ends and the epoch more likely.
fn time() -> impl Strategy<Value = DateTime<Utc>> {
    let min = DateTime::<Utc>::MIN_UTC.timestamp_millis();
    let max = DateTime::<Utc>::MAX_UTC.timestamp_millis();
    prop_oneof![
        4 => min..=max,
        1 => Just(min),
        1 => Just(max),
        1 => Just(0i64),
        1 => -1i64..=1,
        2 => 0i64..=253_402_300_799_999, // up to the end of year 9999
    ]
    .prop_map(|ms| DateTime::from_timestamp_millis(ms).unwrap())
}

/// Strings as producers might write them: empty, ASCII, any Unicode, control characters.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z_.:{}|-]{1,20}",
        any::<String>(),
        prop::collection::vec(any::<char>(), 0..40).prop_map(|c| c.into_iter().collect()),
        Just("\u{0}\u{1f}\u{7f}\u{feff}|{q}\r\n".to_owned()),
    ]
}

/// Finite floats, edge values included (a NaN is not equal to itself).
fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |f| f.is_finite()),
        Just(0.0),
        Just(-0.0),
        Just(1.0),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
    ]
}

fn retry() -> impl Strategy<Value = RetryPolicy> {
    let backoff = prop_oneof![
        any::<u64>().prop_map(|delay_ms| Backoff::Fixed { delay_ms }),
        (any::<u64>(), float(), any::<u64>()).prop_map(|(base_ms, factor, max_ms)| {
            Backoff::Exponential {
                base_ms,
                factor,
                max_ms,
            }
        }),
    ];
    (any::<u32>(), backoff, float()).prop_map(|(max_retries, backoff, jitter)| RetryPolicy {
        max_retries,
        backoff,
        jitter,
    })
}

fn task_id() -> impl Strategy<Value = TaskId> {
    any::<u128>().prop_map(|n| TaskId::from_uuid(uuid::Uuid::from_u128(n)))
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

/// An envelope without follow-ups.
fn leaf() -> impl Strategy<Value = Envelope> {
    let ids = (
        0..=FORMAT_VERSION,
        task_id(),
        text(),
        text(),
        bytes(64),
        any::<i16>(),
    );
    let times = (
        prop::option::of(time()),
        time(),
        prop::option::of(time()),
        any::<u32>(),
        any::<u32>(),
        retry(),
    );
    let rest = (
        prop::option::of(any::<u64>().prop_map(Duration::from_millis)),
        prop::option::of(text()),
        any::<u32>(),
        prop::collection::btree_map(text(), text(), 0..4),
        prop::collection::vec(task_id(), 0..4),
        prop::option::of((text(), bytes(40)).prop_map(|(key, mac)| Signature { key, mac })),
    );
    (ids, times, rest).prop_map(
        |(
            (version, id, queue, task, args, priority),
            (eta, enqueued_at, expires_at, attempt, deliveries, retry),
            (timeout, unique_key, max_deliveries, trace, chord_members, sig),
        )| Envelope {
            version,
            id,
            queue,
            task,
            args,
            priority,
            eta,
            enqueued_at,
            expires_at,
            attempt,
            deliveries,
            retry,
            timeout,
            unique_key,
            max_deliveries,
            follow_ups: Vec::new(),
            trace: trace.into_iter().collect::<BTreeMap<_, _>>(),
            chord_members,
            sig,
        },
    )
}

fn follow_up(envelope: impl Strategy<Value = Envelope>) -> impl Strategy<Value = FollowUp> {
    let when = prop_oneof![Just(FollowUpWhen::Success), Just(FollowUpWhen::Failure)];
    let input = prop_oneof![
        Just(FollowUpInput::Fixed),
        Just(FollowUpInput::Output),
        Just(FollowUpInput::Failure),
    ];
    (when, input, envelope).prop_map(|(when, input, envelope)| FollowUp {
        when,
        input,
        envelope,
    })
}

/// An envelope with up to two levels of follow-ups.
fn envelope() -> impl Strategy<Value = Envelope> {
    let inner = (leaf(), prop::collection::vec(follow_up(leaf()), 0..2)).prop_map(
        |(mut env, follow_ups)| {
            env.follow_ups = follow_ups;
            env
        },
    );
    (leaf(), prop::collection::vec(follow_up(inner), 0..3)).prop_map(|(mut env, follow_ups)| {
        env.follow_ups = follow_ups;
        env
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn encode_then_decode_is_the_same_envelope(env in envelope()) {
        let bytes = env.encode().unwrap();
        let back = Envelope::decode(&bytes).unwrap();
        prop_assert_eq!(&back, &env);
        prop_assert_eq!(back.encode().unwrap(), bytes);
    }

    #[test]
    fn a_newer_format_is_refused_as_such(env in leaf(), version in (FORMAT_VERSION + 1)..=u16::MAX) {
        let mut env = env;
        env.version = version;
        let err = Envelope::decode(&env.encode().unwrap()).unwrap_err();
        prop_assert!(
            matches!(err, Error::NewerFormat { found, supported: FORMAT_VERSION } if found == version),
            "{}", err
        );
    }

    #[test]
    fn no_bytes_make_decode_panic(bytes in bytes(512)) {
        if let Ok(env) = Envelope::decode(&bytes) {
            let again = Envelope::decode(&env.encode().unwrap()).unwrap();
            prop_assert_eq!(again.encode().unwrap(), env.encode().unwrap());
        }
    }

    #[test]
    fn damaged_envelopes_fail_cleanly(
        env in leaf(),
        cuts in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        truncate in any::<prop::sample::Index>(),
    ) {
        let mut bytes = env.encode().unwrap();
        for (at, byte) in cuts {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        bytes.truncate(truncate.index(bytes.len() + 1));
        // Decoding (and what a consumer computes from what decodes) must not panic.
        if let Ok(env) = Envelope::decode(&bytes) {
            let _ = env.retry.delay_with_jitter(1, 0.5);
            let _ = env.to_json();
        }
    }
}
