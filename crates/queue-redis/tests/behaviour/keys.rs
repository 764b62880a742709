//! Key layout, script reloading, bounded fetches, prefix isolation.

use std::collections::BTreeSet;
use std::time::Duration;

use queue_core::storage::{Completion, EnqueueOutcome, Outcome};
use queue_core::{testing, AckStatus, FailureKind, ManualClock, Storage, TaskFailure};
use queue_redis::RedisStorage;

use crate::support;
use crate::{arc, env, manual_clock, LEASE};

fn keys(url: &str, prefix: &str) -> BTreeSet<String> {
    let mut conn = support::raw_client(url).get_connection().unwrap();
    let found: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query(&mut conn)
        .unwrap();
    found.into_iter().collect()
}

#[tokio::test]
async fn every_queue_key_carries_the_queue_hash_tag() {
    let clock = manual_clock();
    let store = support::shared_store("tags", arc(&clock)).await;
    let prefix = store.key_prefix().to_owned();
    let q = "alpha";
    let mut unique = env(&clock, q, "t");
    unique.unique_key = Some("u1".into());
    let mut later = env(&clock, q, "t");
    later.eta = Some(clock_now(&clock) + chrono::TimeDelta::seconds(60));
    let dead = env(&clock, q, "t");
    let dead_id = dead.id;
    store
        .enqueue(vec![dead, unique, later, env(&clock, q, "t")])
        .await
        .unwrap();
    let got = store.fetch(q, 2, LEASE).await.unwrap();
    let first = got.iter().find(|d| d.lease.id == dead_id).unwrap();
    let failure = TaskFailure::new(FailureKind::Error, "boom", 1);
    let done = store
        .complete(vec![Completion::new(
            first.lease,
            Outcome::Dead { failure },
            None,
        )])
        .await
        .unwrap();
    assert_eq!(done, vec![AckStatus::Acked]);

    let found = keys(&support::shared_url(), &prefix);
    let tag = format!("{prefix}:{{{q}}}:");
    let per_queue = [
        "ready",
        "scheduled",
        "leased",
        "seq",
        "dead",
        "dead-seq",
        "wake",
        "task",
        "uk",
        "unique",
        "results",
        "registered",
    ];
    for suffix in per_queue {
        assert!(
            found.contains(&format!("{tag}{suffix}")),
            "{suffix} missing in {found:?}"
        );
    }
    // A pending task is a field of the per-queue hashes, not a key of its own.
    let mut conn = support::raw_client(&support::shared_url())
        .get_connection()
        .unwrap();
    let fields: Vec<String> = redis::cmd("HKEYS")
        .arg(format!("{tag}task"))
        .query(&mut conn)
        .unwrap();
    let tasks = fields.iter().filter(|f| !f.contains(':')).count();
    assert_eq!(tasks, 3, "one envelope per pending task: {fields:?}");
    let unique: usize = redis::cmd("HLEN")
        .arg(format!("{tag}uk"))
        .query(&mut conn)
        .unwrap();
    assert_eq!(unique, 1, "the unique key of the one task with one");
    let leases: Vec<String> = redis::cmd("ZRANGE")
        .arg(format!("{tag}leased"))
        .arg(0)
        .arg(-1)
        .query(&mut conn)
        .unwrap();
    let leased = got.iter().find(|d| d.lease.id != dead_id).unwrap();
    assert_eq!(
        leases,
        vec![format!("{}|{}", leased.lease.id, leased.lease.token.0)],
        "the one lease still held, as its id and token"
    );
    // Everything of the queue's tasks is under its tag (one Cluster slot), the dead letter
    // too; the rest is the registry, under a tag of its own.
    let registry = [
        format!("{prefix}:{{~queues}}:queues"),
        format!("{prefix}:{{~queues}}:layout"),
    ];
    assert!(found.contains(&format!("{tag}dead:{dead_id}")), "{found:?}");
    for key in &found {
        let rest = key.strip_prefix(&tag).unwrap_or_default();
        let ok = per_queue.contains(&rest)
            || rest.starts_with("result-wake:")
            || rest.starts_with("dead:")
            || registry.contains(key);
        assert!(ok, "unexpected key {key}");
    }
}

fn clock_now(clock: &queue_core::ManualClock) -> chrono::DateTime<chrono::Utc> {
    use queue_core::Clock;
    clock.now()
}

