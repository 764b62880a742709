//! The single-task enqueue path: the queue's registration mark (read by batches too), the
//! one-task script path, the wake list's bound, and the owned connections (`src/owned.rs`):
//! used, dropped when a call is cancelled, replaced when killed.

use std::time::{Duration, Instant};

use queue_core::storage::EnqueueOutcome;
use queue_core::Storage;
use queue_redis::{RedisOptions, RedisStorage};

use crate::support::{self, raw_client, RedisServer, ServerConfig};
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

    // A batch of several pipelined calls reads the mark as one call does: a new queue is
    // registered, a marked one costs no registry write.
    store
        .enqueue((0..600).map(|_| env(&clock, "big", "t")).collect())
        .await
        .unwrap();
    assert_eq!(registry(&mut conn, &prefix), vec!["big", "other", "q"]);
    let () = redis::cmd("DEL")
        .arg(format!("{prefix}:{{~queues}}:queues"))
        .query(&mut conn)
        .unwrap();
    store
        .enqueue((0..600).map(|_| env(&clock, "big", "t")).collect())
        .await
        .unwrap();
    assert!(registry(&mut conn, &prefix).is_empty());
    let () = redis::cmd("DEL")
        .arg(format!("{prefix}:{{big}}:registered"))
        .query(&mut conn)
        .unwrap();
    store
        .enqueue((0..600).map(|_| env(&clock, "big", "t")).collect())
        .await
        .unwrap();
    assert_eq!(registry(&mut conn, &prefix), vec!["big"]);
    assert_eq!(store.counts(Some("big")).await.unwrap().ready, 1800);
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

#[tokio::test]
async fn key_names_are_per_prefix_and_queue_past_the_scripts_key_cache() {
    let clock = manual_clock();
    let a = support::shared_store("keys-a", arc(&clock)).await;
    let b = support::shared_store("keys-b", arc(&clock)).await;
    let mut conn = raw_client(&support::shared_url()).get_connection().unwrap();
    let mut held = |store: &queue_redis::RedisStorage, q: &str| -> i64 {
        redis::cmd("HLEN")
            .arg(format!("{}:{{{q}}}:task", store.key_prefix()))
            .query(&mut conn)
            .unwrap()
    };
    // More queues than the scripts keep key names for (256), in one store...
    for i in 0..300 {
        a.enqueue(vec![env(&clock, &format!("q{i}"), "t")])
            .await
            .unwrap();
    }
    // ...and the same queue names in another store on the same server.
    b.enqueue(vec![env(&clock, "q0", "t")]).await.unwrap();
    a.enqueue(vec![env(&clock, "q0", "t")]).await.unwrap();
    a.enqueue(vec![env(&clock, "q299", "t")]).await.unwrap();
    assert_eq!(held(&a, "q0"), 2);
    assert_eq!(held(&a, "q299"), 2);
    assert_eq!(held(&a, "q150"), 1);
    assert_eq!(held(&b, "q0"), 1);
    assert_eq!(b.counts(None).await.unwrap().ready, 1);
    assert_eq!(a.counts(None).await.unwrap().ready, 302);
}

/// The `CLIENT LIST` lines of the owned connections.
fn owned_clients(conn: &mut redis::Connection) -> Vec<String> {
    let list: String = redis::cmd("CLIENT").arg("LIST").query(conn).unwrap();
    list.lines()
        .filter(|l| l.contains(" name=skiff-enqueue "))
        .map(str::to_owned)
        .collect()
}

