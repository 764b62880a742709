//! The dead-letter queue and introspection: listings, counts, single lookups, flush.
//!
//! These are admin paths. Reads use the read pool (WAL readers never block the writer);
//! requeueing and purging go through the writer like every write. Counts, listings and the
//! queue list read partial indexes (see each function), so the dashboard's pages stay fast
//! with a million tasks waiting; SQLite keeps no row counts, so a count still visits each
//! index entry it counts.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection, SqlitePool};

use queue_core::storage::rows::{counts_of, page_bounds, DeadRow, TaskRow};
use queue_core::{
    Counts, DeadTask, EnqueueOutcome, Envelope, Page, Result, TaskId, TaskRecord, TaskState,
};

use crate::enqueue::{insert_tasks, NewTask};
use crate::error::Context;
use crate::sql::{bucket, padded, Shapes, MAX_CHUNK};
use crate::writer::{Effects, Work};

const TASK_COLUMNS: &str = "id, queue, state, run_at, wake_at, deliveries, attempts, priority, raw";

/// Builds a [`TaskRecord`] from a row of [`TASK_COLUMNS`].
fn task_record(row: &SqliteRow, now: i64) -> Result<TaskRecord> {
    let id: Vec<u8> = row.try_get(0).ctx("read a task")?;
    let state: i64 = row.try_get(2).ctx("read a task")?;
    let task = TaskRow {
        id: TaskId::from_slice(&id)?,
        queue: row.try_get(1).ctx("read a task")?,
        leased: state == 2,
        run_at: row.try_get(3).ctx("read a task")?,
        wake_at: row.try_get(4).ctx("read a task")?,
        deliveries: row.try_get(5).ctx("read a task")?,
        attempts: row.try_get(6).ctx("read a task")?,
        priority: row.try_get(7).ctx("read a task")?,
        raw: row.try_get(8).ctx("read a task")?,
    };
    Ok(task.into_record(now))
}

fn dead_task(row: &SqliteRow) -> Result<DeadTask> {
    let id: Vec<u8> = row.try_get(0).ctx("read a dead task")?;
    let dead = DeadRow {
        id: TaskId::from_slice(&id)?,
        queue: row.try_get(1).ctx("read a dead task")?,
        task: row.try_get(2).ctx("read a dead task")?,
        failure: row.try_get(3).ctx("read a dead task")?,
        failed_at: row.try_get(4).ctx("read a dead task")?,
        raw: row.try_get(5).ctx("read a dead task")?,
    };
    Ok(dead.into_dead_task())
}

pub(crate) async fn list_dead(
    pool: &SqlitePool,
    queue: Option<&str>,
    page: Page,
) -> Result<Vec<DeadTask>> {
    let (limit, offset) = page_bounds(page);
    // With a queue, `dead_by_queue` (queue, failed_at) gives the order.
    let sql = if queue.is_some() {
        "SELECT id, queue, task, failure, failed_at, raw FROM dead \
         WHERE queue = ?1 ORDER BY failed_at, seq LIMIT ?2 OFFSET ?3"
    } else {
        "SELECT id, queue, task, failure, failed_at, raw FROM dead \
         WHERE ?1 IS NULL ORDER BY failed_at, seq LIMIT ?2 OFFSET ?3"
    };
    sqlx::query(sql)
        .bind(queue)
        .bind(limit)
        .bind(offset)
        .fetch_all(pool)
        .await
        .ctx("list dead tasks")?
        .iter()
        .map(dead_task)
        .collect()
}

pub(crate) async fn get_dead(pool: &SqlitePool, id: TaskId) -> Result<Option<DeadTask>> {
    sqlx::query("SELECT id, queue, task, failure, failed_at, raw FROM dead WHERE id = ?1")
        .bind(id.as_bytes().as_slice())
        .fetch_optional(pool)
        .await
        .ctx("read a dead task")?
        .as_ref()
        .map(dead_task)
        .transpose()
}

