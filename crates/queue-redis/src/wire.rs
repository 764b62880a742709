//! Converting between Skiff's types and script arguments and replies.

use queue_core::clock::to_millis;
use queue_core::storage::Lease;
use queue_core::{Envelope, Error, FailureKind, Result, TaskFailure, TaskId};
use redis::Value;

use crate::scripts::Call;

/// Appends the fields of one envelope, as `stage` in `lua/common.lua` reads them. `now` must
/// be the time the script call is given.
pub(crate) fn push_envelope(
    inv: &mut Call<'_>,
    env: &Envelope,
    raw: &[u8],
    now: i64,
    ord: &mut Ordinals,
) {
    push_task(
        inv,
        NewTask {
            id: env.id,
            queue: &env.queue,
            priority: env.priority,
            run_at: env.eta.map(to_millis).unwrap_or(now),
            now,
            ord: ord.next_ord(),
            delivery_limit: env.delivery_limit(),
            unique_key: env.unique_key.as_deref().unwrap_or(""),
            task: &env.task,
            deliveries: env.deliveries,
            attempts: env.attempt,
        },
        raw,
    );
}

/// What the enqueue script stores about a task besides its envelope bytes.
pub(crate) struct NewTask<'a> {
    pub(crate) id: TaskId,
    pub(crate) queue: &'a str,
    pub(crate) priority: i16,
    pub(crate) run_at: i64,
    /// The time the script call is given: a task due by then goes straight to ready.
    pub(crate) now: i64,
    /// Its place in the call (see [`Ordinals`]).
    pub(crate) ord: String,
    pub(crate) delivery_limit: u32,
    pub(crate) unique_key: &'a str,
    pub(crate) task: &'a str,
    pub(crate) deliveries: u32,
    pub(crate) attempts: u32,
}

/// Appends one task as `stage` in `lua/common.lua` reads it (`ENV_FIELDS` there): id, queue,
/// priority, run ("0" when due at the call's now), ord, unique key, counts ("0" or
/// "<deliveries>|<attempts>"), and the stored value without its leading ready score
/// (`<run_at>|<limit>|<name length>|<name><raw>`), which the script prefixes with the score it
/// assigns. Numbers go as the strings the script compares, so it parses none of them.
pub(crate) fn push_task(inv: &mut Call<'_>, t: NewTask<'_>, raw: &[u8]) {
    let mut tail = format!(
        "{}|{}|{}|{}",
        t.run_at,
        t.delivery_limit,
        t.task.len(),
        t.task
    )
    .into_bytes();
    tail.extend_from_slice(raw);
    let run = if t.run_at <= t.now { 0 } else { t.run_at };
    let counts = if t.deliveries == 0 && t.attempts == 0 {
        "0".to_owned()
    } else {
        format!("{}|{}", t.deliveries, t.attempts)
    };
    inv.arg(t.id.to_string())
        .arg(t.queue)
        .arg(t.priority)
        .arg(run)
        .arg(t.ord)
        .arg(t.unique_key)
        .arg(counts)
        .arg(tail);
}

/// The `ord` fields of the new tasks of one script call: their places in it as fractions of
/// one width (".0" … ".9", or ".00" … ".99", …), which the script appends to the one sequence
/// number it takes per queue and call, so FIFO holds within the call without a number
/// formatted per task; "" for a call with a single new task.
pub(crate) struct Ordinals {
    width: usize,
    next: usize,
}

impl Ordinals {
    /// For a call of at most `n` new tasks.
    pub(crate) fn new(n: usize) -> Self {
        let width = if n <= 1 { 0 } else { (n - 1).to_string().len() };
        Self { width, next: 0 }
    }

    /// The next task's `ord`.
    pub(crate) fn next_ord(&mut self) -> String {
        let k = self.next;
        self.next += 1;
        if self.width == 0 {
            String::new()
        } else {
            format!(".{k:0w$}", w = self.width)
        }
    }
}

/// The envelope bytes of a stored task value (`<score>|<run>|<limit>|<name length>|<name><raw>`,
/// see `lua/common.lua`), or `None` if the value does not have that shape.
pub(crate) fn task_envelope(value: &[u8]) -> Option<&[u8]> {
    let mut rest = value;
    let mut name_len = 0;
    for field in 0..4 {
        let bar = rest.iter().position(|b| *b == b'|')?;
        if field == 3 {
            name_len = std::str::from_utf8(&rest[..bar])
                .ok()?
                .parse::<usize>()
                .ok()?;
        }
        rest = &rest[bar + 1..];
    }
    rest.get(name_len..)
}

/// A lease's member of its queue's leased index: `<id>|<token>` (see `lua/common.lua`).
pub(crate) fn lease_member(lease: &Lease) -> String {
    format!("{}|{}", lease.id, lease.token.0)
}

