//! The single-task enqueue path: the queue's registration mark, the one-task script path, the
//! wake list's bound.

use std::time::Duration;

use queue_core::storage::EnqueueOutcome;
use queue_core::Storage;

use crate::support::{self, raw_client};
use crate::{arc, env, manual_clock, LEASE};

fn registry(conn: &mut redis::Connection, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("{prefix}:{{~queues}}:queues"))
        .query(conn)
        .unwrap();
    names.sort();
    names
}

#[tokio::test]
async fn the_registry_is_written_when_the_mark_is_missing_and_repaired_when_it_expires() {
    let clock = manual_clock();
    let store = support::shared_store("mark", arc(&clock)).await;
    let prefix = store.key_prefix().to_owned();
    let mark = format!("{prefix}:{{q}}:registered");
    let mut conn = raw_client(&support::shared_url()).get_connection().unwrap();

    store.enqueue(vec![env(&clock, "q", "t")]).await.unwrap();
    assert_eq!(registry(&mut conn, &prefix), vec!["q"]);
    let ttl: i64 = redis::cmd("PTTL").arg(&mark).query(&mut conn).unwrap();
    assert!(
        ttl > 590_000 && ttl <= 600_000,
        "the mark lives 10 minutes: {ttl}"
    );

    // A registry lost while the mark lives: enqueues do not write it (no write per call)...
    let () = redis::cmd("DEL")
        .arg(format!("{prefix}:{{~queues}}:queues"))
        .query(&mut conn)
        .unwrap();
    store.enqueue(vec![env(&clock, "q", "t")]).await.unwrap();
    store
        .enqueue((0..3).map(|_| env(&clock, "q", "t")).collect())
        .await
        .unwrap();
    assert!(registry(&mut conn, &prefix).is_empty());
    // ...until the mark expires: the next enqueue of the queue lists it again.
    let () = redis::cmd("PEXPIRE")
        .arg(&mark)
        .arg(1)
        .query(&mut conn)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    store.enqueue(vec![env(&clock, "q", "t")]).await.unwrap();
    assert_eq!(registry(&mut conn, &prefix), vec!["q"]);
    assert_eq!(store.queues().await.unwrap(), vec!["q"]);
    let ttl: i64 = redis::cmd("PTTL").arg(&mark).query(&mut conn).unwrap();
    assert!(ttl > 590_000, "the mark is set again: {ttl}");
    // A batch registers its queue too.
    store
        .enqueue((0..3).map(|_| env(&clock, "other", "t")).collect())
        .await
        .unwrap();
    assert_eq!(registry(&mut conn, &prefix), vec!["other", "q"]);
    assert_eq!(store.counts(None).await.unwrap().ready, 9);
}

#[tokio::test]
async fn one_task_calls_keep_order_priorities_and_duplicates() {
    let clock = manual_clock();
    let store = support::shared_store("short", arc(&clock)).await;
    let prefix = store.key_prefix().to_owned();
    let mut conn = raw_client(&support::shared_url()).get_connection().unwrap();
    // A sequence counter that is garbage reads as 0 (the general path), never fails a call.
    let () = redis::cmd("SET")
        .arg(format!("{prefix}:{{q}}:seq"))
        .arg("garbage")
        .query(&mut conn)
        .unwrap();
    let mut ids = Vec::new();
    for priority in [0, 0, 5, 0] {
        let mut e = env(&clock, "q", "t");
        e.priority = priority;
        ids.push(e.id);
        let again = e.clone();
        assert_eq!(
            store.enqueue(vec![e]).await.unwrap(),
            vec![EnqueueOutcome::Enqueued(ids[ids.len() - 1])]
        );
        assert_eq!(
            store.enqueue(vec![again]).await.unwrap(),
            vec![EnqueueOutcome::Duplicate(ids[ids.len() - 1])]
        );
    }
    let got: Vec<_> = store
        .fetch("q", 10, LEASE)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.lease.id)
        .collect();
    assert_eq!(got, vec![ids[2], ids[0], ids[1], ids[3]]);
    // Idle consumers' wake-up list stays bounded although no consumer takes from it: at most
    // 32 tokens, trimmed back to 16 past that.
    let mut lengths = Vec::new();
    for _ in 0..40 {
        store.enqueue(vec![env(&clock, "q", "t")]).await.unwrap();
        let len: i64 = redis::cmd("LLEN")
            .arg(format!("{prefix}:{{q}}:wake"))
            .query(&mut conn)
            .unwrap();
        lengths.push(len);
    }
    assert_eq!(lengths.iter().max(), Some(&32), "{lengths:?}");
    assert!(lengths.contains(&16), "trimmed to 16: {lengths:?}");
}
