//! The [`Storage`] implementation: each call encodes its input, then hands it to the writer
//! (writes) or the read pool (reads).
//!
//! # Cancel safety
//!
//! A write is queued for the writer as soon as it is called; dropping the call's future does
//! not take it back. An enqueue whose caller gave up may still be stored (at-least-once), and a
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

use crate::admin::{self, DiscardDead, Flush, RequeueDead};
use crate::complete::{Complete, Extend};
use crate::control::{revoke_key, Arg, CheckRevoked, Exec, PurgeExpired, RateLimit};
use crate::enqueue::NewTask;
use crate::error::Context;
use crate::fetch::Fetch;
use crate::{plane, wait, SqliteStorage};

#[async_trait]
impl Storage for SqliteStorage {
    fn backend(&self) -> &'static str {
        crate::error::BACKEND
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.shared.clock.clone()
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    async fn enqueue(&self, batch: Vec<Envelope>) -> Result<Vec<EnqueueOutcome>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let rows = batch
            .into_iter()
            .map(NewTask::from_envelope)
            .collect::<Result<Vec<_>>>()?;
        self.writer.enqueue(rows).await
    }

    async fn fetch(&self, queue: &str, max: usize, lease: Duration) -> Result<Vec<Delivery>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let queue = queue.to_owned();
        let revocations = &self.shared.revocations;
        let version = revocations.version();
        let fetched = self.writer.call(Fetch { queue, max, lease }).await?;
        // The claim read whether any revocation exists: `check_revoked` of this batch, which
        // follows, uses that answer instead of a read of its own.
        if let Some(any) = fetched.revocations {
            revocations.record(any, version);
        }
        Ok(fetched.deliveries)
    }

    async fn wait_for_work(&self, queue: &str, timeout: Duration) -> Result<()> {
        wait::for_work(
            &self.pool,
            &self.shared,
            queue,
            &self.wal,
            timeout,
            self.poll,
        )
        .await
    }

    async fn complete(&self, batch: Vec<Completion>) -> Result<Vec<AckStatus>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let settled = Settlement::all(batch, NewTask::from_envelope)?;
        self.writer.call(Complete(settled)).await
    }

    async fn extend(&self, leases: &[Lease], lease: Duration) -> Result<Vec<AckStatus>> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let leases = leases.to_vec();
        self.writer.call(Extend { leases, lease }).await
    }

    async fn requeue_expired(&self, queue: &str, max: usize) -> Result<u64> {
        let exec = Exec::new(
            "UPDATE tasks SET state = 0, lease_token = NULL WHERE seq IN (SELECT seq FROM tasks \
             WHERE queue = ?1 AND state <> 0 AND wake_at <= ?2 AND state = 2 ORDER BY wake_at LIMIT +?3)",
            vec![Arg::Text(queue.to_owned()), Arg::Now, Arg::Int(sql_limit(max))],
        );
        self.writer.call(exec.waking()).await
    }

    async fn get_result(&self, id: TaskId) -> Result<Option<StoredResult>> {
        wait::get_result(&self.pool, id, self.now()).await
    }

    async fn wait_result(&self, id: TaskId, timeout: Duration) -> Result<Option<StoredResult>> {
        wait::for_result(&self.pool, &self.shared, &self.wal, id, timeout, self.poll).await
    }

    async fn delete_result(&self, id: TaskId) -> Result<bool> {
        let exec = Exec::new("DELETE FROM results WHERE id = ?1", vec![Arg::id(id)]);
        Ok(self.writer.call(exec).await? > 0)
    }

    async fn purge_expired(&self, max: usize) -> Result<u64> {
        self.writer.call(PurgeExpired(sql_limit(max))).await
    }

    async fn reschedule(&self, id: TaskId, eta: DateTime<Utc>) -> Result<bool> {
        let exec = Exec::new(
            "UPDATE tasks SET state = CASE WHEN ?1 <= ?2 THEN 0 ELSE 1 END, run_at = ?1, \
             wake_at = ?1 WHERE id = ?3 AND state <> 2",
            vec![Arg::Int(to_millis(eta)), Arg::Now, Arg::id(id)],
        );
        Ok(self.writer.call(exec.waking()).await? > 0)
    }

    async fn revoke(&self, revocation: Revocation) -> Result<()> {
        self.shared
            .revocations
            .writing(self.store_revocation(revocation))
            .await
    }

    async fn restore(&self, target: &RevokeTarget) -> Result<bool> {
        let (kind, target) = revoke_key(target);
        let exec = Exec::new(
            "DELETE FROM revocations WHERE kind = ?1 AND target = ?2",
            vec![Arg::Int(kind), Arg::Text(target)],
        );
        Ok(self.writer.call(exec).await? > 0)
    }

    async fn check_revoked(&self, tasks: &[(TaskId, &str)]) -> Result<Vec<bool>> {
        // Fast path: nothing is revoked (the usual case), as the last fetch or a read says.
        let any = || async {
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM revocations)")
                .fetch_one(&self.pool)
                .await
                .ctx("read revocations")
        };
        let each = || {
            let tasks = tasks
                .iter()
                .map(|(id, name)| (*id, (*name).to_owned()))
                .collect();
            self.writer.call(CheckRevoked(tasks))
        };
        self.shared
            .revocations
            .check_revoked(tasks.len(), any, each)
            .await
    }

    async fn acquire_lock(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
        let exec = Exec::new(
            "INSERT INTO locks (name, owner, expires_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at \
             WHERE locks.owner = excluded.owner OR locks.expires_at <= ?4",
            vec![
                Arg::Text(name.to_owned()),
                Arg::Text(owner.to_owned()),
                Arg::NowPlus(duration_millis(ttl)),
                Arg::Now,
            ],
        );
        Ok(self.writer.call(exec).await? > 0)
    }

    async fn release_lock(&self, name: &str, owner: &str) -> Result<bool> {
        let exec = Exec::new(
            "DELETE FROM locks WHERE name = ?1 AND owner = ?2 AND expires_at > ?3",
            vec![
                Arg::Text(name.to_owned()),
                Arg::Text(owner.to_owned()),
                Arg::Now,
            ],
        );
        Ok(self.writer.call(exec).await? > 0)
    }

    async fn flush_locks(&self) -> Result<u64> {
        self.writer
            .call(Exec::new("DELETE FROM locks", Vec::new()))
            .await
    }

    async fn rate_limit(&self, key: &str, limit: u32, window: Duration) -> Result<RateDecision> {
        let key = key.to_owned();
        self.writer.call(RateLimit { key, limit, window }).await
    }

    async fn list_dead(&self, queue: Option<&str>, page: Page) -> Result<Vec<DeadTask>> {
        admin::list_dead(&self.pool, queue, page).await
    }

    async fn get_dead(&self, id: TaskId) -> Result<Option<DeadTask>> {
        admin::get_dead(&self.pool, id).await
    }

    async fn requeue_dead(&self, ids: &[TaskId]) -> Result<u64> {
        let work = RequeueDead {
            ids: Some(ids.to_vec()),
            queue: None,
        };
        self.writer.call(work).await
    }

    async fn requeue_all_dead(&self, queue: Option<&str>) -> Result<u64> {
        let work = RequeueDead {
            ids: None,
            queue: queue.map(str::to_owned),
        };
        self.writer.call(work).await
    }

    async fn purge_dead(&self, queue: Option<&str>) -> Result<u64> {
        self.writer
            .call(admin::PurgeDead(queue.map(str::to_owned)))
            .await
    }

    async fn discard_dead(&self, ids: &[TaskId]) -> Result<u64> {
        let mut n = 0;
        for chunk in ids.chunks(DISCARD_DEAD_BATCH) {
            n += self.writer.call(DiscardDead(chunk.to_vec())).await?;
        }
        Ok(n)
    }

    async fn counts(&self, queue: Option<&str>) -> Result<Counts> {
        admin::counts(&self.pool, queue, self.now()).await
    }

    async fn list(
        &self,
        state: TaskState,
        queue: Option<&str>,
        page: Page,
    ) -> Result<Vec<TaskRecord>> {
        admin::list(&self.pool, state, queue, page, self.now()).await
    }

    async fn get_task(&self, id: TaskId) -> Result<Option<TaskRecord>> {
        admin::get_task(&self.pool, id, self.now()).await
    }

    async fn queues(&self) -> Result<Vec<String>> {
        admin::queues(&self.pool).await
    }

    async fn flush(&self) -> Result<()> {
        self.writer.call(Flush).await
    }

    async fn set_paused(&self, queue: &str, paused: bool) -> Result<bool> {
        let queue = queue.to_owned();
        self.writer.call(plane::SetPaused { queue, paused }).await
    }

    async fn paused_queues(&self) -> Result<Vec<String>> {
        plane::paused_queues(&self.pool).await
    }

    async fn purge_queue(&self, queue: &str) -> Result<u64> {
        self.writer.call(plane::PurgeQueue(queue.to_owned())).await
    }

    async fn request_cancel(&self, id: TaskId, ttl: Duration) -> Result<CancelRequest> {
        self.writer.call(plane::RequestCancel { id, ttl }).await
    }

    async fn heartbeat(&self, beat: &Heartbeat) -> Result<Vec<TaskId>> {
        let beat = plane::Beat::new(beat, self.now())?;
        self.writer.call(beat).await
    }

    async fn remove_worker(&self, worker_id: &str) -> Result<bool> {
        self.writer
            .call(plane::RemoveWorker(worker_id.to_owned()))
            .await
    }

    async fn workers(&self) -> Result<Vec<WorkerStatus>> {
        plane::workers(&self.pool, self.now()).await
    }

    async fn get_progress(&self, id: TaskId) -> Result<Option<Vec<u8>>> {
        plane::get_progress(&self.pool, id).await
    }
}

impl SqliteStorage {
    /// Writes a revocation (see `Storage::revoke`).
    async fn store_revocation(&self, revocation: Revocation) -> Result<()> {
        let (kind, target) = revoke_key(&revocation.target);
        let exec = Exec::new(
            "INSERT OR REPLACE INTO revocations (kind, target, until, once) VALUES (?1, ?2, ?3, ?4)",
            vec![
                Arg::Int(kind),
                Arg::Text(target),
                Arg::opt_int(revocation.until.map(to_millis)),
                Arg::Int(i64::from(revocation.once)),
            ],
        );
        self.writer.call(exec).await.map(|_| ())
    }
}