/// A result as the results hash stores it: `<expires ms or empty>|<failure kind or
/// empty>|<attempts>|<payload>`, the payload being the output of a success or the message of a
/// failure (`result_value` in `lua/common.lua` builds the same).
pub(crate) fn result_value(expires: &str, failure: Option<&TaskFailure>, output: &[u8]) -> Vec<u8> {
    let (kind, attempts, payload) = match failure {
        Some(f) => (kind_name(f.kind), f.attempts, f.message.as_bytes()),
        None => (String::new(), 0, output),
    };
    let mut value = format!("{expires}|{kind}|{attempts}|").into_bytes();
    value.extend_from_slice(payload);
    value
}

fn bad(what: &str, v: &Value) -> Error {
    Error::decode("redis reply", format!("expected {what}, got {v:?}"))
}

/// An array reply (nil counts as empty).
pub(crate) fn array(v: Value) -> Result<Vec<Value>> {
    match v {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        other => Err(bad("an array", &other)),
    }
}

/// A string reply as bytes.
pub(crate) fn bytes(v: Value) -> Result<Vec<u8>> {
    match v {
        Value::BulkString(b) => Ok(b),
        Value::SimpleString(s) => Ok(s.into_bytes()),
        Value::Okay => Ok(b"OK".to_vec()),
        other => Err(bad("a string", &other)),
    }
}

/// A string reply as UTF-8 text.
pub(crate) fn text(v: Value) -> Result<String> {
    String::from_utf8(bytes(v)?).map_err(|e| Error::decode("redis reply", e))
}

/// A string reply as text, with bytes that are not UTF-8 replaced (for stored names and
/// messages: garbage in one of them must not hide the rest of a listing).
pub(crate) fn text_lossy(v: Value) -> Result<String> {
    Ok(match String::from_utf8(bytes(v)?) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// Rows of a listing that parse; each one that does not is logged and skipped, so garbage in
/// one stored record never hides the others.
pub(crate) fn parsed_rows<T>(
    rows: Vec<Value>,
    what: &str,
    mut parse: impl FnMut(Value) -> Result<T>,
) -> Vec<T> {
    rows.into_iter()
        .filter_map(|row| match parse(row) {
            Ok(parsed) => Some(parsed),
            Err(err) => {
                tracing::warn!(error = %err, "skipped an unreadable {what} in the store");
                None
            }
        })
        .collect()
}

/// An integer reply (or a string holding one).
pub(crate) fn int(v: Value) -> Result<i64> {
    match v {
        Value::Int(n) => Ok(n),
        Value::BulkString(ref b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("an integer", &v)),
        Value::Nil => Ok(0),
        other => Err(bad("an integer", &other)),
    }
}

/// A task id written by this crate.
pub(crate) fn task_id(v: Value) -> Result<TaskId> {
    text(v)?.parse()
}

/// Takes the next field of a row.
pub(crate) fn next(row: &mut std::vec::IntoIter<Value>) -> Result<Value> {
    row.next()
        .ok_or_else(|| Error::decode("redis reply", "a row is shorter than expected"))
}

/// The stored name of a failure kind.
pub(crate) fn kind_name(kind: FailureKind) -> String {
    kind.to_string()
}

/// Reads back a failure kind stored by [`kind_name`] (or by a script).
pub(crate) fn parse_kind(name: &str) -> FailureKind {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).unwrap_or(FailureKind::Error)
}

/// A failure from its stored fields.
pub(crate) fn failure(kind: &str, message: String, attempts: i64) -> TaskFailure {
    TaskFailure::new(
        parse_kind(kind),
        message,
        u32::try_from(attempts.max(0)).unwrap_or(u32::MAX),
    )
}

/// Clamps a stored count into `u32`.
pub(crate) fn count32(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

/// Clamps a stored count into `u64`.
pub(crate) fn count64(n: i64) -> u64 {
    u64::try_from(n.max(0)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::{task_envelope, Ordinals};

    #[test]
    fn ordinals_sort_in_call_order() {
        let mut one = Ordinals::new(1);
        assert_eq!(one.next_ord(), "");
        let mut many = Ordinals::new(11);
        let ords: Vec<String> = (0..11).map(|_| many.next_ord()).collect();
        assert_eq!(ords[0], ".00");
        assert_eq!(ords[10], ".10");
        let values: Vec<f64> = ords
            .iter()
            .map(|o| format!("7{o}").parse().unwrap_or(f64::NAN))
            .collect();
        assert!(values.windows(2).all(|w| w[0] < w[1]), "{values:?}");
    }

    #[test]
    fn the_envelope_follows_the_header_and_name() {
        assert_eq!(
            task_envelope(b"4503462020882433|1700000000000|5|4|ping\x81\xa1|"),
            Some(&b"\x81\xa1|"[..])
        );
        assert_eq!(
            task_envelope(b"1|-5|5|3|a|b"),
            Some(&b""[..]),
            "a name may hold `|`"
        );
        assert_eq!(
            task_envelope(b"-687194767359|1700000000000|5|4|ping\x81"),
            Some(&b"\x81"[..]),
            "a higher priority has a negative score"
        );
        assert_eq!(task_envelope(b"1|2|3|9|short"), None);
        assert_eq!(task_envelope(b"1|2|3|x|name"), None);
        assert_eq!(task_envelope(b"not a task"), None);
    }
}
