//! Transactional enqueue: [`EnqueueIn`] stores tasks with the caller's own sqlx connection or
//! transaction on the store's file, so a task exists if and only if the caller's transaction
//! commits.
//!
//! The rows go in with the statement the store's writer uses (unique keys, fixed ids, FIFO
//! order and the cleanup of an earlier run's result included). Consumers of the store in this
//! process are woken when the caller's connection commits (an SQLite commit hook on that
//! connection, see [`EnqueueIn`]); consumers in other processes see the task within their poll
//! interval, as they see any other process's writes.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use sqlx::{Acquire, Sqlite, SqliteConnection};

use queue_core::{EnqueueOutcome, Envelope, Error, Queue, Result, Task, TaskCall, TaskHandle};

use crate::enqueue::{insert_tasks, NewTask};
use crate::error::Context;
use crate::writer::{Effects, Shared};
use crate::SqliteStorage;

mod sealed {
    pub trait Sealed {}
    impl<T: queue_core::Task> Sealed for queue_core::TaskCall<T> {}
    impl<T: queue_core::Task> Sealed for Vec<queue_core::TaskCall<T>> {}
}

/// Enqueue in the caller's own transaction: `call.enqueue_in(&mut tx, &queue)`.
///
/// Implemented for one [`TaskCall`] (returns its [`TaskHandle`]) and for a `Vec` of calls of
/// one task (returns their handles in order). `tx` is anything sqlx can run queries on:
/// `&mut Transaction<'_, Sqlite>` (the point of this trait), `&mut SqliteConnection`, or
/// `&SqlitePool` (then it is an ordinary enqueue). It must be a connection to the database file
/// of `queue`'s store — [`SqliteStorage::pool`] is one, or a pool of the application's own on
/// the same file — and `queue` must be on a [`SqliteStorage`] (or be an immediate-mode queue,
/// see below).
///
/// SQLite has one writer at a time: while the caller's transaction holds the write lock, the
/// store's own writes (other enqueues, claims, completions) wait for it, up to the busy
/// timeout. Keep such transactions short, and begin them with `BEGIN IMMEDIATE`
/// (`pool.begin_with("BEGIN IMMEDIATE")`) when they read before they write, so SQLite takes
/// the write lock first instead of failing the upgrade with "database is locked".
///
/// Wake-ups: this sets an SQLite commit hook on the connection (replacing any hook the
/// application set on it), which wakes the store's consumers in this process at the
/// transaction's commit, once. Consumers in other processes find the task within their poll
/// interval. Unlike [`TaskCall::enqueue`], no `Enqueued` event is sent (the transaction may
/// still roll back). On an immediate-mode queue ([`Queue::immediate`], for tests) the task runs
/// at once, whatever becomes of the transaction.
///
/// # Examples
///
/// ```no_run
/// # #![allow(dead_code)]
/// use std::time::Duration;
/// use queue_core::{Queue, Task};
/// use queue_sqlite::{EnqueueIn, SqliteStorage};
/// # use queue_core::{TaskContext, TaskError};
/// # use futures::future::BoxFuture;
/// # struct Ship;
/// # impl Task for Ship {
/// #     const NAME: &'static str = "ship";
/// #     type Args = (i64,);
/// #     type Output = String;
/// #     fn run(_: TaskContext, _: (i64,)) -> BoxFuture<'static, Result<String, TaskError>> {
/// #         Box::pin(async { Ok("shipped".into()) })
/// #     }
/// # }
///
/// # async fn demo(store: SqliteStorage, queue: Queue) -> Result<(), Box<dyn std::error::Error>> {
/// let mut tx = store.pool().begin_with("BEGIN IMMEDIATE").await?;
/// sqlx::query("UPDATE orders SET state = 'paid' WHERE id = ?1").bind(7_i64).execute(&mut *tx).await?;
/// let shipping = Ship::call((7,)).enqueue_in(&mut tx, &queue).await?;
/// let labels = vec![Ship::call((8,)), Ship::call((9,))].enqueue_in(&mut tx, &queue).await?;
/// tx.commit().await?; // or drop `tx`: then none of the three tasks exists
/// assert_eq!(shipping.get(Duration::from_secs(30)).await?, "shipped");
/// assert_eq!(labels.len(), 2);
/// # Ok(()) }
/// ```
///
/// # Cancel safety
///
/// Dropping the future may or may not have stored the rows in the transaction; whether they
/// exist is then decided by the transaction's commit or rollback, like any other statement.
pub trait EnqueueIn: sealed::Sealed + Sized {
    /// What enqueueing returns: typed handles to the results.
    type Handle;

