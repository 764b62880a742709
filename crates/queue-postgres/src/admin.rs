//! The dead-letter queue and introspection: listings, counts, single lookups, flush.
//!
//! These are admin paths (the CLI, the dashboard, health checks), never the hot path. Counts
//! and the queue list read the pending tasks of the store (PostgreSQL keeps no row counts);
//! listings are pages of an index in its order.

use sqlx::postgres::PgRow;
use sqlx::{Acquire, PgPool, Row};
use uuid::Uuid;

use queue_core::clock::from_millis;
use queue_core::{
    Counts, DeadTask, Envelope, FailureKind, Page, Result, StoredResult, TaskFailure, TaskId,
    TaskRecord, TaskState,
};

use crate::enqueue::{insert, Columns, NewTask};
use crate::error::{storage, Context};
use crate::sql::{q, Sql};

const TASK_COLUMNS: &str = "id, queue, state, run_at, wake_at, deliveries, attempts, priority, raw";

pub(crate) const COUNTS: &str = "\
SELECT count(*) FILTER (WHERE state <> 2 AND run_at <= $1),
       count(*) FILTER (WHERE state <> 2 AND run_at > $1),
       count(*) FILTER (WHERE state = 2),
       (SELECT count(*) FROM {s}.dead WHERE $2::text IS NULL OR queue = $2),
       (SELECT count(*) FROM {s}.results WHERE expires_at IS NULL OR expires_at > $1)
FROM {s}.tasks WHERE $2::text IS NULL OR queue = $2";

pub(crate) const LIST_READY: &str = "\
SELECT id, queue, state, run_at, wake_at, deliveries, attempts, priority, raw FROM {s}.tasks
WHERE state <> 2 AND run_at <= $1 AND ($2::text IS NULL OR queue = $2)
ORDER BY priority DESC, seq LIMIT $3 OFFSET $4";

pub(crate) const LIST_SCHEDULED: &str = "\
SELECT id, queue, state, run_at, wake_at, deliveries, attempts, priority, raw FROM {s}.tasks
WHERE state <> 2 AND run_at > $1 AND ($2::text IS NULL OR queue = $2)
ORDER BY run_at, seq LIMIT $3 OFFSET $4";

pub(crate) const LIST_LEASED: &str = "\
SELECT id, queue, state, run_at, wake_at, deliveries, attempts, priority, raw FROM {s}.tasks
WHERE state = 2 AND $1::int8 IS NOT NULL AND ($2::text IS NULL OR queue = $2)
ORDER BY wake_at, seq LIMIT $3 OFFSET $4";

pub(crate) const GET_TASK: &str = "\
SELECT id, queue, state, run_at, wake_at, deliveries, attempts, priority, raw FROM {s}.tasks
WHERE id = $1";

pub(crate) const QUEUES: &str =
    "SELECT queue FROM {s}.tasks UNION SELECT queue FROM {s}.dead ORDER BY 1";

pub(crate) const LIST_DEAD: &str = "\
SELECT id, queue, task, failure, failed_at, raw FROM {s}.dead
WHERE $1::text IS NULL OR queue = $1
ORDER BY failed_at, seq LIMIT $2 OFFSET $3";

pub(crate) const GET_DEAD: &str =
    "SELECT id, queue, task, failure, failed_at, raw FROM {s}.dead WHERE id = $1";

/// A page of dead tasks to requeue (by ids, or by queue after a position), locked.
pub(crate) const TAKE_DEAD: &str = "\
SELECT id, raw, seq FROM {s}.dead
WHERE ($1::uuid[] IS NULL OR id = ANY($1)) AND ($2::text IS NULL OR queue = $2) AND seq > $3
ORDER BY seq LIMIT $4
FOR UPDATE";

pub(crate) const UNBURY: &str = "DELETE FROM {s}.dead WHERE id = ANY($1)";

pub(crate) const PURGE_DEAD: &str = "DELETE FROM {s}.dead WHERE $1::text IS NULL OR queue = $1";

pub(crate) const FLUSH: &str = "\
TRUNCATE {s}.tasks, {s}.results, {s}.dead, {s}.locks, {s}.rates, {s}.revocations";

