//! Skiff's Redis store. (Being built: see issue "Redis backend".)

use queue_core::{Error, Result};

/// The Redis store.
#[derive(Debug)]
pub struct RedisStorage {
    _private: (),
}

impl RedisStorage {
    /// Opens (and creates) the store at a `redis://` URL.
    pub async fn connect(url: &str) -> Result<Self> {
        Err(Error::InvalidInput(format!("the Redis store is not built yet ({url})")))
    }
}
