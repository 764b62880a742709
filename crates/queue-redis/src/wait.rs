//! Results, and waiting without polling.
//!
//! # Idle consumers
//!
//! `wait_for_work` first asks (one read-only script) whether work is due and, if not, how long
//! until the next scheduled task or lease expiry. It then blocks with `BLPOP` on the queue's
//! wake-up list `P:{Q}:wake` for `min(timeout, block_timeout, time to next)`. Every script that
//! makes work available (enqueue, retry, defer, reschedule, requeue) pushes a token there (at
//! most 32 are kept: past that the list is trimmed to 16), so a waiter wakes within a round
//! trip of new work.
//!
//! On a paused queue the script answers "paused" whatever the queue holds, and the wait blocks
//! for `min(timeout, block_timeout)`. A token it pops then (from an enqueue while paused, or a
//! resume) sends it back to the script: it ends if the queue was resumed, and blocks again
//! while it stays paused, so it never returns at once, again and again, while there is work it
//! may not take. A resume pushes tokens like an enqueue (see `lua/pause.lua`).
//!
//! # Result waiters
//!
//! A result lives under its task's queue's hash tag (`P:{Q}:results`), found by id alone as
//! `locate.rs` describes. `wait_result` reads the result once; if there is none and the task
//! is pending in queue `Q`, it enters the id in the ZSET `P:{Q}:result-waiters` (score: until
//! when it waits) and reads again, then blocks with `BLMOVE wake wake LEFT RIGHT` on
//! `P:{Q}:result-wake:<id>`. While the task is pending in no queue (not enqueued yet), it
//! looks again every [`UNKNOWN_POLL`]: without a store-wide index nothing could wake it. The completion script pushes one token
//! there (with a 30 s expiry) only for ids in that set, and takes them out; when nobody waits
//! at all a batch of results costs one `ZCARD`. A result written between the read and the block
//! is never missed (the id was entered before the read); `purge_expired` drops the entries of
//! waits that ended without a result. `BLMOVE` from a list to itself hands the token back at once, so every
//! waiter for the same id wakes, not just one.
//!
//! # Blocking connections
//!
//! On a Redis Cluster each wait takes a cluster connection of its own (at most
//! `blocking_pool_size` at a time), so a `BLPOP` blocks on the master that owns its queue and
//! holds nothing another wait needs: the wake-ups of queues on different masters are
//! independent.
//!
//! A blocking command holds its connection until it returns, so blocking waits use their own
//! pool (`blocking_pool_size`) without a response timeout; each wait is bounded by the caller's
//! timeout plus a margin instead. If a wait is cancelled (its future dropped) or fails, its
//! connection is closed rather than returned to the pool, so nobody inherits a connection with a
//! `BLPOP` still pending on it.

use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::{PoolError, Timeouts};
use queue_core::clock::duration_millis;
use queue_core::storage::StoredResult;
use queue_core::{Envelope, Result, TaskId};
use redis::Value;
use tokio::time::Instant;

use crate::hot::OUTBOX_GRACE_MS;
use crate::locate::{PENDING, RESULT};
use crate::store::RedisStorage;
use crate::store::{BlockingPool, ClusterBlocking};
use crate::wire;

/// What `lua/peek.lua` answers for a paused queue.
const PAUSED: i64 = -2;

/// How often `wait_result` looks for a task that is pending in no queue (see the module docs).
const UNKNOWN_POLL: Duration = Duration::from_millis(100);

/// Extra time a blocking command is given beyond its own server-side timeout.
const BLOCK_MARGIN: Duration = Duration::from_secs(2);

/// A connection of the blocking pool that is closed, not recycled, unless the command on it
/// completed.
struct Blocking {
    conn: Option<deadpool_redis::Connection>,
    done: bool,
}

impl Drop for Blocking {
    fn drop(&mut self) {
        if !self.done {
            if let Some(conn) = self.conn.take() {
                drop(deadpool_redis::Connection::take(conn));
            }
        }
    }
}

