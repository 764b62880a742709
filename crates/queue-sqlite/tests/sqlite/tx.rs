//! Transactional enqueue: a task stored with the caller's transaction exists iff it commits.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use queue_core::{EnqueueOutcome, Queue, Storage, Task, TaskContext, TaskError};
use queue_sqlite::{EnqueueIn, SqliteOptions, SqliteStorage};

use crate::env;

const LEASE: Duration = Duration::from_secs(30);
/// The timeout of a wait that should end early.
const HOUR: Duration = Duration::from_secs(3600);
/// How long a test gives something to happen before it fails.
const DEADLINE: Duration = Duration::from_secs(60);

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

/// A queue on a store in `dir` with an `orders` table of the application's beside its tables.
async fn queue_with_orders(dir: &tempfile::TempDir) -> (Queue, Arc<SqliteStorage>) {
    queue_with(SqliteOptions::new(dir.path().join("app.db"))).await
}

async fn queue_with(options: SqliteOptions) -> (Queue, Arc<SqliteStorage>) {
    let store = Arc::new(SqliteStorage::open(options).await.unwrap());
    sqlx::query("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, total INTEGER)")
        .execute(store.pool())
        .await
        .unwrap();
    (Queue::new(store.clone()), store)
}

async fn order_rows(store: &SqliteStorage) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_committed_transaction_stores_its_tasks_with_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, store) = queue_with_orders(&dir).await;
    let mut tx = store.pool().begin_with("BEGIN IMMEDIATE").await.unwrap();
    sqlx::query("INSERT INTO orders VALUES (7, 42)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let handle = Ship::call((7,)).enqueue_in(&mut tx, &queue).await.unwrap();
    let more = vec![Ship::call((8,)), Ship::call((9,)).priority(5)]
        .enqueue_in(&mut *tx, &queue)
        .await
        .unwrap();
    // Not visible to other connections before the commit.
    assert_eq!(store.counts(None).await.unwrap().ready, 0);
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
    assert_eq!(order_rows(&store).await, 1);
}

#[tokio::test]
async fn a_rolled_back_transaction_leaves_no_task() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, store) = queue_with_orders(&dir).await;
    let mut tx = store.pool().begin_with("BEGIN IMMEDIATE").await.unwrap();
    sqlx::query("INSERT INTO orders VALUES (1, 10)")
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
    assert_eq!(order_rows(&store).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_consumer_is_woken_by_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    // With an hour's poll interval only a wake-up can end the wait.
    let (queue, store) =
        queue_with(SqliteOptions::new(dir.path().join("app.db")).poll_interval(HOUR)).await;
    let waiter = {
        let store = store.clone();
        tokio::spawn(async move { store.wait_for_work("default", HOUR).await.unwrap() })
    };
    // The waiter has subscribed once it has probed the empty queue; give it the chance.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut tx = store.pool().begin_with("BEGIN IMMEDIATE").await.unwrap();
    let handle = Ship::call((5,)).enqueue_in(&mut tx, &queue).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiter.is_finished(), "woken before the commit");
    tx.commit().await.unwrap();
    tokio::time::timeout(DEADLINE, waiter)
        .await
        .expect("the commit did not wake the consumer")
        .unwrap();
    let got = store.fetch("default", 10, LEASE).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].lease.id, handle.id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stores_own_writes_wait_for_the_open_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, store) = queue_with_orders(&dir).await;
    let mut tx = store.pool().begin_with("BEGIN IMMEDIATE").await.unwrap();
    let in_tx = Ship::call((1,)).enqueue_in(&mut tx, &queue).await.unwrap();
    // The store's writer needs the write lock the transaction holds: it waits, then goes on.
    let outside = {
        let store = store.clone();
        tokio::spawn(async move { store.enqueue(vec![env("default")]).await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    tx.commit().await.unwrap();
    let outcome = tokio::time::timeout(DEADLINE, outside)
        .await
        .expect("the store's enqueue did not finish after the commit")
        .unwrap();
    assert!(matches!(outcome[..], [EnqueueOutcome::Enqueued(_)]));
    let got = store.fetch("default", 10, LEASE).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0].lease.id,
        in_tx.id(),
        "committed first, so first in line"
    );
}

#[tokio::test]
async fn unique_keys_hold_inside_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, store) = queue_with_orders(&dir).await;
    let first = Ship::call((1,))
        .unique_key("order-1")
        .enqueue(&queue)
        .await
        .unwrap();
    let mut tx = store.pool().begin_with("BEGIN IMMEDIATE").await.unwrap();
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
}

#[tokio::test]
async fn the_handle_reads_the_result_once_the_task_ran() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, store) = queue_with_orders(&dir).await;
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
async fn enqueue_in_refuses_other_stores_and_other_files() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, store) = queue_with_orders(&dir).await;

    let mut tx = store.pool().begin().await.unwrap();
    let memory = Queue::memory();
    let err = Ship::call((1,))
        .enqueue_in(&mut tx, &memory)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("needs a queue on an SQLite store") && err.contains("memory"),
        "{err}"
    );
    tx.rollback().await.unwrap();

    // Another Skiff file: its tasks would never reach this store's consumers.
    let other = SqliteStorage::connect(&format!(
        "sqlite://{}",
        dir.path().join("other.db").display()
    ))
    .await
    .unwrap();
    let mut tx = other.pool().begin().await.unwrap();
    let err = Ship::call((1,))
        .enqueue_in(&mut tx, &queue)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("other.db") && err.contains("not on the queue's store"),
        "{err}"
    );
    tx.rollback().await.unwrap();
    // An in-memory database.
    let memory_db = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    let err = vec![Ship::call((1,))]
        .enqueue_in(&memory_db, &queue)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("an in-memory database"), "{err}");
    assert_eq!(store.counts(None).await.unwrap(), Default::default());
    assert_eq!(other.counts(None).await.unwrap(), Default::default());

    // Immediate-mode queues run the task at once (tests without a store).
    let immediate = Queue::immediate();
    let mut tx = store.pool().begin().await.unwrap();
    let handle = Ship::call((3,))
        .enqueue_in(&mut tx, &immediate)
        .await
        .unwrap();
    assert_eq!(handle.get(Duration::ZERO).await.unwrap(), "shipped 3");
}
