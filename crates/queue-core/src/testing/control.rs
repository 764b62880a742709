//! Cases: reschedule, revocation, locks, rate limits.

use super::{ms, open, secs, Backend, LEASE};
use crate::{
    to_msgpack, AckStatus, Envelope, FailureKind, Outcome, Revocation, RevokeTarget, Storage,
    TaskId, TaskState,
};

/// `reschedule` moves a ready or scheduled task to a new eta (later or earlier), and refuses
/// leased and unknown tasks.
pub async fn reschedule_moves_pending_tasks<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "resched";
    let a = fx.enqueue_new(q, "a").await;
    let mut later = fx.env(q, "b");
    later.eta = Some(fx.now() + secs(3600));
    let bid = fx.enqueue(later).await;

    let eta = fx.now() + secs(30);
    assert!(
        fx.store.reschedule(a, eta).await.unwrap(),
        "ready task found"
    );
    let rec = fx.store.get_task(a).await.unwrap().expect("task");
    assert_eq!((rec.state, ms(rec.run_at)), (TaskState::Scheduled, ms(eta)));
    assert!(
        fx.store.reschedule(bid, fx.now()).await.unwrap(),
        "scheduled task found"
    );
    let leased = fx.fetch_one(q).await;
    assert_eq!(leased.lease.id, bid, "moved earlier: due now");

    assert!(
        !fx.store.reschedule(bid, eta).await.unwrap(),
        "leased: refused"
    );
    let rec = fx.store.get_task(bid).await.unwrap().expect("task");
    assert_eq!(
        rec.state,
        TaskState::Leased,
        "a refused reschedule changes nothing"
    );
    assert!(
        !fx.store.reschedule(TaskId::new(), eta).await.unwrap(),
        "unknown"
    );
    let done = fx.complete(leased.lease, super::success(&())).await;
    assert_eq!(done, crate::AckStatus::Acked);

    fx.advance(secs(29));
    fx.fetch_none(q, "before the new eta").await;
    fx.advance(secs(2));
    assert_eq!(fx.fetch_one(q).await.lease.id, a);
}

/// Revocations by id and by task name apply until restored; `restore` says whether there was
/// one.
pub async fn revoke_by_id_and_name<B: Backend>(b: &B) {
    let fx = open(b).await;
    let (id1, id2) = (TaskId::new(), TaskId::new());
    assert_eq!(
        check(&fx.store, &[(id1, "t"), (id2, "t")]).await,
        vec![false, false]
    );

    let by_id = Revocation {
        target: RevokeTarget::Id(id1),
        until: None,
        once: false,
    };
    fx.store.revoke(by_id).await.unwrap();
    assert_eq!(
        check(&fx.store, &[(id1, "t"), (id2, "t")]).await,
        vec![true, false]
    );
    assert_eq!(
        check(&fx.store, &[(id1, "t")]).await,
        vec![true],
        "not used up"
    );

    let by_name = Revocation {
        target: RevokeTarget::Task("t".into()),
        until: None,
        once: false,
    };
    fx.store.revoke(by_name).await.unwrap();
    assert_eq!(
        check(&fx.store, &[(id2, "t"), (id2, "u")]).await,
        vec![true, false]
    );

    let name = RevokeTarget::Task("t".into());
    assert!(fx.store.restore(&name).await.unwrap());
    assert!(!fx.store.restore(&name).await.unwrap(), "already restored");
    assert_eq!(
        check(&fx.store, &[(id2, "t"), (id1, "t")]).await,
        vec![false, true]
    );
    assert!(fx.store.restore(&RevokeTarget::Id(id1)).await.unwrap());
    assert_eq!(check(&fx.store, &[(id1, "t")]).await, vec![false]);
}