/// With a task ready, sends `flush` (which empties the server's scripts or functions) to the
/// shared server, then checks that the store still fetches and enqueues: its Lua code is
/// loaded again when the server misses it.
async fn works_after(store: &RedisStorage, clock: &ManualClock, flush: &redis::Cmd, what: &str) {
    store.enqueue(vec![env(clock, "q", "t")]).await.unwrap();
    let mut conn = shared_connection().await;
    let () = flush.query_async(&mut conn).await.unwrap();
    let got = store.fetch("q", 10, LEASE).await.unwrap();
    assert_eq!(got.len(), 1, "fetch works after {what}");
    store.enqueue(vec![env(clock, "q", "t")]).await.unwrap();
    assert_eq!(store.counts(Some("q")).await.unwrap().ready, 1);
}

async fn shared_connection() -> redis::aio::MultiplexedConnection {
    support::raw_client(&support::shared_url())
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test]
async fn scripts_are_reloaded_after_script_flush() {
    let clock = manual_clock();
    let store = support::shared_store("noscript", arc(&clock)).await;
    let flush = redis::cmd("SCRIPT").arg("FLUSH").clone();
    works_after(&store, &clock, &flush, "SCRIPT FLUSH (NOSCRIPT -> reload)").await;
}

#[tokio::test]
async fn a_large_batch_keeps_its_order_and_duplicates_across_pipelined_calls() {
    // Batches larger than one script call are sent as several pipelined calls (8 here, more
    // than are in flight at once).
    let clock = manual_clock();
    let store = support::shared_store("pipelined", arc(&clock)).await;
    let mut batch: Vec<_> = (0..2_000).map(|_| env(&clock, "q", "t")).collect();
    batch[10].unique_key = Some("k".into());
    batch[1_500].unique_key = Some("k".into());
    let repeated = batch[3].clone();
    batch.push(repeated);
    let ids: Vec<_> = batch.iter().map(|e| e.id).collect();
    let out = store.enqueue(batch).await.unwrap();
    assert_eq!(out.len(), 2_001);
    assert_eq!(
        out[1_500],
        EnqueueOutcome::Duplicate(ids[10]),
        "unique key of an earlier call"
    );
    assert_eq!(
        out[2_000],
        EnqueueOutcome::Duplicate(ids[3]),
        "id of an earlier call"
    );
    let stored: Vec<_> = ids[..2_000]
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 1_500)
        .map(|(_, id)| *id)
        .collect();
    for (i, o) in out
        .iter()
        .enumerate()
        .take(2_000)
        .filter(|(i, _)| *i != 1_500)
    {
        assert_eq!(*o, EnqueueOutcome::Enqueued(ids[i]));
    }
    let got = store.fetch("q", 3_000, LEASE).await.unwrap();
    let order: Vec<_> = got.iter().map(|d| d.lease.id).collect();
    assert_eq!(order, stored, "FIFO across the calls of one batch");
}

#[tokio::test]
async fn a_revocation_by_another_store_applies_to_the_next_fetched_batch() {
    let clock = manual_clock();
    let options = support::shared_options("revoke").clock(arc(&clock));
    let consumer = RedisStorage::open(options.clone()).await.unwrap();
    let admin = RedisStorage::open(options).await.unwrap();
    testing::revocation_by_another_store_applies_to_the_next_fetched_batch(&consumer, &admin).await;
}

#[tokio::test]
async fn functions_are_loaded_again_after_function_flush() {
    let clock = manual_clock();
    let store = support::shared_store("nofunction", arc(&clock)).await;
    assert!(store.runs_functions());
    let libraries: redis::Value = redis::cmd("FUNCTION")
        .arg("LIST")
        .arg("LIBRARYNAME")
        .arg("skiff_*")
        .query_async(&mut shared_connection().await)
        .await
        .unwrap();
    assert!(
        format!("{libraries:?}").contains("skiff_"),
        "the library is loaded: {libraries:?}"
    );
    let flush = redis::cmd("FUNCTION").arg("FLUSH").clone();
    works_after(&store, &clock, &flush, "FUNCTION FLUSH (loaded again)").await;
}