impl RedisStorage {
    /// Runs a blocking command (`BLPOP` / `BLMOVE`) that waits at most `wait` on the server.
    /// Returns whether it popped a token.
    async fn block_on(&self, cmd: redis::Cmd, wait: Duration, what: &str) -> Result<bool> {
        match &self.blocking {
            BlockingPool::Single(pool) => self.block_on_single(pool, cmd, wait, what).await,
            BlockingPool::Cluster(pool) => self.block_on_cluster(pool, cmd, wait, what).await,
        }
    }

    async fn block_on_single(
        &self,
        pool: &deadpool_redis::Pool,
        cmd: redis::Cmd,
        wait: Duration,
        what: &str,
    ) -> Result<bool> {
        let timeouts = Timeouts {
            wait: Some(wait),
            create: Some(self.connect_timeout),
            recycle: Some(self.connect_timeout),
        };
        let conn = match pool.timeout_get(&timeouts).await {
            Ok(conn) => conn,
            // Every blocking connection stayed busy for the whole wait (raise
            // `blocking_pool_size`); the caller checks again.
            Err(PoolError::Timeout(_)) => return Ok(false),
            Err(e) => return Err(self.redactor.error(what, e)),
        };
        let mut guard = Blocking {
            conn: Some(conn),
            done: false,
        };
        let Some(conn) = guard.conn.as_mut() else {
            return Ok(false);
        };
        let reply =
            tokio::time::timeout(wait + BLOCK_MARGIN, cmd.query_async::<Value>(&mut **conn)).await;
        match reply {
            Ok(Ok(value)) => {
                guard.done = true;
                Ok(!matches!(value, Value::Nil))
            }
            Ok(Err(e)) => Err(self.redactor.error(what, e)),
            Err(_) => Err(self
                .redactor
                .error(what, "the server did not answer a blocking wait in time")),
        }
    }

