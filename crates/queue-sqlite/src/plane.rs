//! The control plane: paused queues, purging a queue, cancel requests, heartbeats of live
//! workers and the progress they carry (migration 0003).
//!
//! Plans: the pause check of a fetch and of the wake-up probe is `SEARCH paused_queues USING
//! PRIMARY KEY (queue=?)`; a heartbeat writes one `workers` row by primary key and one
//! `tasks` row by `tasks_id` per progress value, and reads `cancel_requests` by primary key
//! per running task; a purge deletes through `tasks_ready` and `tasks_timer`. Expired workers
//! and cancel requests are deleted by later heartbeats and requests (at most 100 per call).

use std::time::Duration;

use async_trait::async_trait;
use sqlx::{Row, SqliteConnection, SqlitePool};

use queue_core::clock::{duration_millis, from_millis};
use queue_core::{CancelRequest, Heartbeat, Result, TaskId, WorkerStatus};

use crate::error::Context;
use crate::writer::{Effects, Work};

/// Whether `queue` is paused (inside a write transaction: a fetch asks first).
pub(crate) async fn is_paused(conn: &mut SqliteConnection, queue: &str) -> Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM paused_queues WHERE queue = ?1)")
        .bind(queue)
        .fetch_one(&mut *conn)
        .await
        .ctx("read whether a queue is paused")
}

/// `set_paused(queue, paused)`: whether the state changed. A resume wakes this process's
/// consumers.
pub(crate) struct SetPaused {
    pub(crate) queue: String,
    pub(crate) paused: bool,
}

#[async_trait]
impl Work for SetPaused {
    type Output = bool;

    async fn run(
        &mut self,
        conn: &mut SqliteConnection,
        _now: i64,
        fx: &mut Effects,
    ) -> Result<bool> {
        let sql = if self.paused {
            "INSERT OR IGNORE INTO paused_queues (queue) VALUES (?1)"
        } else {
            "DELETE FROM paused_queues WHERE queue = ?1"
        };
        let changed = sqlx::query(sql)
            .bind(&self.queue)
            .execute(&mut *conn)
            .await
            .ctx("pause or resume a queue")?
            .rows_affected()
            > 0;
        if changed && !self.paused {
            fx.work = true;
        }
        Ok(changed)
    }
}

pub(crate) async fn paused_queues(pool: &SqlitePool) -> Result<Vec<String>> {
    sqlx::query_scalar("SELECT queue FROM paused_queues ORDER BY queue")
        .fetch_all(pool)
        .await
        .ctx("list paused queues")
}

/// `purge_queue(queue)`: deletes its ready and scheduled tasks (unique keys go with the rows).
pub(crate) struct PurgeQueue(pub(crate) String);

#[async_trait]
impl Work for PurgeQueue {
    type Output = u64;

    async fn run(
        &mut self,
        conn: &mut SqliteConnection,
        _now: i64,
        _fx: &mut Effects,
    ) -> Result<u64> {
        let done = sqlx::query("DELETE FROM tasks WHERE queue = ?1 AND state IN (0, 1)")
            .bind(&self.0)
            .execute(&mut *conn)
            .await
            .ctx("purge a queue")?;
        Ok(done.rows_affected())
    }
}

/// `request_cancel(id, ttl)`.
pub(crate) struct RequestCancel {
    pub(crate) id: TaskId,
    pub(crate) ttl: Duration,
}

#[async_trait]
impl Work for RequestCancel {
    type Output = CancelRequest;

    async fn run(
        &mut self,
        conn: &mut SqliteConnection,
        now: i64,
        _fx: &mut Effects,
    ) -> Result<CancelRequest> {
        forget_expired(conn, now).await?;
        let id = self.id.as_bytes().as_slice();
        let state: Option<i64> = sqlx::query_scalar("SELECT state FROM tasks WHERE id = ?1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .ctx("find a task to cancel")?;
        let Some(state) = state else {
            return Ok(CancelRequest::NotFound);
        };
        sqlx::query("INSERT OR REPLACE INTO cancel_requests (id, until) VALUES (?1, ?2)")
            .bind(id)
            .bind(now.saturating_add(duration_millis(self.ttl)))
            .execute(&mut *conn)
            .await
            .ctx("store a cancel request")?;
        Ok(if state == 2 {
            CancelRequest::Running
        } else {
            CancelRequest::Pending
        })
    }
}

/// Deletes expired cancel requests and workers, at most 100 of each.
async fn forget_expired(conn: &mut SqliteConnection, now: i64) -> Result<()> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DELETE FROM cancel_requests WHERE id IN \
         (SELECT id FROM cancel_requests WHERE until <= {now} LIMIT 100); \
         DELETE FROM workers WHERE id IN \
         (SELECT id FROM workers WHERE live_until <= {now} LIMIT 100);"
    )))
    .execute(&mut *conn)
    .await
    .ctx("forget expired cancel requests and workers")?;
    Ok(())
}

