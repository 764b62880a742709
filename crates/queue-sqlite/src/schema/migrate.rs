//! Embedded, versioned migrations and the schema-version check.
//!
//! The SQL lives in `crates/queue-sqlite/migrations/NNNN_name.sql` and is embedded with
//! `sqlx::migrate!`. Skiff applies it itself, inside one `BEGIN IMMEDIATE` transaction, so two
//! processes opening a new file at the same moment do not race: the second waits, then finds
//! the schema in place. The version is kept in `skiff_meta` (`key = 'schema_version'`); a
//! store whose version is newer than this build knows is refused with
//! [`Error::NewerSchema`] before anything is written.

use sqlx::migrate::Migrator;
use sqlx::{Connection, SqliteConnection};

use queue_core::{Error, Result};

use crate::error::open_error;

/// The migrations compiled into this build.
pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The schema version this build writes and reads: the newest embedded migration.
pub const SCHEMA_VERSION: i64 = 4;

/// Creates or upgrades the schema; refuses a newer one.
pub(crate) async fn migrate(conn: &mut SqliteConnection, path: &str) -> Result<()> {
    let err = |e| open_error(path, e);
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS skiff_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
    )
    .execute(&mut *tx)
    .await
    .map_err(err)?;
    let current: i64 =
        sqlx::query_scalar("SELECT value FROM skiff_meta WHERE key = 'schema_version'")
            .fetch_optional(&mut *tx)
            .await
            .map_err(err)?
            .unwrap_or(0);
    if current > SCHEMA_VERSION {
        return Err(Error::NewerSchema {
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    for m in MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration() && m.version > current)
    {
        tracing::info!(version = m.version, description = %m.description, path, "applying Skiff SQLite migration");
        sqlx::raw_sql(m.sql.clone())
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                Error::storage(
                    crate::error::BACKEND,
                    format!(
                        "migration {} ({}) of `{path}` failed: {e}; if the file holds another application's tables, use a separate file for Skiff",
                        m.version, m.description
                    ),
                    e,
                )
            })?;
    }
    sqlx::query(
        "INSERT INTO skiff_meta (key, value) VALUES ('schema_version', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(SCHEMA_VERSION)
    .execute(&mut *tx)
    .await
    .map_err(err)?;
    tx.commit().await.map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_version_is_the_newest_migration() {
        let newest = MIGRATOR.iter().map(|m| m.version).max();
        assert_eq!(newest, Some(SCHEMA_VERSION));
    }
}
