//! Garbage in every field of the stored layout (see `common.lua`): each store call either
//! works around it or fails with a clear error, and never drops a task out of every index,
//! leaves a batch leased under tokens the client never learned, or fails forever.
//!
//! A Lua runtime error keeps the writes made before it (Redis scripts are not transactions),
//! so each case here once ended with a task in no index, or with a call that failed on every
//! try: `fetch.lua` took a round out of `ready` before reading it, a retry counted attempts with
//! `HINCRBY` after taking the lease away, a lock whose expiry was not a number failed every
//! `acquire` and every `purge_expired`.

use std::collections::BTreeSet;
use std::time::Duration;

use queue_core::storage::{Completion, Outcome, Page, TaskState};
use queue_core::{
    Clock, Envelope, FailureKind, ManualClock, Storage, StoredResult, TaskFailure, TaskId,
};
use queue_redis::RedisStorage;
use redis::Commands;

use crate::support;
use crate::{arc, env, manual_clock, LEASE};

/// Values a corrupted task field could hold: no header, a short header, nothing, bytes that
/// are not text, a header with text where numbers go.
const BAD_VALUES: [&[u8]; 5] = [
    b"garbage",
    b"1|2|3|",
    b"",
    b"\xff\xfe|\x00",
    b"1|x|y|z|name",
];

struct Fx {
    store: RedisStorage,
    clock: ManualClock,
    prefix: String,
    q: &'static str,
}

impl Fx {
    async fn new(tag: &str) -> Self {
        let clock = manual_clock();
        let store = support::shared_store(tag, arc(&clock)).await;
        let prefix = store.key_prefix().to_owned();
        Self {
            store,
            clock,
            prefix,
            q: "g",
        }
    }

    fn raw(&self) -> redis::Connection {
        support::raw_client(&support::shared_url())
            .get_connection()
            .unwrap()
    }

