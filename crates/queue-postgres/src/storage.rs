//! The [`Storage`] implementation: each call encodes its input and runs one statement (a few
//! for rare paths) on a pooled connection.
//!
//! # Cancel safety
//!
//! A statement that was sent may commit even if the call's future is dropped while waiting
//! for its answer: an enqueue whose caller gave up may still be stored (at-least-once), and a
//! fetch whose caller gave up leases tasks that come back when the lease runs out.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use queue_core::clock::{duration_millis, to_millis};
use queue_core::storage::rows::{sql_limit, Settlement};
use queue_core::storage::DISCARD_DEAD_BATCH;
use queue_core::{
    AckStatus, CancelRequest, Clock, Completion, Counts, DeadTask, Delivery, EnqueueOutcome,
    Envelope, Heartbeat, Lease, Page, RateDecision, Result, Revocation, RevokeTarget, Storage,
    StoredResult, TaskId, TaskRecord, TaskState, WorkerStatus,
};

use crate::control::{revoke_key, uuids};
use crate::error::{check_text, BACKEND};
use crate::sql::q;
use crate::{admin, complete, control, enqueue, fetch, wait, PostgresStorage};

#[async_trait]
impl Storage for PostgresStorage {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    async fn enqueue(&self, batch: Vec<Envelope>) -> Result<Vec<EnqueueOutcome>> {
        self.timed("enqueue", async move {
            if batch.is_empty() {
                return Ok(Vec::new());
            }
            let now = self.now();
            let rows = enqueue::columns(batch, now)?;
            let single = if rows.len() == 1 {
                self.single.try_take()
            } else {
                None
            };
            let inserted = if let Some(mut taken) = single {
                let conn = taken.conn(&self.single, &self.bound).await?;
                let inserted =
                    enqueue::insert(conn, &self.sql, enqueue::Target::Store, &rows, now).await?;
                taken.put_back();
                inserted
            } else {
                let mut conn = self.conn("enqueue").await?;
                enqueue::insert(&mut conn, &self.sql, enqueue::Target::Store, &rows, now).await?
            };
            for queue in &inserted.queues {
                self.waiters.work.wake(queue);
            }
            self.notifier.after_commit(inserted.queues, Vec::new());
            Ok(inserted.outcomes)
        })
        .await
    }

    async fn fetch(&self, queue: &str, max: usize, lease: Duration) -> Result<Vec<Delivery>> {
        self.timed("fetch", async move {
            if max == 0 {
                return Ok(Vec::new());
            }
            let version = self.revocations.version();
            let now = self.now();
            let mut conn = self.conn("fetch").await?;
            let fetched = fetch::fetch(&mut conn, &self.sql, queue, max, lease, now).await?;
            for id in &fetched.buried {
                self.waiters.results.wake(id);
            }
            drop(conn);
            self.notifier
                .after_commit(Vec::new(), fetched.buried.clone());
            // The claim read whether any revocation exists: `check_revoked` of this batch, which
            // follows, uses that answer instead of a read of its own.
            if let Some(any) = fetched.revocations {
                self.revocations.record(any, version);
            }
            Ok(fetched.deliveries)
        })
        .await
    }

    async fn wait_for_work(&self, queue: &str, timeout: Duration) -> Result<()> {
        wait::for_work(&self.wait_ctx(&|| self.now()), queue, timeout).await
    }

    async fn complete(&self, batch: Vec<Completion>) -> Result<Vec<AckStatus>> {
        self.timed("complete", async move {
            if batch.is_empty() {
                return Ok(Vec::new());
            }
            let settled = Settlement::all(batch, enqueue::new_task)?;
            let now = self.now();
            let mut conn = self.conn("complete tasks").await?;
            let done = complete::complete(&mut conn, &self.sql, None, settled, now).await?;
            let acked = done
                .status
                .iter()
                .filter(|s| **s == AckStatus::Acked)
                .count();
            self.vacuum.count(acked as u64, &self.pool, &self.sql);
            for id in &done.results {
                self.waiters.results.wake(id);
            }
            for queue in &done.queues {
                self.waiters.work.wake(queue);
            }
            drop(conn);
            self.notifier.after_commit(done.queues, done.results);
            Ok(done.status)
        })
        .await
    }