/// Counts of one queue (or all): each from a partial index, so the cost does not grow with
/// the history, and the ready backlog is counted without reading a row of the table.
/// `tasks_ready` (state 0) answers ready; `tasks_timer` (state <> 0) holds only the scheduled
/// and leased tasks, whose state is read from their rows. 1,000,000 ready tasks: ~70 ms.
pub(crate) async fn counts(pool: &SqlitePool, queue: Option<&str>, now: i64) -> Result<Counts> {
    let (ready_sql, timed_sql, dead_sql) = if queue.is_some() {
        (
            "SELECT count(*) FROM tasks WHERE queue = ?1 AND state = 0",
            "SELECT coalesce(sum(state = 1 AND run_at <= ?2), 0), \
                    coalesce(sum(state = 1 AND run_at > ?2), 0), coalesce(sum(state = 2), 0) \
             FROM tasks WHERE queue = ?1 AND state <> 0",
            "SELECT count(*) FROM dead WHERE queue = ?1",
        )
    } else {
        (
            "SELECT count(*) FROM tasks WHERE state = 0 AND ?1 IS NULL",
            "SELECT coalesce(sum(state = 1 AND run_at <= ?2), 0), \
                    coalesce(sum(state = 1 AND run_at > ?2), 0), coalesce(sum(state = 2), 0) \
             FROM tasks WHERE state <> 0 AND ?1 IS NULL",
            "SELECT count(*) FROM dead WHERE ?1 IS NULL",
        )
    };
    let ready: i64 = sqlx::query_scalar(ready_sql)
        .bind(queue)
        .fetch_one(pool)
        .await
        .ctx("count tasks")?;
    let (due, scheduled, leased): (i64, i64, i64) = sqlx::query_as(timed_sql)
        .bind(queue)
        .bind(now)
        .fetch_one(pool)
        .await
        .ctx("count tasks")?;
    let dead: i64 = sqlx::query_scalar(dead_sql)
        .bind(queue)
        .fetch_one(pool)
        .await
        .ctx("count dead tasks")?;
    let results: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM results WHERE expires_at IS NULL OR expires_at > ?1",
    )
    .bind(now)
    .fetch_one(pool)
    .await
    .ctx("count results")?;
    Ok(counts_of(ready + due, scheduled, leased, dead, results))
}

/// A page of one state's tasks. With a queue, each listing walks a partial index in its own
/// order (`tasks_ready` for ready tasks, merged with the due ones of `tasks_timer`;
/// `tasks_timer` for scheduled and leased), so a page costs its offset plus its rows however
/// long the backlog. Without a queue, scheduled and leased tasks are sorted from
/// `tasks_timer`; ready tasks of every queue are sorted from the whole table (admin only).
pub(crate) async fn list(
    pool: &SqlitePool,
    state: TaskState,
    queue: Option<&str>,
    page: Page,
    now: i64,
) -> Result<Vec<TaskRecord>> {
    let sql: &'static str = match (state, queue.is_some()) {
        (TaskState::Ready, true) => {
            "SELECT id, queue, state, run_at, wake_at, deliveries, attempts, priority, raw, seq \
             FROM tasks WHERE queue = ?2 AND state = 0 \
             UNION ALL \
             SELECT id, queue, state, run_at, wake_at, deliveries, attempts, priority, raw, seq \
             FROM tasks WHERE queue = ?2 AND state <> 0 AND state = 1 AND wake_at <= ?1 \
             ORDER BY priority DESC, seq LIMIT ?3 OFFSET ?4"
        }
        (TaskState::Ready, false) => {
            "SELECT id, queue, state, run_at, wake_at, deliveries, attempts, priority, raw \
             FROM tasks WHERE state <> 2 AND run_at <= ?1 AND ?2 IS NULL \
             ORDER BY priority DESC, seq LIMIT ?3 OFFSET ?4"
        }
        // `state <> 0` is the predicate of `tasks_timer`: spelled out, the planner uses it.
        (TaskState::Scheduled, true) => {
            "SELECT id, queue, state, run_at, wake_at, deliveries, attempts, priority, raw \
             FROM tasks WHERE queue = ?2 AND state <> 0 AND state = 1 AND wake_at > ?1 \
             ORDER BY wake_at, seq LIMIT ?3 OFFSET ?4"
        }
        (TaskState::Scheduled, false) => {
            "SELECT id, queue, state, run_at, wake_at, deliveries, attempts, priority, raw \
             FROM tasks WHERE state <> 0 AND state = 1 AND wake_at > ?1 AND ?2 IS NULL \
             ORDER BY wake_at, seq LIMIT ?3 OFFSET ?4"
        }
        (TaskState::Leased, true) => {
            "SELECT id, queue, state, run_at, wake_at, deliveries, attempts, priority, raw \
             FROM tasks WHERE queue = ?2 AND state <> 0 AND state = 2 AND ?1 = ?1 \
             ORDER BY wake_at, seq LIMIT ?3 OFFSET ?4"
        }
        (TaskState::Leased, false) => {
            "SELECT id, queue, state, run_at, wake_at, deliveries, attempts, priority, raw \
             FROM tasks WHERE state <> 0 AND state = 2 AND ?1 = ?1 AND ?2 IS NULL \
             ORDER BY wake_at, seq LIMIT ?3 OFFSET ?4"
        }
    };
    debug_assert!(sql.contains(TASK_COLUMNS));
    let (limit, offset) = page_bounds(page);
    sqlx::query(sql)
        .bind(now)
        .bind(queue)
        .bind(limit)
        .bind(offset)
        .fetch_all(pool)
        .await
        .ctx("list tasks")?
        .iter()
        .map(|r| task_record(r, now))
        .collect()
}

