//! The hot path: enqueue, fetch, complete, extend, requeue expired leases. One script call per
//! batch and queue: a call works on one queue's keys (one Redis Cluster slot), so a batch that
//! spans queues is a call per queue.
//!
//! **Follow-ups for other queues** (a pipeline's next stage on another queue) cannot be
//! written in the completion's call. The call keeps them in the completed task's own queue,
//! in `P:{Q}:outbox`, atomically with the outcome; right after it, the client enqueues them
//! into their queues (by id: a second try is a duplicate while the first is pending) and
//! removes them from the outbox. If the client dies in between, `purge_expired` (every
//! consumer, once a minute) moves what has waited longer than [`OUTBOX_GRACE`]. So a
//! follow-up is never lost; after such a crash it may run twice, like any task whose
//! worker died.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::future;
use queue_core::clock::{duration_millis, from_millis, to_millis};
use queue_core::storage::{AckStatus, Completion, Delivery, EnqueueOutcome, Lease, Outcome};
use queue_core::{Envelope, Error, LeaseToken, Result, TaskId};
use redis::Value;

use crate::scripts::Call;
use crate::store::RedisStorage;
use crate::wire::{self, kind_name, next, push_envelope, Ordinals};

/// How much longer than its TTL a lock or rate window really lives in Redis. Reads compare
/// the stored expiry with the store's clock; the real expiry only cleans up.
pub(crate) const EXPIRY_SLACK_MS: i64 = 60_000;

/// Entries per task in the reply of `lua/fetch.lua`: id, raw, token, deliveries, attempts.
const FETCH_FIELDS: usize = 5;

/// Envelopes per enqueue script call; larger batches are pipelined calls of this size.
const ENQUEUE_CHUNK: usize = 256;

/// Pipelined enqueue calls awaiting their replies at most.
const ENQUEUE_IN_FLIGHT: usize = 4;

/// How long a follow-up waits in its task's outbox before `purge_expired` moves it (the
/// completing client moves it at once; this is for a client that died in between).
pub(crate) const OUTBOX_GRACE_MS: i64 = 30_000;

/// A pipelined script call: sent, its reply not yet taken.
type PendingCall<'a> = Pin<
    Box<
        future::MaybeDone<
            Pin<Box<dyn Future<Output = redis::RedisResult<Vec<Value>>> + Send + 'a>>,
        >,
    >,
>;

/// The outcome of each envelope of `batch` from the enqueue script's reply, which names the
/// envelopes that were not stored: pairs (1-based index, the holder's id).
pub(crate) fn enqueue_outcomes(
    batch: &[Envelope],
    reply: Vec<Value>,
) -> Result<Vec<EnqueueOutcome>> {
    let mut out: Vec<EnqueueOutcome> = batch
        .iter()
        .map(|env| EnqueueOutcome::Enqueued(env.id))
        .collect();
    let mut it = reply.into_iter();
    while let (Some(index), Some(id)) = (it.next(), it.next()) {
        let slot = usize::try_from(wire::int(index)?)
            .ok()
            .and_then(|k| k.checked_sub(1))
            .and_then(|k| out.get_mut(k))
            .ok_or_else(|| {
                Error::decode("redis reply", "enqueue named an envelope it was not given")
            })?;
        *slot = EnqueueOutcome::Duplicate(wire::task_id(id)?);
    }
    Ok(out)
}

/// How long a queue's registration mark (`P:{Q}:registered`, see `lua/common.lua`) lives: an
/// enqueue that finds it missing enters the queue in the registry (`P:{~queues}:queues`) and
/// sets it again, so the registry is written once per queue and mark, not per enqueue. A
/// registry lost while marks remain (a failover that lost its last writes, a `DEL` by hand)
/// lists each queue again at the queue's first enqueue after its mark expired: within this
/// long, for a queue that is still used.
pub(crate) const REGISTERED_TTL: Duration = Duration::from_secs(600);

/// Takes the last entry of the enqueue script's reply: whether the queue's registration mark
/// exists.
pub(crate) fn registration_mark(reply: &mut Vec<Value>) -> Result<bool> {
    let flag = reply
        .pop()
        .ok_or_else(|| Error::decode("redis reply", "enqueue answered nothing"))?;
    Ok(wire::int(flag)? != 0)
}