    async fn extend(&self, leases: &[Lease], lease: Duration) -> Result<Vec<AckStatus>> {
        self.timed("extend", async move {
            if leases.is_empty() {
                return Ok(Vec::new());
            }
            let expires = self.now().saturating_add(duration_millis(lease));
            let mut conn = self.conn("extend leases").await?;
            complete::extend(&mut conn, &self.sql, leases, expires).await
        })
        .await
    }

    async fn requeue_expired(&self, queue: &str, max: usize) -> Result<u64> {
        self.timed("requeue_expired", async move {
            let n = control::requeue_expired(
                &self.pool,
                &self.sql,
                &self.channel,
                queue,
                sql_limit(max),
                self.now(),
            )
            .await
            .map_err(self.fail("requeue expired leases"))?;
            if n > 0 {
                self.waiters.work.wake(&queue.to_owned());
            }
            Ok(n)
        })
        .await
    }

    async fn get_result(&self, id: TaskId) -> Result<Option<StoredResult>> {
        self.timed("get_result", async move {
            wait::get_result(&self.pool, &self.info, &self.sql, *id.as_uuid(), self.now()).await
        })
        .await
    }

    async fn wait_result(&self, id: TaskId, timeout: Duration) -> Result<Option<StoredResult>> {
        wait::for_result(&self.wait_ctx(&|| self.now()), *id.as_uuid(), timeout).await
    }

    async fn delete_result(&self, id: TaskId) -> Result<bool> {
        self.timed("delete_result", async move {
            let done = sqlx::query(q(&self.sql.delete_result))
                .bind(id.as_uuid())
                .execute(&self.pool)
                .await
                .map_err(self.fail("delete a result"))?;
            Ok(done.rows_affected() > 0)
        })
        .await
    }

