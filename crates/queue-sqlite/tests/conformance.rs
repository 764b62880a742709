//! The backend conformance suite on [`SqliteStorage`]: every case on fresh database files, and
//! again on anonymous (`sqlite::memory:`) stores.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use queue_core::testing::{async_trait, Backend};
use queue_core::{Clock, TaskId};
use queue_sqlite::{SqliteOptions, SqliteStorage};

/// Opens each store in a new file of a temporary directory that lives as long as the case.
struct Sqlite {
    dir: Option<tempfile::TempDir>,
    opened: AtomicUsize,
}

#[async_trait]
impl Backend for Sqlite {
    type Store = SqliteStorage;

    async fn open(&self, clock: Arc<dyn Clock>) -> SqliteStorage {
        let options = match &self.dir {
            Some(dir) => {
                let n = self.opened.fetch_add(1, Ordering::Relaxed);
                SqliteOptions::new(dir.path().join(format!("skiff-{n}.db")))
            }
            None => SqliteOptions::in_memory(),
        };
        SqliteStorage::open(options.clock(clock)).await.unwrap()
    }

    async fn insert_raw(&self, store: &SqliteStorage, queue: &str, id: TaskId, raw: Vec<u8>) {
        store.insert_raw(queue, id, raw).await.unwrap();
    }
}

mod file {
    pub(super) fn sqlite() -> super::Sqlite {
        super::Sqlite {
            dir: Some(tempfile::tempdir().unwrap()),
            opened: Default::default(),
        }
    }

    queue_core::conformance_tests!(sqlite);
}

mod memory {
    pub(super) fn sqlite() -> super::Sqlite {
        super::Sqlite {
            dir: None,
            opened: Default::default(),
        }
    }

    queue_core::conformance_tests!(sqlite);
}