#[tokio::test]
async fn ten_thousand_due_scheduled_tasks_drain_in_bounded_fetches() {
    let clock = manual_clock();
    let store = support::shared_store("bounded", arc(&clock)).await;
    let eta = clock_now(&clock) + chrono::TimeDelta::seconds(10);
    let batch: Vec<_> = (0..10_000)
        .map(|i| {
            let mut e = env(&clock, "big", "t");
            e.eta = Some(eta);
            e.priority = (i % 3) as i16;
            e
        })
        .collect();
    let out = store.enqueue(batch).await.unwrap();
    assert_eq!(out.len(), 10_000);
    assert_eq!(store.counts(Some("big")).await.unwrap().scheduled, 10_000);
    clock.advance(Duration::from_secs(11));
    assert_eq!(store.counts(Some("big")).await.unwrap().ready, 10_000);

    let mut seen = BTreeSet::new();
    let mut calls = 0;
    loop {
        let got = store.fetch("big", 1_000, LEASE).await.unwrap();
        if got.is_empty() {
            break;
        }
        calls += 1;
        assert!(got.len() <= 1_000);
        seen.extend(got.iter().map(|d| d.lease.id));
        assert!(calls <= 20, "the backlog drains");
    }
    assert_eq!(seen.len(), 10_000, "every task delivered once");
    assert_eq!(store.counts(Some("big")).await.unwrap().leased, 10_000);
}

#[tokio::test]
async fn flush_deletes_only_its_own_prefix() {
    let clock = manual_clock();
    let a = support::shared_store("flush-a", arc(&clock)).await;
    let b = support::shared_store("flush-b", arc(&clock)).await;
    a.enqueue(vec![env(&clock, "q", "t")]).await.unwrap();
    b.enqueue(vec![env(&clock, "q", "t")]).await.unwrap();
    a.flush().await.unwrap();
    assert!(keys(&support::shared_url(), a.key_prefix()).is_empty());
    assert_eq!(b.counts(Some("q")).await.unwrap().ready, 1);
}

#[tokio::test]
async fn flush_spares_a_store_whose_prefix_extends_its_own() {
    // `skiff` and `skiff:eu`: every key of the second starts with the first's `skiff:`.
    let clock = manual_clock();
    let outer_prefix = support::unique_prefix("nest");
    let outer = RedisStorage::open(
        support::shared_options("unused")
            .key_prefix(outer_prefix.clone())
            .clock(arc(&clock)),
    )
    .await
    .unwrap();
    let inner = RedisStorage::open(
        support::shared_options("unused")
            .key_prefix(format!("{outer_prefix}:eu"))
            .clock(arc(&clock)),
    )
    .await
    .unwrap();
    // Give the inner store one of everything: pending, scheduled, a result, a dead letter,
    // a lock, a rate window, a revocation, a paused queue, a worker.
    for store in [&outer, &inner] {
        let mut later = env(&clock, "q", "t");
        later.eta = Some(clock_now(&clock) + chrono::TimeDelta::seconds(60));
        store
            .enqueue(vec![env(&clock, "q", "t"), env(&clock, "q", "t"), later])
            .await
            .unwrap();
        let got = store.fetch("q", 2, LEASE).await.unwrap();
        let failure = TaskFailure::new(FailureKind::Error, "boom", 1);
        store
            .complete(vec![
                Completion::new(got[0].lease, Outcome::Success { result: vec![0xc0] }, None),
                Completion::new(got[1].lease, Outcome::Dead { failure }, None),
            ])
            .await
            .unwrap();
        assert!(store
            .acquire_lock("l", "me", Duration::from_secs(60))
            .await
            .unwrap());
        store
            .rate_limit("r", 5, Duration::from_secs(60))
            .await
            .unwrap();
        store
            .revoke(queue_core::storage::Revocation {
                target: queue_core::storage::RevokeTarget::Task("x".into()),
                until: None,
                once: false,
            })
            .await
            .unwrap();
        store.set_paused("p", true).await.unwrap();
    }
    let before = keys(&support::shared_url(), &format!("{outer_prefix}:eu"));
    assert!(before.len() >= 10, "{before:?}");

    outer.flush().await.unwrap();

    let after = keys(&support::shared_url(), &format!("{outer_prefix}:eu"));
    assert_eq!(after, before, "the inner store's keys are untouched");
    let outer_left: Vec<String> = keys(&support::shared_url(), &outer_prefix)
        .into_iter()
        .filter(|k| !after.contains(k))
        .collect();
    assert!(
        outer_left.is_empty(),
        "the outer store is empty: {outer_left:?}"
    );
    let c = inner.counts(Some("q")).await.unwrap();
    assert_eq!((c.scheduled, c.dead, c.results), (1, 1, 2), "{c:?}");
    assert!(!inner
        .acquire_lock("l", "other", Duration::from_secs(60))
        .await
        .unwrap());
    inner.flush().await.unwrap();
    assert!(keys(&support::shared_url(), &outer_prefix).is_empty());
}