impl RedisStorage {
    pub(crate) async fn enqueue_batch(&self, batch: Vec<Envelope>) -> Result<Vec<EnqueueOutcome>> {
        for env in &batch {
            env.validate()?;
        }
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let groups = crate::locate::group_by(&batch, |_, env| Some(Arc::from(env.queue.as_str())));
        if groups.len() == 1 {
            return self.enqueue_queue(&batch).await;
        }
        // One queue at a time, in order of first appearance; each queue's envelopes keep
        // their order.
        let mut out: Vec<Option<EnqueueOutcome>> = vec![None; batch.len()];
        let mut slots: Vec<Option<Envelope>> = batch.into_iter().map(Some).collect();
        for (_, indexes) in groups {
            let part: Vec<Envelope> = indexes.iter().filter_map(|&i| slots[i].take()).collect();
            for (i, outcome) in indexes.into_iter().zip(self.enqueue_queue(&part).await?) {
                out[i] = Some(outcome);
            }
        }
        out.into_iter()
            .map(|o| o.ok_or_else(|| Error::storage_msg("redis", "an envelope was not enqueued")))
            .collect()
    }

    /// Enqueues `batch`, envelopes of one queue (validated), and enters the queue in the
    /// registry if its registration mark is missing (see [`REGISTERED_TTL`]).
    async fn enqueue_queue(&self, batch: &[Envelope]) -> Result<Vec<EnqueueOutcome>> {
        let queue = batch.first().map(|e| e.queue.as_str()).unwrap_or_default();
        if batch.len() <= ENQUEUE_CHUNK {
            let inv = self.enqueue_call(batch)?;
            // One task (a producer awaiting each enqueue) goes on an owned connection.
            let owned = match batch.len() {
                1 => self.run_owned(&inv).await,
                _ => None,
            };
            let mut reply: Vec<Value> = match owned {
                Some(reply) => reply?,
                None => self.run(inv, "enqueue").await?,
            };
            let registered = registration_mark(&mut reply)?;
            let out = enqueue_outcomes(batch, reply)?;
            if !registered {
                self.register_queue(queue).await?;
            }
            return Ok(out);
        }
        // A large batch goes as calls of ENQUEUE_CHUNK, pipelined on one connection: each is
        // sent as soon as it is encoded, so encoding the next overlaps the server's work on
        // this one. One connection keeps them in order, so FIFO holds across them, and an
        // envelope that repeats an id or unique key of an earlier call is still a duplicate.
        // At most ENQUEUE_IN_FLIGHT calls wait at a time, so none waits behind a long queue
        // of others for its reply. Each call is atomic, the batch is not: after an error the
        // calls before it are stored, and enqueueing the same envelopes again reports those
        // as duplicates (see `Storage::enqueue`).
        // As a single call does, each call reports the queue's registration mark; the queue
        // is registered after the calls if any found it missing.
        let lane = self.conn().await?;
        let mut out = Vec::with_capacity(batch.len());
        let mut in_flight = VecDeque::with_capacity(ENQUEUE_IN_FLIGHT);
        let mut failure = None;
        let mut registered = true;
        for chunk in batch.chunks(ENQUEUE_CHUNK) {
            if in_flight.len() == ENQUEUE_IN_FLIGHT {
                if let Some((chunk, call)) = in_flight.pop_front() {
                    match self.enqueue_reply(lane.lane, chunk, call, &mut out).await {
                        Ok(mark) => registered &= mark,
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
            }
            let inv = match self.enqueue_call(chunk) {
                Ok(inv) => inv,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            let mut conn = lane.conn.clone();
            let mut call: PendingCall<'_> = Box::pin(future::maybe_done(Box::pin(async move {
                self.invoke::<Vec<Value>>(&mut conn, &inv).await
            })));
            // The first poll queues the call on the connection; its reply is awaited later.
            let _ = futures::poll!(call.as_mut());
            in_flight.push_back((chunk, call));
        }
        // Every call sent is awaited, also after an error: it runs on the server either way.
        for (chunk, call) in in_flight {
            match self.enqueue_reply(lane.lane, chunk, call, &mut out).await {
                Ok(mark) => registered &= mark,
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        // Whatever was stored is in a registered queue, also after an error.
        if !registered {
            if let Err(e) = self.register_queue(queue).await {
                failure.get_or_insert(e);
            }
        }
        if failure.is_none() {
            let mut conn = lane.conn.clone();
            self.replicated(&mut conn, &self.qkey(queue, "task"), "enqueue")
                .await?;
        }
        match failure {
            None => Ok(out),
            Some(e) => Err(e),
        }
    }

    /// Runs a one-task enqueue call on an owned connection (see `owned.rs`); `None` when
    /// none is free (the caller takes the shared path).
    async fn run_owned(&self, call: &Call<'_>) -> Option<Result<Vec<Value>>> {
        let pool = self.owned.as_ref()?;
        let mut owned = match pool.get().await {
            Ok(owned) => owned?,
            Err(e) => return Some(Err(self.redactor.error("connecting", e))),
        };
        let conn = owned.conn()?;
        let reply = self.invoke::<Vec<Value>>(conn, call).await;
        owned.keep(reply.as_ref().err());
        Some(reply.map_err(|e| self.redactor.error("enqueue", e)))
    }

    /// Enters `queue` in the registry, waits for the registry's replicas (with
    /// [`RedisOptions::wait_replicas`](crate::RedisOptions::wait_replicas)), then sets the
    /// queue's registration mark for [`REGISTERED_TTL`]: the mark exists only once the
    /// registry has the queue.
    pub(crate) async fn register_queue(&self, queue: &str) -> Result<()> {
        let what = "register a queue";
        let mut lane = self.conn().await?;
        let mut mark = redis::cmd("SET");
        mark.arg(self.qkey(queue, "registered"))
            .arg(1)
            .arg("PX")
            .arg(u64::try_from(REGISTERED_TTL.as_millis()).unwrap_or(u64::MAX));
        let added = self
            .register_cmd([queue])
            .query_async::<i64>(&mut lane.conn)
            .await;
        if let Err(e) = added {
            self.lanes.failed(lane.lane, &e).await;
            return Err(self.redactor.error(what, e));
        }
        self.replicated(&mut lane.conn, &self.registry_key(), what)
            .await?;
        if let Err(e) = mark.query_async::<()>(&mut lane.conn).await {
            self.lanes.failed(lane.lane, &e).await;
            return Err(self.redactor.error(what, e));
        }
        Ok(())
    }

    /// Awaits one pipelined enqueue call and appends its outcomes to `out`; returns whether
    /// the queue's registration mark was there.
    async fn enqueue_reply(
        &self,
        lane: usize,
        chunk: &[Envelope],
        mut call: PendingCall<'_>,
        out: &mut Vec<EnqueueOutcome>,
    ) -> Result<bool> {
        call.as_mut().await;
        match call.as_mut().take_output() {
            Some(Ok(mut reply)) => {
                let registered = registration_mark(&mut reply)?;
                out.extend(enqueue_outcomes(chunk, reply)?);
                Ok(registered)
            }
            Some(Err(e)) => {
                self.lanes.failed(lane, &e).await;
                Err(self.redactor.error("enqueue", e))
            }
            None => Err(Error::storage_msg(
                "redis",
                "an enqueue call lost its reply",
            )),
        }
    }

    /// One enqueue script call for `batch` (validated, one queue, at most a few thousand
    /// envelopes).
    fn enqueue_call(&self, batch: &[Envelope]) -> Result<Call<'_>> {
        let now = self.now_ms();
        let queue = batch.first().map(|e| e.queue.as_str()).unwrap_or_default();
        let mut inv = self.qcall(&self.scripts.enqueue, queue, now);
        inv.arg(batch.len());
        let mut ord = Ordinals::new(batch.len());
        for env in batch {
            push_envelope(&mut inv, env, &env.encode()?, now, &mut ord);
        }
        Ok(inv)
    }

