//! The backend conformance suite on [`SqliteStorage`]: every case on a fresh database file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use queue_core::testing::{async_trait, Backend};
use queue_core::{Clock, TaskId};
use queue_sqlite::{SqliteOptions, SqliteStorage};

/// A store and the temporary directory holding its file (removed when the case ends).
struct Sqlite;

/// Keeps each case's temporary directory alive until the process exits.
fn keep(dir: tempfile::TempDir) {
    static DIRS: std::sync::Mutex<Vec<tempfile::TempDir>> = std::sync::Mutex::new(Vec::new());
    DIRS.lock().unwrap_or_else(|e| e.into_inner()).push(dir);
}

#[async_trait]
impl Backend for Sqlite {
    type Store = SqliteStorage;

    async fn open(&self, clock: Arc<dyn Clock>) -> SqliteStorage {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteOptions::new(dir.path().join("skiff.db")).clock(clock);
        let store = SqliteStorage::open(options).await.unwrap();
        keep(dir);
        store
    }

    async fn insert_raw(&self, store: &SqliteStorage, queue: &str, id: TaskId, raw: Vec<u8>) {
        store.insert_raw(queue, id, raw).await.unwrap();
    }
}

fn sqlite() -> Sqlite {
    Sqlite
}

queue_core::conformance_tests!(sqlite);
