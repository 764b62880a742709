//! The task envelope: everything a store keeps about one task, encoded as msgpack.
//!
//! Envelopes are data only (no code): task name + msgpack arguments + options. They are encoded
//! as msgpack maps with field names, so an admin tool can show one as JSON without the task code
//! ([`Envelope::to_json`]), and a field added later decodes as its default in older envelopes.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Error, Result, RetryPolicy, TaskId};

/// The newest envelope format this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;

/// Deliveries allowed beyond `retries + 1` before a task counts as poison (see
/// [`Envelope::delivery_limit`]).
pub const DELIVERY_MARGIN: u32 = 3;

/// The default limit on a task's encoded arguments
/// ([`Queue::with_max_args_bytes`](crate::Queue::with_max_args_bytes)) and result (the
/// runtime's `ConsumerBuilder::max_result_bytes`): 16 MiB, well under what every store takes.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 16 * 1024 * 1024;

/// The queue tasks go to unless they say otherwise.
pub const DEFAULT_QUEUE: &str = "default";

/// One task as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Format version ([`FORMAT_VERSION`] when written by this build).
    #[serde(rename = "v")]
    pub version: u16,
    /// The task's id.
    pub id: TaskId,
    /// The queue it belongs to.
    pub queue: String,
    /// The registered name of the task to run.
    pub task: String,
    /// The task's arguments, msgpack-encoded.
    #[serde(with = "serde_bytes")]
    pub args: Vec<u8>,
    /// Higher runs first.
    #[serde(default)]
    pub priority: i16,
    /// Not delivered before this time.
    #[serde(default, with = "chrono::serde::ts_milliseconds_option")]
    pub eta: Option<DateTime<Utc>>,
    /// When the task was first enqueued.
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub enqueued_at: DateTime<Utc>,
    /// Dropped (with an `expired` event) if not started by then.
    #[serde(default, with = "chrono::serde::ts_milliseconds_option")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Failed attempts so far (0 on the first run).
    #[serde(default)]
    pub attempt: u32,
    /// Times the task has been handed to a worker, counting the current delivery.
    #[serde(default)]
    pub deliveries: u32,
    /// Retries and backoff.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Per-attempt time limit.
    #[serde(default, with = "duration_ms_opt")]
    pub timeout: Option<Duration>,
    /// Enqueue is a no-op while a task with this key is pending or running.
    #[serde(default)]
    pub unique_key: Option<String>,
    /// Deliveries after which the task is dead-lettered as poison; 0 = the default
    /// (`retries + 1 + DELIVERY_MARGIN`).
    #[serde(default)]
    pub max_deliveries: u32,
    /// Tasks to enqueue when this one ends, atomically with its completion.
    #[serde(default)]
    pub follow_ups: Vec<FollowUp>,
    /// Trace context of the span that enqueued the task (W3C `traceparent` and friends).
    #[serde(default)]
    pub trace: BTreeMap<String, String>,
    /// For a chord callback: the member tasks whose results it waits for. The consumer defers
    /// the callback until every member has a result, then runs it once with the members'
    /// outputs, in order, as its one argument.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chord_members: Vec<TaskId>,
    /// The producer's signature, when signing is on ([`crate::seal`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<crate::seal::Signature>,
}

/// When a follow-up runs, and what it receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FollowUpWhen {
    /// After the task succeeds.
    Success,
    /// After the task fails for good (dead-lettered, canceled, expired or revoked).
    Failure,
}

/// What a follow-up's arguments are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FollowUpInput {
    /// Its own stored arguments.
    Fixed,
    /// A one-element tuple of the finished task's output (pipelines).
    Output,
    /// A one-element tuple of the finished task's [`TaskFailure`](crate::TaskFailure)
    /// (error handlers).
    Failure,
}

/// A task to enqueue when another ends, stored inside the other's envelope.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FollowUp {
    /// When it runs.
    pub when: FollowUpWhen,
    /// What it receives.
    pub input: FollowUpInput,
    /// The task to enqueue.
    pub envelope: Envelope,
}

