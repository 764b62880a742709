//! The backend conformance suite on [`MemoryStorage`], the reference store.

use std::sync::Arc;

use queue_core::testing::{async_trait, Backend};
use queue_core::{Clock, MemoryStorage, TaskId};

/// Opens a new [`MemoryStorage`] per case.
struct Memory;

#[async_trait]
impl Backend for Memory {
    type Store = MemoryStorage;

    async fn open(&self, clock: Arc<dyn Clock>) -> MemoryStorage {
        MemoryStorage::with_clock(clock)
    }

    async fn insert_raw(&self, store: &MemoryStorage, queue: &str, id: TaskId, raw: Vec<u8>) {
        store.insert_raw(queue, id, raw);
    }
}

fn memory() -> Memory {
    Memory
}

queue_core::conformance_tests!(memory);
