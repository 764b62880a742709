//! Cases: counts, listings, queues, flush.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{failure, ms, open, secs, success, Backend};
use crate::{
    AckStatus, Counts, FailureKind, Outcome, Page, RateDecision, Revocation, RevokeTarget, Storage,
    TaskId, TaskRecord, TaskState,
};

/// Counts follow a task set through ready, scheduled, leased, results and dead, per queue and
/// in total.
pub async fn counts_through_lifecycle<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "life";
    assert_eq!(fx.counts(None).await, Counts::default(), "a fresh store");

    fx.enqueue_new(q, "r1").await;
    fx.enqueue_new(q, "r2").await;
    let mut s = fx.env(q, "s1");
    s.eta = Some(fx.now() + secs(60));
    let s = fx.enqueue(s).await;
    fx.enqueue_new("life-other", "x").await;
    let counts = |ready, scheduled, leased, dead| Counts {
        ready,
        scheduled,
        leased,
        dead,
        results: 0,
    };
    let per_queue = |c: Counts| Counts { results: 0, ..c };
    assert_eq!(per_queue(fx.counts(Some(q)).await), counts(2, 1, 0, 0));

    let d1 = fx.fetch(q, 1).await.remove(0);
    assert_eq!(per_queue(fx.counts(Some(q)).await), counts(1, 1, 1, 0));
    assert_eq!(fx.complete(d1.lease, success(&())).await, AckStatus::Acked);
    assert_eq!(per_queue(fx.counts(Some(q)).await), counts(1, 1, 0, 0));
    assert_eq!(fx.counts(None).await.results, 1);

    let d2 = fx.fetch_one(q).await;
    let dead = Outcome::Dead {
        failure: failure(FailureKind::Error, "boom"),
    };
    assert_eq!(fx.complete(d2.lease, dead).await, AckStatus::Acked);
    assert_eq!(per_queue(fx.counts(Some(q)).await), counts(0, 1, 0, 1));
    assert_eq!(fx.counts(None).await.results, 2);

    fx.advance(secs(61));
    assert_eq!(fx.fetch_one(q).await.lease.id, s);
    assert_eq!(per_queue(fx.counts(Some(q)).await), counts(0, 0, 1, 1));
    assert_eq!(
        fx.counts(None).await,
        Counts {
            ready: 1,
            scheduled: 0,
            leased: 1,
            dead: 1,
            results: 2
        },
        "totals over every queue"
    );
}

