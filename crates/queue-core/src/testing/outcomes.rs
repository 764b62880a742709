//! Cases: what `complete` does with each outcome, and follow-ups.

use super::{failure, ms, open, secs, success, Backend};
use crate::{AckStatus, Completion, FailureKind, Outcome, Page, Storage, StoredResult, TaskState};

/// Follow-ups are enqueued with a success, a dead-lettering and a drop, in order; they are
/// ignored with a retry or a deferral.
pub async fn follow_ups_commit_with_the_outcome<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "chain";
    let next = "chain-next";

    let outcomes = [
        ("success", success(&1), true),
        (
            "dead",
            Outcome::Dead {
                failure: failure(FailureKind::Error, "boom"),
            },
            true,
        ),
        (
            "drop",
            Outcome::Drop {
                failure: failure(FailureKind::Canceled, "canceled"),
            },
            true,
        ),
        (
            "retry",
            Outcome::Retry {
                eta: fx.now() + secs(60),
                failure: failure(FailureKind::Error, "again"),
            },
            false,
        ),
        (
            "defer",
            Outcome::Defer {
                eta: fx.now() + secs(60),
            },
            false,
        ),
    ];
    for (name, outcome, enqueues) in outcomes {
        fx.enqueue_new(q, name).await;
        let d = fx.fetch_one(q).await;
        let a = fx.env(next, &format!("{name}-1"));
        let b2 = fx.env(next, &format!("{name}-2"));
        let follow = vec![a.id, b2.id];
        let mut c = Completion::new(d.lease, outcome, None);
        c.follow_ups = vec![a, b2];
        assert_eq!(fx.complete_with(c).await, AckStatus::Acked, "{name}");
        let got = super::ids(&fx.fetch(next, 10).await);
        if enqueues {
            assert_eq!(got, follow, "{name}: follow-ups enqueued in order");
        } else {
            assert!(
                got.is_empty(),
                "{name}: follow-ups must be ignored, got {got:?}"
            );
        }
    }
}

/// A completion with an invalid follow-up (empty queue name) fails as a whole: `Err`, the task
/// stays leased under the same token, no result, no follow-up. The same lease then completes.
pub async fn invalid_follow_up_changes_nothing<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "atomic";
    let id = fx.enqueue_new(q, "t").await;
    let d = fx.fetch_one(q).await;

    let good = fx.env("atomic-next", "next");
    let good_id = good.id;
    let mut bad = fx.env("atomic-next", "bad");
    bad.queue = String::new();
    let mut c = Completion::new(d.lease, success(&"out"), None);
    c.follow_ups = vec![good.clone(), bad];
    let res = fx.store.complete(vec![c]).await;
    assert!(
        res.is_err(),
        "invalid follow-up must be an error, got {res:?}"
    );

    let rec = fx
        .store
        .get_task(id)
        .await
        .unwrap()
        .expect("task still there");
    assert_eq!(rec.state, TaskState::Leased, "task still leased");
    assert_eq!(fx.store.get_result(id).await.unwrap(), None, "no result");
    assert!(
        fx.store.get_task(good_id).await.unwrap().is_none(),
        "no follow-up"
    );
    assert_eq!(fx.counts(Some("atomic-next")).await.ready, 0);

    let mut c = Completion::new(d.lease, success(&"out"), None);
    c.follow_ups = vec![good];
    assert_eq!(
        fx.complete_with(c).await,
        AckStatus::Acked,
        "same lease still valid"
    );
    assert_eq!(
        super::ids(&fx.fetch("atomic-next", 10).await),
        vec![good_id]
    );
}

/// A retry writes the task back at the given eta with `attempt + 1`, and no result.
pub async fn retry_writes_back_later<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "retry";
    let id = fx.enqueue_new(q, "t").await;
    let d1 = fx.fetch_one(q).await;
    assert_eq!(d1.envelope.attempt, 0);

    let eta = fx.now() + secs(60);
    let retry = Outcome::Retry {
        eta,
        failure: failure(FailureKind::Error, "flaky"),
    };
    assert_eq!(fx.complete(d1.lease, retry).await, AckStatus::Acked);
    assert_eq!(
        fx.store.get_result(id).await.unwrap(),
        None,
        "a retry has no result"
    );
    let rec = fx.store.get_task(id).await.unwrap().expect("retried task");
    assert_eq!(rec.state, TaskState::Scheduled);
    assert_eq!(ms(rec.run_at), ms(eta), "written back at the retry eta");
    let c = fx.counts(Some(q)).await;
    assert_eq!((c.ready, c.scheduled, c.leased), (0, 1, 0));

    fx.advance(secs(59));
    fx.fetch_none(q, "before the retry eta").await;
    fx.advance(secs(2));
    let d2 = fx.fetch_one(q).await;
    assert_eq!(d2.lease.id, id);
    assert_eq!(d2.envelope.attempt, 1, "attempt counted");
    assert_eq!(d2.envelope.deliveries, 2);
    let stale = success(&"late");
    assert_eq!(fx.complete(d1.lease, stale).await, AckStatus::Stale);

    // An eta in the past makes it due at once.
    let retry = Outcome::Retry {
        eta: fx.now() - secs(1),
        failure: failure(FailureKind::Error, "flaky"),
    };
    assert_eq!(fx.complete(d2.lease, retry).await, AckStatus::Acked);
    assert_eq!(fx.fetch_one(q).await.envelope.attempt, 2);
}

