//! Skiff's embedded SQLite store. (Being built: see issue "SQLite backend".)

use queue_core::{Error, Result};

/// The SQLite store.
#[derive(Debug)]
pub struct SqliteStorage {
    _private: (),
}

impl SqliteStorage {
    /// Opens (and creates) the store at a `sqlite://` URL.
    pub async fn connect(url: &str) -> Result<Self> {
        Err(Error::InvalidInput(format!("the SQLite store is not built yet ({url})")))
    }
}