    pub(crate) async fn fetch_batch(
        &self,
        queue: &str,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Delivery>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let now = self.now_ms();
        let expires = now.saturating_add(duration_millis(lease));
        let mut inv = self.qcall(&self.scripts.fetch, queue, now);
        inv.arg(queue).arg(max).arg(expires).arg(self.promote_limit);
        // One random base per fetch (one `getrandom` call, not one per task); consecutive
        // tokens from it are as unique as random ones, and kept within i64 like them.
        let base = LeaseToken::random().0;
        for i in 0..max as u64 {
            inv.arg((base.wrapping_add(i) & (i64::MAX as u64)).max(1));
        }
        let version = self.revocations.version();
        // Whether any revocation exists, asked in the same round trip (the revocations live
        // under another hash tag): `check_revoked` of this batch, which follows, uses that
        // answer instead of a call of its own.
        let mut exists = redis::cmd("EXISTS");
        exists.arg(self.wkey("revoked", "revoked"));
        let (revocations, reply): (i64, Vec<Value>) =
            self.run_with(&exists, None, inv, "fetch").await?;
        let revocations = Some(revocations);
        if reply.len() % FETCH_FIELDS != 0 {
            return Err(Error::decode(
                "redis reply",
                "fetch answered a partial task",
            ));
        }
        if let Some(any) = revocations {
            self.revocations.record(any != 0, version);
        }
        let mut out = Vec::with_capacity(reply.len() / FETCH_FIELDS);
        let mut garbage = Vec::new();
        let mut row = reply.into_iter();
        while row.len() > 0 {
            // Every entry is leased under a token the script took from us: one that cannot be
            // handed out is dead-lettered below, never left leased (or the whole batch with it).
            let id_text = wire::text_lossy(next(&mut row)?)?;
            let value = wire::bytes(next(&mut row)?)?;
            let token_text = wire::text(next(&mut row)?)?;
            let token = token_text
                .parse::<u64>()
                .map(LeaseToken)
                .map_err(|e| Error::decode("lease token", e))?;
            let deliveries = wire::count32(wire::int(next(&mut row)?)?);
            let attempts = wire::count32(wire::int(next(&mut row)?)?);
            let id = match id_text.parse::<TaskId>() {
                Ok(id) => id,
                Err(err) => {
                    let kind = kind_name(queue_core::FailureKind::Undecodable);
                    garbage.push((id_text, token_text, kind, err.to_string()));
                    continue;
                }
            };
            let decoded = match wire::task_envelope(&value) {
                Some(raw) => Envelope::decode(raw),
                None => Err(Error::decode("stored task", "not a Skiff task value")),
            };
            match decoded {
                Ok(mut envelope) => {
                    envelope.deliveries = deliveries;
                    envelope.attempt = attempts;
                    out.push(Delivery {
                        envelope,
                        lease: Lease { id, token },
                        lease_expires_at: from_millis(expires),
                    });
                }
                Err(err) => {
                    let kind = match err {
                        Error::NewerFormat { .. } => queue_core::FailureKind::NewerFormat,
                        _ => queue_core::FailureKind::Undecodable,
                    };
                    garbage.push((id.to_string(), token_text, kind_name(kind), err.to_string()));
                }
            }
        }
        if !garbage.is_empty() {
            // Still leased under our tokens: if this call fails, the lease runs out and the next
            // fetch meets the same garbage again. Nothing is handed out or lost.
            let mut inv = self.qcall(&self.scripts.bury, queue, self.now_ms());
            inv.arg(queue);
            for (id, token, kind, reason) in garbage {
                inv.arg(id).arg(token).arg(kind).arg(reason);
            }
            // The healthy tasks of the batch are handed out either way.
            if let Err(err) = self
                .run::<i64>(inv, "dead-lettering undecodable envelopes")
                .await
            {
                tracing::warn!(error = %err, "could not dead-letter undecodable tasks; they come back when their leases run out");
            }
        }
        self.leases.leased(queue, out.iter().map(|d| d.lease.id));
        Ok(out)
    }

