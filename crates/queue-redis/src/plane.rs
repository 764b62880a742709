//! The control plane: paused queues, purging a queue, cancel requests, worker heartbeats and
//! task progress. Each operation is one script call (`lua/pause.lua`, `purge_queue.lua`,
//! `cancel.lua`, `heartbeat.lua`, `workers.lua`) or one read.
//!
//! * **Paused queues** each have the flag `P:{Q}:paused` (listed by reading the flags of the
//!   queues in the registry). The fetch script checks it in the same call, so
//!   a pause applies to every fetch that starts after it: a paused queue hands out nothing, not
//!   even its expired leases. `wait_for_work` on a paused queue blocks (see `wait.rs`); a resume
//!   wakes the queue's waiters through its wake-up list, as an enqueue does. The set lives on
//!   the server: it survives restarts of workers and of the store.
//! * **Purging** deletes ready and scheduled tasks in script calls of [`PURGE_BATCH`], each
//!   atomic (a task goes with every field of its, its id index entry and its unique key), so a
//!   queue of any size never blocks the server for long. A task enqueued while a large purge
//!   runs may be purged too.
//! * **Cancel requests** are the ZSET `P:{~workers}:cancel` (task id → kept until, by the
//!   store's clock), written after `cancel.lua` found the task pending in its queue.
//! * **Heartbeats** are the hash `P:{~workers}:workers` (worker id → its encoded
//!   [`WorkerStatus`]) with the ZSET `P:{~workers}:worker-exp` (worker id → live until). A
//!   heartbeat is one script call that stores the status and answers the cancel requests of
//!   the worker's running tasks, and one call per queue with progress to report (fenced by the
//!   lease; `extend.lua`), all sent at once. Expired entries are removed at most 100 per
//!   heartbeat or listing.
//! * **Progress** is a field of the task's queue hash `P:{Q}:progress`, deleted with the
//!   task's other fields when the task leaves the store (completion, dead letter, purge).

use std::time::Duration;

use futures::future::try_join_all;
use queue_core::clock::{duration_millis, from_millis};
use queue_core::storage::CancelRequest;
use queue_core::{Error, Heartbeat, Result, TaskId, WorkerStatus};
use redis::Value;

use crate::locate::group_by;
use crate::store::RedisStorage;
use crate::wire::{self, next};

/// Tasks deleted per script call by [`RedisStorage::purge_pending`].
pub(crate) const PURGE_BATCH: usize = 1000;

impl RedisStorage {
    pub(crate) async fn pause(&self, queue: &str, paused: bool) -> Result<bool> {
        let mut inv = self.qcall(&self.scripts.pause, queue, self.now_ms());
        inv.arg(queue).arg(if paused { "1" } else { "0" });
        let what = if paused {
            "pause a queue"
        } else {
            "resume a queue"
        };
        // A paused queue is listed from the registry, so it enters it.
        let register = self.register_cmd([queue]);
        let (_, changed): (i64, i64) = self
            .run_with(&register, Some(&self.registry_key()), inv, what)
            .await?;
        Ok(changed == 1)
    }

    pub(crate) async fn paused_list(&self) -> Result<Vec<String>> {
        let queues = self.registered_queues().await?;
        let flags = try_join_all(queues.iter().map(|q| async move {
            let mut cmd = redis::cmd("EXISTS");
            cmd.arg(self.qkey(q, "paused"));
            self.cmd::<i64>(&cmd, "list paused queues").await
        }))
        .await?;
        Ok(queues
            .into_iter()
            .zip(flags)
            .filter(|(_, f)| *f == 1)
            .map(|(q, _)| q)
            .collect())
    }

    pub(crate) async fn purge_pending(&self, queue: &str) -> Result<u64> {
        let mut total = 0;
        loop {
            let mut inv = self.qcall(&self.scripts.purge_queue, queue, self.now_ms());
            inv.arg(queue).arg(PURGE_BATCH);
            let n: i64 = self.run(inv, "purge a queue").await?;
            let n = wire::count64(n);
            total += n;
            if n < PURGE_BATCH as u64 {
                return Ok(total);
            }
        }
    }