/// A revocation by id goes with its task: once the task finishes (dropped as revoked,
/// succeeded after it was revoked while running, dead-lettered), the revocation is removed;
/// one whose task is still pending, or retried, stays, and so do revocations by name.
pub async fn a_revocation_by_id_goes_with_its_task<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "unrevoke";
    let forever = |id| Revocation {
        target: RevokeTarget::Id(id),
        until: None,
        once: false,
    };
    let dropped = fx.enqueue_new(q, "t").await;
    let succeeded = fx.enqueue_new(q, "t").await;
    let retried = fx.enqueue_new(q, "t").await;
    let died = fx.enqueue_new(q, "t").await;
    let pending = fx.enqueue_new(q, "t").await;
    for id in [dropped, succeeded, retried, died, pending] {
        fx.store.revoke(forever(id)).await.unwrap();
    }
    let by_name = Revocation {
        target: RevokeTarget::Task("other".into()),
        until: None,
        once: false,
    };
    fx.store.revoke(by_name).await.unwrap();
    let got = fx.fetch(q, 4).await;
    assert_eq!(super::ids(&got), vec![dropped, succeeded, retried, died]);
    let drop = Outcome::Drop {
        failure: super::failure(FailureKind::Revoked, "revoked before it ran"),
    };
    let retry = Outcome::Retry {
        eta: fx.now(),
        failure: super::failure(FailureKind::Error, "again"),
    };
    let dead = Outcome::Dead {
        failure: super::failure(FailureKind::Error, "boom"),
    };
    let outcomes = [drop, super::success(&1u8), retry, dead];
    for (d, outcome) in got.iter().zip(outcomes) {
        assert_eq!(fx.complete(d.lease, outcome).await, AckStatus::Acked);
    }
    let asked: Vec<(TaskId, &str)> = [dropped, succeeded, retried, died, pending]
        .iter()
        .map(|id| (*id, "t"))
        .collect();
    assert_eq!(
        check(&fx.store, &asked).await,
        vec![false, false, true, false, true],
        "finished tasks' revocations are gone; a retried and a pending task's stay"
    );
    assert_eq!(
        check(&fx.store, &[(TaskId::new(), "other")]).await,
        vec![true],
        "revocations by name stay"
    );
}

/// A `once` revocation is used up by the first check it matches; one with `until` lapses when
/// the clock passes it.
pub async fn revoke_once_and_until<B: Backend>(b: &B) {
    let fx = open(b).await;
    let id = TaskId::new();
    let once = Revocation {
        target: RevokeTarget::Id(id),
        until: None,
        once: true,
    };
    fx.store.revoke(once).await.unwrap();
    assert_eq!(
        fx.store.check_revoked(&[(id, "t")]).await.unwrap(),
        vec![true]
    );
    assert_eq!(
        fx.store.check_revoked(&[(id, "t")]).await.unwrap(),
        vec![false],
        "used"
    );

    let once_by_name = Revocation {
        target: RevokeTarget::Task("o".into()),
        until: None,
        once: true,
    };
    fx.store.revoke(once_by_name).await.unwrap();
    let other = TaskId::new();
    assert_eq!(
        fx.store.check_revoked(&[(other, "o")]).await.unwrap(),
        vec![true]
    );
    assert_eq!(
        fx.store.check_revoked(&[(id, "o")]).await.unwrap(),
        vec![false]
    );

    let until = Revocation {
        target: RevokeTarget::Task("u".into()),
        until: Some(fx.now() + secs(10)),
        once: false,
    };
    fx.store.revoke(until).await.unwrap();
    assert_eq!(
        fx.store.check_revoked(&[(id, "u")]).await.unwrap(),
        vec![true]
    );
    fx.advance(secs(9));
    assert_eq!(
        fx.store.check_revoked(&[(id, "u")]).await.unwrap(),
        vec![true]
    );
    fx.advance(secs(2));
    assert_eq!(
        fx.store.check_revoked(&[(id, "u")]).await.unwrap(),
        vec![false],
        "lapsed"
    );
}

/// Two stores on one backing store (one Redis server and key prefix, one SQLite file): a
/// revocation written through `admin` applies to the next batch `consumer` fetches, although
/// `consumer` has just learnt that nothing is revoked (the answer a store keeps for the fast
/// path of `check_revoked`, see [`RevocationCache`](crate::storage::RevocationCache)).
///
/// Not one of the cases of [`conformance_tests!`](crate::conformance_tests): it needs two stores
/// that share their data, which [`Backend::open`] does not give. Call it from a backend's own
/// tests with two stores opened on the same data and the same clock.
pub async fn revocation_by_another_store_applies_to_the_next_fetched_batch<S: Storage>(
    consumer: &S,
    admin: &S,
) {
    let now = consumer.clock().now();
    let env = || Envelope::new("r", "t", to_msgpack(&()).unwrap(), now);
    let (first, second) = (env(), env());
    let second_id = second.id;
    consumer.enqueue(vec![first, second]).await.unwrap();
    let got = consumer.fetch("r", 1, LEASE).await.unwrap();
    assert_eq!(
        consumer
            .check_revoked(&[(got[0].lease.id, "t")])
            .await
            .unwrap(),
        [false],
        "nothing is revoked yet"
    );

    let revocation = Revocation {
        target: RevokeTarget::Id(second_id),
        until: None,
        once: false,
    };
    admin.revoke(revocation).await.unwrap();
    let got = consumer.fetch("r", 1, LEASE).await.unwrap();
    assert_eq!(got[0].lease.id, second_id);
    assert_eq!(
        consumer.check_revoked(&[(second_id, "t")]).await.unwrap(),
        [true],
        "revoked through the other store before this fetch"
    );
}

