//! Cases: order, etas, fetch limits, concurrent fetchers, leases and fencing.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::{ids, ms, open, secs, success, Backend, LEASE};
use crate::{
    to_msgpack, AckStatus, Completion, Envelope, FollowUp, FollowUpInput, FollowUpWhen,
    RetryPolicy, Storage, StoredResult, TaskId,
};

/// Tasks of one priority come out in enqueue order, whether enqueued one by one or in a batch,
/// and whatever their ids and `enqueued_at` say (the envelopes are enqueued in the reverse of
/// their creation order, all at the same clock instant).
pub async fn fifo_within_priority<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "fifo";
    let envs: Vec<Envelope> = (0..10).map(|_| fx.env(q, "t")).collect();
    let mut expected: Vec<TaskId> = envs.iter().rev().map(|e| e.id).collect();
    for env in envs.into_iter().rev() {
        fx.enqueue(env).await;
    }
    let batch: Vec<Envelope> = (0..5).map(|_| fx.env(q, "t")).collect();
    expected.extend(batch.iter().map(|e| e.id));
    let out = fx.store.enqueue(batch).await.unwrap();
    assert_eq!(out.len(), 5);

    let mut got = ids(&fx.fetch(q, 1).await);
    got.extend(ids(&fx.fetch(q, 3).await));
    got.extend(ids(&fx.fetch(q, 100).await));
    assert_eq!(got, expected, "FIFO by enqueue order within one priority");
}

/// Higher priority first over the whole `i16` range, FIFO within a priority; a later
/// higher-priority task overtakes waiting lower ones.
pub async fn priority_order<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "prio";
    let prios: [i16; 10] = [0, -5, 10, i16::MIN, i16::MAX, 10, -5, 0, 1, -1];
    let mut tasks = Vec::new();
    for p in prios {
        let mut env = fx.env(q, "t");
        env.priority = p;
        tasks.push((p, fx.enqueue(env).await));
    }
    // Stable sort: FIFO within a priority.
    tasks.sort_by_key(|(p, _)| std::cmp::Reverse(*p));
    let expected: Vec<TaskId> = tasks.iter().map(|(_, id)| *id).collect();

    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(fx.fetch_one_of(q).await);
    }
    got.extend(ids(&fx.fetch(q, 100).await));
    assert_eq!(got, expected, "priority desc, then FIFO");

    // Two low ones wait; a high one enqueued after them is delivered first.
    let low1 = fx.enqueue_new(q, "low").await;
    let low2 = fx.enqueue_new(q, "low").await;
    let mut high = fx.env(q, "high");
    high.priority = 1;
    let high = fx.enqueue(high).await;
    assert_eq!(ids(&fx.fetch(q, 10).await), vec![high, low1, low2]);
}

/// A task is not delivered before its eta and is delivered once the clock passes it; an eta
/// in the past is due at once.
pub async fn eta_respected<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "eta";
    let mut later = fx.env(q, "later");
    later.eta = Some(fx.now() + secs(10));
    let later = fx.enqueue(later).await;
    let mut past = fx.env(q, "past");
    past.eta = Some(fx.now() - secs(3600));
    let past = fx.enqueue(past).await;

    assert_eq!(ids(&fx.fetch(q, 10).await), vec![past], "only the due task");
    let counts = fx.counts(Some(q)).await;
    assert_eq!((counts.ready, counts.scheduled, counts.leased), (0, 1, 1));
    let rec = fx
        .store
        .get_task(later)
        .await
        .unwrap()
        .expect("scheduled task");
    assert_eq!(rec.state, crate::TaskState::Scheduled);

    fx.advance(Duration::from_millis(9_999));
    fx.fetch_none(q, "1 ms before the eta").await;
    fx.advance(Duration::from_millis(2));
    assert_eq!(fx.fetch_one(q).await.lease.id, later, "after the eta");
}

