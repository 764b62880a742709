//! Turning sqlx errors into [`queue_core::Error`]s that say what failed and what to do.

use std::time::Duration;

use queue_core::Error;
use sqlx::PgPool;

use crate::redact::redact_url;

/// The backend name in errors and logs.
pub(crate) const BACKEND: &str = "postgres";

/// SQLSTATE codes this crate reacts to.
pub(crate) mod code {
    /// `undefined_table`: the schema or a table of it does not exist.
    pub(crate) const UNDEFINED_TABLE: &str = "42P01";
    /// `invalid_schema_name`.
    pub(crate) const INVALID_SCHEMA: &str = "3F000";
    /// `insufficient_privilege`.
    pub(crate) const NO_PRIVILEGE: &str = "42501";
    /// `unique_violation`.
    pub(crate) const UNIQUE_VIOLATION: &str = "23505";
    /// `character_not_in_repertoire` / `untranslatable_character` (a NUL in text).
    pub(crate) const BAD_CHARACTER: [&str; 2] = ["22021", "22P05"];
}

/// The SQLSTATE of a database error.
pub(crate) fn sqlstate(err: &sqlx::Error) -> Option<String> {
    match err {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// What the store knows about its pool, to explain a timed-out acquire.
#[derive(Clone, Debug)]
pub(crate) struct PoolInfo {
    pub(crate) size: u32,
    pub(crate) timeout: Duration,
    pub(crate) target: String,
}

/// Wraps `err` (from doing `what`) as [`Error::Storage`] with advice for the usual causes.
pub(crate) fn storage(what: &str, err: sqlx::Error, pool: Option<(&PgPool, &PoolInfo)>) -> Error {
    let message = match (&err, pool) {
        (sqlx::Error::PoolTimedOut, Some((pool, info))) => {
            if pool.size() >= info.size && pool.num_idle() == 0 {
                format!(
                    "{what}: all {} connections of the pool stayed busy for {:?} (pool exhausted); raise PostgresOptions::pool_size or acquire_timeout, or hold fewer connections at once",
                    info.size, info.timeout
                )
            } else {
                format!(
                    "{what}: could not connect to PostgreSQL at {} within {:?}; check that the server is up and reachable",
                    info.target, info.timeout
                )
            }
        }
        (sqlx::Error::PoolTimedOut, None) => {
            format!("{what}: timed out waiting for a PostgreSQL connection")
        }
        _ => match sqlstate(&err).as_deref() {
            Some(c) if code::BAD_CHARACTER.contains(&c) => {
                return Error::InvalidInput(format!(
                    "{what}: {err}; PostgreSQL text cannot hold NUL characters or bytes that are not valid UTF-8"
                ))
            }
            _ => format!("{what}: {}", redact_url(&err.to_string())),
        },
    };
    Error::storage(BACKEND, message, err)
}

/// The error of a call that did not finish within the query timeout.
pub(crate) fn timed_out(what: &str, timeout: Duration, info: &PoolInfo) -> Error {
    Error::storage_msg(
        BACKEND,
        format!(
            "{what}: PostgreSQL at {} did not answer within {timeout:?} (the connection may have \
             died silently, or the statement ran longer: see PostgresOptions::query_timeout)",
            info.target
        ),
    )
}

/// `Result<T, sqlx::Error>` -> `queue_core::Result<T>` with a note of what was being done.
pub(crate) trait Context<T> {
    /// Wraps the error as [`Error::Storage`] saying `what` failed.
    fn ctx(self, what: &'static str) -> queue_core::Result<T>;
}

impl<T> Context<T> for Result<T, sqlx::Error> {
    fn ctx(self, what: &'static str) -> queue_core::Result<T> {
        self.map_err(|e| storage(what, e, None))
    }
}

/// Refuses text PostgreSQL cannot store (a NUL character) with the same kind of error the other
/// stores give for bad input, before anything is sent.
pub(crate) fn check_text(what: &str, value: &str) -> queue_core::Result<()> {
    if value.contains('\0') {
        return Err(Error::InvalidInput(format!(
            "{what} `{}` contains a NUL character, which PostgreSQL text cannot store",
            value.escape_debug()
        )));
    }
    Ok(())
}