    /// On a cluster: a cluster connection of its own per wait (a blocking command holds the
    /// connection to its key's master), routed by the key like any call; kept for the next
    /// wait only when the command completed.
    async fn block_on_cluster(
        &self,
        pool: &ClusterBlocking,
        cmd: redis::Cmd,
        wait: Duration,
        what: &str,
    ) -> Result<bool> {
        let Ok(Ok(_permit)) =
            tokio::time::timeout(wait, Arc::clone(&pool.permits).acquire_owned()).await
        else {
            return Ok(false);
        };
        let idle = pool.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => tokio::time::timeout(self.connect_timeout, pool.client.get_async_connection())
                .await
                .map_err(|_| {
                    self.redactor
                        .error(what, "connecting to the cluster timed out")
                })?
                .map_err(|e| self.redactor.error(what, e))?,
        };
        let reply =
            tokio::time::timeout(wait + BLOCK_MARGIN, cmd.query_async::<Value>(&mut conn)).await;
        match reply {
            Ok(Ok(value)) => {
                pool.idle
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(conn);
                Ok(!matches!(value, Value::Nil))
            }
            Ok(Err(e)) => Err(self.redactor.error(what, e)),
            Err(_) => Err(self
                .redactor
                .error(what, "the server did not answer a blocking wait in time")),
        }
    }

    pub(crate) async fn wait_work(&self, queue: &str, timeout: Duration) -> Result<()> {
        let deadline = queue_core::clock::deadline(timeout.min(self.block_timeout));
        loop {
            let mut inv = self.qcall(&self.scripts.peek, queue, self.now_ms());
            inv.arg(queue);
            let until: i64 = self.run(inv, "checking for work").await?;
            if until == 0 {
                return Ok(());
            }
            let mut wait = deadline.saturating_duration_since(Instant::now());
            if let Ok(ms) = u64::try_from(until) {
                wait = wait.min(Duration::from_millis(ms));
            }
            if wait < Duration::from_millis(1) {
                return Ok(());
            }
            let mut cmd = redis::cmd("BLPOP");
            cmd.arg(self.qkey(queue, "wake")).arg(seconds(wait));
            let woken = self.block_on(cmd, wait, "waiting for work").await?;
            // A token popped while paused: look again (resumed?) rather than return at once.
            if !(woken && until == PAUSED) {
                return Ok(());
            }
        }
    }

    /// The result of `id` in queue `queue`, if any (and unexpired).
    async fn read_result_in(&self, queue: &str, id: TaskId) -> Result<Option<StoredResult>> {
        let mut cmd = redis::cmd("HGET");
        cmd.arg(self.qkey(queue, "results")).arg(id.to_string());
        let raw: Option<Vec<u8>> = self.cmd(&cmd, "reading a result").await?;
        Ok(raw.and_then(|raw| parse_result(&raw, self.now_ms())))
    }

    /// The result of `id` in the queues `places` says have one, first by queue name; and the
    /// queue where `id` is pending, if any.
    async fn result_in(
        &self,
        id: TaskId,
        places: &[(String, u8)],
    ) -> Result<(Option<StoredResult>, Option<String>)> {
        for (q, _) in places.iter().filter(|(_, f)| f & RESULT != 0) {
            if let Some(result) = self.read_result_in(q, id).await? {
                return Ok((Some(result), None));
            }
        }
        let pending = places
            .iter()
            .find(|(_, f)| f & PENDING != 0)
            .map(|(q, _)| q.clone());
        Ok((None, pending))
    }

    pub(crate) async fn read_result(&self, id: TaskId) -> Result<Option<StoredResult>> {
        let places = self.locate_one(id).await?;
        Ok(self.result_in(id, &places).await?.0)
    }

    /// Flags `id` as awaited in `queue` for `wait` (so its completion pushes a wake-up
    /// token), then reads its result: one round trip, in that order.
    async fn flag_and_read(
        &self,
        queue: &str,
        id: TaskId,
        wait: Duration,
    ) -> Result<Option<StoredResult>> {
        let until = self
            .now_ms()
            .saturating_add(duration_millis(wait + BLOCK_MARGIN * 2));
        let id = id.to_string();
        let mut pipe = redis::pipe();
        pipe.cmd("ZADD")
            .arg(self.qkey(queue, "result-waiters"))
            .arg(until)
            .arg(&id)
            .ignore()
            .cmd("HGET")
            .arg(self.qkey(queue, "results"))
            .arg(&id);
        let mut conn = self.conn().await?;
        let (raw,): (Option<Vec<u8>>,) = pipe
            .query_async(&mut *conn)
            .await
            .map_err(|e| self.redactor.error("reading a result", e))?;
        Ok(raw.and_then(|raw| parse_result(&raw, self.now_ms())))
    }

    pub(crate) async fn wait_for_result(
        &self,
        id: TaskId,
        timeout: Duration,
    ) -> Result<Option<StoredResult>> {
        let deadline = queue_core::clock::deadline(timeout);
        let mut stale = false;
        loop {
            let places = self.locate_one(id).await?;
            let (result, pending) = self.result_in(id, &places).await?;
            if result.is_some() {
                return Ok(result);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let wait = (deadline - now).min(self.block_timeout);
            let Some(queue) = pending else {
                // Pending nowhere (not enqueued yet, or gone without a result): look again.
                tokio::time::sleep(wait.min(UNKNOWN_POLL)).await;
                continue;
            };
            if let Some(result) = self.flag_and_read(&queue, id, wait).await? {
                return Ok(Some(result));
            }
            if stale {
                // Woken, yet no (unexpired) result: a token left from an older write. Do not
                // spin on it; it expires within 30 s.
                tokio::time::sleep(wait.min(Duration::from_millis(100))).await;
                stale = false;
                continue;
            }
            if wait < Duration::from_millis(1) {
                continue;
            }
            let wake = self.qkey(&queue, &format!("result-wake:{id}"));
            let mut cmd = redis::cmd("BLMOVE");
            cmd.arg(&wake)
                .arg(&wake)
                .arg("LEFT")
                .arg("RIGHT")
                .arg(seconds(wait));
            stale = self.block_on(cmd, wait, "waiting for a result").await?;
        }
    }

    pub(crate) async fn remove_result(&self, id: TaskId) -> Result<bool> {
        let mut any = false;
        for (q, _) in self.locate_one(id).await? {
            let mut inv = self.qcall(&self.scripts.delete_result, &q, self.now_ms());
            inv.arg(q.as_str()).arg(id.to_string());
            let n: i64 = self.run(inv, "deleting a result").await?;
            any |= n > 0;
        }
        Ok(any)
    }

    /// Removes at most `max` expired results (over all queues) and `max` expired locks and
    /// revocations; moves follow-ups left in outboxes (see `hot.rs`). Returns how many
    /// results and locks were removed.
    pub(crate) async fn purge_expired_entries(&self, max: usize) -> Result<u64> {
        let mut removed = 0;
        let mut budget = max;
        for q in self.registered_queues().await? {
            if budget > 0 {
                let mut inv = self.qcall(&self.scripts.purge_expired, &q, self.now_ms());
                inv.arg("queue").arg(q.as_str()).arg(budget);
                let n = wire::count64(self.run::<i64>(inv, "purging expired results").await?);
                removed += n;
                budget = budget.saturating_sub(usize::try_from(n).unwrap_or(usize::MAX));
            }
            self.move_left_follow_ups(&q, max).await?;
        }
        let mut inv = self.wcall(&self.scripts.purge_expired, "locks", self.now_ms());
        inv.arg("locks").arg(max);
        removed += wire::count64(self.run::<i64>(inv, "purging expired locks").await?);
        let mut inv = self.wcall(&self.scripts.purge_expired, "revoked", self.now_ms());
        inv.arg("revoked").arg(max);
        self.run::<i64>(inv, "purging lapsed revocations").await?;
        Ok(removed)
    }

    /// Moves at most `max` follow-ups that waited in `queue`'s outbox longer than
    /// [`OUTBOX_GRACE_MS`] to their queues (their completing client died before it moved them).
    async fn move_left_follow_ups(&self, queue: &str, max: usize) -> Result<()> {
        let now = self.now_ms();
        let mut inv = self.qcall(&self.scripts.purge_expired, queue, now);
        inv.arg("outbox")
            .arg(queue)
            .arg(max.max(1))
            .arg(now.saturating_sub(OUTBOX_GRACE_MS));
        let reply: Vec<Value> = self.run(inv, "reading an outbox").await?;
        if reply.is_empty() {
            return Ok(());
        }
        let mut envelopes = Vec::new();
        let mut unreadable = Vec::new();
        let mut row = reply.into_iter();
        while let (Some(id), Some(raw)) = (row.next(), row.next()) {
            let id = wire::bytes(id)?;
            match Envelope::decode(&wire::bytes(raw)?) {
                Ok(env) => envelopes.push(env),
                Err(error) => {
                    tracing::warn!(%error, queue, "removing an unreadable entry of an outbox");
                    unreadable.push(id);
                }
            }
        }
        if !unreadable.is_empty() {
            let mut del = redis::cmd("HDEL");
            del.arg(self.qkey(queue, "outbox")).arg(unreadable);
            self.cmd::<i64>(&del, "clear an outbox").await?;
        }
        if !envelopes.is_empty() {
            tracing::info!(
                queue,
                n = envelopes.len(),
                "moving follow-ups a completing client left in its outbox"
            );
            self.move_follow_ups(queue, envelopes).await;
        }
        Ok(())
    }
}

/// Parses a stored result (`"<expires ms>|<fail kind>|<attempts>|<payload>"`, see
/// `lua/common.lua`); `None` if it expired by `now` or is malformed.
pub(crate) fn parse_result(raw: &[u8], now: i64) -> Option<StoredResult> {
    let mut parts = raw.splitn(4, |b| *b == b'|');
    let expires = std::str::from_utf8(parts.next()?).ok()?;
    let kind = std::str::from_utf8(parts.next()?).ok()?;
    let attempts = std::str::from_utf8(parts.next()?).ok()?;
    let payload = parts.next()?;
    if let Ok(exp) = expires.parse::<i64>() {
        if exp <= now {
            return None;
        }
    }
    Some(if kind.is_empty() {
        StoredResult::Success(payload.to_vec())
    } else {
        StoredResult::Failure(wire::failure(
            kind,
            String::from_utf8_lossy(payload).into_owned(),
            attempts.parse().unwrap_or(0),
        ))
    })
}

/// A blocking command's timeout in seconds, never 0 (which would mean "forever").
fn seconds(wait: Duration) -> String {
    format!("{:.3}", wait.as_secs_f64().max(0.001))
}
