//! Errors: [`Error`] for Skiff's own operations, [`TaskError`] for what a task returns, and
//! [`TaskFailure`], the stored record of a task that did not succeed.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::TaskId;

/// The result type of Skiff's operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong in a Skiff operation. Each message says what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store could not be reached or refused the operation.
    #[error("{backend} store error: {message} (check that the store is reachable and writable)")]
    Storage {
        /// Which backend (`"sqlite"`, `"redis"`, `"memory"`).
        backend: &'static str,
        /// What failed.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// A value could not be serialized.
    #[error("could not encode {what}: {message}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// Why it failed.
        message: String,
    },
    /// Stored bytes could not be read back as the expected type.
    #[error(
        "could not decode {what}: {message} (the stored data does not match the type asked for)"
    )]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// Why it failed.
        message: String,
    },
    /// The envelope was written by a newer Skiff.
    #[error("envelope format version {found} is newer than this build supports ({supported}); upgrade the workers before the producers")]
    NewerFormat {
        /// The version found in the store.
        found: u16,
        /// The newest version this build reads.
        supported: u16,
    },
    /// The store's schema was written by a newer Skiff.
    #[error("the store's schema version {found} is newer than this build supports ({supported}); upgrade Skiff or point it at another store")]
    NewerSchema {
        /// The version found in the store.
        found: i64,
        /// The newest version this build reads.
        supported: i64,
    },
    /// No result arrived in time.
    #[error("no result for task {id} after {waited:?}; raise the timeout, or check that a consumer runs for its queue")]
    Timeout {
        /// The task waited for.
        id: TaskId,
        /// How long we waited.
        waited: Duration,
    },
    /// The task ran and did not succeed.
    #[error("task {id} failed: {failure}")]
    TaskFailed {
        /// The task.
        id: TaskId,
        /// What its last attempt reported.
        failure: TaskFailure,
    },
    /// A URL, option or argument is not valid.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The thing asked for does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A lock is held by someone else.
    #[error("lock `{0}` is held by another owner; try again later")]
    Locked(String),
    /// The consumer or queue was shut down.
    #[error("shut down: {0}")]
    ShutDown(String),
}

impl Error {
    /// A storage error from a backend's own error type.
    pub fn storage(
        backend: &'static str,
        message: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Self::Storage {
            backend,
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// A storage error with only a message.
    pub fn storage_msg(backend: &'static str, message: impl Into<String>) -> Self {
        Self::Storage {
            backend,
            message: message.into(),
            source: None,
        }
    }

    /// An encoding error.
    pub fn encode(what: &'static str, err: impl fmt::Display) -> Self {
        Self::Encode {
            what,
            message: err.to_string(),
        }
    }

    /// A decoding error.
    pub fn decode(what: &'static str, err: impl fmt::Display) -> Self {
        Self::Decode {
            what,
            message: err.to_string(),
        }
    }

    /// Whether retrying the same call later may succeed (the store was unreachable or busy).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Storage { .. })
    }
}

/// Why a task did not succeed, as stored with its result and in the dead-letter queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// The task returned an error.
    Error,
    /// The task panicked.
    Panic,
    /// The task ran past its timeout.
    Timeout,
    /// The task asked not to be retried ([`TaskError::cancel`]) or a hook canceled it.
    Canceled,
    /// The task was revoked before it ran.
    Revoked,
    /// The task was not started before its expiry.
    Expired,
    /// The envelope or the task's arguments could not be decoded.
    Undecodable,
    /// No task of that name is registered with the consumer.
    UnknownTask,
    /// The task was delivered more times than its limit without completing (a poison task).
    DeliveryLimit,
    /// The envelope was written by a newer Skiff.
    NewerFormat,
    /// Signing is on and the task is unsigned, its signature does not match its content, or
    /// its encrypted arguments do not authenticate ([`crate::seal`]).
    BadSignature,
    /// The task is signed or encrypted with a key id the consumer does not have.
    UnknownKey,
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Self::Error => "error",
            Self::Panic => "panic",
            Self::Timeout => "timeout",
            Self::Canceled => "canceled",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::Undecodable => "undecodable",
            Self::UnknownTask => "unknown_task",
            Self::DeliveryLimit => "delivery_limit",
            Self::NewerFormat => "newer_format",
            Self::BadSignature => "bad_signature",
            Self::UnknownKey => "unknown_key",
        };
        f.write_str(s)
    }
}