/// An envelope as [`Envelope::encode`] writes it: the fields of [`Envelope`], in its order and
/// with its names and encodings, each left out while it holds what [`Envelope`]'s
/// `Deserialize` reads a missing field as. [`Envelope`]'s own `Serialize` writes every field:
/// admin tools' JSON shows them all, and what a signature covers (`seal.rs`, follow-ups
/// included) does not change.
#[derive(Serialize)]
struct Stored<'a> {
    v: u16,
    id: TaskId,
    queue: &'a str,
    task: &'a str,
    #[serde(with = "serde_bytes")]
    args: &'a [u8],
    #[serde(skip_serializing_if = "is_zero_i16")]
    priority: i16,
    #[serde(skip_serializing_if = "Option::is_none")]
    eta: Option<i64>,
    enqueued_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
    #[serde(skip_serializing_if = "is_zero_u32")]
    attempt: u32,
    #[serde(skip_serializing_if = "is_zero_u32")]
    deliveries: u32,
    #[serde(skip_serializing_if = "is_no_retry")]
    retry: &'a RetryPolicy,
    #[serde(skip_serializing_if = "Option::is_none", with = "duration_ms_opt")]
    timeout: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unique_key: Option<&'a str>,
    #[serde(skip_serializing_if = "is_zero_u32")]
    max_deliveries: u32,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    follow_ups: &'a [FollowUp],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    trace: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    chord_members: &'a [TaskId],
    #[serde(skip_serializing_if = "Option::is_none")]
    sig: Option<&'a crate::seal::Signature>,
}

impl<'a> Stored<'a> {
    fn of(env: &'a Envelope) -> Self {
        // Every field named: a field added to `Envelope` does not compile until it is here.
        let Envelope {
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
            follow_ups,
            trace,
            chord_members,
            sig,
        } = env;
        Self {
            v: *version,
            id: *id,
            queue,
            task,
            args,
            priority: *priority,
            eta: eta.map(|t| t.timestamp_millis()),
            enqueued_at: enqueued_at.timestamp_millis(),
            expires_at: expires_at.map(|t| t.timestamp_millis()),
            attempt: *attempt,
            deliveries: *deliveries,
            retry,
            timeout: *timeout,
            unique_key: unique_key.as_deref(),
            max_deliveries: *max_deliveries,
            follow_ups,
            trace,
            chord_members,
            sig: sig.as_ref(),
        }
    }
}