/// Waits up to 5 s for `n` owned connections.
fn wait_owned(conn: &mut redis::Connection, n: usize) -> Vec<String> {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let found = owned_clients(conn);
        if found.len() == n || Instant::now() > until {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn single_enqueues_run_on_one_owned_connection_with_the_urls_password_and_database() {
    let server = RedisServer::with(ServerConfig {
        password: Some("s3cret".into()),
        ..ServerConfig::default()
    });
    let url = format!("redis://:s3cret@127.0.0.1:{}/3", server.port());
    let clock = manual_clock();
    let store = RedisStorage::open(RedisOptions::new(url.clone()).clock(arc(&clock)))
        .await
        .unwrap();
    for _ in 0..5 {
        store.enqueue(vec![env(&clock, "q", "t")]).await.unwrap();
    }
    let mut conn = raw_client(&url).get_connection().unwrap();
    let owned = owned_clients(&mut conn);
    assert_eq!(owned.len(), 1, "{owned:?}");
    assert!(owned[0].contains(" db=3 "), "{owned:?}");
    let held: i64 = redis::cmd("HLEN")
        .arg("skiff:{q}:task")
        .query(&mut conn)
        .unwrap();
    assert_eq!(held, 5, "the tasks are in database 3");
    assert_eq!(store.counts(Some("q")).await.unwrap().ready, 5);
}

#[tokio::test]
async fn an_enqueue_dropped_midway_closes_its_owned_connection() {
    let server = RedisServer::start();
    let clock = manual_clock();
    let store = RedisStorage::open(RedisOptions::new(server.url()).clock(arc(&clock)))
        .await
        .unwrap();
    store.enqueue(vec![env(&clock, "q", "t")]).await.unwrap();
    let mut conn = raw_client(&server.url()).get_connection().unwrap();
    assert_eq!(owned_clients(&mut conn).len(), 1);
    // The server holds every client's commands for a while: the call is sent, its reply
    // does not come before the caller gives up.
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(700)
        .arg("ALL")
        .query(&mut conn)
        .unwrap();
    let late = tokio::time::timeout(
        Duration::from_millis(150),
        store.enqueue(vec![env(&clock, "q", "t")]),
    )
    .await;
    assert!(late.is_err(), "the call was cut off");
    // The connection with the unread reply was closed, not kept for the next call.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let left = wait_owned(&mut conn, 0);
    assert!(left.is_empty(), "{left:?}");
    store.enqueue(vec![env(&clock, "q", "t")]).await.unwrap();
    assert_eq!(owned_clients(&mut conn).len(), 1);
}

#[tokio::test]
async fn a_killed_owned_connection_costs_at_most_one_failed_call() {
    let server = RedisServer::start();
    let clock = manual_clock();
    let store = RedisStorage::open(RedisOptions::new(server.url()).clock(arc(&clock)))
        .await
        .unwrap();
    let mut conn = raw_client(&server.url()).get_connection().unwrap();
    for round in 0..3 {
        store.enqueue(vec![env(&clock, "q", "t")]).await.unwrap();
        let owned = owned_clients(&mut conn);
        assert_eq!(owned.len(), 1, "{owned:?}");
        let id = owned[0]
            .split(' ')
            .find_map(|f| f.strip_prefix("id="))
            .unwrap()
            .to_owned();
        let () = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(&id)
            .query(&mut conn)
            .unwrap();
        if round == 1 {
            // Give the kill time to reach this process first.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut failed = 0;
        for _ in 0..10 {
            if let Err(err) = store.enqueue(vec![env(&clock, "q", "t")]).await {
                assert!(matches!(err, queue_core::Error::Storage { .. }), "{err}");
                failed += 1;
            }
        }
        assert!(failed <= 1, "round {round}: {failed} calls failed");
        let owned = owned_clients(&mut conn);
        assert_eq!(owned.len(), 1, "replaced by one: {owned:?}");
        assert!(!owned[0].contains(&format!("id={id} ")), "{owned:?}");
    }
}

#[tokio::test]
async fn an_owned_call_without_a_reply_fails_at_the_response_timeout_and_closes_its_connection() {
    let server = RedisServer::start();
    let clock = manual_clock();
    let store = RedisStorage::open(
        RedisOptions::new(server.url())
            .clock(arc(&clock))
            .response_timeout(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    store.enqueue(vec![env(&clock, "q", "t")]).await.unwrap();
    let mut conn = raw_client(&server.url()).get_connection().unwrap();
    assert_eq!(owned_clients(&mut conn).len(), 1);
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1500)
        .arg("ALL")
        .query(&mut conn)
        .unwrap();
    let started = Instant::now();
    let err = tokio::time::timeout(
        Duration::from_secs(5),
        store.enqueue(vec![env(&clock, "q", "t")]),
    )
    .await
    .expect("the call gives up by itself")
    .unwrap_err();
    assert!(matches!(err, queue_core::Error::Storage { .. }), "{err}");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let left = wait_owned(&mut conn, 0);
    assert!(left.is_empty(), "{left:?}");
    store.enqueue(vec![env(&clock, "q", "t")]).await.unwrap();
}
