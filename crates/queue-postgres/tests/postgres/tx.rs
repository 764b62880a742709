//! Transactional enqueue: a task stored with the caller's transaction exists iff it commits.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use queue_core::{EnqueueOutcome, Queue, Storage, Task, TaskContext, TaskError};
use queue_postgres::testing::shared_options;
use queue_postgres::{EnqueueIn, PostgresStorage};

use crate::{within, HOUR, LEASE};

/// A task whose argument is an order id.
struct Ship;

impl Task for Ship {
    const NAME: &'static str = "ship";
    type Args = (i64,);
    type Output = String;

    fn run(_: TaskContext, (order,): (i64,)) -> BoxFuture<'static, Result<String, TaskError>> {
        Box::pin(async move { Ok(format!("shipped {order}")) })
    }
}

/// A queue on a fresh store, and the store.
async fn queue(tag: &str) -> (Queue, Arc<PostgresStorage>) {
    let store = Arc::new(PostgresStorage::open(shared_options(tag)).await.unwrap());
    (Queue::new(store.clone()), store)
}

/// An application table in the store's database, in the store's schema for isolation.
async fn orders_table(store: &PostgresStorage) -> String {
    let table = format!("\"{}\".orders", store.schema());
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {table} (id bigint PRIMARY KEY, total bigint NOT NULL)"
    )))
    .execute(store.pool())
    .await
    .unwrap();
    table
}

#[tokio::test]
async fn a_committed_transaction_stores_its_tasks_with_its_rows() {
    let (queue, store) = queue("tx-commit").await;
    let orders = orders_table(&store).await;
    let mut tx = store.pool().begin().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {orders} VALUES (7, 42)"
    )))
    .execute(&mut *tx)
    .await
    .unwrap();
    let handle = Ship::call((7,)).enqueue_in(&mut tx, &queue).await.unwrap();
    let more = vec![Ship::call((8,)), Ship::call((9,)).priority(5)]
        .enqueue_in(&mut *tx, &queue)
        .await
        .unwrap();
    // Not visible before the commit: not to counts, not to a fetch.
    assert_eq!(store.counts(None).await.unwrap().ready, 0);
    assert!(store.fetch("default", 10, LEASE).await.unwrap().is_empty());
    tx.commit().await.unwrap();

    assert_eq!(store.counts(None).await.unwrap().ready, 3);
    let got = store.fetch("default", 10, LEASE).await.unwrap();
    let ids: Vec<_> = got.iter().map(|d| d.lease.id).collect();
    assert_eq!(
        ids,
        vec![more[1].id(), handle.id(), more[0].id()],
        "priority, then FIFO"
    );
    assert_eq!(got[1].envelope.task, "ship");
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT total FROM {orders} WHERE id = 7"
    )))
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(total, 42);
}

#[tokio::test]
async fn a_rolled_back_transaction_leaves_no_task() {
    let (queue, store) = queue("tx-rollback").await;
    let orders = orders_table(&store).await;
    let mut tx = store.pool().begin().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {orders} VALUES (1, 10)"
    )))
    .execute(&mut *tx)
    .await
    .unwrap();
    let handle = Ship::call((1,)).enqueue_in(&mut tx, &queue).await.unwrap();
    vec![Ship::call((2,)), Ship::call((3,))]
        .enqueue_in(&mut tx, &queue)
        .await
        .unwrap();
    tx.rollback().await.unwrap();

    // A transaction dropped without a commit rolls back too.
    {
        let mut tx = store.pool().begin().await.unwrap();
        Ship::call((4,)).enqueue_in(&mut tx, &queue).await.unwrap();
    }

    assert_eq!(store.counts(None).await.unwrap(), Default::default());
    assert!(store.get_task(handle.id()).await.unwrap().is_none());
    assert!(store.fetch("default", 10, LEASE).await.unwrap().is_empty());
    let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {orders}"
    )))
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(rows, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_consumer_is_woken_by_the_commit() {
    let (queue, store) = queue("tx-wake").await;
    // Another store on the same schema: it hears only the server's notification.
    let other = PostgresStorage::open(
        queue_postgres::PostgresOptions::new(&queue_postgres::testing::shared_url())
            .unwrap()
            .schema(store.schema())
            .unwrap()
            .poll_interval(HOUR),
    )
    .await
    .unwrap();
    assert!(other.is_listening());
    let waiter = tokio::spawn(async move {
        other.wait_for_work("default", HOUR).await.unwrap();
        other
    });
    let mut tx = store.pool().begin().await.unwrap();
    let handle = Ship::call((5,)).enqueue_in(&mut tx, &queue).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiter.is_finished(), "woken before the commit");
    tx.commit().await.unwrap();
    let other = within("the commit did not wake the consumer", waiter)
        .await
        .unwrap();
    let got = other.fetch("default", 10, LEASE).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].lease.id, handle.id());
}

