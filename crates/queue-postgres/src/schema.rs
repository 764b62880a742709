//! Embedded, versioned migrations and the schema-version check.
//!
//! The SQL lives in `crates/queue-postgres/migrations/NNNN_name.sql` and is embedded with
//! `sqlx::migrate!`. Skiff applies it itself, per schema:
//!
//! 1. A store that opens reads `skiff_meta.schema_version` without locking anything. When it
//!    is this build's [`SCHEMA_VERSION`] (every start after the first), that is all.
//! 2. Otherwise it takes a transaction-scoped advisory lock derived from the schema name
//!    (`pg_advisory_xact_lock`), so of ten workers starting at once on a new database, one
//!    migrates while the others wait, then find the schema in place and do nothing. Inside the
//!    lock it creates the schema if needed, reads the version again, and applies each newer
//!    migration with `search_path` set to the schema, recording it in `skiff_migrations`
//!    (version, description, checksum, time). Everything commits together: a failed migration
//!    leaves the schema as it was.
//! 3. A store whose version is newer than this build knows is refused with
//!    [`Error::NewerSchema`] before anything is written: an older worker must not write rows a
//!    newer schema does not expect.

use sqlx::migrate::Migrator;
use sqlx::{Acquire, PgConnection};

use queue_core::{Error, Result};

use crate::error::{code, sqlstate, storage, BACKEND};
use crate::sql::quote_ident;

/// The migrations compiled into this build.
pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The schema version this build writes and reads: the newest embedded migration.
pub const SCHEMA_VERSION: i64 = 5;

/// The advisory-lock key of migrations of `schema` (FNV-1a of a fixed prefix and the name, so
/// every build and every server version agree on it).
pub(crate) fn lock_key(schema: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in "skiff:migrate:".bytes().chain(schema.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// The version recorded in `schema`, `None` when it has no Skiff tables yet.
async fn read_version(conn: &mut PgConnection, schema: &str) -> Result<Option<i64>> {
    let sql = format!(
        "SELECT value FROM {}.skiff_meta WHERE key = 'schema_version'",
        quote_ident(schema)
    );
    match sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
        .fetch_optional(&mut *conn)
        .await
    {
        Ok(version) => Ok(Some(version.unwrap_or(0))),
        Err(e)
            if matches!(
                sqlstate(&e).as_deref(),
                Some(code::UNDEFINED_TABLE | code::INVALID_SCHEMA)
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(storage("read the schema version", e, None)),
    }
}

fn newer(found: i64) -> Error {
    Error::NewerSchema {
        found,
        supported: SCHEMA_VERSION,
    }
}

/// Creates or upgrades the schema (when `migrate`), or checks it is current; refuses a newer
/// one.
pub(crate) async fn migrate(conn: &mut PgConnection, schema: &str, migrate: bool) -> Result<()> {
    match read_version(conn, schema).await? {
        Some(v) if v == SCHEMA_VERSION => return Ok(()),
        Some(v) if v > SCHEMA_VERSION => return Err(newer(v)),
        found if !migrate => {
            let state = match found {
                Some(v) => format!("is at version {v}"),
                None => "has no Skiff tables".to_owned(),
            };
            return Err(Error::InvalidInput(format!(
                "schema `{schema}` {state}, and this build needs version {SCHEMA_VERSION}; \
                 connect once with migrations on (the default) as a role that may create tables in it"
            )));
        }
        _ => {}
    }
    let quoted = quote_ident(schema);
    let fail = |what: &'static str| move |e| storage(what, e, None);
    let mut tx = conn.begin().await.map_err(fail("migrate the schema"))?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(lock_key(schema))
        .execute(&mut *tx)
        .await
        .map_err(fail("take the migration lock"))?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(&mut *tx)
            .await
            .map_err(fail("look up the schema"))?;
    if !exists {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {quoted}")))
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                let hint = if sqlstate(&e).as_deref() == Some(code::NO_PRIVILEGE) {
                    "; create it once as a role that may (CREATE SCHEMA … AUTHORIZATION <app role>), or grant CREATE on the database"
                } else {
                    ""
                };
                storage(&format!("create schema `{schema}`{hint}"), e, None)
            })?;
    }
    let setup = format!(
        "CREATE TABLE IF NOT EXISTS {quoted}.skiff_meta (key text PRIMARY KEY, value bigint NOT NULL);
         CREATE TABLE IF NOT EXISTS {quoted}.skiff_migrations (
             version bigint PRIMARY KEY, description text NOT NULL, checksum bytea NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now());"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(setup))
        .execute(&mut *tx)
        .await
        .map_err(fail("create the schema's version table"))?;
    let current = read_version(&mut tx, schema).await?.unwrap_or(0);
    if current > SCHEMA_VERSION {
        return Err(newer(current));
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SET LOCAL search_path TO {quoted}"
    )))
    .execute(&mut *tx)
    .await
    .map_err(fail("select the schema"))?;
    for m in MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration() && m.version > current)
    {
        tracing::info!(version = m.version, description = %m.description, schema, "applying Skiff PostgreSQL migration");
        sqlx::raw_sql(m.sql.clone())
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                Error::storage(
                    BACKEND,
                    format!(
                        "migration {} ({}) of schema `{schema}` failed: {e}; if the schema holds another application's tables, give Skiff a schema of its own (PostgresOptions::schema)",
                        m.version, m.description
                    ),
                    e,
                )
            })?;
        sqlx::query(
            "INSERT INTO skiff_migrations (version, description, checksum) VALUES ($1, $2, $3)",
        )
        .bind(m.version)
        .bind(m.description.as_ref())
        .bind(m.checksum.as_ref())
        .execute(&mut *tx)
        .await
        .map_err(fail("record a migration"))?;
    }
    sqlx::query(
        "INSERT INTO skiff_meta (key, value) VALUES ('schema_version', $1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(SCHEMA_VERSION)
    .execute(&mut *tx)
    .await
    .map_err(fail("record the schema version"))?;
    tx.commit().await.map_err(fail("commit the migration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_version_is_the_newest_migration() {
        let newest = MIGRATOR.iter().map(|m| m.version).max();
        assert_eq!(newest, Some(SCHEMA_VERSION));
    }

    #[test]
    fn lock_keys_are_stable_and_differ_by_schema() {
        assert_eq!(lock_key("skiff"), lock_key("skiff"));
        assert_ne!(lock_key("skiff"), lock_key("jobs"));
    }
}