pub(crate) const INSERT_RAW: &str = "\
INSERT INTO {s}.tasks (id, queue, task, priority, state, run_at, wake_at, deliveries, attempts,
                       max_deliveries, unique_key, raw)
VALUES ($1, $2, '?', 0, 0, $3, $3, 0, 0, $4, NULL, $5)
ON CONFLICT (id) DO UPDATE SET queue = excluded.queue, task = excluded.task, state = 0,
    run_at = excluded.run_at, wake_at = excluded.wake_at, lease_token = NULL, deliveries = 0,
    attempts = 0, raw = excluded.raw";

/// Builds a [`TaskRecord`] from a row of [`TASK_COLUMNS`].
fn task_record(row: &PgRow, now: i64) -> std::result::Result<TaskRecord, sqlx::Error> {
    let id: Uuid = row.try_get(0)?;
    let state: i16 = row.try_get(2)?;
    let run_at: i64 = row.try_get(3)?;
    let wake_at: i64 = row.try_get(4)?;
    let deliveries: i32 = row.try_get(5)?;
    let attempts: i32 = row.try_get(6)?;
    let priority: i16 = row.try_get(7)?;
    let raw: Vec<u8> = row.try_get(8)?;
    let state = match state {
        2 => TaskState::Leased,
        _ if run_at <= now => TaskState::Ready,
        _ => TaskState::Scheduled,
    };
    let envelope = Envelope::decode(&raw)
        .map(|mut env| {
            env.deliveries = u32::try_from(deliveries).unwrap_or(0);
            env.attempt = u32::try_from(attempts).unwrap_or(0);
            env.priority = priority;
            env
        })
        .map_err(|e| e.to_string());
    Ok(TaskRecord {
        id: TaskId::from_uuid(id),
        queue: row.try_get(1)?,
        state,
        run_at: from_millis(run_at),
        lease_expires_at: (state == TaskState::Leased).then(|| from_millis(wake_at)),
        envelope,
    })
}

fn dead_task(row: &PgRow) -> std::result::Result<DeadTask, sqlx::Error> {
    let id: Uuid = row.try_get(0)?;
    let failure: Vec<u8> = row.try_get(3)?;
    let failed_at: i64 = row.try_get(4)?;
    let raw: Vec<u8> = row.try_get(5)?;
    let failure = match StoredResult::decode(&failure) {
        Ok(StoredResult::Failure(f)) => f,
        _ => TaskFailure::new(
            FailureKind::Undecodable,
            "the stored failure does not decode",
            0,
        ),
    };
    Ok(DeadTask {
        id: TaskId::from_uuid(id),
        queue: row.try_get(1)?,
        task: row.try_get(2)?,
        failure,
        failed_at: from_millis(failed_at),
        envelope: Envelope::decode(&raw).map_err(|e| e.to_string()),
    })
}

fn page_args(page: Page) -> (i64, i64) {
    (
        i64::from(page.limit),
        i64::try_from(page.offset).unwrap_or(i64::MAX),
    )
}

pub(crate) async fn counts(
    pool: &PgPool,
    sql: &Sql,
    queue: Option<&str>,
    now: i64,
) -> std::result::Result<Counts, sqlx::Error> {
    let (ready, scheduled, leased, dead, results): (i64, i64, i64, i64, i64) =
        sqlx::query_as(q(&sql.counts))
            .bind(now)
            .bind(queue)
            .fetch_one(pool)
            .await?;
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    Ok(Counts {
        ready: n(ready),
        scheduled: n(scheduled),
        leased: n(leased),
        dead: n(dead),
        results: n(results),
    })
}

pub(crate) async fn list(
    pool: &PgPool,
    sql: &Sql,
    state: TaskState,
    queue: Option<&str>,
    page: Page,
    now: i64,
) -> std::result::Result<Vec<TaskRecord>, sqlx::Error> {
    let statement = match state {
        TaskState::Ready => &sql.list_ready,
        TaskState::Scheduled => &sql.list_scheduled,
        TaskState::Leased => &sql.list_leased,
    };
    debug_assert!(statement.contains(TASK_COLUMNS));
    let (limit, offset) = page_args(page);
    sqlx::query(q(statement))
        .bind(now)
        .bind(queue)
        .bind(limit)
        .bind(offset)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| task_record(r, now))
        .collect()
}

