//! `Envelope::decode` on any bytes: never panics; what decodes re-encodes and decodes to the
//! same envelope. Also the other msgpack values stores read back (results, worker heartbeats)
//! and the admin tools' rendering of stored bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use queue_core::storage::StoredResult;
use queue_core::{Envelope, WorkerStatus};

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = Envelope::decode(data) {
        let bytes = env.encode().expect("a decoded envelope encodes");
        let back = Envelope::decode(&bytes).expect("a re-encoded envelope decodes");
        // Compared encoded: a NaN (say, in the retry policy) is not equal to itself.
        assert_eq!(back.encode().ok(), Some(bytes), "round trip");
        // What a consumer computes from a delivered envelope.
        for attempt in [0, 1, 2, 64, env.attempt, u32::MAX] {
            for unit in [0.0, 0.5, 0.999, 1.0] {
                let _ = env.retry.delay_with_jitter(attempt, unit);
            }
            let _ = env.retry.should_retry(attempt);
        }
        let _ = env.validate();
        let _ = env.delivery_limit();
        let _ = env.due_at();
        let _ = env.to_json();
    }
    if let Ok(result) = StoredResult::decode(data) {
        let bytes = result.encode().expect("a decoded result encodes");
        let back = StoredResult::decode(&bytes).expect("a re-encoded result decodes");
        assert_eq!(back.encode().ok(), Some(bytes), "result round trip");
    }
    if let Ok(status) = WorkerStatus::decode(data) {
        let bytes = status.encode().expect("a decoded worker status encodes");
        let back = WorkerStatus::decode(&bytes).expect("a re-encoded worker status decodes");
        assert_eq!(back.encode().ok(), Some(bytes), "status round trip");
    }
    let _ = queue_core::msgpack_to_json(data);
});
