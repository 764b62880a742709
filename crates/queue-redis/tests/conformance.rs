//! The Storage conformance suite on Redis: one shared private `redis-server` for the binary,
//! a fresh key prefix per case.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use queue_core::testing::{async_trait, Backend};
use queue_core::{Clock, TaskId};
use queue_redis::RedisStorage;

struct Redis;

#[async_trait]
impl Backend for Redis {
    type Store = RedisStorage;

    async fn open(&self, clock: Arc<dyn Clock>) -> RedisStorage {
        support::shared_store("conf", clock).await
    }

    async fn insert_raw(&self, store: &RedisStorage, queue: &str, id: TaskId, raw: Vec<u8>) {
        store.insert_raw(queue, id, raw).await.expect("insert_raw");
    }
}

fn redis_backend() -> Redis {
    Redis
}

queue_core::conformance_tests!(redis_backend);
