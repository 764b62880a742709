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
        let store = support::shared_store("conf", clock).await;
        assert!(
            store.runs_functions(),
            "the test server (7.0+) has Functions"
        );
        store
    }

    async fn insert_raw(&self, store: &RedisStorage, queue: &str, id: TaskId, raw: Vec<u8>) {
        store.insert_raw(queue, id, raw).await.expect("insert_raw");
    }
}

fn redis_backend() -> Redis {
    Redis
}

queue_core::conformance_tests!(redis_backend);

/// The same suite with the Lua code run as scripts (`EVALSHA`), as on servers before 7.0.
mod scripts {
    use super::*;

    struct RedisScripts;

    #[async_trait]
    impl Backend for RedisScripts {
        type Store = RedisStorage;

        async fn open(&self, clock: Arc<dyn Clock>) -> RedisStorage {
            let options = support::shared_options("conf-eval")
                .clock(clock)
                .functions(false);
            let store = RedisStorage::open(options).await.expect("open");
            assert!(!store.runs_functions());
            store
        }

        async fn insert_raw(&self, store: &RedisStorage, queue: &str, id: TaskId, raw: Vec<u8>) {
            store.insert_raw(queue, id, raw).await.expect("insert_raw");
        }
    }

    fn scripts_backend() -> RedisScripts {
        RedisScripts
    }

    queue_core::conformance_tests!(scripts_backend);
}