    async fn purge_expired(&self, max: usize) -> Result<u64> {
        self.timed("purge_expired", async move {
            let n: i64 = sqlx::query_scalar(q(&self.sql.purge_expired))
                .bind(self.now())
                .bind(sql_limit(max))
                .fetch_one(&self.pool)
                .await
                .map_err(self.fail("purge expired entries"))?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    async fn reschedule(&self, id: TaskId, eta: DateTime<Utc>) -> Result<bool> {
        self.timed("reschedule", async move {
            let eta = to_millis(eta);
            control::reschedule(&self.pool, &self.sql, &self.channel, id, eta, self.now())
                .await
                .map_err(self.fail("reschedule a task"))
        })
        .await
    }

    async fn revoke(&self, revocation: Revocation) -> Result<()> {
        self.timed("revoke", async move {
            let (kind, target) = revoke_key(&revocation.target);
            check_text("revoked task name", &target)?;
            let store = sqlx::query(q(&self.sql.revoke))
                .bind(kind)
                .bind(&target)
                .bind(revocation.until.map(to_millis))
                .bind(revocation.once)
                .execute(&self.pool);
            self.revocations
                .writing(store)
                .await
                .map(|_| ())
                .map_err(self.fail("store a revocation"))
        })
        .await
    }

    async fn restore(&self, target: &RevokeTarget) -> Result<bool> {
        self.timed("restore", async move {
            let (kind, target) = revoke_key(target);
            let done = sqlx::query(q(&self.sql.restore))
                .bind(kind)
                .bind(&target)
                .execute(&self.pool)
                .await
                .map_err(self.fail("remove a revocation"))?;
            Ok(done.rows_affected() > 0)
        })
        .await
    }

    async fn check_revoked(&self, tasks: &[(TaskId, &str)]) -> Result<Vec<bool>> {
        self.timed("check_revoked", async move {
            // Fast path: nothing is revoked (the usual case), as the last fetch or a read says.
            let any = || async {
                sqlx::query_scalar(q(&self.sql.any_revocation))
                    .fetch_one(&self.pool)
                    .await
                    .map_err(self.fail("read revocations"))
            };
            let each = || async {
                let mut conn = self.conn("check revocations").await?;
                control::check_revoked(&mut conn, &self.sql, tasks, self.now()).await
            };
            self.revocations.check_revoked(tasks.len(), any, each).await
        })
        .await
    }

    async fn acquire_lock(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
        self.timed("acquire_lock", async move {
            check_text("lock name", name)?;
            check_text("lock owner", owner)?;
            let now = self.now();
            let done = sqlx::query(q(&self.sql.acquire_lock))
                .bind(name)
                .bind(owner)
                .bind(now.saturating_add(duration_millis(ttl)))
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(self.fail("take a lock"))?;
            Ok(done.rows_affected() > 0)
        })
        .await
    }

    async fn release_lock(&self, name: &str, owner: &str) -> Result<bool> {
        self.timed("release_lock", async move {
            let done = sqlx::query(q(&self.sql.release_lock))
                .bind(name)
                .bind(owner)
                .bind(self.now())
                .execute(&self.pool)
                .await
                .map_err(self.fail("release a lock"))?;
            Ok(done.rows_affected() > 0)
        })
        .await
    }

    async fn flush_locks(&self) -> Result<u64> {
        self.timed("flush_locks", async move {
            let done = sqlx::query(q(&self.sql.flush_locks))
                .execute(&self.pool)
                .await
                .map_err(self.fail("release every lock"))?;
            Ok(done.rows_affected())
        })
        .await
    }

    async fn rate_limit(&self, key: &str, limit: u32, window: Duration) -> Result<RateDecision> {
        self.timed("rate_limit", async move {
            check_text("rate-limit key", key)?;
            control::rate_limit(&self.pool, &self.sql, key, limit, window, self.now())
                .await
                .map_err(self.fail("count a rate-limit hit"))
        })
        .await
    }

    async fn list_dead(&self, queue: Option<&str>, page: Page) -> Result<Vec<DeadTask>> {
        self.timed("list_dead", async move {
            admin::list_dead(&self.pool, &self.sql, queue, page)
                .await
                .map_err(self.fail("list dead tasks"))
        })
        .await
    }

    async fn get_dead(&self, id: TaskId) -> Result<Option<DeadTask>> {
        self.timed("get_dead", async move {
            admin::get_dead(&self.pool, &self.sql, id)
                .await
                .map_err(self.fail("read a dead task"))
        })
        .await
    }

    async fn requeue_dead(&self, ids: &[TaskId]) -> Result<u64> {
        self.timed("requeue_dead", async move {
            if ids.is_empty() {
                return Ok(0);
            }
            self.requeue(Some(uuids(ids)), None).await
        })
        .await
    }

    async fn requeue_all_dead(&self, queue: Option<&str>) -> Result<u64> {
        self.timed("requeue_all_dead", async move {
            self.requeue(None, queue).await
        })
        .await
    }

    async fn purge_dead(&self, queue: Option<&str>) -> Result<u64> {
        self.timed("purge_dead", async move {
            let n: i64 = sqlx::query_scalar(q(&self.sql.purge_dead))
                .bind(queue)
                .fetch_one(&self.pool)
                .await
                .map_err(self.fail("purge dead tasks"))?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    async fn discard_dead(&self, ids: &[TaskId]) -> Result<u64> {
        self.timed("discard_dead", async move {
            let mut n = 0;
            // One statement, hence one transaction, per part.
            for chunk in ids.chunks(DISCARD_DEAD_BATCH) {
                let gone: i64 = sqlx::query_scalar(q(&self.sql.discard_dead))
                    .bind(uuids(chunk))
                    .fetch_one(&self.pool)
                    .await
                    .map_err(self.fail("discard dead tasks"))?;
                n += u64::try_from(gone).unwrap_or(0);
            }
            Ok(n)
        })
        .await
    }

    async fn counts(&self, queue: Option<&str>) -> Result<Counts> {
        self.timed("counts", async move {
            admin::counts(&self.pool, &self.sql, queue, self.now())
                .await
                .map_err(self.fail("count tasks"))
        })
        .await
    }

    async fn list(
        &self,
        state: TaskState,
        queue: Option<&str>,
        page: Page,
    ) -> Result<Vec<TaskRecord>> {
        self.timed("list", async move {
            admin::list(&self.pool, &self.sql, state, queue, page, self.now())
                .await
                .map_err(self.fail("list tasks"))
        })
        .await
    }

    async fn get_task(&self, id: TaskId) -> Result<Option<TaskRecord>> {
        self.timed("get_task", async move {
            admin::get_task(&self.pool, &self.sql, id, self.now())
                .await
                .map_err(self.fail("read a task"))
        })
        .await
    }

    async fn queues(&self) -> Result<Vec<String>> {
        self.timed("queues", async move {
            sqlx::query_scalar(q(&self.sql.queues))
                .fetch_all(&self.pool)
                .await
                .map_err(self.fail("list queues"))
        })
        .await
    }

    async fn flush(&self) -> Result<()> {
        self.timed("flush", async move {
            sqlx::query(q(&self.sql.flush))
                .execute(&self.pool)
                .await
                .map_err(self.fail("flush the store"))?;
            self.waiters.results.wake_all();
            Ok(())
        })
        .await
    }

    async fn set_paused(&self, queue: &str, paused: bool) -> Result<bool> {
        self.timed("set_paused", async move {
            check_text("queue name", queue)?;
            self.plane_set_paused(queue, paused).await
        })
        .await
    }

    async fn paused_queues(&self) -> Result<Vec<String>> {
        self.timed(
            "paused_queues",
            async move { self.plane_paused_queues().await },
        )
        .await
    }

    async fn purge_queue(&self, queue: &str) -> Result<u64> {
        self.timed("purge_queue", async move {
            check_text("queue name", queue)?;
            self.plane_purge_queue(queue).await
        })
        .await
    }

    async fn request_cancel(&self, id: TaskId, ttl: Duration) -> Result<CancelRequest> {
        self.timed("request_cancel", async move {
            self.plane_request_cancel(id, ttl).await
        })
        .await
    }

    async fn heartbeat(&self, beat: &Heartbeat) -> Result<Vec<TaskId>> {
        self.timed("heartbeat", async move { self.plane_heartbeat(beat).await })
            .await
    }

    async fn remove_worker(&self, worker_id: &str) -> Result<bool> {
        self.timed("remove_worker", async move {
            self.plane_remove_worker(worker_id).await
        })
        .await
    }

    async fn workers(&self) -> Result<Vec<WorkerStatus>> {
        self.timed("workers", async move { self.plane_workers().await })
            .await
    }

    async fn get_progress(&self, id: TaskId) -> Result<Option<Vec<u8>>> {
        self.timed(
            "get_progress",
            async move { self.plane_get_progress(id).await },
        )
        .await
    }
}

impl PostgresStorage {
    /// `requeue_dead` / `requeue_all_dead`.
    async fn requeue(&self, ids: Option<Vec<uuid::Uuid>>, queue: Option<&str>) -> Result<u64> {
        let (n, queues) =
            admin::requeue_dead(&self.pool, &self.sql, &self.channel, ids, queue, self.now())
                .await?;
        for queue in &queues {
            self.waiters.work.wake(queue);
        }
        Ok(n)
    }

    fn wait_ctx<'a>(&'a self, now: &'a (dyn Fn() -> i64 + Send + Sync)) -> wait::Ctx<'a> {
        wait::Ctx {
            pool: &self.pool,
            info: &self.info,
            sql: &self.sql,
            waiters: &self.waiters,
            now,
            poll: self.poll,
            bound: &self.bound,
            channel: &self.channel,
        }
    }
}