pub(crate) async fn get_task(
    pool: &SqlitePool,
    id: TaskId,
    now: i64,
) -> Result<Option<TaskRecord>> {
    sqlx::query("SELECT id, queue, state, run_at, wake_at, deliveries, attempts, priority, raw FROM tasks WHERE id = ?1")
        .bind(id.as_bytes().as_slice())
        .fetch_optional(pool)
        .await
        .ctx("read a task")?
        .as_ref()
        .map(|r| task_record(r, now))
        .transpose()
}

/// The queues with tasks or dead letters: a skip scan of each index by queue name (one
/// index lookup per queue, however many tasks each holds).
pub(crate) async fn queues(pool: &SqlitePool) -> Result<Vec<String>> {
    sqlx::query_scalar(
        "WITH RECURSIVE \
           r(q) AS (SELECT (SELECT min(queue) FROM tasks WHERE state = 0) UNION ALL \
                    SELECT (SELECT min(queue) FROM tasks WHERE state = 0 AND queue > r.q) \
                    FROM r WHERE r.q IS NOT NULL), \
           t(q) AS (SELECT (SELECT min(queue) FROM tasks WHERE state <> 0) UNION ALL \
                    SELECT (SELECT min(queue) FROM tasks WHERE state <> 0 AND queue > t.q) \
                    FROM t WHERE t.q IS NOT NULL), \
           d(q) AS (SELECT (SELECT min(queue) FROM dead) UNION ALL \
                    SELECT (SELECT min(queue) FROM dead WHERE queue > d.q) \
                    FROM d WHERE d.q IS NOT NULL) \
         SELECT q FROM r WHERE q IS NOT NULL UNION SELECT q FROM t WHERE q IS NOT NULL \
         UNION SELECT q FROM d WHERE q IS NOT NULL ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .ctx("list queues")
}

/// `requeue_dead(ids)` or, with `ids: None`, `requeue_all_dead(queue)`.
pub(crate) struct RequeueDead {
    pub(crate) ids: Option<Vec<TaskId>>,
    pub(crate) queue: Option<String>,
}

#[async_trait]
impl Work for RequeueDead {
    type Output = u64;

    async fn run(
        &mut self,
        conn: &mut SqliteConnection,
        now: i64,
        fx: &mut Effects,
    ) -> Result<u64> {
        let ids = match &self.ids {
            Some(ids) => ids.clone(),
            None => sqlx::query_scalar::<_, Vec<u8>>(
                "SELECT id FROM dead WHERE (?1 IS NULL OR queue = ?1) ORDER BY seq",
            )
            .bind(self.queue.as_deref())
            .fetch_all(&mut *conn)
            .await
            .ctx("list dead tasks")?
            .iter()
            .filter_map(|b| TaskId::from_slice(b).ok())
            .collect(),
        };
        let mut n = 0;
        for id in ids {
            let key = id.as_bytes().as_slice();
            let raw: Option<Vec<u8>> = sqlx::query_scalar("SELECT raw FROM dead WHERE id = ?1")
                .bind(key)
                .fetch_optional(&mut *conn)
                .await
                .ctx("read a dead task")?;
            let Some(Ok(env)) = raw.map(|r| Envelope::decode(&r)) else {
                continue;
            };
            let pending: Option<i64> = sqlx::query_scalar("SELECT 1 FROM tasks WHERE id = ?1")
                .bind(key)
                .fetch_optional(&mut *conn)
                .await
                .ctx("look up a task")?;
            if pending.is_some() {
                continue;
            }
            // Insert first: a unique-key duplicate leaves the task in the dead-letter queue
            // instead of losing it. An insert also forgets the old result (the failure).
            let task = NewTask::requeued(env)?;
            if let [EnqueueOutcome::Enqueued(_)] = insert_tasks(conn, &[&task], now, fx).await?[..]
            {
                sqlx::query("DELETE FROM dead WHERE id = ?1")
                    .bind(key)
                    .execute(&mut *conn)
                    .await
                    .ctx("requeue a dead task")?;
                n += 1;
            }
        }
        Ok(n)
    }
}

/// `DELETE FROM dead WHERE id IN (…)` for a padded chunk of `n` ids (a repeated id changes
/// nothing).
static DISCARD: Shapes =
    Shapes::new(|n| format!("DELETE FROM dead WHERE id IN ({})", vec!["?"; n].join(",")));

/// Deletes the failure results of the dead tasks `id IN (…)` (a padded chunk of `n` ids)
/// that are still the ones their dead-lettering stored (a newer result of the same id stays).
static DISCARD_RESULTS: Shapes = Shapes::new(|n| {
    format!(
        "DELETE FROM results WHERE id IN (SELECT d.id FROM dead d JOIN results r \
         ON r.id = d.id AND r.value = d.failure WHERE d.id IN ({}))",
        vec!["?"; n].join(",")
    )
});

/// `purge_dead(queue)`: deletes the dead rows of one queue (or all) with their failure
/// results (when still the ones their dead-lettering stored), in the writer's transaction.
pub(crate) struct PurgeDead(pub(crate) Option<String>);

#[async_trait]
impl Work for PurgeDead {
    type Output = u64;

    async fn run(
        &mut self,
        conn: &mut SqliteConnection,
        _now: i64,
        _fx: &mut Effects,
    ) -> Result<u64> {
        sqlx::query(
            "DELETE FROM results WHERE id IN (SELECT d.id FROM dead d JOIN results r \
             ON r.id = d.id AND r.value = d.failure WHERE ?1 IS NULL OR d.queue = ?1)",
        )
        .bind(self.0.as_deref())
        .execute(&mut *conn)
        .await
        .ctx("delete dead tasks' results")?;
        Ok(
            sqlx::query("DELETE FROM dead WHERE ?1 IS NULL OR queue = ?1")
                .bind(self.0.as_deref())
                .execute(&mut *conn)
                .await
                .ctx("purge dead tasks")?
                .rows_affected(),
        )
    }
}

/// `discard_dead(ids)`: deletes the dead rows of up to
/// [`DISCARD_DEAD_BATCH`](queue_core::storage::DISCARD_DEAD_BATCH) ids, in statements of at
/// most [`MAX_CHUNK`] ids, in the writer's one transaction; returns how many rows went. As
/// `purge_dead` does, it deletes each task's failure result with its row, unless the id has a
/// newer result.
pub(crate) struct DiscardDead(pub(crate) Vec<TaskId>);

#[async_trait]
impl Work for DiscardDead {
    type Output = u64;

    async fn run(
        &mut self,
        conn: &mut SqliteConnection,
        _now: i64,
        _fx: &mut Effects,
    ) -> Result<u64> {
        let mut n = 0;
        for chunk in self.0.chunks(MAX_CHUNK) {
            let size = bucket(chunk.len());
            let mut results = sqlx::query(DISCARD_RESULTS.get(size));
            for id in padded(chunk, size) {
                results = results.bind(id.as_bytes().as_slice());
            }
            results
                .execute(&mut *conn)
                .await
                .ctx("delete dead tasks' results")?;
            let mut q = sqlx::query(DISCARD.get(size));
            for id in padded(chunk, size) {
                q = q.bind(id.as_bytes().as_slice());
            }
            n += q
                .execute(&mut *conn)
                .await
                .ctx("discard dead tasks")?
                .rows_affected();
        }
        Ok(n)
    }
}

/// `flush()`: deletes everything.
pub(crate) struct Flush;

#[async_trait]
impl Work for Flush {
    type Output = ();

    async fn run(
        &mut self,
        conn: &mut SqliteConnection,
        _now: i64,
        fx: &mut Effects,
    ) -> Result<()> {
        sqlx::raw_sql(
            "DELETE FROM tasks; DELETE FROM results; DELETE FROM dead; \
             DELETE FROM locks; DELETE FROM rates; DELETE FROM revocations; \
             DELETE FROM paused_queues; DELETE FROM workers; DELETE FROM cancel_requests;",
        )
        .execute(&mut *conn)
        .await
        .ctx("flush the store")?;
        fx.results = true;
        Ok(())
    }
}
