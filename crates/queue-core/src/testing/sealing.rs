//! Cases: signed and encrypted tasks ([`crate::seal`]) through the store — sealed at rest,
//! opened for the consumer, forged, tampered and unknown-key tasks dead-lettered with their
//! reason, older keys still opening after a rotation.

use std::sync::Arc;

use chrono::Utc;

use super::{failure, LEASE};
use crate::clock::{from_millis, to_millis};
use crate::seal::{is_sealed, Keyring, SealedStorage, Sealing, KEY_LEN};
use crate::{
    from_msgpack, to_msgpack, AckStatus, Completion, Envelope, FailureKind, FollowUp,
    FollowUpInput, FollowUpWhen, ManualClock, Outcome, Storage, StoredResult, TaskId,
};

use super::Backend;

const SECRET: &str = "card 4242-4242-4242-4242";

fn keys(spec: &[(&str, u8)]) -> Keyring {
    Keyring::new(spec.iter().map(|&(id, b)| (id, vec![b; KEY_LEN]))).unwrap()
}

fn sealed(store: &Arc<dyn Storage>, keys: &Keyring) -> SealedStorage {
    SealedStorage::new(
        store.clone(),
        Arc::new(
            Sealing::new()
                .signing(keys.clone())
                .encryption(keys.clone()),
        ),
    )
}

async fn open_store<B: Backend>(b: &B) -> (Arc<B::Store>, Arc<dyn Storage>) {
    let clock = ManualClock::starting_at(from_millis(to_millis(Utc::now())));
    let store = Arc::new(b.open(Arc::new(clock)).await);
    let dyn_store: Arc<dyn Storage> = store.clone();
    (store, dyn_store)
}