    pub(crate) async fn cancel_request(&self, id: TaskId, ttl: Duration) -> Result<CancelRequest> {
        let now = self.now_ms();
        let Some(queue) = self.pending_queue(id).await? else {
            return Ok(CancelRequest::NotFound);
        };
        let mut inv = self.qcall(&self.scripts.cancel, &queue, now);
        inv.arg(&*queue).arg(id.to_string());
        let found: String = self.run(inv, "request a cancel").await?;
        let answer = match found.as_str() {
            "running" => CancelRequest::Running,
            "pending" => CancelRequest::Pending,
            "none" => return Ok(CancelRequest::NotFound),
            other => {
                return Err(Error::decode(
                    "redis reply",
                    format!("request_cancel answered {other:?}"),
                ))
            }
        };
        let mut inv = self.wcall(&self.scripts.heartbeat, "workers", now);
        inv.arg("cancel")
            .arg(id.to_string())
            .arg(now.saturating_add(duration_millis(ttl)));
        self.run::<i64>(inv, "request a cancel").await?;
        Ok(answer)
    }

    pub(crate) async fn beat(&self, beat: &Heartbeat) -> Result<Vec<TaskId>> {
        let now = self.now_ms();
        let status = WorkerStatus::of(beat, from_millis(now)).encode()?;
        let mut inv = self.wcall(&self.scripts.heartbeat, "workers", now);
        inv.arg("beat")
            .arg(&beat.worker.id)
            .arg(status)
            .arg(now.saturating_add(duration_millis(beat.ttl)));
        for task in &beat.running {
            inv.arg(task.id.to_string());
        }
        let ids: Vec<TaskId> = beat.progress.iter().map(|(lease, _)| lease.id).collect();
        let queues = self.lease_queues(&ids).await?;
        let groups = group_by(&beat.progress, |i, _| queues[i].clone());
        let progress = try_join_all(groups.iter().map(|(queue, indexes)| async move {
            let mut inv = self.qcall(&self.scripts.extend, queue, now);
            inv.arg(&**queue).arg("progress");
            for (lease, progress) in indexes.iter().map(|&i| &beat.progress[i]) {
                inv.arg(lease.id.to_string())
                    .arg(lease.token.0)
                    .arg(progress.as_slice());
            }
            self.run::<i64>(inv, "report progress").await
        }));
        let (cancelled, _) =
            futures::try_join!(self.run::<Vec<Value>>(inv, "heartbeat"), progress)?;
        cancelled.into_iter().map(wire::task_id).collect()
    }

    pub(crate) async fn worker_remove(&self, worker_id: &str) -> Result<bool> {
        let mut inv = self.wcall(&self.scripts.workers, "workers", self.now_ms());
        inv.arg("remove").arg(worker_id);
        let n: i64 = self.run(inv, "remove a worker").await?;
        Ok(n > 0)
    }

    pub(crate) async fn live_workers(&self) -> Result<Vec<WorkerStatus>> {
        let mut inv = self.wcall(&self.scripts.workers, "workers", self.now_ms());
        inv.arg("list");
        let reply: Vec<Value> = self.run(inv, "list workers").await?;
        if reply.len() % 2 != 0 {
            return Err(Error::decode(
                "redis reply",
                "list workers answered a partial worker",
            ));
        }
        let mut live = Vec::with_capacity(reply.len() / 2);
        let mut row = reply.into_iter();
        while row.len() > 0 {
            let id = String::from_utf8_lossy(&wire::bytes(next(&mut row)?)?).into_owned();
            let raw = wire::bytes(next(&mut row)?)?;
            match WorkerStatus::decode(&raw) {
                Ok(status) => live.push(status),
                // Another version's or a stray writer's entry: not a reason to hide the rest.
                Err(error) => {
                    tracing::warn!(worker = %id, %error, "skipping an unreadable worker heartbeat")
                }
            }
        }
        live.sort_by(|a, b| (a.info.started_at, &a.info.id).cmp(&(b.info.started_at, &b.info.id)));
        Ok(live)
    }

    pub(crate) async fn progress(&self, id: TaskId) -> Result<Option<Vec<u8>>> {
        let Some(queue) = self.pending_queue(id).await? else {
            return Ok(None);
        };
        let mut inv = self.qcall(&self.scripts.admin_read, &queue, self.now_ms());
        inv.arg("progress").arg(&*queue).arg(id.to_string());
        self.run(inv, "read progress").await
    }
}
