//! Bounded state: `purge_expired` (each consumer, once a minute) reads only what lapsed, from
//! the expiry indexes of locks and revocations, never every lock or revocation. A store of the
//! old key layout is refused at open, never read as an empty one.

use std::time::Duration;

use queue_core::storage::{Revocation, RevokeTarget};
use queue_core::{Clock, Storage};
use queue_redis::{RedisOptions, RedisStorage};

use crate::support::{raw_client, RedisServer};
use crate::{arc, manual_clock};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// How many times each command ran on `url` since the last `CONFIG RESETSTAT`.
fn calls(url: &str, command: &str) -> u64 {
    let mut conn = raw_client(url).get_connection().unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut conn)
        .unwrap();
    info.lines()
        .find(|l| l.starts_with(&format!("cmdstat_{command}:")))
        .and_then(|l| l.split("calls=").nth(1))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn purge_expired_reads_only_what_lapsed_and_is_bounded_by_max() {
    let server = RedisServer::start();
    let url = server.url();
    let clock = manual_clock();
    let store = RedisStorage::open(RedisOptions::new(&url).clock(arc(&clock)))
        .await
        .unwrap();
    for i in 0..200 {
        let ttl = if i < 50 { secs(10) } else { secs(3600) };
        assert!(store
            .acquire_lock(&format!("l{i}"), "o", ttl)
            .await
            .unwrap());
    }
    for i in 0..100 {
        let until = (i < 30).then(|| clock.now() + chrono::Duration::seconds(10));
        let target = RevokeTarget::Task(format!("t{i}"));
        store
            .revoke(Revocation {
                target,
                until,
                once: false,
            })
            .await
            .unwrap();
    }
    clock.advance(secs(11));
    let mut conn = raw_client(&url).get_connection().unwrap();
    redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query::<()>(&mut conn)
        .unwrap();

    assert_eq!(
        store.purge_expired(20).await.unwrap(),
        20,
        "20 of the 50 lapsed locks"
    );
    assert_eq!(calls(&url, "hgetall"), 0, "purge_expired ran hgetall");
    // The one set it reads is the queue registry, never every lock.
    assert_eq!(
        calls(&url, "smembers"),
        1,
        "purge_expired read a set of locks"
    );
    let mut total = 20;
    loop {
        let n = store.purge_expired(20).await.unwrap();
        if n == 0 {
            break;
        }
        total += n;
    }
    assert_eq!(total, 50, "every lapsed lock, once");
    // The live locks stay held; the lapsed revocations are gone, the others stay.
    assert!(!store.acquire_lock("l60", "other", secs(10)).await.unwrap());
    assert!(store.acquire_lock("l10", "other", secs(10)).await.unwrap());
    let hlen: u64 = redis::cmd("HLEN")
        .arg("skiff:{~revoked}:revoked")
        .query(&mut conn)
        .unwrap();
    assert_eq!(hlen, 70);
    let tasks: Vec<(queue_core::TaskId, &str)> = vec![
        (queue_core::TaskId::new(), "t0"),
        (queue_core::TaskId::new(), "t99"),
    ];
    assert_eq!(
        store.check_revoked(&tasks).await.unwrap(),
        vec![false, true]
    );
}

#[tokio::test]
async fn a_store_of_the_old_key_layout_is_refused_not_misread() {
    let server = RedisServer::start();
    let url = server.url();
    let mut conn = raw_client(&url).get_connection().unwrap();
    // Layout 1 (before Redis Cluster): store-wide keys without a hash tag.
    redis::cmd("HSET")
        .arg("skiff:ids")
        .arg(queue_core::TaskId::new().to_string())
        .arg("default")
        .query::<()>(&mut conn)
        .unwrap();
    redis::cmd("SADD")
        .arg("skiff:queues")
        .arg("default")
        .query::<()>(&mut conn)
        .unwrap();
    match RedisStorage::open(RedisOptions::new(&url)).await {
        Err(queue_core::Error::InvalidInput(message)) => {
            assert!(message.contains("key layout 1"), "{message}");
            assert!(message.contains("`skiff:"), "{message}");
            assert!(message.contains("key_prefix"), "{message}");
        }
        other => panic!("a store of layout 1 opened: {other:?}"),
    }
    let kept: u64 = redis::cmd("EXISTS")
        .arg("skiff:ids")
        .arg("skiff:queues")
        .query(&mut conn)
        .unwrap();
    assert_eq!(kept, 2, "refusing changes nothing");
    // Another prefix on the same server is a new store.
    RedisStorage::open(RedisOptions::new(&url).key_prefix("v2"))
        .await
        .unwrap();
    let layout: String = redis::cmd("GET")
        .arg("v2:{~queues}:layout")
        .query(&mut conn)
        .unwrap();
    assert_eq!(layout, "2");
    // A layout this version does not know (a newer Skiff's) is refused too.
    redis::cmd("SET")
        .arg("v2:{~queues}:layout")
        .arg("3")
        .query::<()>(&mut conn)
        .unwrap();
    match RedisStorage::open(RedisOptions::new(&url).key_prefix("v2")).await {
        Err(queue_core::Error::InvalidInput(message)) => {
            assert!(message.contains("newer version"), "{message}")
        }
        other => panic!("a store of layout 3 opened: {other:?}"),
    }
}