/// A deferral goes back at its eta without counting an attempt or a delivery, so deferring
/// again and again never makes a task poison.
pub async fn defer_counts_nothing<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "defer";
    let mut env = fx.env(q, "t");
    env.max_deliveries = 2;
    let id = fx.enqueue(env).await;
    let mut d = fx.fetch_one(q).await;
    for round in 0..5 {
        assert_eq!(
            (d.envelope.deliveries, d.envelope.attempt),
            (1, 0),
            "round {round}"
        );
        let defer = Outcome::Defer {
            eta: fx.now() + secs(5),
        };
        assert_eq!(fx.complete(d.lease, defer).await, AckStatus::Acked);
        assert_eq!(fx.store.get_result(id).await.unwrap(), None);
        fx.fetch_none(q, "before the deferral eta").await;
        fx.advance(secs(6));
        d = fx.fetch_one(q).await;
        assert_eq!(d.lease.id, id);
    }
    assert_eq!(fx.counts(Some(q)).await.dead, 0);
}

/// A dead outcome moves the task to the dead-letter queue with its failure, and its result is
/// the failure.
pub async fn dead_goes_to_the_dead_letter_queue<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "dead";
    let id = fx.enqueue_new(q, "explode").await;
    let d = fx.fetch_one(q).await;
    let why = failure(FailureKind::Error, "boom");
    let dead = Outcome::Dead {
        failure: why.clone(),
    };
    assert_eq!(fx.complete(d.lease, dead).await, AckStatus::Acked);

    let listed = fx.store.list_dead(Some(q), Page::first(10)).await.unwrap();
    assert_eq!(listed.len(), 1);
    let dt = &listed[0];
    assert_eq!(
        (dt.id, dt.queue.as_str(), dt.task.as_str()),
        (id, q, "explode")
    );
    assert_eq!(dt.failure, why);
    assert_eq!(ms(dt.failed_at), ms(fx.now()));
    assert_eq!(dt.envelope.as_ref().map(|e| e.id), Ok(id));
    let one = fx.store.get_dead(id).await.unwrap().expect("get_dead");
    assert_eq!(one.failure, why);

    assert_eq!(
        fx.store.get_result(id).await.unwrap(),
        Some(StoredResult::Failure(why))
    );
    assert!(
        fx.store.get_task(id).await.unwrap().is_none(),
        "not pending"
    );
    fx.expire_leases(q).await;
    fx.fetch_none(q, "a dead task").await;
    let c = fx.counts(Some(q)).await;
    assert_eq!((c.ready, c.leased, c.dead), (0, 0, 1));
}

/// A drop ends the task with the failure as its result, without dead-lettering it.
pub async fn drop_is_not_dead<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "drop";
    let id = fx.enqueue_new(q, "t").await;
    let d = fx.fetch_one(q).await;
    let why = failure(FailureKind::Revoked, "revoked");
    let drop = Outcome::Drop {
        failure: why.clone(),
    };
    assert_eq!(fx.complete(d.lease, drop).await, AckStatus::Acked);
    assert_eq!(
        fx.store.get_result(id).await.unwrap(),
        Some(StoredResult::Failure(why))
    );
    fx.no_dead_letters("dropped, not dead").await;
    assert!(fx.store.get_dead(id).await.unwrap().is_none());
    assert!(fx.store.get_task(id).await.unwrap().is_none());
    fx.expire_leases(q).await;
    fx.fetch_none(q, "a dropped task").await;
    assert_eq!(
        fx.counts(None).await,
        crate::Counts {
            results: 1,
            ..Default::default()
        }
    );
}