    pub(crate) async fn complete_batch(&self, batch: Vec<Completion>) -> Result<Vec<AckStatus>> {
        for c in &batch {
            for env in &c.follow_ups {
                env.validate()?;
            }
        }
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<TaskId> = batch.iter().map(|c| c.lease.id).collect();
        // A completion of a task pending nowhere is stale without a call.
        let queues = self.lease_queues(&ids).await?;
        let groups = crate::locate::group_by(&batch, |i, _| queues[i].clone());
        let batch = &batch;
        let replies = future::try_join_all(groups.iter().map(|(queue, indexes)| async move {
            let inv = self.complete_call(queue, batch, indexes)?;
            let reply: Vec<i64> = self.run(inv, "complete").await?;
            Ok::<_, Error>(reply)
        }))
        .await?;
        let mut out = vec![AckStatus::Stale; batch.len()];
        for ((_, indexes), reply) in groups.iter().zip(replies) {
            for (&i, flag) in indexes.iter().zip(reply) {
                out[i] = status(flag);
            }
        }
        self.leases.forget(ids.iter().copied());
        let acked_end = |i: usize| out[i] == AckStatus::Acked && ends(&batch[i].outcome);
        // Follow-ups for other queues: from the outbox to their queues (see the module docs).
        for (queue, indexes) in &groups {
            let moved: Vec<Envelope> = indexes
                .iter()
                .filter(|&&i| acked_end(i))
                .flat_map(|&i| batch[i].follow_ups.iter())
                .filter(|env| env.queue != **queue)
                .cloned()
                .collect();
            if !moved.is_empty() {
                self.move_follow_ups(queue, moved).await;
            }
        }
        // A revocation by id goes with its task (another hash tag: a call of its own, only
        // while revocations may exist).
        let ended: Vec<TaskId> = (0..batch.len())
            .filter(|&i| acked_end(i))
            .map(|i| ids[i])
            .collect();
        if !ended.is_empty() && !self.revocations.none_known(self.revocations.version()) {
            let mut inv = self.wcall(&self.scripts.lock, "revoked", self.now_ms());
            inv.arg("forget");
            for id in &ended {
                inv.arg(id.to_string());
            }
            if let Err(err) = self.run::<i64>(inv, "forget revocations").await {
                tracing::warn!(error = %err, "could not remove the revocations of completed tasks");
            }
        }
        Ok(out)
    }