    /// Stores the task(s) with `tx`, in the database file of `queue`'s store.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when `queue` is not on an SQLite store, when `tx` is a
    /// connection to another database, or for an invalid call (empty queue name…);
    /// [`Error::Storage`] when the statement fails (a busy database past the busy timeout…).
    fn enqueue_in<'c, A>(
        self,
        tx: A,
        queue: &Queue,
    ) -> impl Future<Output = Result<Self::Handle>> + Send
    where
        A: Acquire<'c, Database = Sqlite> + Send;
}

impl<T: Task> EnqueueIn for TaskCall<T> {
    type Handle = TaskHandle<T::Output>;

    async fn enqueue_in<'c, A>(self, tx: A, queue: &Queue) -> Result<Self::Handle>
    where
        A: Acquire<'c, Database = Sqlite> + Send,
    {
        if queue.is_immediate() {
            return self.enqueue(queue).await;
        }
        vec![self]
            .enqueue_in(tx, queue)
            .await?
            .pop()
            .ok_or_else(|| Error::storage_msg(crate::error::BACKEND, "enqueue returned no outcome"))
    }
}

impl<T: Task> EnqueueIn for Vec<TaskCall<T>> {
    type Handle = Vec<TaskHandle<T::Output>>;

    async fn enqueue_in<'c, A>(self, tx: A, queue: &Queue) -> Result<Self::Handle>
    where
        A: Acquire<'c, Database = Sqlite> + Send,
    {
        queue
            .enqueue_with(self, |batch| async move {
                let mut conn = tx.acquire().await.ctx("get a connection for enqueue_in")?;
                store_in(&mut conn, queue, batch).await
            })
            .await
    }
}

/// The SQLite store behind `queue`.
fn store_of(queue: &Queue) -> Result<&SqliteStorage> {
    let storage = queue.storage();
    storage
        .as_any()
        .and_then(|any| any.downcast_ref::<SqliteStorage>())
        .ok_or_else(|| {
            Error::InvalidInput(format!(
                "enqueue_in needs a queue on an SQLite store; this queue's store is `{}`",
                storage.backend()
            ))
        })
}

/// Stores `batch` with `conn`, which must be on the file of `queue`'s store.
async fn store_in(
    conn: &mut SqliteConnection,
    queue: &Queue,
    batch: Vec<Envelope>,
) -> Result<Vec<EnqueueOutcome>> {
    let store = store_of(queue)?;
    same_file(conn, store.path()).await?;
    let rows = batch
        .into_iter()
        .map(NewTask::from_envelope)
        .collect::<Result<Vec<_>>>()?;
    let refs: Vec<&NewTask> = rows.iter().collect();
    let mut fx = Effects::default();
    let outcomes = insert_tasks(conn, &refs, store.now(), &mut fx).await?;
    if fx.work {
        wake_at_commit(conn, Arc::downgrade(&store.shared)).await?;
    }
    Ok(outcomes)
}

/// Refuses a connection to another database than the store's file: its tasks would never be
/// seen by the store's consumers.
async fn same_file(conn: &mut SqliteConnection, store_path: &Path) -> Result<()> {
    let file: Option<String> =
        sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .fetch_optional(&mut *conn)
            .await
            .ctx("read the connection's database file")?;
    let file = file.unwrap_or_default();
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| PathBuf::from(p));
    if file.is_empty() || canonical(Path::new(&file)) != canonical(store_path) {
        let shown = if file.is_empty() {
            "an in-memory database"
        } else {
            &file
        };
        return Err(Error::InvalidInput(format!(
            "enqueue_in: the transaction is on {shown}, not on the queue's store `{}`; pass a \
             transaction on the store's file (e.g. from SqliteStorage::pool)",
            store_path.display()
        )));
    }
    Ok(())
}

/// Wakes the store's consumers in this process when `conn` next commits (once).
async fn wake_at_commit(conn: &mut SqliteConnection, shared: Weak<Shared>) -> Result<()> {
    let mut handle = conn.lock_handle().await.ctx("set a commit hook")?;
    let mut armed = true;
    handle.set_commit_hook(move || {
        if std::mem::take(&mut armed) {
            if let Some(shared) = shared.upgrade() {
                shared.wake_work();
            }
        }
        true // let the commit go on
    });
    Ok(())
}