/// The stored record of a task that did not succeed: what a handle's `get` returns as
/// [`Error::TaskFailed`], and what the dead-letter queue keeps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFailure {
    /// The kind of failure.
    pub kind: FailureKind,
    /// The message of the last attempt.
    pub message: String,
    /// How many attempts ran (0 when the task never started).
    pub attempts: u32,
}

impl TaskFailure {
    /// A failure record.
    pub fn new(kind: FailureKind, message: impl Into<String>, attempts: u32) -> Self {
        Self {
            kind,
            message: message.into(),
            attempts,
        }
    }
}

impl fmt::Display for TaskFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} (after {} attempt{})",
            self.kind,
            self.message,
            self.attempts,
            if self.attempts == 1 { "" } else { "s" }
        )
    }
}

/// What a task asks for when it fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskErrorKind {
    /// Retry according to the task's policy (the default).
    Retry,
    /// Retry after this delay, even if the policy says otherwise (Huey's `RetryTask`), while
    /// retries are left.
    RetryAfter(Duration),
    /// Do not retry; the task ends as canceled (Huey's `CancelExecution`).
    Cancel,
    /// Do not retry; the task goes to the dead-letter queue at once.
    Fatal,
}

/// The error a task returns.
///
/// Any `std::error::Error` converts into it with `?`, and is retried according to the task's
/// policy. Use [`TaskError::retry_after`], [`TaskError::cancel`] or [`TaskError::fatal`] to
/// say otherwise.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use queue_core::TaskError;
///
/// fn parse(s: &str) -> Result<u32, TaskError> {
///     let n: u32 = s.parse()?; // ParseIntError -> TaskError, retried by policy
///     if n == 0 {
///         return Err(TaskError::cancel("zero means nothing to do"));
///     }
///     if n == 1 {
///         return Err(TaskError::retry_after(Duration::from_secs(5), "not ready yet"));
///     }
///     Ok(n)
/// }
/// assert!(parse("x").is_err());
/// ```
pub struct TaskError {
    kind: TaskErrorKind,
    message: String,
}

impl TaskError {
    /// An error retried by the task's policy.
    pub fn msg(message: impl fmt::Display) -> Self {
        Self {
            kind: TaskErrorKind::Retry,
            message: message.to_string(),
        }
    }

    /// Ask to be retried after `delay` (while the task has retries left).
    pub fn retry_after(delay: Duration, message: impl fmt::Display) -> Self {
        Self {
            kind: TaskErrorKind::RetryAfter(delay),
            message: message.to_string(),
        }
    }

    /// Stop without retrying; the task ends as canceled.
    pub fn cancel(message: impl fmt::Display) -> Self {
        Self {
            kind: TaskErrorKind::Cancel,
            message: message.to_string(),
        }
    }

    /// Stop without retrying; the task goes to the dead-letter queue.
    pub fn fatal(message: impl fmt::Display) -> Self {
        Self {
            kind: TaskErrorKind::Fatal,
            message: message.to_string(),
        }
    }

    /// What the task asked for.
    pub fn kind(&self) -> TaskErrorKind {
        self.kind
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl<E> From<E> for TaskError
where
    E: std::error::Error + Send + Sync + 'static,
{
    fn from(err: E) -> Self {
        let mut message = err.to_string();
        let mut source = err.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        Self::msg(message)
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskError")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .finish()
    }
}