    /// The complete script call for the completions `indexes` of `batch`, tasks of `queue`.
    fn complete_call(
        &self,
        queue: &str,
        batch: &[Completion],
        indexes: &[usize],
    ) -> Result<Call<'_>> {
        let now = self.now_ms();
        let mut inv = self.qcall(&self.scripts.complete, queue, now);
        inv.arg(queue).arg(indexes.len());
        let mut ord = Ordinals::new(indexes.iter().map(|&i| batch[i].follow_ups.len()).sum());
        for c in indexes.iter().map(|&i| &batch[i]) {
            let member = wire::lease_member(&c.lease);
            let expires = c
                .result_ttl
                .map(|ttl| now.saturating_add(duration_millis(ttl)).to_string())
                .unwrap_or_default();
            let fast = c.follow_ups.is_empty()
                && matches!(c.outcome, Outcome::Success { .. } | Outcome::Drop { .. });
            if fast {
                // The script stores the value as it is (see `lua/complete.lua`).
                let value = match &c.outcome {
                    Outcome::Success { result } => wire::result_value(&expires, None, result),
                    Outcome::Drop { failure } => wire::result_value(&expires, Some(failure), &[]),
                    _ => Vec::new(),
                };
                inv.arg(c.lease.id.to_string())
                    .arg(member)
                    .arg("f")
                    .arg(value)
                    .arg(expires);
                continue;
            }
            let (kind, eta, failure) = match &c.outcome {
                Outcome::Success { .. } => ("ok", 0, None),
                Outcome::Retry { eta, .. } => ("retry", to_millis(*eta), None),
                Outcome::Defer { eta } => ("defer", to_millis(*eta), None),
                Outcome::Dead { failure } => ("dead", 0, Some(failure)),
                Outcome::Drop { failure } => ("drop", 0, Some(failure)),
            };
            let value: &[u8] = match &c.outcome {
                Outcome::Success { result } => result,
                _ => &[],
            };
            inv.arg(c.lease.id.to_string())
                .arg(member)
                .arg(kind)
                .arg(eta)
                .arg(value)
                .arg(failure.map(|f| kind_name(f.kind)).unwrap_or_default())
                .arg(failure.map(|f| f.message.as_str()).unwrap_or(""))
                .arg(failure.map_or(0, |f| f.attempts))
                .arg(expires);
            let (here, elsewhere): (Vec<&Envelope>, Vec<&Envelope>) = if ends(&c.outcome) {
                c.follow_ups.iter().partition(|env| env.queue == queue)
            } else {
                (Vec::new(), Vec::new())
            };
            inv.arg(here.len()).arg(elsewhere.len());
            for env in here {
                push_envelope(&mut inv, env, &env.encode()?, now, &mut ord);
            }
            for env in elsewhere {
                inv.arg(env.id.to_string()).arg(env.encode()?);
            }
        }
        Ok(inv)
    }

    /// Moves follow-ups that a completion of a task of `queue` left in that queue's outbox to
    /// their own queues, then takes them out of the outbox. A failure is logged: they stay in
    /// the outbox, and `purge_expired` moves them later.
    pub(crate) async fn move_follow_ups(&self, queue: &str, follow_ups: Vec<Envelope>) {
        let ids: Vec<String> = follow_ups.iter().map(|e| e.id.to_string()).collect();
        if let Err(err) = self.enqueue_batch(follow_ups).await {
            tracing::warn!(error = %err, queue, "could not enqueue follow-ups for other queues yet; purge_expired moves them later");
            return;
        }
        let mut del = redis::cmd("HDEL");
        del.arg(self.qkey(queue, "outbox")).arg(&ids);
        if let Err(err) = self.cmd::<i64>(&del, "clear the outbox").await {
            tracing::warn!(error = %err, queue, "could not clear moved follow-ups from the outbox");
        }
    }

    pub(crate) async fn extend_leases(
        &self,
        leases: &[Lease],
        lease: Duration,
    ) -> Result<Vec<AckStatus>> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.now_ms();
        let ids: Vec<TaskId> = leases.iter().map(|l| l.id).collect();
        let queues = self.lease_queues(&ids).await?;
        let groups = crate::locate::group_by(leases, |i, _| queues[i].clone());
        let replies = future::try_join_all(groups.iter().map(|(queue, indexes)| async move {
            let mut inv = self.qcall(&self.scripts.extend, queue, now);
            inv.arg(&**queue)
                .arg("extend")
                .arg(now.saturating_add(duration_millis(lease)));
            for l in indexes.iter().map(|&i| &leases[i]) {
                inv.arg(l.id.to_string()).arg(l.token.0);
            }
            self.run::<Vec<i64>>(inv, "extend leases").await
        }))
        .await?;
        let mut out = vec![AckStatus::Stale; leases.len()];
        for ((_, indexes), reply) in groups.iter().zip(replies) {
            for (&i, flag) in indexes.iter().zip(reply) {
                out[i] = status(flag);
            }
        }
        Ok(out)
    }

    /// Stores `raw` verbatim as a ready task of `queue` (priority 0, the default delivery
    /// limit of a task without retries), without decoding it. For tests of how consumers
    /// deal with garbage in the store, like
    /// [`MemoryStorage::insert_raw`](queue_core::MemoryStorage::insert_raw).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn demo(store: &queue_redis::RedisStorage) -> queue_core::Result<()> {
    /// store.insert_raw("default", queue_core::TaskId::new(), b"not msgpack".to_vec()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn insert_raw(&self, queue: &str, id: TaskId, raw: Vec<u8>) -> Result<()> {
        let name = Envelope::decode(&raw)
            .map(|e| e.task)
            .unwrap_or_else(|_| "?".into());
        let now = self.now_ms();
        let mut inv = self.qcall(&self.scripts.enqueue, queue, now);
        inv.arg(1);
        wire::push_task(
            &mut inv,
            wire::NewTask {
                id,
                queue,
                priority: 0,
                run_at: now,
                now,
                ord: String::new(),
                delivery_limit: queue_core::DELIVERY_MARGIN + 1,
                unique_key: "",
                task: &name,
                deliveries: 0,
                attempts: 0,
            },
            &raw,
        );
        let register = self.register_cmd([queue]);
        self.run_with::<i64, Vec<Value>>(
            &register,
            Some(&self.registry_key()),
            inv,
            "insert raw task",
        )
        .await?;
        Ok(())
    }

    pub(crate) async fn requeue_expired_leases(&self, queue: &str, max: usize) -> Result<u64> {
        if max == 0 {
            return Ok(0);
        }
        let mut inv = self.qcall(&self.scripts.requeue_expired, queue, self.now_ms());
        inv.arg(queue).arg(max);
        let n: i64 = self.run(inv, "requeue expired leases").await?;
        Ok(wire::count64(n))
    }
}

/// Whether an outcome ends the task (its follow-ups are enqueued, its revocations go).
fn ends(outcome: &Outcome) -> bool {
    !matches!(outcome, Outcome::Retry { .. } | Outcome::Defer { .. })
}

fn status(flag: i64) -> AckStatus {
    if flag == 1 {
        AckStatus::Acked
    } else {
        AckStatus::Stale
    }
}
