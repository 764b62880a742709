//! Identifiers: [`TaskId`] (time-ordered) and [`LeaseToken`] (one per delivery).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The id of a task: a UUIDv7, so ids sort by creation time.
///
/// # Examples
///
/// ```
/// use queue_core::TaskId;
///
/// let a = TaskId::new();
/// let b = TaskId::new();
/// assert!(a < b, "later ids sort after earlier ones");
/// let parsed: TaskId = a.to_string().parse().unwrap();
/// assert_eq!(a, parsed);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(Uuid);

impl TaskId {
    /// A new, time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// Wraps an existing UUID (for example one read back from a store).
    pub const fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// A deterministic id derived from a name, such as `"nightly_report@1700000000"`.
    ///
    /// Two processes that derive an id from the same name get the same id, which is how
    /// periodic fires and other "exactly one of these" tasks are deduplicated in the store.
    pub fn derived(name: &str) -> Self {
        Self(Uuid::new_v5(&Uuid::NAMESPACE_OID, name.as_bytes()))
    }

    /// The underlying UUID.
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }

    /// The 16 bytes of the id, as stored by backends.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// Rebuilds an id from the 16 bytes written by [`TaskId::as_bytes`].
    pub fn from_slice(bytes: &[u8]) -> Result<Self, crate::Error> {
        Uuid::from_slice(bytes)
            .map(Self)
            .map_err(|e| crate::Error::decode("task id", e))
    }
}

impl Default for TaskId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskId({})", self.0.hyphenated())
    }
}

impl FromStr for TaskId {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self).map_err(|e| {
            crate::Error::InvalidInput(format!(
                "`{s}` is not a task id (expected a UUID such as 0190f1c2-7d4e-7c3a-9a6b-0123456789ab): {e}"
            ))
        })
    }
}

/// The fencing token of one delivery of a task.
///
/// Every fetch hands out a new token; completing, extending or retrying with an older token is
/// refused by the store, so a worker that lost its lease cannot overwrite the outcome of the
/// newer delivery.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LeaseToken(pub u64);

impl LeaseToken {
    /// A new random token. Never zero.
    pub fn random() -> Self {
        let (hi, lo) = Uuid::new_v4().as_u64_pair();
        // Keep it within i64 so SQL backends can store it as INTEGER without wrapping.
        Self(((hi ^ lo) >> 1).max(1))
    }
}

impl fmt::Debug for LeaseToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LeaseToken({:016x})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_time_ordered_and_round_trip() {
        let ids: Vec<TaskId> = (0..100).map(|_| TaskId::new()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        let id = ids[7];
        assert_eq!(TaskId::from_slice(id.as_bytes()).unwrap(), id);
        assert_eq!(id.to_string().parse::<TaskId>().unwrap(), id);
    }

    #[test]
    fn bad_ids_are_rejected_with_a_message() {
        let err = "nope".parse::<TaskId>().unwrap_err();
        assert!(err.to_string().contains("not a task id"), "{err}");
        assert!(TaskId::from_slice(&[1, 2, 3]).is_err());
    }

    #[test]
    fn derived_ids_are_stable() {
        assert_eq!(TaskId::derived("a@1"), TaskId::derived("a@1"));
        assert_ne!(TaskId::derived("a@1"), TaskId::derived("a@2"));
    }

    #[test]
    fn lease_tokens_fit_in_i64_and_are_not_zero() {
        for _ in 0..1000 {
            let t = LeaseToken::random();
            assert!(t.0 > 0 && t.0 <= i64::MAX as u64);
        }
    }
}
