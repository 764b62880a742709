//! The dead-letter queue. A dead task is a hash `P:{Q}:dead:<id>` (queue, task name, failure,
//! failed-at time, the envelope bytes) under its queue's hash tag, indexed in `P:{Q}:dead` by
//! the queue's dead-letter sequence number, so a queue's listing is oldest first. There is no
//! store-wide index: a listing of every queue merges each queue's first rows by failure time,
//! and calls by id find the queue as `locate.rs` describes. Purging and discarding delete the
//! hash and its index entry, and the task's failure result unless the id has a newer result
//! (`forget` in `dead.lua`).

use futures::future::try_join_all;
use queue_core::clock::from_millis;
use queue_core::storage::{DeadTask, Page, DISCARD_DEAD_BATCH};
use queue_core::{Envelope, Result, TaskId};
use redis::Value;

use crate::locate::DEAD;
use crate::store::RedisStorage;
use crate::wire::{self, next, push_envelope, Ordinals};

/// Dead tasks handled per script call by bulk operations.
const CHUNK: usize = 500;

impl RedisStorage {
    pub(crate) fn dead_row(row: Value) -> Result<DeadTask> {
        let mut row = wire::array(row)?.into_iter();
        let id = wire::task_id(next(&mut row)?)?;
        let queue = wire::text_lossy(next(&mut row)?)?;
        let task = wire::text_lossy(next(&mut row)?)?;
        let kind = wire::text_lossy(next(&mut row)?)?;
        let message = wire::text_lossy(next(&mut row)?)?;
        // Numbers that are not numbers (garbage in the record) read as 0.
        let attempts = wire::int(next(&mut row)?).unwrap_or(0);
        let failed_at = wire::int(next(&mut row)?).unwrap_or(0);
        let raw = wire::bytes(next(&mut row)?)?;
        Ok(DeadTask {
            id,
            queue,
            task,
            failure: wire::failure(&kind, message, attempts),
            failed_at: from_millis(failed_at),
            envelope: Envelope::decode(&raw).map_err(|e| e.to_string()),
        })
    }

    /// The dead tasks of `queue` from `offset`, at most `limit`, oldest first, each with its
    /// dead-letter sequence number in the queue.
    async fn dead_rows(
        &self,
        queue: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<(DeadTask, i64)>> {
        let mut inv = self.qcall(&self.scripts.dead_free, queue, self.now_ms());
        inv.arg("list").arg(queue).arg(offset).arg(limit);
        let rows: Vec<Value> = self.run(inv, "list dead tasks").await?;
        Ok(wire::parsed_rows(rows, "dead task", |row| {
            let mut fields = wire::array(row)?;
            let seq = fields.pop().map(wire::int).transpose()?.unwrap_or(0);
            Ok((Self::dead_row(Value::Array(fields))?, seq))
        }))
    }

    pub(crate) async fn dead_list(&self, queue: Option<&str>, page: Page) -> Result<Vec<DeadTask>> {
        if page.limit == 0 {
            return Ok(Vec::new());
        }
        let limit = u64::from(page.limit);
        if let Some(q) = queue {
            let rows = self.dead_rows(q, page.offset, limit).await?;
            return Ok(rows.into_iter().map(|(d, _)| d).collect());
        }
        // Each queue's first offset + limit dead tasks, merged by when they failed (then by
        // each queue's own order, then by queue name).
        let want = page.offset.saturating_add(limit);
        let queues = self.registered_queues().await?;
        let mut all = Vec::new();
        for rows in try_join_all(queues.iter().map(|q| self.dead_rows(q, 0, want))).await? {
            all.extend(rows);
        }
        all.sort_by(|(a, sa), (b, sb)| {
            (a.failed_at, *sa, &a.queue).cmp(&(b.failed_at, *sb, &b.queue))
        });
        Ok(all
            .into_iter()
            .skip(usize::try_from(page.offset).unwrap_or(usize::MAX))
            .take(page.limit as usize)
            .map(|(d, _)| d)
            .collect())
    }

    pub(crate) async fn dead_get(&self, id: TaskId) -> Result<Option<DeadTask>> {
        let Some((queue, _)) = self
            .locate_one(id)
            .await?
            .into_iter()
            .find(|(_, f)| f & DEAD != 0)
        else {
            return Ok(None);
        };
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(self.qkey(&queue, &format!("dead:{id}")))
            .arg(&["q", "task", "fk", "fm", "fa", "at", "raw"]);
        let fields: Vec<Value> = self.cmd(&cmd, "read a dead task").await?;
        if matches!(fields.first(), None | Some(Value::Nil)) {
            return Ok(None);
        }
        let mut row = vec![Value::BulkString(id.to_string().into_bytes())];
        row.extend(fields);
        Self::dead_row(Value::Array(row)).map(Some)
    }

    pub(crate) async fn dead_requeue(&self, ids: &[TaskId]) -> Result<u64> {
        let mut total = 0;
        for chunk in ids.chunks(CHUNK) {
            for (queue, indexes) in self.group_by_flag(chunk, DEAD).await? {
                total += self
                    .requeue_in(&queue, indexes.iter().map(|&i| chunk[i]))
                    .await?;
            }
        }
        Ok(total)
    }

    /// Requeues the dead tasks `ids` of `queue`.
    async fn requeue_in(&self, queue: &str, ids: impl Iterator<Item = TaskId>) -> Result<u64> {
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HGET")
                .arg(self.qkey(queue, &format!("dead:{id}")))
                .arg("raw");
        }
        let mut conn = self.conn().await?;
        let raws: Vec<Option<Vec<u8>>> = pipe
            .query_async(&mut *conn)
            .await
            .map_err(|e| self.redactor.error("read dead tasks", e))?;
        let now = self.now_ms();
        let mut inv = self.qcall(&self.scripts.dead, queue, now);
        inv.arg("requeue").arg(queue);
        let mut any = false;
        let mut ord = Ordinals::new(raws.len());
        for raw in raws.into_iter().flatten() {
            // Undecodable dead tasks stay where they are; so do tasks of another queue (the
            // script skips them).
            let Ok(mut env) = Envelope::decode(&raw) else {
                continue;
            };
            env.attempt = 0;
            env.deliveries = 0;
            env.eta = None;
            let raw = env.encode()?;
            push_envelope(&mut inv, &env, &raw, now, &mut ord);
            any = true;
        }
        if !any {
            return Ok(0);
        }
        let register = self.register_cmd([queue]);
        let (_, n): (i64, i64) = self
            .run_with(
                &register,
                Some(&self.registry_key()),
                inv,
                "requeue dead tasks",
            )
            .await?;
        Ok(wire::count64(n))
    }