fn is_zero_i16(n: &i16) -> bool {
    *n == 0
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

/// Exactly [`RetryPolicy::none`], bit for bit: a jitter of `-0.0` equals `0.0` but is written,
/// so a signature over the decoded envelope matches the producer's.
fn is_no_retry(retry: &&RetryPolicy) -> bool {
    retry.max_retries == 0
        && retry.backoff == crate::Backoff::Fixed { delay_ms: 0 }
        && retry.jitter.to_bits() == 0
}

#[derive(Deserialize)]
struct VersionOnly {
    #[serde(rename = "v", default)]
    version: u16,
}

impl Envelope {
    /// A new envelope for `task` on `queue` with msgpack `args`, enqueued at `now`.
    pub fn new(
        queue: impl Into<String>,
        task: impl Into<String>,
        args: Vec<u8>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            version: FORMAT_VERSION,
            id: TaskId::new(),
            queue: queue.into(),
            task: task.into(),
            args,
            priority: 0,
            eta: None,
            // Stores keep milliseconds; so does the envelope, so a round trip is exact.
            enqueued_at: crate::clock::from_millis(crate::clock::to_millis(now)),
            expires_at: None,
            attempt: 0,
            deliveries: 0,
            retry: RetryPolicy::none(),
            timeout: None,
            unique_key: None,
            max_deliveries: 0,
            follow_ups: Vec::new(),
            trace: BTreeMap::new(),
            chord_members: Vec::new(),
            sig: None,
        }
    }

    /// How many deliveries are allowed before the task is dead-lettered as poison.
    pub fn delivery_limit(&self) -> u32 {
        if self.max_deliveries > 0 {
            self.max_deliveries
        } else {
            self.retry
                .max_retries
                .saturating_add(1)
                .saturating_add(DELIVERY_MARGIN)
        }
    }

    /// When the task becomes due: its eta, or its enqueue time.
    pub fn due_at(&self) -> DateTime<Utc> {
        self.eta.unwrap_or(self.enqueued_at)
    }

    /// Checks what a store relies on before it accepts the envelope.
    pub fn validate(&self) -> Result<()> {
        if self.queue.is_empty() || self.queue.len() > 200 {
            return Err(Error::InvalidInput(format!(
                "queue name must be 1 to 200 bytes, got {} bytes",
                self.queue.len()
            )));
        }
        if self.queue.contains(['{', '}']) {
            return Err(Error::InvalidInput(format!(
                "queue name `{}` must not contain `{{` or `}}`",
                self.queue
            )));
        }
        if self.task.is_empty() {
            return Err(Error::InvalidInput("task name must not be empty".into()));
        }
        let max = crate::clock::max_time();
        for (what, time) in [("eta", self.eta), ("expiry", self.expires_at)] {
            if let Some(t) = time.filter(|t| *t > max) {
                return Err(Error::InvalidInput(format!(
                    "{what} {t} is past the end of year 9999, the latest a task may be due or expire"
                )));
            }
        }
        Ok(())
    }

    /// Encodes the envelope as msgpack: a map with field names, without the fields that hold
    /// their default (every Skiff build decodes a missing field as its default). A no-op task's
    /// envelope is then about 80 bytes instead of about 250, which every store writes, reads
    /// and sends fewer of per task.
    pub fn encode(&self) -> Result<Vec<u8>> {
        // Sized for a plain task (a no-op one is 79 bytes) so that the buffer is allocated
        // once instead of grown five times; larger envelopes grow it as before.
        let mut out = Vec::with_capacity(
            96 + self.queue.len()
                + self.task.len()
                + self.args.len()
                + self.unique_key.as_ref().map_or(0, String::len),
        );
        rmp_serde::encode::write_named(&mut out, &Stored::of(self))
            .map_err(|e| Error::encode("envelope", e))?;
        Ok(out)
    }

    /// Decodes an envelope, refusing one written by a newer format with
    /// [`Error::NewerFormat`].
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        match rmp_serde::from_slice::<Envelope>(bytes) {
            Ok(env) if env.version > FORMAT_VERSION => Err(Error::NewerFormat {
                found: env.version,
                supported: FORMAT_VERSION,
            }),
            Ok(env) => Ok(env),
            Err(err) => match rmp_serde::from_slice::<VersionOnly>(bytes) {
                Ok(v) if v.version > FORMAT_VERSION => Err(Error::NewerFormat {
                    found: v.version,
                    supported: FORMAT_VERSION,
                }),
                _ => Err(Error::decode("envelope", err)),
            },
        }
    }

    /// The follow-ups to enqueue when this task ends with `result`, arguments filled in:
    /// success follow-ups after a success (fed the output when their input is
    /// [`FollowUpInput::Output`]), failure follow-ups after a failure (fed the
    /// [`TaskFailure`](crate::TaskFailure) when their input is [`FollowUpInput::Failure`]).
    pub fn follow_ups_for(
        &self,
        result: &crate::StoredResult,
        now: DateTime<Utc>,
    ) -> Result<Vec<Envelope>> {
        let (when, payload) = match result {
            crate::StoredResult::Success(output) => (FollowUpWhen::Success, output.clone()),
            crate::StoredResult::Failure(failure) => (FollowUpWhen::Failure, to_msgpack(failure)?),
        };
        Ok(self
            .follow_ups
            .iter()
            .filter(|f| f.when == when)
            .map(|f| {
                let mut env = f.envelope.clone();
                env.enqueued_at = now;
                // Link the follow-up to the span that finished this task, or else to the
                // request that enqueued it.
                if env.trace.is_empty() {
                    crate::trace::inject_current(&mut env.trace);
                }
                if env.trace.is_empty() {
                    env.trace.clone_from(&self.trace);
                }
                match f.input {
                    FollowUpInput::Fixed => {}
                    FollowUpInput::Output | FollowUpInput::Failure => {
                        env.args = wrap_single_arg(&payload);
                    }
                }
                env
            })
            .collect())
    }

    /// The envelope as JSON, with its arguments decoded from msgpack, for admin tools.
    pub fn to_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(obj) = value.as_object_mut() {
            obj.insert("args".into(), msgpack_to_json(&self.args));
        }
        value
    }
}