/// `fetch(max)` never returns more than `max`, leases exactly what it returns, and only
/// returns tasks of the queue asked for.
pub async fn fetch_caps_at_max<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "caps";
    let batch: Vec<Envelope> = (0..10).map(|_| fx.env(q, "t")).collect();
    fx.store.enqueue(batch).await.unwrap();
    fx.enqueue_new("caps-other", "t").await;

    assert!(fx.fetch(q, 0).await.is_empty(), "fetch(0) returns nothing");
    assert_eq!(
        fx.counts(Some(q)).await.leased,
        0,
        "fetch(0) leases nothing"
    );
    assert_eq!(fx.fetch(q, 3).await.len(), 3);
    let c = fx.counts(Some(q)).await;
    assert_eq!((c.ready, c.leased), (7, 3));
    assert_eq!(fx.fetch(q, 100).await.len(), 7);
    assert!(fx.fetch(q, 100).await.is_empty());
    assert!(fx.fetch("caps-nobody", 100).await.is_empty());
    assert_eq!(
        fx.counts(Some("caps-other")).await.ready,
        1,
        "other queue untouched"
    );
}

/// A delivery carries the envelope exactly as enqueued (every field), with `deliveries` = 1,
/// and a lease that expires `lease` after now.
pub async fn delivery_carries_envelope_and_lease<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "carry";
    let mut env = fx.env(q, "send_email");
    env.args = to_msgpack(&("a@b.c", 3, [1.5, -2.0])).unwrap();
    env.priority = -7;
    env.eta = Some(fx.now() - secs(5));
    env.expires_at = Some(fx.now() + secs(3600));
    env.retry = RetryPolicy::fixed(2, secs(5)).with_jitter(0.25);
    env.timeout = Some(Duration::from_millis(1500));
    env.unique_key = Some("carry-key".into());
    env.max_deliveries = 7;
    env.trace
        .insert("traceparent".into(), "00-abc-def-01".into());
    env.follow_ups.push(FollowUp {
        when: FollowUpWhen::Success,
        input: FollowUpInput::Output,
        envelope: fx.env("next", "stage2"),
    });
    fx.enqueue(env.clone()).await;

    let d = fx.fetch_one(q).await;
    let mut expected = env;
    expected.deliveries = 1;
    assert_eq!(
        d.envelope, expected,
        "the envelope round-trips through the store"
    );
    assert_eq!(d.lease.id, expected.id);
    assert_eq!(ms(d.lease_expires_at), ms(fx.now() + LEASE), "lease expiry");
}

/// Eight fetchers racing over 200 tasks never get the same task twice and together get all.
pub async fn concurrent_fetchers_never_share_a_task<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "race";
    let mut all = HashSet::new();
    for _ in 0..4 {
        let batch: Vec<Envelope> = (0..50).map(|_| fx.env(q, "t")).collect();
        all.extend(batch.iter().map(|e| e.id));
        fx.store.enqueue(batch).await.unwrap();
    }
    let store = Arc::new(fx.store);
    let fetchers: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let batch = store.fetch(q, 3, LEASE).await.unwrap();
                    if batch.is_empty() {
                        break got;
                    }
                    got.extend(ids(&batch));
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let mut got = Vec::new();
    for f in fetchers {
        got.extend(f.await.expect("fetcher task"));
    }
    let unique: HashSet<TaskId> = got.iter().copied().collect();
    assert_eq!(unique.len(), got.len(), "a task was delivered twice");
    assert_eq!(unique, all, "every task delivered");
    assert_eq!(store.counts(Some(q)).await.unwrap().leased, 200);
}

/// A lease that is not completed runs out: the task comes back (not before), with its
/// delivery count incremented and a new token.
pub async fn expired_lease_is_redelivered<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "expire";
    let id = fx.enqueue_new(q, "t").await;
    let d1 = fx.fetch_one(q).await;
    assert_eq!(d1.envelope.deliveries, 1);

    fx.advance(LEASE - secs(1));
    fx.store.requeue_expired(q, 100).await.unwrap();
    fx.fetch_none(q, "the lease still holds").await;

    fx.advance(secs(2));
    let n = fx.store.requeue_expired(q, 100).await.unwrap();
    assert!(n <= 1, "requeue_expired returned {n} for one expired lease");
    let d2 = fx.fetch_one(q).await;
    assert_eq!(d2.lease.id, id);
    assert_eq!(
        d2.envelope.deliveries, 2,
        "deliveries counts the redelivery"
    );
    assert_ne!(
        d2.lease.token, d1.lease.token,
        "a new delivery has a new token"
    );
    assert_eq!(ms(d2.lease_expires_at), ms(fx.now() + LEASE));
    assert_eq!(fx.counts(Some(q)).await.leased, 1);
}