pub(crate) async fn get_task(
    pool: &PgPool,
    sql: &Sql,
    id: TaskId,
    now: i64,
) -> std::result::Result<Option<TaskRecord>, sqlx::Error> {
    sqlx::query(q(&sql.get_task))
        .bind(id.as_uuid())
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(|r| task_record(r, now))
        .transpose()
}

pub(crate) async fn list_dead(
    pool: &PgPool,
    sql: &Sql,
    queue: Option<&str>,
    page: Page,
) -> std::result::Result<Vec<DeadTask>, sqlx::Error> {
    let (limit, offset) = page_args(page);
    sqlx::query(q(&sql.list_dead))
        .bind(queue)
        .bind(limit)
        .bind(offset)
        .fetch_all(pool)
        .await?
        .iter()
        .map(dead_task)
        .collect()
}

pub(crate) async fn get_dead(
    pool: &PgPool,
    sql: &Sql,
    id: TaskId,
) -> std::result::Result<Option<DeadTask>, sqlx::Error> {
    sqlx::query(q(&sql.get_dead))
        .bind(id.as_uuid())
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(dead_task)
        .transpose()
}

/// How many dead tasks one transaction of `requeue_*` moves.
const REQUEUE_PAGE: i64 = 500;

/// `requeue_dead(ids)` or, with `ids: None`, `requeue_all_dead(queue)`: pages of dead tasks,
/// each in a transaction that inserts them as new tasks (fresh counts, no eta) and removes
/// from the dead-letter queue only those that were inserted, so a task whose id or unique key
/// is now taken stays dead instead of being lost. Undecodable ones stay dead.
pub(crate) async fn requeue_dead(
    pool: &PgPool,
    sql: &Sql,
    channel: &str,
    ids: Option<Vec<Uuid>>,
    queue: Option<&str>,
    now: i64,
) -> Result<(u64, Vec<String>)> {
    let mut total = 0;
    let mut queues: Vec<String> = Vec::new();
    let mut after = 0_i64;
    let mut conn = pool
        .acquire()
        .await
        .map_err(|e| storage("requeue dead tasks", e, None))?;
    loop {
        let mut tx = conn.begin().await.ctx("requeue dead tasks")?;
        let rows: Vec<(Uuid, Vec<u8>, i64)> = sqlx::query_as(q(&sql.take_dead))
            .bind(ids.as_deref())
            .bind(queue)
            .bind(after)
            .bind(REQUEUE_PAGE)
            .fetch_all(&mut *tx)
            .await
            .ctx("read dead tasks")?;
        let Some(last) = rows.last().map(|r| r.2) else {
            break;
        };
        after = last;
        let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= REQUEUE_PAGE;
        let mut columns = Columns::with_capacity(rows.len());
        for (_, raw, _) in rows {
            let Ok(mut env) = Envelope::decode(&raw) else {
                continue;
            };
            env.attempt = 0;
            env.deliveries = 0;
            env.eta = None;
            columns.push(NewTask::from_stored(env)?, now);
        }
        let inserted = insert(&mut tx, sql, channel, columns, now).await?;
        let back: Vec<Uuid> = inserted
            .outcomes
            .iter()
            .filter_map(|o| match o {
                queue_core::EnqueueOutcome::Enqueued(id) => Some(*id.as_uuid()),
                queue_core::EnqueueOutcome::Duplicate(_) => None,
            })
            .collect();
        sqlx::query(q(&sql.unbury))
            .bind(&back)
            .execute(&mut *tx)
            .await
            .ctx("requeue dead tasks")?;
        tx.commit().await.ctx("requeue dead tasks")?;
        total += u64::try_from(back.len()).unwrap_or(0);
        for queue in inserted.queues {
            if !queues.contains(&queue) {
                queues.push(queue);
            }
        }
        if !full {
            break;
        }
    }
    Ok((total, queues))
}
