//! Transactional enqueue: [`EnqueueIn`] stores tasks with the caller's own sqlx connection or
//! transaction, so a task exists if and only if the caller's transaction commits.
//!
//! The rows go into the queue's schema with the same statement the store itself uses (unique
//! keys, fixed ids, FIFO order and the wake-up notification included). PostgreSQL delivers
//! the notification when the transaction commits, so consumers start the task at once then,
//! and never for a transaction that rolls back. Until the commit no consumer can see the task;
//! the handle returned works as soon as it has committed.

use std::future::Future;

use sqlx::{Acquire, PgConnection, Postgres};

use queue_core::{EnqueueOutcome, Envelope, Error, Queue, Result, Task, TaskCall, TaskHandle};

use crate::error::{code, BACKEND};
use crate::{enqueue, PostgresStorage};

mod sealed {
    pub trait Sealed {}
    impl<T: queue_core::Task> Sealed for queue_core::TaskCall<T> {}
    impl<T: queue_core::Task> Sealed for Vec<queue_core::TaskCall<T>> {}
}

/// Enqueue in the caller's own transaction: `call.enqueue_in(&mut tx, &queue)`.
///
/// Implemented for one [`TaskCall`] (returns its [`TaskHandle`]) and for a `Vec` of calls of
/// one task (one statement; returns their handles in order). `tx` is anything sqlx can run
/// queries on: `&mut Transaction<'_, Postgres>` (the point of this trait), `&mut PgConnection`,
/// or `&PgPool` (then it is an ordinary enqueue). It must be a connection to the database of
/// `queue`'s store, whose schema holds the tasks; `queue` must be on a
/// [`PostgresStorage`] (or be an immediate-mode queue, see below).
///
/// Unlike [`TaskCall::enqueue`], no `Enqueued` event is sent (the transaction may still roll
/// back). On an immediate-mode queue ([`Queue::immediate`], for tests) the task runs at once,
/// whatever becomes of the transaction.
///
/// # Examples
///
/// ```no_run
/// # #![allow(dead_code)]
/// use std::time::Duration;
/// use queue_core::{Queue, Task};
/// use queue_postgres::EnqueueIn;
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
/// # async fn demo(queue: Queue, db: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
/// let mut tx = db.begin().await?;
/// sqlx::query("UPDATE orders SET state = 'paid' WHERE id = $1").bind(7_i64).execute(&mut *tx).await?;
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

    /// Stores the task(s) with `tx`, in the schema of `queue`'s store.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when `queue` is not on a PostgreSQL store, or for an invalid
    /// call (empty queue name…); [`Error::Storage`] when the statement fails, e.g. when `tx` is
    /// a connection to a database without the store's schema (the message says so).
    fn enqueue_in<'c, A>(
        self,
        tx: A,
        queue: &Queue,
    ) -> impl Future<Output = Result<Self::Handle>> + Send
    where
        A: Acquire<'c, Database = Postgres> + Send;
}

impl<T: Task> EnqueueIn for TaskCall<T> {
    type Handle = TaskHandle<T::Output>;

    async fn enqueue_in<'c, A>(self, tx: A, queue: &Queue) -> Result<Self::Handle>
    where
        A: Acquire<'c, Database = Postgres> + Send,
    {
        if queue.is_immediate() {
            return self.enqueue(queue).await;
        }
        vec![self]
            .enqueue_in(tx, queue)
            .await?
            .pop()
            .ok_or_else(|| Error::storage_msg(BACKEND, "enqueue returned no outcome"))
    }
}

impl<T: Task> EnqueueIn for Vec<TaskCall<T>> {
    type Handle = Vec<TaskHandle<T::Output>>;

    async fn enqueue_in<'c, A>(self, tx: A, queue: &Queue) -> Result<Self::Handle>
    where
        A: Acquire<'c, Database = Postgres> + Send,
    {
        queue
            .enqueue_with(self, |batch| async move {
                let mut conn = tx.acquire().await.map_err(acquire_error)?;
                store_in(&mut conn, queue, batch).await
            })
            .await
    }
}

fn acquire_error(e: sqlx::Error) -> Error {
    crate::error::storage("get a connection for enqueue_in", e, None)
}

/// The PostgreSQL store behind `queue`.
fn store_of(queue: &Queue) -> Result<&PostgresStorage> {
    let storage = queue.storage();
    storage
        .as_any()
        .and_then(|any| any.downcast_ref::<PostgresStorage>())
        .ok_or_else(|| {
            Error::InvalidInput(format!(
                "enqueue_in needs a queue on a PostgreSQL store; this queue's store is `{}`",
                storage.backend()
            ))
        })
}

/// Stores `batch` with `conn` in the schema of `queue`'s store.
async fn store_in(
    conn: &mut PgConnection,
    queue: &Queue,
    batch: Vec<Envelope>,
) -> Result<Vec<EnqueueOutcome>> {
    let store = store_of(queue)?;
    let now = store.now();
    let rows = enqueue::columns(batch, now)?;
    let inserted = enqueue::insert(
        conn,
        &store.sql,
        enqueue::Target::Transaction {
            channel: &store.channel,
        },
        &rows,
        now,
    )
    .await
    .map_err(|e| explain(e, store.schema()))?;
    Ok(inserted.outcomes)
}

/// A clearer error when the caller's connection is not on the store's database.
fn explain(err: Error, schema: &str) -> Error {
    let missing = match &err {
        Error::Storage {
            source: Some(source),
            ..
        } => source
            .downcast_ref::<sqlx::Error>()
            .and_then(crate::error::sqlstate)
            .is_some_and(|c| c == code::UNDEFINED_TABLE || c == code::INVALID_SCHEMA),
        _ => false,
    };
    if missing {
        return Error::storage_msg(
            BACKEND,
            format!(
                "enqueue_in: the transaction's database has no Skiff schema `{schema}`; pass a transaction on the database of the queue's store ({err})"
            ),
        );
    }
    err
}
