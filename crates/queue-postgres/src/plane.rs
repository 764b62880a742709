//! The control plane: paused queues, purging a queue, cancel requests, heartbeats of live
//! workers and the progress they carry (migration 0002).
//!
//! The claim and the wake-up probe skip a paused queue (an `EXISTS` on `paused_queues` by
//! primary key, evaluated once per statement). A resume notifies the queue's waiters in every
//! process. A heartbeat is one statement: the worker row by primary key, progress by `id` and
//! lease token, the cancel requests of its running tasks by primary key, and the removal of
//! at most 100 expired workers and requests.

use std::time::Duration;

use sqlx::{AssertSqlSafe, Row};
use uuid::Uuid;

use queue_core::clock::{duration_millis, from_millis, to_millis};
use queue_core::{CancelRequest, Heartbeat, Result, TaskId, WorkerStatus};

use crate::sql::quote_ident;
use crate::PostgresStorage;

/// Deletes the waiting (ready and scheduled) tasks of queue `$1`, with the results earlier
/// runs of their ids left (hidden while they were pending: see
/// [`ENQUEUE_PLAIN`](crate::enqueue::ENQUEUE_PLAIN)); returns how many tasks went.
pub(crate) const PURGE_QUEUE: &str = "\
WITH gone AS (
    DELETE FROM {s}.tasks WHERE queue = $1 AND state IN (0, 1) RETURNING id
), res AS (
    DELETE FROM {s}.results r USING gone WHERE r.id = gone.id
)
SELECT count(*) FROM gone";

impl PostgresStorage {
    /// A statement of this module for the store's schema (`{s}` in `template`).
    fn plane_sql(&self, template: &str) -> AssertSqlSafe<String> {
        AssertSqlSafe(template.replace("{s}", &quote_ident(&self.schema)))
    }

    pub(crate) async fn plane_set_paused(&self, queue: &str, paused: bool) -> Result<bool> {
        let sql = if paused {
            "INSERT INTO {s}.paused_queues (queue) VALUES ($1) ON CONFLICT DO NOTHING"
        } else {
            // A resume wakes the queue's waiters in every process.
            "WITH d AS (DELETE FROM {s}.paused_queues WHERE queue = $1 RETURNING queue) \
             SELECT count(*) FROM d, LATERAL (SELECT pg_notify($2, 'w' || d.queue)) n"
        };
        let changed = if paused {
            sqlx::query(self.plane_sql(sql))
                .bind(queue)
                .execute(&self.pool)
                .await
                .map_err(self.fail("pause a queue"))?
                .rows_affected()
                > 0
        } else {
            let n: i64 = sqlx::query_scalar(self.plane_sql(sql))
                .bind(queue)
                .bind(&self.channel)
                .fetch_one(&self.pool)
                .await
                .map_err(self.fail("resume a queue"))?;
            n > 0
        };
        if changed && !paused {
            self.waiters.work.wake(&queue.to_owned());
        }
        Ok(changed)
    }

    pub(crate) async fn plane_paused_queues(&self) -> Result<Vec<String>> {
        sqlx::query_scalar(self.plane_sql("SELECT queue FROM {s}.paused_queues ORDER BY queue"))
            .fetch_all(&self.pool)
            .await
            .map_err(self.fail("list paused queues"))
    }

    pub(crate) async fn plane_purge_queue(&self, queue: &str) -> Result<u64> {
        let gone: i64 = sqlx::query_scalar(self.plane_sql(PURGE_QUEUE))
            .bind(queue)
            .fetch_one(&self.pool)
            .await
            .map_err(self.fail("purge a queue"))?;
        Ok(u64::try_from(gone).unwrap_or(0))
    }