/// `list` returns each state in its order (ready by delivery order, scheduled by eta, leased by
/// lease expiry) with paging and a queue filter; `get_task` reports a task's state.
pub async fn list_and_get_task_with_paging<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "listing";
    let mut ready = Vec::new();
    for p in [0i16, 5, 0, -1, 5] {
        let mut env = fx.env(q, "r");
        env.priority = p;
        ready.push(fx.enqueue(env).await);
    }
    let mut sched = Vec::new();
    for delay in [30, 10, 20] {
        let mut env = fx.env(q, "s");
        env.eta = Some(fx.now() + secs(delay));
        sched.push((fx.enqueue(env).await, fx.now() + secs(delay)));
    }
    let elsewhere = fx.enqueue_new("listing-other", "x").await;
    let long = fx.store.fetch(q, 1, secs(60)).await.unwrap().remove(0);
    let short = fx.store.fetch(q, 1, secs(20)).await.unwrap().remove(0);
    assert_eq!((long.lease.id, short.lease.id), (ready[1], ready[4]));

    let s = &fx.store;
    let idl = |recs: &[TaskRecord]| recs.iter().map(|r| r.id).collect::<Vec<_>>();

    let recs = list(s, TaskState::Ready, Some(q), 0, 10).await;
    assert_eq!(
        idl(&recs),
        vec![ready[0], ready[2], ready[3]],
        "ready order"
    );
    for r in &recs {
        assert_eq!((r.state, r.queue.as_str()), (TaskState::Ready, q));
        assert_eq!(r.envelope.as_ref().map(|e| e.id), Ok(r.id));
    }
    let recs = list(s, TaskState::Ready, Some(q), 1, 1).await;
    assert_eq!(idl(&recs), vec![ready[2]], "ready page 2 of size 1");
    assert!(list(s, TaskState::Ready, Some(q), 3, 5).await.is_empty());
    let all: BTreeSet<TaskId> = idl(&list(s, TaskState::Ready, None, 0, 10).await)
        .into_iter()
        .collect();
    let expected: BTreeSet<TaskId> = [ready[0], ready[2], ready[3], elsewhere].into();
    assert_eq!(all, expected, "ready in every queue");

    let recs = list(s, TaskState::Scheduled, Some(q), 0, 10).await;
    assert_eq!(
        idl(&recs),
        vec![sched[1].0, sched[2].0, sched[0].0],
        "by eta"
    );
    let run_ats: Vec<i64> = recs.iter().map(|r| ms(r.run_at)).collect();
    assert_eq!(
        run_ats,
        vec![ms(sched[1].1), ms(sched[2].1), ms(sched[0].1)]
    );
    let recs = list(s, TaskState::Scheduled, Some(q), 1, 2).await;
    assert_eq!(idl(&recs), vec![sched[2].0, sched[0].0]);

    let recs = list(s, TaskState::Leased, Some(q), 0, 10).await;
    assert_eq!(idl(&recs), vec![short.lease.id, long.lease.id], "by expiry");
    assert_eq!(
        recs[0].lease_expires_at.map(ms),
        Some(ms(short.lease_expires_at))
    );
    assert_eq!(
        recs[1].lease_expires_at.map(ms),
        Some(ms(long.lease_expires_at))
    );
    assert_eq!(
        idl(&list(s, TaskState::Leased, Some(q), 1, 10).await),
        vec![long.lease.id]
    );

    let r = s.get_task(ready[0]).await.unwrap().expect("ready task");
    assert_eq!(r.state, TaskState::Ready);
    let r = s
        .get_task(sched[0].0)
        .await
        .unwrap()
        .expect("scheduled task");
    assert_eq!(
        (r.state, ms(r.run_at)),
        (TaskState::Scheduled, ms(sched[0].1))
    );
    let r = s
        .get_task(long.lease.id)
        .await
        .unwrap()
        .expect("leased task");
    assert_eq!(r.state, TaskState::Leased);
    assert_eq!(r.lease_expires_at.map(ms), Some(ms(long.lease_expires_at)));
    assert!(s.get_task(TaskId::new()).await.unwrap().is_none());
    assert_eq!(
        fx.complete(long.lease, success(&())).await,
        AckStatus::Acked
    );
    assert!(
        s.get_task(long.lease.id).await.unwrap().is_none(),
        "completed tasks are not pending"
    );
}

/// A scheduled task whose eta has passed but that no fetch has touched yet counts and lists as
/// ready, in delivery order with the others (priority, then FIFO); scheduled and leased
/// listings without a queue take every queue's; dead letters list per queue.
pub async fn due_tasks_count_and_list_as_ready<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "due";
    let mut soon = fx.env(q, "soon");
    soon.eta = Some(fx.now() + secs(10));
    soon.priority = 1;
    let soon = fx.enqueue(soon).await;
    let first = fx.enqueue_new(q, "first").await;
    let mut later = fx.env(q, "later");
    later.eta = Some(fx.now() + secs(600));
    let later = fx.enqueue(later).await;
    let mut other = fx.env("due-other", "elsewhere");
    other.eta = Some(fx.now() + secs(300));
    let other = fx.enqueue(other).await;
    fx.advance(secs(11));

    let per_queue = fx.counts(Some(q)).await;
    assert_eq!(
        (per_queue.ready, per_queue.scheduled, per_queue.leased),
        (2, 1, 0),
        "the due task counts as ready"
    );
    let s = &fx.store;
    let idl = |recs: &[TaskRecord]| recs.iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        idl(&list(s, TaskState::Ready, Some(q), 0, 10).await),
        vec![soon, first],
        "the due task is listed as ready, by priority"
    );
    assert_eq!(
        idl(&list(s, TaskState::Ready, Some(q), 1, 10).await),
        vec![first],
        "paging runs over both"
    );
    assert_eq!(
        idl(&list(s, TaskState::Scheduled, None, 0, 10).await),
        vec![other, later],
        "scheduled in every queue, by eta"
    );
    let leased = fx.fetch(q, 1).await;
    assert_eq!(leased[0].lease.id, soon);
    assert_eq!(
        idl(&list(s, TaskState::Leased, None, 0, 10).await),
        vec![soon]
    );
    let totals = fx.counts(None).await;
    assert_eq!(
        (totals.ready, totals.scheduled, totals.leased),
        (1, 2, 1),
        "totals over every queue"
    );
    let dead = fx.make_dead("due-dead", "t").await;
    fx.make_dead("due-dead-2", "t").await;
    let listed = s
        .list_dead(Some("due-dead"), Page::first(10))
        .await
        .unwrap();
    assert_eq!(listed.iter().map(|d| d.id).collect::<Vec<_>>(), vec![dead]);
    assert_eq!(fx.counts(Some("due-dead")).await.dead, 1);
    assert_eq!(fx.counts(None).await.dead, 2);
}