/// Renders msgpack bytes as JSON for display; bytes that are not msgpack are shown as a note,
/// and encrypted ones ([`crate::seal`]) as `<encrypted with key …>`.
pub fn msgpack_to_json(bytes: &[u8]) -> serde_json::Value {
    if let Some(payload) = crate::seal::signed_result_payload(bytes) {
        return msgpack_to_json(payload);
    }
    if crate::seal::is_sealed(bytes) {
        return serde_json::Value::String(format!(
            "<encrypted with key `{}`, {} bytes>",
            crate::seal::sealed_key_id(bytes).unwrap_or("?"),
            bytes.len()
        ));
    }
    let mut cursor = bytes;
    match rmpv::decode::read_value(&mut cursor) {
        Ok(v) => serde_json::to_value(&v).unwrap_or(serde_json::Value::Null),
        Err(e) => serde_json::Value::String(format!("<{} bytes, not msgpack: {e}>", bytes.len())),
    }
}

/// Encodes a value as msgpack, the format of task arguments and results. Structs are maps
/// with field names, so admin tools can show stored values without the task code.
pub fn to_msgpack<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    rmp_serde::to_vec_named(value).map_err(|e| Error::encode("value", e))
}

/// Decodes a msgpack value written by [`to_msgpack`].
pub fn from_msgpack<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    rmp_serde::from_slice(bytes).map_err(|e| Error::decode(std::any::type_name::<T>(), e))
}

/// Wraps already-encoded msgpack `value` as the one-element tuple `(value,)`, the argument list
/// of a pipeline stage that receives it.
pub fn wrap_single_arg(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 1);
    out.push(0x91); // fixarray of length 1
    out.extend_from_slice(value);
    out
}

