//! The dead-letter queue. A dead task is a hash `P:dead:<id>` (queue, task name, failure,
//! failed-at time, the envelope bytes), indexed in `P:dead` (all queues) and `P:{Q}:dead`
//! by a dead-letter sequence number, so listings are oldest first. Purging and discarding
//! delete the hash and both index entries, and the task's failure result unless the id has a
//! newer result (`forget` in `dead.lua`).

use queue_core::clock::from_millis;
use queue_core::storage::{DeadTask, Page, DISCARD_DEAD_BATCH};
use queue_core::{Envelope, Result, TaskId};
use redis::Value;

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

    pub(crate) async fn dead_list(&self, queue: Option<&str>, page: Page) -> Result<Vec<DeadTask>> {
        if page.limit == 0 {
            return Ok(Vec::new());
        }
        let mut inv = self.call(&self.scripts.dead_free, self.now_ms());
        inv.arg("list")
            .arg(queue.unwrap_or(""))
            .arg(page.offset)
            .arg(page.limit);
        let rows: Vec<Value> = self.run(inv, "list dead tasks").await?;
        Ok(wire::parsed_rows(rows, "dead task", Self::dead_row))
    }

    pub(crate) async fn dead_get(&self, id: TaskId) -> Result<Option<DeadTask>> {
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(self.key(&format!("dead:{id}")))
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
            let mut pipe = redis::pipe();
            for id in chunk {
                pipe.cmd("HGET")
                    .arg(self.key(&format!("dead:{id}")))
                    .arg("raw");
            }
            let mut conn = self.conn().await?;
            let raws: Vec<Option<Vec<u8>>> = pipe
                .query_async(&mut *conn)
                .await
                .map_err(|e| self.redactor.error("read dead tasks", e))?;
            let now = self.now_ms();
            let mut inv = self.call(&self.scripts.dead, now);
            inv.arg("requeue");
            let mut any = false;
            let mut ord = Ordinals::new(raws.len());
            for raw in raws.into_iter().flatten() {
                // Undecodable dead tasks stay where they are.
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
            if any {
                let n: i64 = self.run_on(&mut *conn, inv, "requeue dead tasks").await?;
                total += wire::count64(n);
            }
        }
        Ok(total)
    }

    pub(crate) async fn dead_requeue_all(&self, queue: Option<&str>) -> Result<u64> {
        let mut ids = Vec::new();
        loop {
            let mut inv = self.call(&self.scripts.dead_free, self.now_ms());
            inv.arg("ids")
                .arg(queue.unwrap_or(""))
                .arg(ids.len())
                .arg(CHUNK);
            let page: Vec<String> = self.run(inv, "list dead tasks").await?;
            let done = page.len() < CHUNK;
            for id in page {
                ids.push(id.parse::<TaskId>()?);
            }
            if done {
                break;
            }
        }
        self.dead_requeue(&ids).await
    }

    pub(crate) async fn dead_purge(&self, queue: Option<&str>) -> Result<u64> {
        let mut total = 0;
        loop {
            let mut inv = self.call(&self.scripts.dead_free, self.now_ms());
            inv.arg("purge").arg(queue.unwrap_or("")).arg(CHUNK);
            let (deleted, seen): (i64, i64) = self.run(inv, "purge dead tasks").await?;
            total += wire::count64(deleted);
            if seen == 0 {
                return Ok(total);
            }
        }
    }

    /// `discard_dead`: one `discard` call of dead.lua per [`DISCARD_DEAD_BATCH`] ids, each
    /// atomic. It runs as the `allow-oom` function: a full server can still shed dead tasks.
    pub(crate) async fn dead_discard(&self, ids: &[TaskId]) -> Result<u64> {
        let mut total = 0;
        for chunk in ids.chunks(DISCARD_DEAD_BATCH) {
            let mut inv = self.call(&self.scripts.dead_free, self.now_ms());
            inv.arg("discard");
            for id in chunk {
                inv.arg(id.to_string());
            }
            let n: i64 = self.run(inv, "discard dead tasks").await?;
            total += wire::count64(n);
        }
        Ok(total)
    }
}