/// Locks have an owner and a TTL: the owner may re-take (and renew) it, others are refused
/// until it is released by its owner or its TTL passes; `flush_locks` frees them all.
pub async fn locks_have_owners_and_ttls<B: Backend>(b: &B) {
    let fx = open(b).await;
    let s = &fx.store;
    assert!(s.acquire_lock("l", "A", secs(10)).await.unwrap());
    assert!(
        !s.acquire_lock("l", "B", secs(10)).await.unwrap(),
        "held by A"
    );
    fx.advance(secs(8));
    assert!(
        s.acquire_lock("l", "A", secs(10)).await.unwrap(),
        "re-taken by A"
    );
    fx.advance(secs(5)); // past the first TTL, within the renewed one
    assert!(
        !s.acquire_lock("l", "B", secs(10)).await.unwrap(),
        "renewed by A"
    );

    assert!(
        !s.release_lock("l", "B").await.unwrap(),
        "B does not hold it"
    );
    assert!(
        !s.acquire_lock("l", "B", secs(10)).await.unwrap(),
        "still A's"
    );
    assert!(s.release_lock("l", "A").await.unwrap());
    assert!(!s.release_lock("l", "A").await.unwrap(), "already released");
    assert!(
        s.acquire_lock("l", "B", secs(10)).await.unwrap(),
        "free after release"
    );

    fx.advance(secs(11));
    assert!(
        s.acquire_lock("l", "A", secs(10)).await.unwrap(),
        "free after TTL"
    );
    assert!(!s.release_lock("l", "B").await.unwrap(), "B's lock expired");

    assert!(s.acquire_lock("m", "C", secs(60)).await.unwrap());
    assert!(
        s.acquire_lock("other", "C", secs(60)).await.unwrap(),
        "names are separate"
    );
    assert_eq!(s.flush_locks().await.unwrap(), 3);
    assert!(s.acquire_lock("l", "Z", secs(10)).await.unwrap());
    assert!(s.acquire_lock("m", "Z", secs(10)).await.unwrap());
}

/// A fixed window allows `limit` hits, then refuses with a `retry_after` within the window;
/// after `retry_after` the next window allows `limit` hits again. Keys are independent.
pub async fn rate_limit_fixed_window<B: Backend>(b: &B) {
    let fx = open(b).await;
    let s = &fx.store;
    let window = secs(60);
    for round in 0..2 {
        for hit in 0..3 {
            let d = s.rate_limit("k", 3, window).await.unwrap();
            assert!(d.allowed, "round {round}, hit {hit} is within the limit");
        }
        let refused = s.rate_limit("k", 3, window).await.unwrap();
        assert!(!refused.allowed, "round {round}: the 4th hit is refused");
        assert!(
            refused.retry_after > std::time::Duration::ZERO && refused.retry_after <= window,
            "retry_after {:?}",
            refused.retry_after
        );
        let again = s.rate_limit("k", 3, window).await.unwrap();
        assert!(!again.allowed, "refused hits do not make room");
        assert!(
            s.rate_limit(&format!("other{round}"), 3, window)
                .await
                .unwrap()
                .allowed
        );
        fx.advance(refused.retry_after);
    }
}

/// A hit that carries an older window than the stored one (a process whose clock is behind,
/// or a call that waited while the window turned) is never counted in it and never resets
/// the newer window's count.
pub async fn rate_window_never_moves_back<B: Backend>(b: &B) {
    let fx = open(b).await;
    let s = &fx.store;
    let window = secs(60);
    let before = fx.now();
    // Fill the next window.
    fx.advance(window);
    for _ in 0..3 {
        assert!(s.rate_limit("k", 3, window).await.unwrap().allowed);
    }
    assert!(!s.rate_limit("k", 3, window).await.unwrap().allowed);
    // A hit from the window before.
    fx.clock.set(before);
    let late = s.rate_limit("k", 3, window).await.unwrap();
    assert!(
        !late.allowed,
        "a hit from an older window reset the newer one"
    );
    // Back in the newer window: it is still full.
    fx.advance(window);
    assert!(
        !s.rate_limit("k", 3, window).await.unwrap().allowed,
        "the newer window's count was reset"
    );
}

/// `check_revoked`, unwrapped.
async fn check<S: Storage>(s: &S, tasks: &[(TaskId, &str)]) -> Vec<bool> {
    s.check_revoked(tasks).await.unwrap()
}
