//! Opening a store: checking the path, connecting (WAL, synchronous, busy timeout), migrating.
//!
//! One connection is opened eagerly for the group-commit writer (it sets WAL mode and runs the
//! migrations); reads use a small lazily-connected pool on the same file.

pub(crate) mod migrate;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, SqliteConnection};

use queue_core::{Error, Result};

use crate::error::{open_error, sqlite_code};
use crate::options::{Location, SqliteOptions, Synchronous};

/// A temporary database file (and its WAL side files), removed on drop.
#[derive(Debug)]
pub(crate) struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut p = self.0.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

/// What [`open`] returns.
pub(crate) struct Opened {
    pub(crate) writer: SqliteConnection,
    pub(crate) pool: SqlitePool,
    pub(crate) temp: Option<TempFile>,
    pub(crate) path: PathBuf,
}

/// Checks the path, connects, sets WAL, migrates.
pub(crate) async fn open(options: &SqliteOptions) -> Result<Opened> {
    let (path, temp) = match &options.location {
        Location::File(p) => {
            check_path(p)?;
            (p.clone(), None)
        }
        Location::Anonymous => {
            let p = std::env::temp_dir().join(format!("skiff-{}.db", uuid::Uuid::new_v4()));
            (p.clone(), Some(TempFile(p)))
        }
    };
    let shown = path.display().to_string();
    let synchronous = match (&options.location, options.synchronous) {
        (Location::Anonymous, _) => SqliteSynchronous::Off,
        (_, Synchronous::Normal) => SqliteSynchronous::Normal,
        (_, Synchronous::Full) => SqliteSynchronous::Full,
    };
    let base = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .busy_timeout(options.busy_timeout)
        .synchronous(synchronous)
        .foreign_keys(false)
        .statement_cache_capacity(256)
        .pragma("temp_store", "memory")
        .disable_statement_logging();
    let writer_options = base
        .clone()
        .journal_mode(SqliteJournalMode::Wal)
        // 8 MiB of page cache: the hot pages (the head of `tasks_ready`, the tails of the
        // tables) fit many times over, and a worker stays small (32 MiB cost ~16 MB of RSS at a
        // million tasks for no measurable speed).
        .pragma("cache_size", "-8192")
        // RETURNING rows stream from SQLite's thread one by one; room for a whole claim or
        // completion batch keeps that thread from stopping to wait for the reader.
        .row_buffer_size(4096)
        // Checkpoints run in the background (see the `checkpoint` module).
        .pragma(
            "wal_autocheckpoint",
            crate::checkpoint::BACKSTOP_PAGES.to_string(),
        );

    let mut writer = connect_retrying(&writer_options, &shown).await?;
    migrate::migrate(&mut writer, &shown).await?;
    let pool = SqlitePoolOptions::new()
        .max_connections(options.pool_size)
        .min_connections(0)
        .idle_timeout(Duration::from_secs(60))
        .connect_lazy_with(base);
    Ok(Opened {
        writer,
        pool,
        temp,
        path,
    })
}

/// Clear errors for paths SQLite would only answer "unable to open database file" for.
fn check_path(path: &Path) -> Result<()> {
    if path.as_os_str().is_empty() {
        return Err(Error::InvalidInput(
            "the SQLite store path is empty: pass a file name such as skiff.db".into(),
        ));
    }
    if path.is_dir() {
        return Err(Error::InvalidInput(format!(
            "`{}` is a directory: pass a file path inside it, such as {}",
            path.display(),
            path.join("skiff.db").display()
        )));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            return Err(Error::InvalidInput(format!(
                "cannot create the SQLite store `{}`: directory `{}` does not exist; create it first or choose another path",
                path.display(),
                parent.display()
            )));
        }
    }
    Ok(())
}

/// Connects; switching a new file to WAL can meet another process doing the same, so a busy
/// answer is retried a few times.
async fn connect_retrying(options: &SqliteConnectOptions, shown: &str) -> Result<SqliteConnection> {
    let mut delay = Duration::from_millis(20);
    for _ in 0..8 {
        match options.connect().await {
            Ok(conn) => return Ok(conn),
            Err(e) if sqlite_code(&e).is_some_and(|c| c == 5 || c == 6) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(500));
            }
            Err(e) => return Err(open_error(shown, e)),
        }
    }
    options.connect().await.map_err(|e| open_error(shown, e))
}
