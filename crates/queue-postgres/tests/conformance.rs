//! The Storage conformance suite on PostgreSQL: one private server per test process (a copy of
//! a template data directory, see `queue_postgres::testing`), a fresh schema per case.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use queue_core::testing::{async_trait, Backend};
use queue_core::{Clock, TaskId};
use queue_postgres::testing::shared_store;
use queue_postgres::PostgresStorage;

struct Postgres;

#[async_trait]
impl Backend for Postgres {
    type Store = PostgresStorage;

    async fn open(&self, clock: Arc<dyn Clock>) -> PostgresStorage {
        shared_store("conf", clock).await
    }

    async fn insert_raw(&self, store: &PostgresStorage, queue: &str, id: TaskId, raw: Vec<u8>) {
        store.insert_raw(queue, id, raw).await.expect("insert_raw");
    }
}

fn postgres() -> Postgres {
    Postgres
}

queue_core::conformance_tests!(postgres);