/// The argument list of a chord callback: a one-element tuple holding the array of the
/// members' msgpack-encoded outputs, in order.
pub fn chord_args(outputs: &[Vec<u8>]) -> Vec<u8> {
    let len = outputs.len();
    let mut array = Vec::with_capacity(5 + outputs.iter().map(Vec::len).sum::<usize>());
    if len < 16 {
        array.push(0x90 | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        array.push(0xdc);
        array.extend_from_slice(&len.to_be_bytes());
    } else {
        array.push(0xdd);
        array.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    }
    for out in outputs {
        array.extend_from_slice(out);
    }
    wrap_single_arg(&array)
}

mod duration_ms_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        let mut e = Envelope::new(
            "default",
            "send_email",
            to_msgpack(&("a@b.c", 3)).unwrap(),
            Utc::now(),
        );
        e.priority = -5;
        e.timeout = Some(Duration::from_millis(1500));
        e.unique_key = Some("k".into());
        e.retry = RetryPolicy::fixed(3, Duration::from_secs(1));
        e.follow_ups.push(FollowUp {
            when: FollowUpWhen::Success,
            input: FollowUpInput::Output,
            envelope: Envelope::new("default", "next", Vec::new(), Utc::now()),
        });
        e
    }

    #[test]
    fn round_trips() {
        let e = sample();
        let bytes = e.encode().unwrap();
        let back = Envelope::decode(&bytes).unwrap();
        // chrono millisecond precision: compare after a round trip of the original too.
        assert_eq!(back.encode().unwrap(), bytes);
        assert_eq!(back.task, "send_email");
        assert_eq!(back.timeout, Some(Duration::from_millis(1500)));
        assert_eq!(back.delivery_limit(), 3 + 1 + DELIVERY_MARGIN);
    }

    #[test]
    fn fields_at_their_default_are_not_written() {
        let plain = Envelope::new("default", "noop", to_msgpack(&()).unwrap(), Utc::now());
        let bytes = plain.encode().unwrap();
        let full = rmp_serde::to_vec_named(&plain).unwrap();
        assert!(bytes.len() < 100, "{} bytes", bytes.len());
        assert!(
            full.len() > bytes.len() + 100,
            "{} vs {}",
            full.len(),
            bytes.len()
        );
        let mut cursor = &bytes[..];
        let rmpv::Value::Map(fields) = rmpv::decode::read_value(&mut cursor).unwrap() else {
            panic!("not a map")
        };
        let names: Vec<_> = fields.iter().filter_map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["v", "id", "queue", "task", "args", "enqueued_at"]);
        assert_eq!(Envelope::decode(&bytes).unwrap(), plain);
    }

    #[test]
    fn every_field_round_trips_and_the_full_form_still_decodes() {
        let mut e = sample();
        e.eta = Some(crate::clock::from_millis(1_700_000_000_123));
        e.expires_at = Some(crate::clock::from_millis(1_800_000_000_456));
        e.attempt = 2;
        e.deliveries = 3;
        e.max_deliveries = 9;
        e.trace.insert("traceparent".into(), "00-abc-def-01".into());
        e.chord_members.push(TaskId::new());
        let compact = Envelope::decode(&e.encode().unwrap()).unwrap();
        assert_eq!(compact, e);
        // What builds before the compact form wrote: every field, defaults included.
        let full = rmp_serde::to_vec_named(&e).unwrap();
        assert_eq!(Envelope::decode(&full).unwrap(), e);
        let plain = Envelope::new("q", "t", Vec::new(), Utc::now());
        let full = rmp_serde::to_vec_named(&plain).unwrap();
        assert_eq!(Envelope::decode(&full).unwrap(), plain);
    }

    #[test]
    fn a_negative_zero_jitter_is_kept() {
        let mut e = Envelope::new("q", "t", Vec::new(), Utc::now());
        e.retry.jitter = -0.0;
        let back = Envelope::decode(&e.encode().unwrap()).unwrap();
        assert_eq!(back.retry.jitter.to_bits(), (-0.0f64).to_bits());
    }

    #[test]
    fn garbage_is_a_decode_error() {
        let err = Envelope::decode(b"\xc1garbage").unwrap_err();
        assert!(matches!(err, Error::Decode { .. }), "{err}");
    }

    #[test]
    fn newer_versions_are_refused() {
        let mut e = sample();
        e.version = FORMAT_VERSION + 1;
        let err = Envelope::decode(&e.encode().unwrap()).unwrap_err();
        assert!(matches!(err, Error::NewerFormat { found, .. } if found == FORMAT_VERSION + 1));

        // A newer envelope whose shape we cannot read at all is still reported as newer.
        #[derive(Serialize)]
        struct Future {
            v: u16,
            id: u8,
        }
        let bytes = rmp_serde::to_vec_named(&Future { v: 9, id: 1 }).unwrap();
        assert!(matches!(
            Envelope::decode(&bytes),
            Err(Error::NewerFormat { found: 9, .. })
        ));
    }

    #[test]
    fn json_view_decodes_args() {
        let json = sample().to_json();
        assert_eq!(json["task"], "send_email");
        assert_eq!(json["args"], serde_json::json!(["a@b.c", 3]));
    }

    #[test]
    fn single_arg_wrapping_matches_serde() {
        let inner = to_msgpack(&"hello").unwrap();
        let wrapped = wrap_single_arg(&inner);
        let (s,): (String,) = from_msgpack(&wrapped).unwrap();
        assert_eq!(s, "hello");
    }

    #[test]
    fn follow_ups_inherit_the_trace_context() {
        let mut e = sample();
        e.trace.insert("traceparent".into(), "00-abc-def-01".into());
        let ok = crate::StoredResult::Success(to_msgpack(&1u8).unwrap());
        let next = e.follow_ups_for(&ok, Utc::now()).unwrap();
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].trace, e.trace);
    }

    #[test]
    fn chord_args_decode_as_a_vec() {
        for n in [0usize, 3, 15, 16, 300, 70_000] {
            let outputs: Vec<Vec<u8>> = (0..n).map(|i| to_msgpack(&(i as u64)).unwrap()).collect();
            let (v,): (Vec<u64>,) = from_msgpack(&chord_args(&outputs)).unwrap();
            assert_eq!(v, (0..n as u64).collect::<Vec<_>>());
        }
    }

    #[test]
    fn validation_names_the_problem() {
        let mut e = sample();
        e.queue = String::new();
        assert!(e.validate().unwrap_err().to_string().contains("queue name"));
        e.queue = "a{b}".into();
        assert!(e.validate().is_err());
    }
}