    /// A key without a hash tag (a rate window).
    fn key(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.prefix)
    }

    /// Key `name` of the store-wide group `group` (its own hash tag).
    fn wkey(&self, group: &str, name: &str) -> String {
        format!("{}:{{~{group}}}:{name}", self.prefix)
    }

    /// A key of the test's queue.
    fn qkey(&self, suffix: &str) -> String {
        format!("{}:{{{}}}:{suffix}", self.prefix, self.q)
    }

    fn env(&self) -> Envelope {
        env(&self.clock, self.q, "t")
    }

    async fn enqueue(&self, n: usize) -> Vec<TaskId> {
        let batch: Vec<Envelope> = (0..n).map(|_| self.env()).collect();
        let ids = batch.iter().map(|e| e.id).collect();
        self.store.enqueue(batch).await.unwrap();
        ids
    }

    fn hset(&self, key: &str, field: &str, value: &[u8]) {
        let _: () = self.raw().hset(key, field, value).unwrap();
    }

    fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// Runs the queue dry: fetches, completes every delivery as a success, lets leases run
    /// out, purges, lists. Any store error fails the test; so does a queue that never empties.
    async fn drain(&self) {
        for _ in 0..20 {
            let got = self.store.fetch(self.q, 10, LEASE).await.unwrap();
            if !got.is_empty() {
                let batch = got
                    .iter()
                    .map(|d| {
                        Completion::new(d.lease, Outcome::Success { result: vec![0xc0] }, None)
                    })
                    .collect();
                self.store.complete(batch).await.unwrap();
            }
            self.store.purge_expired(100).await.unwrap();
            for state in [TaskState::Ready, TaskState::Scheduled, TaskState::Leased] {
                self.store
                    .list(state, Some(self.q), Page::first(50))
                    .await
                    .unwrap();
            }
            self.store
                .list_dead(Some(self.q), Page::first(50))
                .await
                .unwrap();
            let c = self.store.counts(Some(self.q)).await.unwrap();
            if (c.ready, c.scheduled, c.leased) == (0, 0, 0) {
                return;
            }
            self.advance(LEASE + Duration::from_secs(1));
        }
        panic!(
            "the queue never emptied: {:?}",
            self.store.counts(Some(self.q)).await
        );
    }

    /// Whether `id` finished: a success result, or a dead letter with a failure result.
    async fn finished(&self, id: TaskId) -> Outcome2 {
        if self.store.get_dead(id).await.unwrap().is_some() {
            return Outcome2::Dead;
        }
        match self.store.get_result(id).await.unwrap() {
            Some(StoredResult::Success(_)) => Outcome2::Done,
            other => panic!("task {id} was lost: result {other:?}, not dead"),
        }
    }

    async fn all_done(&self, ids: &[TaskId]) {
        for id in ids {
            assert_eq!(self.finished(*id).await, Outcome2::Done, "task {id}");
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome2 {
    Done,
    Dead,
}

/// Where the victim is when its stored value is overwritten.
#[derive(Clone, Copy, Debug)]
enum Place {
    Ready,
    Scheduled,
    /// Leased, then its lease runs out.
    LeaseLost,
    /// Leased, then completed with a retry.
    Retried,
    /// Delivered once already (a header read happens on the next delivery).
    Redelivered,
}

#[tokio::test]
async fn a_corrupt_task_value_is_dead_lettered_wherever_it_is_never_dropped() {
    for place in [
        Place::Ready,
        Place::Scheduled,
        Place::LeaseLost,
        Place::Retried,
        Place::Redelivered,
    ] {
        for bad in BAD_VALUES {
            let fx = Fx::new("garbage-task").await;
            let good = fx.enqueue(3).await;
            let mut victim = fx.env();
            if matches!(place, Place::Scheduled) {
                victim.eta = Some(fx.clock.now() + chrono::TimeDelta::seconds(10));
            }
            let id = victim.id;
            fx.store.enqueue(vec![victim]).await.unwrap();
            let mut leased = Vec::new();
            if matches!(
                place,
                Place::LeaseLost | Place::Retried | Place::Redelivered
            ) {
                leased = fx.store.fetch(fx.q, 10, LEASE).await.unwrap();
                assert_eq!(leased.len(), 4);
            }
            if matches!(place, Place::Redelivered) {
                fx.advance(LEASE + Duration::from_secs(1));
                fx.store.requeue_expired(fx.q, 100).await.unwrap();
            }
            fx.hset(&fx.qkey("task"), &id.to_string(), bad);
            match place {
                Place::Scheduled => fx.advance(Duration::from_secs(20)),
                Place::LeaseLost => fx.advance(LEASE + Duration::from_secs(1)),
                Place::Retried => {
                    let batch = leased
                        .iter()
                        .map(|d| {
                            let outcome = if d.lease.id == id {
                                Outcome::Retry {
                                    eta: fx.clock.now(),
                                    failure: TaskFailure::new(FailureKind::Error, "again", 1),
                                }
                            } else {
                                Outcome::Success { result: vec![0xc0] }
                            };
                            Completion::new(d.lease, outcome, None)
                        })
                        .collect();
                    fx.store.complete(batch).await.unwrap();
                }
                Place::Ready | Place::Redelivered => {}
            }
            fx.drain().await;
            fx.all_done(&good).await;
            assert_eq!(
                fx.finished(id).await,
                Outcome2::Dead,
                "{place:?} {:?}",
                String::from_utf8_lossy(bad)
            );
            let dead = fx.store.get_dead(id).await.unwrap().unwrap();
            assert_eq!(dead.failure.kind, FailureKind::Undecodable, "{dead:?}");
        }
    }
}

#[tokio::test]
async fn counts_that_are_not_numbers_read_as_zero() {
    for (field, place) in [
        ("dlv", Place::Ready),
        ("att", Place::Ready),
        ("dlv", Place::LeaseLost),
        ("att", Place::LeaseLost),
        ("dlv", Place::Retried),
        ("att", Place::Retried),
    ] {
        let fx = Fx::new("garbage-count").await;
        let ids = fx.enqueue(3).await;
        let id = ids[0];
        let mut leased = Vec::new();
        if !matches!(place, Place::Ready) {
            leased = fx.store.fetch(fx.q, 10, LEASE).await.unwrap();
        }
        fx.hset(&fx.qkey(field), &id.to_string(), b"not a number");
        match place {
            Place::LeaseLost => fx.advance(LEASE + Duration::from_secs(1)),
            Place::Retried => {
                let d = leased.iter().find(|d| d.lease.id == id).unwrap();
                let failure = TaskFailure::new(FailureKind::Error, "again", 1);
                let retry = Outcome::Retry {
                    eta: fx.clock.now(),
                    failure,
                };
                let acked = fx
                    .store
                    .complete(vec![Completion::new(d.lease, retry, None)])
                    .await
                    .unwrap();
                assert_eq!(acked.len(), 1);
                fx.advance(LEASE + Duration::from_secs(1));
            }
            _ => {}
        }
        fx.drain().await;
        fx.all_done(&ids).await;
    }
}

#[tokio::test]
async fn a_ready_entry_that_is_not_a_task_id_does_not_block_the_batch() {
    let fx = Fx::new("garbage-id").await;
    let ids = fx.enqueue(3).await;
    // A copy of a real task's value under an id that is not a task id, in every index.
    let mut conn = fx.raw();
    let value: Vec<u8> = conn.hget(fx.qkey("task"), ids[0].to_string()).unwrap();
    fx.hset(&fx.qkey("task"), "not-an-id", &value);
    let _: () = conn.zadd(fx.qkey("ready"), "not-an-id", -1).unwrap();
    // A lease member without a token.
    let _: () = conn.zadd(fx.qkey("leased"), "no-token", 1).unwrap();
    fx.drain().await;
    fx.all_done(&ids).await;
    let ready: Vec<String> = conn.zrange(fx.qkey("ready"), 0, -1).unwrap();
    assert!(ready.is_empty(), "{ready:?}");
}

#[tokio::test]
async fn garbage_counters_do_not_stop_enqueues_or_dead_letters() {
    let fx = Fx::new("garbage-seq").await;
    let mut conn = fx.raw();
    let _: () = conn.set(fx.qkey("seq"), "not a number").unwrap();
    let _: () = conn.set(fx.qkey("dead-seq"), "not a number").unwrap();
    let ids = fx.enqueue(3).await;
    let got = fx.store.fetch(fx.q, 1, LEASE).await.unwrap();
    let failure = TaskFailure::new(FailureKind::Error, "boom", 1);
    fx.store
        .complete(vec![Completion::new(
            got[0].lease,
            Outcome::Dead { failure },
            None,
        )])
        .await
        .unwrap();
    fx.drain().await;
    assert_eq!(fx.finished(got[0].lease.id).await, Outcome2::Dead);
    let dead = fx
        .store
        .list_dead(Some(fx.q), Page::first(10))
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    let rest: Vec<TaskId> = ids.into_iter().filter(|i| *i != got[0].lease.id).collect();
    fx.all_done(&rest).await;
}

#[tokio::test]
async fn a_garbage_dead_record_does_not_hide_the_others() {
    let fx = Fx::new("garbage-dead").await;
    let ids = fx.enqueue(2).await;
    let got = fx.store.fetch(fx.q, 2, LEASE).await.unwrap();
    let batch = got
        .iter()
        .map(|d| {
            let failure = TaskFailure::new(FailureKind::Error, "boom", 1);
            Completion::new(d.lease, Outcome::Dead { failure }, None)
        })
        .collect();
    fx.store.complete(batch).await.unwrap();
    let bad = fx.qkey(&format!("dead:{}", ids[0]));
    for (field, value) in [
        ("fa", &b"x"[..]),
        ("at", b"yesterday"),
        ("task", b"\xff\xfe"),
        ("fm", b"\xc3\x28"),
        ("raw", b"not msgpack"),
    ] {
        fx.hset(&bad, field, value);
    }
    // An index entry that is not a task id, with a record of its own.
    let mut conn = fx.raw();
    let _: () = conn.zadd(fx.qkey("dead"), "not-an-id", 0).unwrap();
    fx.hset(&fx.qkey("dead:not-an-id"), "q", fx.q.as_bytes());

    for queue in [None, Some(fx.q)] {
        let dead = fx.store.list_dead(queue, Page::first(10)).await.unwrap();
        let listed: BTreeSet<TaskId> = dead.iter().map(|d| d.id).collect();
        assert_eq!(listed, ids.iter().copied().collect(), "{dead:?}");
    }
    let got = fx.store.get_dead(ids[0]).await.unwrap().unwrap();
    assert!(got.envelope.is_err());
    // Requeueing and purging still work around the garbage.
    assert_eq!(fx.store.requeue_dead(&[ids[1]]).await.unwrap(), 1);
    fx.store.purge_dead(Some(fx.q)).await.unwrap();
    fx.store.purge_dead(None).await.unwrap();
    assert!(fx
        .store
        .list_dead(None, Page::first(10))
        .await
        .unwrap()
        .is_empty());
    fx.drain().await;
    fx.all_done(&ids[1..]).await;
}

#[tokio::test]
async fn garbage_locks_rates_and_revocations_neither_fail_nor_block_forever() {
    let fx = Fx::new("garbage-plane").await;
    let lock = fx.wkey("locks", "lock:reports");
    fx.hset(&lock, "o", b"someone");
    fx.hset(&lock, "x", b"not a time");
    let mut conn = fx.raw();
    let _: () = conn
        .zadd(fx.wkey("locks", "lock-exp"), "reports", 1)
        .unwrap();
    // A lock whose expiry cannot be read is treated as expired: taken over, not stuck.
    assert!(fx.store.acquire_lock("reports", "me", LEASE).await.unwrap());
    assert!(fx.store.release_lock("reports", "me").await.unwrap());
    fx.hset(&lock, "o", b"someone");
    fx.hset(&lock, "x", b"not a time");
    fx.store.purge_expired(100).await.unwrap();

    let rate = fx.key("rate:api");
    fx.hset(&rate, "w", b"then");
    fx.hset(&rate, "n", b"many");
    fx.store
        .rate_limit("api", 5, Duration::from_secs(1))
        .await
        .unwrap();

    // A revocation that cannot be read revokes nothing, and is removed.
    let ids = fx.enqueue(1).await;
    let field = format!("i:{}", ids[0]);
    let revoked = fx.wkey("revoked", "revoked");
    fx.hset(&revoked, &field, b"garbage");
    fx.hset(&revoked, "t:other", b"garbage");
    let _: () = conn
        .zadd(fx.wkey("revoked", "revoked-exp"), "t:other", 1)
        .unwrap();
    assert_eq!(
        fx.store.check_revoked(&[(ids[0], "t")]).await.unwrap(),
        vec![false]
    );
    let left: Option<Vec<u8>> = conn.hget(&revoked, &field).unwrap();
    assert_eq!(left, None);
    for _ in 0..3 {
        fx.store.purge_expired(100).await.unwrap();
    }
    fx.drain().await;
    fx.all_done(&ids).await;
}

#[tokio::test]
async fn a_garbage_result_is_a_clear_error_or_absent() {
    let fx = Fx::new("garbage-result").await;
    let ids = fx.enqueue(1).await;
    fx.drain().await;
    fx.hset(&fx.qkey("results"), &ids[0].to_string(), b"garbage");
    // Either reading gives no result or a clear error; neither panics or hangs.
    let read = fx.store.get_result(ids[0]).await;
    assert!(!matches!(read, Ok(Some(_))), "{read:?}");
    fx.store.purge_expired(100).await.unwrap();
}

#[tokio::test]
async fn a_unique_key_held_by_no_pending_task_is_taken_over() {
    let fx = Fx::new("garbage-unique").await;
    fx.hset(&fx.qkey("unique"), "report", b"not-an-id");
    let mut first = fx.env();
    first.unique_key = Some("report".into());
    let id = first.id;
    let stored = fx.store.enqueue(vec![first]).await.unwrap();
    assert_eq!(
        stored,
        vec![queue_core::storage::EnqueueOutcome::Enqueued(id)]
    );
    // The key now belongs to that pending task.
    let mut second = fx.env();
    second.unique_key = Some("report".into());
    let again = fx.store.enqueue(vec![second]).await.unwrap();
    assert_eq!(
        again,
        vec![queue_core::storage::EnqueueOutcome::Duplicate(id)]
    );
    fx.drain().await;
    fx.all_done(&[id]).await;
}