#[tokio::test]
async fn unique_keys_and_fixed_ids_hold_inside_transactions() {
    let (queue, store) = queue("tx-unique").await;
    let first = Ship::call((1,))
        .unique_key("order-1")
        .enqueue(&queue)
        .await
        .unwrap();
    let mut tx = store.pool().begin().await.unwrap();
    let dup = Ship::call((1,))
        .unique_key("order-1")
        .enqueue_in(&mut tx, &queue)
        .await
        .unwrap();
    assert_eq!(
        dup.id(),
        first.id(),
        "a duplicate gets the pending task's handle"
    );
    let handles = vec![
        Ship::call((2,)).unique_key("order-2"),
        Ship::call((2,)).unique_key("order-2"),
    ]
    .enqueue_in(&mut tx, &queue)
    .await
    .unwrap();
    assert_eq!(handles[0].id(), handles[1].id());
    tx.commit().await.unwrap();
    assert_eq!(store.counts(None).await.unwrap().ready, 2);
    let again = store
        .enqueue(vec![Ship::call((2,))
            .unique_key("order-2")
            .into_envelope(chrono::Utc::now())
            .unwrap()])
        .await
        .unwrap();
    assert_eq!(again, vec![EnqueueOutcome::Duplicate(handles[0].id())]);
}

#[tokio::test]
async fn the_handle_reads_the_result_once_the_task_ran() {
    let (queue, store) = queue("tx-result").await;
    let mut tx = store.pool().begin().await.unwrap();
    let handle = Ship::call((11,)).enqueue_in(&mut tx, &queue).await.unwrap();
    tx.commit().await.unwrap();
    let d = store.fetch("default", 1, LEASE).await.unwrap().remove(0);
    let out = queue_core::to_msgpack(&"shipped 11".to_owned()).unwrap();
    let done =
        queue_core::Completion::new(d.lease, queue_core::Outcome::Success { result: out }, None);
    store.complete(vec![done]).await.unwrap();
    assert_eq!(
        handle.get(Duration::from_secs(5)).await.unwrap(),
        "shipped 11"
    );
}

#[tokio::test]
async fn enqueue_in_refuses_other_stores_and_other_databases() {
    let (queue, store) = queue("tx-wrong").await;
    let mut tx = store.pool().begin().await.unwrap();
    let memory = Queue::memory();
    let err = Ship::call((1,))
        .enqueue_in(&mut tx, &memory)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("needs a queue on a PostgreSQL store") && err.contains("memory"),
        "{err}"
    );
    tx.rollback().await.unwrap();

    // A connection to a database without the store's schema.
    sqlx::query("CREATE DATABASE skiff_tx_elsewhere_test")
        .execute(store.pool())
        .await
        .or_else(|e| {
            // Another run of this test made it already.
            if e.to_string().contains("already exists") {
                Ok(Default::default())
            } else {
                Err(e)
            }
        })
        .unwrap();
    let url = other_database(
        &queue_postgres::testing::shared_url(),
        "skiff_tx_elsewhere_test",
    );
    let elsewhere = sqlx::PgPool::connect(&url).await.unwrap();
    let mut tx = elsewhere.begin().await.unwrap();
    let err = Ship::call((1,))
        .enqueue_in(&mut tx, &queue)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("has no Skiff schema"), "{err}");

    // Immediate-mode queues run the task at once (tests without a store).
    let immediate = Queue::immediate();
    let mut tx = store.pool().begin().await.unwrap();
    let handle = Ship::call((3,))
        .enqueue_in(&mut tx, &immediate)
        .await
        .unwrap();
    assert_eq!(handle.get(Duration::ZERO).await.unwrap(), "shipped 3");
}

/// `url` with its database replaced by `db`.
fn other_database(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let (server, _) = base.rsplit_once('/').unwrap();
    match query {
        Some(q) => format!("{server}/{db}?{q}"),
        None => format!("{server}/{db}"),
    }
}