fn secret_env(store: &dyn Storage, queue: &str, task: &str) -> Envelope {
    Envelope::new(
        queue,
        task,
        to_msgpack(&(SECRET,)).unwrap(),
        store.clock().now(),
    )
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

async fn dead_kind(store: &dyn Storage, id: TaskId) -> (FailureKind, String) {
    let dead = store.get_dead(id).await.unwrap().expect("dead-lettered");
    (dead.failure.kind, dead.failure.message)
}

/// Arguments, fixed follow-up arguments and results are stored sealed (the plain text appears
/// nowhere in what the store returns without the keys) and come back opened through the
/// sealed store; a dead-lettered sealed task requeued keeps its seal and still verifies.
pub async fn sealed_tasks_are_unreadable_at_rest<B: Backend>(b: &B) {
    let (_, store) = open_store(b).await;
    let ring = keys(&[("k1", 1)]);
    let s = sealed(&store, &ring);
    let q = "sealed";

    let mut env = secret_env(store.as_ref(), q, "charge");
    env.follow_ups.push(FollowUp {
        when: FollowUpWhen::Success,
        input: FollowUpInput::Fixed,
        envelope: secret_env(store.as_ref(), q, "receipt"),
    });
    let follow_id = env.follow_ups[0].envelope.id;
    let id = env.id;
    s.enqueue(vec![env]).await.unwrap();

    // At rest: no plain text, a signature, sealed arguments.
    let raw = store.get_task(id).await.unwrap().expect("pending");
    let raw_env = raw.envelope.expect("decodes");
    assert!(is_sealed(&raw_env.args), "arguments sealed at rest");
    assert!(raw_env.sig.is_some(), "signed");
    assert!(
        !contains(&raw_env.encode().unwrap(), SECRET),
        "secret at rest"
    );
    // Through the sealed store, listings show them opened.
    let shown = s
        .get_task(id)
        .await
        .unwrap()
        .expect("pending")
        .envelope
        .unwrap();
    assert_eq!(from_msgpack::<(String,)>(&shown.args).unwrap().0, SECRET);

    // The consumer gets them opened.
    let got = s.fetch(q, 10, LEASE).await.unwrap();
    assert_eq!(got.len(), 1);
    let d = &got[0];
    assert_eq!(
        from_msgpack::<(String,)>(&d.envelope.args).unwrap().0,
        SECRET
    );

    // The result is sealed at rest and opened for readers with the key.
    let follow = d
        .envelope
        .follow_ups_for(
            &StoredResult::Success(to_msgpack(&SECRET).unwrap()),
            store.clock().now(),
        )
        .unwrap();
    let mut c = Completion::new(
        d.lease,
        Outcome::Success {
            result: to_msgpack(&SECRET).unwrap(),
        },
        None,
    );
    c.follow_ups = follow;
    assert_eq!(s.complete(vec![c]).await.unwrap(), vec![AckStatus::Acked]);
    match store.get_result(id).await.unwrap() {
        Some(StoredResult::Success(bytes)) => {
            assert!(
                is_sealed(&bytes) && !contains(&bytes, SECRET),
                "result sealed at rest"
            );
        }
        other => panic!("expected a sealed success, got {other:?}"),
    }
    match s.get_result(id).await.unwrap() {
        Some(StoredResult::Success(bytes)) => {
            assert_eq!(from_msgpack::<String>(&bytes).unwrap(), SECRET)
        }
        other => panic!("expected the opened result, got {other:?}"),
    }
    match s.wait_result(id, LEASE).await.unwrap() {
        Some(StoredResult::Success(bytes)) => {
            assert_eq!(from_msgpack::<String>(&bytes).unwrap(), SECRET)
        }
        other => panic!("expected the opened result, got {other:?}"),
    }

    // The follow-up is stored sealed too, and runs.
    let raw_follow = store
        .get_task(follow_id)
        .await
        .unwrap()
        .expect("follow-up pending");
    assert!(!contains(
        &raw_follow.envelope.unwrap().encode().unwrap(),
        SECRET
    ));
    let got = s.fetch(q, 10, LEASE).await.unwrap();
    assert_eq!(got.len(), 1, "the follow-up passes its check");
    assert_eq!(got[0].lease.id, follow_id);
    assert_eq!(
        from_msgpack::<(String,)>(&got[0].envelope.args).unwrap().0,
        SECRET
    );

    // Dead-lettered and requeued: the seal and the signature survive fresh counts.
    let dead = Completion::new(
        got[0].lease,
        Outcome::Dead {
            failure: failure(FailureKind::Error, "boom"),
        },
        None,
    );
    assert_eq!(
        s.complete(vec![dead]).await.unwrap(),
        vec![AckStatus::Acked]
    );
    let listed = s.list_dead(Some(q), crate::Page::first(10)).await.unwrap();
    assert_eq!(
        from_msgpack::<(String,)>(&listed[0].envelope.as_ref().unwrap().args)
            .unwrap()
            .0,
        SECRET
    );
    let raw_dead = store
        .get_dead(follow_id)
        .await
        .unwrap()
        .unwrap()
        .envelope
        .unwrap();
    assert!(is_sealed(&raw_dead.args), "dead letters stay sealed");
    assert_eq!(s.requeue_dead(&[follow_id]).await.unwrap(), 1);
    let again = s.fetch(q, 10, LEASE).await.unwrap();
    assert_eq!(again.len(), 1, "a requeued sealed task still verifies");
    assert_eq!(
        from_msgpack::<(String,)>(&again[0].envelope.args)
            .unwrap()
            .0,
        SECRET
    );
}

/// An unsigned task, one whose content was changed after signing, one whose sealed arguments
/// were changed in the store, and one with another task's sealed arguments are dead-lettered
/// as `bad_signature` at fetch and never handed out; a good task beside them is.
pub async fn forged_and_tampered_tasks_are_dead_lettered<B: Backend>(b: &B) {
    let (raw_store, store) = open_store(b).await;
    let ring = keys(&[("k1", 1)]);
    let sealing = Sealing::new()
        .signing(ring.clone())
        .encryption(ring.clone());
    let s = sealed(&store, &ring);
    let q = "forged";

    // Unsigned: what anyone who can write to the store could enqueue.
    let forged = secret_env(store.as_ref(), q, "refund");
    let forged_id = forged.id;
    // Signed, then its task name changed.
    let mut renamed = secret_env(store.as_ref(), q, "charge");
    sealing.seal(&mut renamed).unwrap();
    renamed.task = "refund".into();
    let renamed_id = renamed.id;
    // Signed, then another task's sealed arguments moved in (and re-signed with a wrong key).
    let mut donor = secret_env(store.as_ref(), q, "charge");
    sealing.seal(&mut donor).unwrap();
    let mut moved = secret_env(store.as_ref(), q, "charge");
    moved.args.clone_from(&donor.args);
    Sealing::new()
        .signing(keys(&[("k1", 9)]))
        .seal(&mut moved)
        .unwrap();
    let moved_id = moved.id;
    store.enqueue(vec![forged, renamed, moved]).await.unwrap();

    // Sealed properly, then one byte of its ciphertext flipped in the store's raw bytes.
    let mut flipped = secret_env(store.as_ref(), q, "charge");
    sealing.seal(&mut flipped).unwrap();
    let flipped_id = flipped.id;
    if let Some(last) = flipped.args.last_mut() {
        *last ^= 1;
    }
    b.insert_raw(&raw_store, q, flipped_id, flipped.encode().unwrap())
        .await;

    let good = s
        .enqueue(vec![secret_env(store.as_ref(), q, "charge")])
        .await
        .unwrap()[0]
        .id();

    let got = s.fetch(q, 10, LEASE).await.unwrap();
    let handed: Vec<TaskId> = got.iter().map(|d| d.lease.id).collect();
    assert_eq!(handed, vec![good], "only the genuine task is handed out");
    for id in [forged_id, renamed_id, moved_id, flipped_id] {
        let (kind, message) = dead_kind(store.as_ref(), id).await;
        assert_eq!(kind, FailureKind::BadSignature, "{id}: {message}");
        assert!(
            store.get_task(id).await.unwrap().is_none(),
            "{id} is not pending"
        );
    }
    assert!(dead_kind(store.as_ref(), forged_id)
        .await
        .1
        .contains("not signed"));
    // Nothing else comes back later.
    assert!(s.fetch(q, 10, LEASE).await.unwrap().is_empty());
}

/// Keys rotate: tasks sealed with `k1` open with `[k2, k1]` (a consumer restarted with the new
/// key first); tasks sealed with `k2` reaching a consumer that only has `k1` are dead-lettered
/// as `unknown_key`, naming `k2`.
pub async fn rotated_keys_open_old_tasks_and_unknown_keys_are_refused<B: Backend>(b: &B) {
    let (_, store) = open_store(b).await;
    let q = "rotate";
    let old = keys(&[("k1", 1)]);
    let rotated = keys(&[("k2", 2), ("k1", 1)]);

    let before = sealed(&store, &old)
        .enqueue(vec![secret_env(store.as_ref(), q, "charge")])
        .await
        .unwrap()[0]
        .id();
    let after_rotation = sealed(&store, &rotated);
    let got = after_rotation.fetch(q, 10, LEASE).await.unwrap();
    assert_eq!(got.len(), 1, "a k1 task opens with [k2, k1]");
    assert_eq!(got[0].lease.id, before);
    assert_eq!(
        from_msgpack::<(String,)>(&got[0].envelope.args).unwrap().0,
        SECRET
    );
    let done = Completion::new(
        got[0].lease,
        Outcome::Success {
            result: to_msgpack(&1).unwrap(),
        },
        None,
    );
    after_rotation.complete(vec![done]).await.unwrap();
    // Its result, sealed with k2, opens with the rotated set and not with the old one.
    assert!(after_rotation.get_result(before).await.unwrap().is_some());
    assert!(sealed(&store, &old).get_result(before).await.is_err());

    let newer = after_rotation
        .enqueue(vec![secret_env(store.as_ref(), q, "charge")])
        .await
        .unwrap()[0]
        .id();
    let got = sealed(&store, &old).fetch(q, 10, LEASE).await.unwrap();
    assert!(got.is_empty(), "a k2 task is not run by a k1-only consumer");
    let (kind, message) = dead_kind(store.as_ref(), newer).await;
    assert_eq!(kind, FailureKind::UnknownKey, "{message}");
    assert!(message.contains("`k2`"), "{message}");
}

/// With signing for one queue (`only_queues`): a task fetched from that queue is checked even
/// if it names another queue; a worker does not sign the follow-ups of a task from an
/// unchecked queue (so a forged task elsewhere cannot get one signed into the checked queue).
/// With signing for the whole store: results are signed, and a plain result written into the
/// store (which a chord callback would take as its arguments) is refused.
pub async fn per_queue_checks_and_signed_results<B: Backend>(b: &B) {
    let (raw_store, store) = open_store(b).await;
    let ring = keys(&[("k1", 1)]);
    let per_queue = SealedStorage::new(
        store.clone(),
        Arc::new(
            Sealing::new()
                .signing(ring.clone())
                .only_queues(["payments"]),
        ),
    );

    // An unsigned task put into `payments` that names `default`.
    let mut disguised = secret_env(store.as_ref(), "default", "transfer");
    disguised.id = TaskId::new();
    let disguised_id = disguised.id;
    b.insert_raw(
        &raw_store,
        "payments",
        disguised_id,
        disguised.encode().unwrap(),
    )
    .await;
    assert!(per_queue
        .fetch("payments", 10, LEASE)
        .await
        .unwrap()
        .is_empty());
    let (kind, message) = dead_kind(store.as_ref(), disguised_id).await;
    assert_eq!(kind, FailureKind::BadSignature, "{message}");

    // A forged task in the unchecked queue carrying a follow-up into `payments`.
    let mut forged = secret_env(store.as_ref(), "default", "innocent");
    forged.follow_ups.push(FollowUp {
        when: FollowUpWhen::Success,
        input: FollowUpInput::Fixed,
        envelope: secret_env(store.as_ref(), "payments", "transfer"),
    });
    let smuggled = forged.follow_ups[0].envelope.id;
    store.enqueue(vec![forged]).await.unwrap();
    let got = per_queue.fetch("default", 10, LEASE).await.unwrap();
    assert_eq!(got.len(), 1, "the unchecked queue is not checked");
    let now = store.clock().now();
    let mut done = Completion::new(got[0].lease, Outcome::Success { result: vec![0xc0] }, None);
    done.follow_ups = got[0]
        .envelope
        .follow_ups_for(&StoredResult::Success(vec![0xc0]), now)
        .unwrap();
    per_queue.complete(vec![done]).await.unwrap();
    assert!(
        per_queue
            .fetch("payments", 10, LEASE)
            .await
            .unwrap()
            .is_empty(),
        "the smuggled follow-up is not run"
    );
    assert_eq!(
        dead_kind(store.as_ref(), smuggled).await.0,
        FailureKind::BadSignature
    );

    // Whole-store signing: results carry a signature; a plain one is refused.
    let signed = SealedStorage::new(store.clone(), Arc::new(Sealing::new().signing(ring)));
    let id = signed
        .enqueue(vec![secret_env(store.as_ref(), "signed", "charge")])
        .await
        .unwrap()[0]
        .id();
    let got = signed.fetch("signed", 10, LEASE).await.unwrap();
    let ok = Completion::new(
        got[0].lease,
        Outcome::Success {
            result: to_msgpack(&7).unwrap(),
        },
        None,
    );
    signed.complete(vec![ok]).await.unwrap();
    match store.get_result(id).await.unwrap() {
        Some(StoredResult::Success(bytes)) => assert!(crate::seal::is_signed_result(&bytes)),
        other => panic!("expected a signed result, got {other:?}"),
    }
    match signed.get_result(id).await.unwrap() {
        Some(StoredResult::Success(bytes)) => assert_eq!(from_msgpack::<i32>(&bytes).unwrap(), 7),
        other => panic!("expected the verified result, got {other:?}"),
    }
    // A result written by someone without the key.
    let planted = store
        .enqueue(vec![secret_env(store.as_ref(), "plain", "member")])
        .await
        .unwrap()[0]
        .id();
    let got = store.fetch("plain", 10, LEASE).await.unwrap();
    let plain = Completion::new(
        got[0].lease,
        Outcome::Success {
            result: to_msgpack(&1_000_000).unwrap(),
        },
        None,
    );
    store.complete(vec![plain]).await.unwrap();
    let err = signed.get_result(planted).await.unwrap_err();
    assert!(
        err.to_string().contains("neither signed nor encrypted"),
        "{err}"
    );
}