    /// The queues `queue` names: itself, or every queue of the registry.
    async fn queues_of(&self, queue: Option<&str>) -> Result<Vec<String>> {
        match queue {
            Some(q) => Ok(vec![q.to_owned()]),
            None => self.registered_queues().await,
        }
    }

    pub(crate) async fn dead_requeue_all(&self, queue: Option<&str>) -> Result<u64> {
        let mut total = 0;
        for q in self.queues_of(queue).await? {
            let mut ids = Vec::new();
            loop {
                let mut inv = self.qcall(&self.scripts.dead_free, &q, self.now_ms());
                inv.arg("ids").arg(q.as_str()).arg(ids.len()).arg(CHUNK);
                let page: Vec<String> = self.run(inv, "list dead tasks").await?;
                let done = page.len() < CHUNK;
                for id in page {
                    ids.push(id.parse::<TaskId>()?);
                }
                if done {
                    break;
                }
            }
            for chunk in ids.chunks(CHUNK) {
                total += self.requeue_in(&q, chunk.iter().copied()).await?;
            }
        }
        Ok(total)
    }

    pub(crate) async fn dead_purge(&self, queue: Option<&str>) -> Result<u64> {
        let mut total = 0;
        for q in self.queues_of(queue).await? {
            loop {
                let mut inv = self.qcall(&self.scripts.dead_free, &q, self.now_ms());
                inv.arg("purge").arg(q.as_str()).arg(CHUNK);
                let (deleted, seen): (i64, i64) = self.run(inv, "purge dead tasks").await?;
                total += wire::count64(deleted);
                if seen == 0 {
                    break;
                }
            }
        }
        Ok(total)
    }

    /// `discard_dead`: one `discard` call of dead.lua per queue and [`DISCARD_DEAD_BATCH`]
    /// ids, each atomic. It runs as the `allow-oom` function: a full server can still shed
    /// dead tasks.
    pub(crate) async fn dead_discard(&self, ids: &[TaskId]) -> Result<u64> {
        let mut total = 0;
        for chunk in ids.chunks(DISCARD_DEAD_BATCH) {
            for (queue, indexes) in self.group_by_flag(chunk, DEAD).await? {
                let mut inv = self.qcall(&self.scripts.dead_free, &queue, self.now_ms());
                inv.arg("discard").arg(queue.as_str());
                for i in indexes {
                    inv.arg(chunk[i].to_string());
                }
                let n: i64 = self.run(inv, "discard dead tasks").await?;
                total += wire::count64(n);
            }
        }
        Ok(total)
    }
}