    pub(crate) async fn plane_request_cancel(
        &self,
        id: TaskId,
        ttl: Duration,
    ) -> Result<CancelRequest> {
        let now = self.now();
        let state: Option<i16> = sqlx::query_scalar(self.plane_sql(
            "WITH t AS (SELECT state FROM {s}.tasks WHERE id = $1), \
             forget AS (DELETE FROM {s}.cancel_requests WHERE id IN \
                (SELECT id FROM {s}.cancel_requests WHERE until <= $3 LIMIT 100)), \
             ins AS (INSERT INTO {s}.cancel_requests (id, until) SELECT $1, $2 FROM t \
                ON CONFLICT (id) DO UPDATE SET until = excluded.until) \
             SELECT state FROM t",
        ))
        .bind(*id.as_uuid())
        .bind(now.saturating_add(duration_millis(ttl)))
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.fail("request a cancel"))?;
        Ok(match state {
            None => CancelRequest::NotFound,
            Some(2) => CancelRequest::Running,
            Some(_) => CancelRequest::Pending,
        })
    }

    pub(crate) async fn plane_heartbeat(&self, beat: &Heartbeat) -> Result<Vec<TaskId>> {
        let now = self.now();
        let status = WorkerStatus::of(beat, from_millis(now)).encode()?;
        let running: Vec<Uuid> = beat.running.iter().map(|r| *r.id.as_uuid()).collect();
        let progress_ids: Vec<Uuid> = beat.progress.iter().map(|(l, _)| *l.id.as_uuid()).collect();
        let tokens: Vec<i64> = beat
            .progress
            .iter()
            .map(|(l, _)| i64::try_from(l.token.0).unwrap_or(-1))
            .collect();
        let values: Vec<Vec<u8>> = beat.progress.iter().map(|(_, b)| b.clone()).collect();
        let rows = sqlx::query(self.plane_sql(
            "WITH w AS (INSERT INTO {s}.workers (id, started_at, live_until, status) \
                VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET \
                started_at = excluded.started_at, live_until = excluded.live_until, \
                status = excluded.status), \
             p AS (UPDATE {s}.tasks t SET progress = v.progress \
                FROM unnest($5::uuid[], $6::bigint[], $7::bytea[]) AS v(id, token, progress) \
                WHERE t.id = v.id AND t.state = 2 AND t.lease_token = v.token), \
             old_w AS (DELETE FROM {s}.workers WHERE id IN \
                (SELECT id FROM {s}.workers WHERE live_until <= $9 AND id <> $1 LIMIT 100)), \
             old_c AS (DELETE FROM {s}.cancel_requests WHERE id IN \
                (SELECT id FROM {s}.cancel_requests WHERE until <= $9 LIMIT 100)) \
             SELECT id FROM {s}.cancel_requests WHERE id = ANY ($8::uuid[]) AND until > $9",
        ))
        .bind(&beat.worker.id)
        .bind(to_millis(beat.worker.started_at))
        .bind(now.saturating_add(duration_millis(beat.ttl)))
        .bind(status)
        .bind(progress_ids)
        .bind(tokens)
        .bind(values)
        .bind(running)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(self.fail("store a heartbeat"))?;
        rows.iter()
            .map(|r| {
                r.try_get::<Uuid, _>(0)
                    .map(TaskId::from_uuid)
                    .map_err(self.fail("read cancel requests"))
            })
            .collect()
    }

    pub(crate) async fn plane_remove_worker(&self, worker_id: &str) -> Result<bool> {
        let done = sqlx::query(self.plane_sql("DELETE FROM {s}.workers WHERE id = $1"))
            .bind(worker_id)
            .execute(&self.pool)
            .await
            .map_err(self.fail("remove a worker"))?;
        Ok(done.rows_affected() > 0)
    }

    pub(crate) async fn plane_workers(&self) -> Result<Vec<WorkerStatus>> {
        let rows = sqlx::query(self.plane_sql(
            "SELECT id, status FROM {s}.workers WHERE live_until > $1 ORDER BY started_at, id",
        ))
        .bind(self.now())
        .fetch_all(&self.pool)
        .await
        .map_err(self.fail("list workers"))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let id: String = row.try_get(0).map_err(self.fail("read a worker"))?;
            let status: Vec<u8> = row.try_get(1).map_err(self.fail("read a worker"))?;
            match WorkerStatus::decode(&status) {
                Ok(status) => out.push(status),
                Err(err) => tracing::warn!(worker = %id, error = %err,
                    "skipping a worker entry that does not decode"),
            }
        }
        Ok(out)
    }

    pub(crate) async fn plane_get_progress(&self, id: TaskId) -> Result<Option<Vec<u8>>> {
        let progress: Option<Option<Vec<u8>>> =
            sqlx::query_scalar(self.plane_sql("SELECT progress FROM {s}.tasks WHERE id = $1"))
                .bind(*id.as_uuid())
                .fetch_optional(&self.pool)
                .await
                .map_err(self.fail("read progress"))?;
        Ok(progress.flatten())
    }
}
