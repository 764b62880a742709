//! Opening files: creation, clear errors for bad paths, schema versions, WAL.

use std::time::Duration;

use queue_core::{Error, Storage};
use queue_sqlite::{SqliteOptions, SqliteStorage, SCHEMA_VERSION};
use sqlx::{ConnectOptions, Connection};

use crate::env;

fn url(path: &std::path::Path) -> String {
    format!("sqlite://{}", path.display())
}

#[tokio::test]
async fn creates_the_file_and_schema_on_first_use_and_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    assert!(!path.exists());
    let store = SqliteStorage::connect(&url(&path)).await.unwrap();
    assert!(path.exists());
    assert_eq!(store.path(), path);
    store.enqueue(vec![env("q"), env("q")]).await.unwrap();
    drop(store);

    let again = SqliteStorage::connect(&url(&path)).await.unwrap();
    assert_eq!(again.counts(Some("q")).await.unwrap().ready, 2);
}

#[tokio::test]
async fn a_missing_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/skiff.db");
    let err = SqliteStorage::connect(&url(&path)).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::InvalidInput(_)), "{msg}");
    assert!(
        msg.contains("does not exist") && msg.contains("no/such/dir"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_directory_is_not_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let err = SqliteStorage::connect(&url(dir.path())).await.unwrap_err();
    assert!(err.to_string().contains("is a directory"), "{err}");
}

#[tokio::test]
async fn a_file_that_is_not_sqlite_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(
        &path,
        "these are not the pages you are looking for\n".repeat(200),
    )
    .unwrap();
    let err = SqliteStorage::connect(&url(&path)).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("is not a SQLite database"), "{msg}");
    assert!(msg.contains("notes.txt"), "{msg}");
    // Nothing was written over it.
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .starts_with("these are not"));
}

#[tokio::test]
async fn an_unwritable_directory_is_a_clear_error() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();
    // Root ignores directory modes; /proc refuses new files even to root.
    let path = if std::fs::write(locked.join("probe"), b"x").is_ok() {
        std::path::PathBuf::from("/proc/skiff-test.db")
    } else {
        locked.join("s.db")
    };
    let err = SqliteStorage::connect(&url(&path)).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&*path.to_string_lossy()), "{msg}");
    assert!(msg.contains("permission"), "{msg}");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.db");
    drop(SqliteStorage::connect(&url(&path)).await.unwrap());

    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .connect()
        .await
        .unwrap();
    sqlx::query("UPDATE skiff_meta SET value = ?1 WHERE key = 'schema_version'")
        .bind(SCHEMA_VERSION + 1)
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    let err = SqliteStorage::connect(&url(&path)).await.unwrap_err();
    assert!(
        matches!(err, Error::NewerSchema { found, supported } if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
        "{err}"
    );
}

#[tokio::test]
async fn the_journal_is_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.db");
    let _store =
        SqliteStorage::open(SqliteOptions::new(&path).busy_timeout(Duration::from_secs(5)))
            .await
            .unwrap();
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .connect()
        .await
        .unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn memory_urls_use_a_file_that_goes_away() {
    let store = SqliteStorage::connect("sqlite::memory:").await.unwrap();
    let path = store.path().to_owned();
    assert!(path.exists());
    store.enqueue(vec![env("q")]).await.unwrap();
    assert_eq!(store.counts(None).await.unwrap().ready, 1);
    drop(store);
    assert!(!path.exists(), "{} should be removed", path.display());
}

#[tokio::test]
async fn bad_urls_are_refused() {
    for url in [
        "sqlite://",
        "postgres://x",
        "sqlite://a.db?synchronous=sometimes",
    ] {
        let err = SqliteStorage::connect(url).await.unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{url}: {err}");
    }
}
