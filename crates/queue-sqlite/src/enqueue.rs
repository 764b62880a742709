//! Storing new tasks: multi-row `INSERT … ON CONFLICT DO NOTHING RETURNING id`.
//!
//! Envelopes are validated and encoded by the caller ([`NewTask::from_envelope`]) so the
//! writer only binds bytes. A row that conflicts — its id is pending, or its unique key is held
//! by a pending or leased task (`tasks_unique_key`, a partial unique index) — is not inserted
//! and not returned; those few are then looked up to report [`EnqueueOutcome::Duplicate`] with
//! the holder's id. Results left by an earlier run of an inserted id are deleted, as a new run
//! replaces them.
//!
//! Plans (EXPLAIN QUERY PLAN): the insert maintains `tasks_id`, `tasks_unique_key` and one of
//! `tasks_ready` / `tasks_timer`; the duplicate lookups are `SEARCH tasks USING COVERING INDEX
//! tasks_id (id=?)` and `… tasks_unique_key (unique_key=?)`; the result cleanup is
//! `SEARCH results USING PRIMARY KEY (id=?)`.

use std::collections::HashSet;

use sqlx::{Row, SqliteConnection};

pub(crate) use queue_core::storage::rows::NewTask;
use queue_core::{EnqueueOutcome, Result, TaskId};

use crate::error::Context;
use crate::sql::{bucket, padded, values, Shapes, MAX_CHUNK};
use crate::writer::Effects;

pub(crate) static INSERT: Shapes = Shapes::new(|n| {
    format!(
        "INSERT INTO tasks (id, queue, priority, state, run_at, wake_at, deliveries, attempts, \
         max_deliveries, unique_key, raw) VALUES {} ON CONFLICT DO NOTHING RETURNING id",
        values(n, 11)
    )
});

/// The statement of the `tasks_forget_old_result` trigger (migration 0002), for
/// [`SqliteStorage::explain`](crate::SqliteStorage::explain).
pub(crate) const FORGET_RESULT: &str = "DELETE FROM results WHERE id = ?1";

/// Inserts `rows` in order; returns one outcome per row. A stored task's older result of the
/// same id is deleted by the `tasks_forget_old_result` trigger (migration 0002).
pub(crate) async fn insert_tasks(
    conn: &mut SqliteConnection,
    rows: &[&NewTask],
    now: i64,
    fx: &mut Effects,
) -> Result<Vec<EnqueueOutcome>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut inserted: HashSet<TaskId> = HashSet::with_capacity(rows.len());
    for chunk in rows.chunks(MAX_CHUNK) {
        let size = bucket(chunk.len());
        let mut q = sqlx::query(INSERT.get(size));
        for t in padded(chunk, size) {
            let run_at = t.eta.unwrap_or(now);
            q = q
                .bind(t.id.as_bytes().as_slice())
                .bind(t.queue.as_str())
                .bind(t.priority)
                .bind(if run_at <= now { 0_i64 } else { 1 })
                .bind(run_at)
                .bind(run_at)
                .bind(i64::from(t.deliveries))
                .bind(i64::from(t.attempts))
                .bind(i64::from(t.limit))
                .bind(t.unique_key.as_deref())
                .bind(t.raw.as_slice());
        }
        for row in q.fetch_all(&mut *conn).await.ctx("insert tasks")? {
            let bytes: &[u8] = row.try_get(0).ctx("read an inserted id")?;
            inserted.insert(TaskId::from_slice(bytes)?);
        }
    }
    if !inserted.is_empty() {
        fx.work = true;
    }
    let mut out = Vec::with_capacity(rows.len());
    for t in rows {
        if inserted.remove(&t.id) {
            out.push(EnqueueOutcome::Enqueued(t.id));
        } else {
            out.push(EnqueueOutcome::Duplicate(holder(conn, t).await?));
        }
    }
    Ok(out)
}

/// The id of the pending task that made `t` a duplicate.
async fn holder(conn: &mut SqliteConnection, t: &NewTask) -> Result<TaskId> {
    let same_id: Option<i64> = sqlx::query_scalar("SELECT 1 FROM tasks WHERE id = ?1")
        .bind(t.id.as_bytes().as_slice())
        .fetch_optional(&mut *conn)
        .await
        .ctx("look up a duplicate id")?;
    if same_id.is_some() {
        return Ok(t.id);
    }
    if let Some(key) = &t.unique_key {
        let other: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT id FROM tasks WHERE unique_key = ?1")
                .bind(key.as_str())
                .fetch_optional(&mut *conn)
                .await
                .ctx("look up a unique key")?;
        if let Some(bytes) = other {
            return TaskId::from_slice(&bytes);
        }
    }
    Ok(t.id)
}
