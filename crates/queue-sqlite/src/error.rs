//! Turning sqlx errors into [`queue_core::Error`]s that say what failed and what to do.

use queue_core::Error;

/// The backend name in errors and logs.
pub(crate) const BACKEND: &str = "sqlite";

/// SQLite primary result codes this crate reacts to.
pub(crate) mod code {
    /// SQLITE_BUSY: another connection holds the lock.
    pub(crate) const BUSY: i32 = 5;
    /// SQLITE_LOCKED: a conflict inside one connection or shared cache.
    pub(crate) const LOCKED: i32 = 6;
    /// SQLITE_READONLY.
    pub(crate) const READONLY: i32 = 8;
    /// SQLITE_CANTOPEN.
    pub(crate) const CANTOPEN: i32 = 14;
    /// SQLITE_NOTADB.
    pub(crate) const NOTADB: i32 = 26;
}

/// The primary SQLite result code of a database error.
pub(crate) fn sqlite_code(err: &sqlx::Error) -> Option<i32> {
    match err {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .map(|c| c & 0xff),
        _ => None,
    }
}

/// Whether a failed operation met a busy or locked database (worth retrying).
pub(crate) fn is_busy(err: &Error) -> bool {
    let Error::Storage {
        source: Some(source),
        ..
    } = err
    else {
        return false;
    };
    source
        .downcast_ref::<sqlx::Error>()
        .and_then(sqlite_code)
        .is_some_and(|c| c == code::BUSY || c == code::LOCKED)
}

/// `Result<T, sqlx::Error>` -> `queue_core::Result<T>` with a note of what was being done.
pub(crate) trait Context<T> {
    /// Wraps the error as [`Error::Storage`] saying `what` failed.
    fn ctx(self, what: &'static str) -> queue_core::Result<T>;
}

impl<T> Context<T> for Result<T, sqlx::Error> {
    fn ctx(self, what: &'static str) -> queue_core::Result<T> {
        self.map_err(|e| Error::storage(BACKEND, format!("{what}: {e}"), e))
    }
}

/// An error of opening the store at `path`, with advice for the common causes. Problems of the
/// path itself are [`Error::InvalidInput`] (retrying will not help); a busy or failing database
/// is [`Error::Storage`].
pub(crate) fn open_error(path: &str, err: sqlx::Error) -> Error {
    let fix = match sqlite_code(&err) {
        Some(code::NOTADB) => {
            "it is not a SQLite database: point Skiff at a new file or at a Skiff store"
        }
        Some(code::CANTOPEN) => {
            "check that its directory exists and that this process has permission to create and write files there"
        }
        Some(code::READONLY) => {
            "the file or its directory is read-only: give this process write permission"
        }
        Some(code::BUSY) | Some(code::LOCKED) => {
            return Error::storage(
                BACKEND,
                format!("the SQLite store `{path}` is locked by another process ({err}); retry, or raise busy_timeout"),
                err,
            )
        }
        _ => {
            return Error::storage(
                BACKEND,
                format!("cannot open the SQLite store `{path}`: {err}; check the path and its permissions"),
                err,
            )
        }
    };
    Error::InvalidInput(format!(
        "cannot open the SQLite store `{path}` ({err}); {fix}"
    ))
}