/// After a redelivery the old token is refused for `complete` and `extend` (and a refused
/// completion writes nothing: no result, no follow-ups); the new one is accepted, once.
pub async fn stale_token_is_refused<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "fence";
    let id = fx.enqueue_new(q, "t").await;
    let d1 = fx.fetch_one(q).await;
    fx.expire_leases(q).await;
    let d2 = fx.fetch_one(q).await;
    assert_eq!(d2.lease.id, id);

    let follow_up = fx.env("fence-next", "next");
    let follow_id = follow_up.id;
    let mut stale = Completion::new(d1.lease, success(&"old"), None);
    stale.follow_ups.push(follow_up);
    assert_eq!(fx.complete_with(stale).await, AckStatus::Stale);
    assert_eq!(
        fx.store.get_result(id).await.unwrap(),
        None,
        "stale wrote a result"
    );
    assert!(
        fx.store.get_task(follow_id).await.unwrap().is_none(),
        "stale completion enqueued its follow-up"
    );
    assert_eq!(fx.counts(Some("fence-next")).await.ready, 0);

    let statuses = fx.store.extend(&[d1.lease, d2.lease], LEASE).await.unwrap();
    assert_eq!(statuses, vec![AckStatus::Stale, AckStatus::Acked]);

    let rec = fx.store.get_task(id).await.unwrap().expect("still leased");
    assert_eq!(rec.state, crate::TaskState::Leased);

    let statuses = fx
        .store
        .complete(vec![
            Completion::new(d1.lease, success(&"old"), None),
            Completion::new(d2.lease, success(&"new"), None),
        ])
        .await
        .unwrap();
    assert_eq!(statuses, vec![AckStatus::Stale, AckStatus::Acked]);
    assert_eq!(
        fx.store.get_result(id).await.unwrap(),
        Some(StoredResult::Success(to_msgpack(&"new").unwrap()))
    );
    assert_eq!(
        fx.complete(d2.lease, success(&"again")).await,
        AckStatus::Stale
    );
    let statuses = fx.store.extend(&[d2.lease], LEASE).await.unwrap();
    assert_eq!(statuses, vec![AckStatus::Stale], "extend after completion");
}

/// `extend` moves the lease expiry to `now + lease`: the task does not come back at the old
/// expiry, and does come back after the new one.
pub async fn extend_moves_the_expiry<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "extend";
    let id = fx.enqueue_new(q, "t").await;
    let d = fx.fetch_one(q).await;

    fx.advance(secs(20));
    let statuses = fx.store.extend(&[d.lease], LEASE).await.unwrap();
    assert_eq!(statuses, vec![AckStatus::Acked]);
    let new_expiry = fx.now() + LEASE;
    let rec = fx.store.get_task(id).await.unwrap().expect("leased task");
    assert_eq!(rec.lease_expires_at.map(ms), Some(ms(new_expiry)));

    fx.advance(secs(20)); // past the original expiry, before the new one
    assert_eq!(fx.store.requeue_expired(q, 100).await.unwrap(), 0);
    fx.fetch_none(q, "the extended lease still holds").await;
    assert_eq!(fx.counts(Some(q)).await.leased, 1);

    fx.advance(secs(11)); // past the new expiry
    fx.store.requeue_expired(q, 100).await.unwrap();
    let again = fx.fetch_one(q).await;
    assert_eq!(again.lease.id, id);
    assert_eq!(again.envelope.deliveries, 2);
}

/// `requeue_expired(queue, max)` moves at most `max` tasks (every call is bounded), and the
/// rest still come back.
pub async fn requeue_expired_respects_max<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "bounded";
    let batch: Vec<Envelope> = (0..3).map(|_| fx.env(q, "t")).collect();
    fx.store.enqueue(batch).await.unwrap();
    assert_eq!(fx.fetch(q, 10).await.len(), 3);
    fx.advance(LEASE + secs(1));

    let n = fx.store.requeue_expired(q, 1).await.unwrap();
    assert!(n <= 1, "requeue_expired(max = 1) moved {n} tasks");
    fx.store.requeue_expired(q, 10).await.unwrap();
    assert_eq!(
        fx.fetch(q, 10).await.len(),
        3,
        "all expired tasks come back"
    );
}

impl<S: Storage> super::Fx<S> {
    /// Fetches one task (max 1) and returns its id.
    async fn fetch_one_of(&self, queue: &str) -> TaskId {
        let got = self.fetch(queue, 1).await;
        assert_eq!(got.len(), 1, "fetch(1) from `{queue}`");
        got[0].lease.id
    }
}