/// `queues` names the queues with pending or dead tasks, and no others.
pub async fn queues_lists_pending_and_dead<B: Backend>(b: &B) {
    let fx = open(b).await;
    let names = |v: Vec<String>| v.into_iter().collect::<BTreeSet<_>>();
    assert!(fx.store.queues().await.unwrap().is_empty(), "fresh store");

    fx.enqueue_new("alpha", "t").await;
    let mut later = fx.env("beta", "t");
    later.eta = Some(fx.now() + secs(60));
    fx.enqueue(later).await;
    fx.make_dead("gamma", "t").await;
    let expected: BTreeSet<String> = ["alpha", "beta", "gamma"].map(String::from).into();
    assert_eq!(names(fx.store.queues().await.unwrap()), expected);

    let d = fx.fetch_one("alpha").await;
    assert_eq!(fx.complete(d.lease, success(&())).await, AckStatus::Acked);
    let expected: BTreeSet<String> = ["beta", "gamma"].map(String::from).into();
    assert_eq!(
        names(fx.store.queues().await.unwrap()),
        expected,
        "alpha is empty"
    );
}

/// `flush` deletes tasks, results, dead tasks, locks, revocations and rate-limit counters, and
/// the store stays usable.
pub async fn flush_empties_everything<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "flush";
    let ready = fx.enqueue_new(q, "t").await;
    let leased = fx.enqueue_new(q, "t").await;
    let mut s = fx.env(q, "t");
    s.eta = Some(fx.now() + secs(60));
    let scheduled = fx.enqueue(s).await;
    let dead = fx.make_dead("flush-dead", "t").await;
    assert_eq!(fx.fetch(q, 1).await[0].lease.id, ready);
    let d = fx.fetch_one(q).await;
    assert_eq!(d.lease.id, leased);
    let done = fx.enqueue_new("flush-done", "t").await;
    let dd = fx.fetch_one("flush-done").await;
    fx.complete(dd.lease, success(&())).await;
    assert!(fx.store.acquire_lock("l", "owner", secs(60)).await.unwrap());
    let id_rev = Revocation {
        target: RevokeTarget::Id(ready),
        until: None,
        once: false,
    };
    fx.store.revoke(id_rev).await.unwrap();
    let window = Duration::from_secs(3600);
    assert!(fx.store.rate_limit("rl", 1, window).await.unwrap().allowed);
    let RateDecision { allowed, .. } = fx.store.rate_limit("rl", 1, window).await.unwrap();
    assert!(!allowed, "limit used up before the flush");

    fx.store.flush().await.unwrap();

    assert_eq!(fx.counts(None).await, Counts::default());
    assert!(fx.store.queues().await.unwrap().is_empty());
    for id in [ready, leased, scheduled, dead, done] {
        assert!(fx.store.get_task(id).await.unwrap().is_none());
        assert!(fx.store.get_result(id).await.unwrap().is_none());
        assert!(fx.store.get_dead(id).await.unwrap().is_none());
    }
    fx.no_dead_letters("flushed").await;
    assert!(
        fx.store.acquire_lock("l", "other", secs(60)).await.unwrap(),
        "locks"
    );
    assert_eq!(
        fx.store.check_revoked(&[(ready, "t")]).await.unwrap(),
        vec![false],
        "revocations"
    );
    assert!(
        fx.store.rate_limit("rl", 1, window).await.unwrap().allowed,
        "counters"
    );
    fx.expire_leases(q).await;
    fx.fetch_none(q, "after flush").await;

    let again = fx.enqueue_new(q, "t").await;
    assert_eq!(fx.fetch_one(q).await.lease.id, again, "usable after flush");
}

/// One page of `list`.
async fn list<S: Storage>(
    s: &S,
    state: TaskState,
    queue: Option<&str>,
    offset: u64,
    limit: u32,
) -> Vec<TaskRecord> {
    s.list(state, queue, Page { offset, limit }).await.unwrap()
}