/// `heartbeat(beat)`: the beat encoded once by the caller.
pub(crate) struct Beat {
    pub(crate) worker_id: String,
    pub(crate) started_at: i64,
    pub(crate) ttl: Duration,
    pub(crate) status: Vec<u8>,
    pub(crate) running: Vec<TaskId>,
    pub(crate) progress: Vec<(TaskId, i64, Vec<u8>)>,
}

impl Beat {
    pub(crate) fn new(beat: &Heartbeat, now: i64) -> Result<Self> {
        let status = WorkerStatus::of(beat, from_millis(now)).encode()?;
        Ok(Self {
            worker_id: beat.worker.id.clone(),
            started_at: queue_core::clock::to_millis(beat.worker.started_at),
            ttl: beat.ttl,
            status,
            running: beat.running.iter().map(|r| r.id).collect(),
            progress: beat
                .progress
                .iter()
                .map(|(lease, bytes)| {
                    (
                        lease.id,
                        i64::try_from(lease.token.0).unwrap_or(-1),
                        bytes.clone(),
                    )
                })
                .collect(),
        })
    }
}

#[async_trait]
impl Work for Beat {
    type Output = Vec<TaskId>;

    async fn run(
        &mut self,
        conn: &mut SqliteConnection,
        now: i64,
        _fx: &mut Effects,
    ) -> Result<Vec<TaskId>> {
        forget_expired(conn, now).await?;
        sqlx::query(
            "INSERT OR REPLACE INTO workers (id, started_at, live_until, status) VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(&self.worker_id)
        .bind(self.started_at)
        .bind(now.saturating_add(duration_millis(self.ttl)))
        .bind(self.status.as_slice())
        .execute(&mut *conn)
        .await
        .ctx("store a heartbeat")?;
        for (id, token, bytes) in &self.progress {
            sqlx::query(
                "UPDATE tasks SET progress = ?3 WHERE id = ?1 AND state = 2 AND lease_token = ?2",
            )
            .bind(id.as_bytes().as_slice())
            .bind(*token)
            .bind(bytes.as_slice())
            .execute(&mut *conn)
            .await
            .ctx("store progress")?;
        }
        let mut cancel = Vec::new();
        for id in &self.running {
            let asked: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM cancel_requests WHERE id = ?1 AND until > ?2)",
            )
            .bind(id.as_bytes().as_slice())
            .bind(now)
            .fetch_one(&mut *conn)
            .await
            .ctx("read cancel requests")?;
            if asked {
                cancel.push(*id);
            }
        }
        Ok(cancel)
    }
}

/// `remove_worker(id)`.
pub(crate) struct RemoveWorker(pub(crate) String);

#[async_trait]
impl Work for RemoveWorker {
    type Output = bool;

    async fn run(
        &mut self,
        conn: &mut SqliteConnection,
        _now: i64,
        _fx: &mut Effects,
    ) -> Result<bool> {
        let done = sqlx::query("DELETE FROM workers WHERE id = ?1")
            .bind(&self.0)
            .execute(&mut *conn)
            .await
            .ctx("remove a worker")?;
        Ok(done.rows_affected() > 0)
    }
}

/// The live workers, oldest first; an entry that does not decode is skipped with a warning.
pub(crate) async fn workers(pool: &SqlitePool, now: i64) -> Result<Vec<WorkerStatus>> {
    let rows =
        sqlx::query("SELECT id, status FROM workers WHERE live_until > ?1 ORDER BY started_at, id")
            .bind(now)
            .fetch_all(pool)
            .await
            .ctx("list workers")?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let id: String = row.try_get(0).ctx("read a worker")?;
        let status: Vec<u8> = row.try_get(1).ctx("read a worker")?;
        match WorkerStatus::decode(&status) {
            Ok(status) => out.push(status),
            Err(err) => {
                tracing::warn!(worker = %id, error = %err, "skipping a worker entry that does not decode")
            }
        }
    }
    Ok(out)
}

pub(crate) async fn get_progress(pool: &SqlitePool, id: TaskId) -> Result<Option<Vec<u8>>> {
    let progress: Option<Option<Vec<u8>>> =
        sqlx::query_scalar("SELECT progress FROM tasks WHERE id = ?1")
            .bind(id.as_bytes().as_slice())
            .fetch_optional(pool)
            .await
            .ctx("read progress")?;
    Ok(progress.flatten())
}
