//! Bounded state: `purge_expired` (each consumer, once a minute) reads only what lapsed, from
//! the expiry indexes of locks and revocations, never every lock or revocation; stores from
//! before the indexes are moved over a bounded part per call.

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
    for command in ["smembers", "hgetall"] {
        assert_eq!(calls(&url, command), 0, "purge_expired ran {command}");
    }
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
        .arg("skiff:revoked")
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
async fn locks_and_revocations_of_an_older_store_are_moved_to_the_indexes() {
    let server = RedisServer::start();
    let url = server.url();
    let clock = manual_clock();
    let store = RedisStorage::open(RedisOptions::new(&url).clock(arc(&clock)))
        .await
        .unwrap();
    let now = queue_core::clock::to_millis(clock.now());
    let mut conn = raw_client(&url).get_connection().unwrap();
    // The layout before the expiry indexes: a set of lock names, revocations in one hash.
    for (name, expires) in [("old-lapsed", now - 1000), ("old-live", now + 3_600_000)] {
        redis::cmd("HSET")
            .arg(format!("skiff:lock:{name}"))
            .arg("o")
            .arg("someone")
            .arg("x")
            .arg(expires)
            .query::<()>(&mut conn)
            .unwrap();
        redis::cmd("SADD")
            .arg("skiff:locks")
            .arg(name)
            .query::<()>(&mut conn)
            .unwrap();
    }
    for (field, value) in [
        ("t:lapsed", format!("{}|0", now - 1000)),
        ("t:later", format!("{}|0", now + 3_600_000)),
        ("t:forever", "|0".to_owned()),
    ] {
        redis::cmd("HSET")
            .arg("skiff:revoked")
            .arg(field)
            .arg(value)
            .query::<()>(&mut conn)
            .unwrap();
    }
    assert_eq!(
        store.purge_expired(100).await.unwrap(),
        1,
        "the lapsed old lock"
    );
    let old_set: u64 = redis::cmd("SCARD")
        .arg("skiff:locks")
        .query(&mut conn)
        .unwrap();
    assert_eq!(old_set, 0, "the old set is emptied");
    assert!(!store
        .acquire_lock("old-live", "other", secs(10))
        .await
        .unwrap());
    let fields: Vec<String> = redis::cmd("HKEYS")
        .arg("skiff:revoked")
        .query(&mut conn)
        .unwrap();
    let mut fields = fields;
    fields.sort();
    assert_eq!(fields, vec!["t:forever", "t:later"]);
    // The later one is indexed now: it goes once it lapses.
    clock.advance(secs(3601));
    store.purge_expired(100).await.unwrap();
    let fields: Vec<String> = redis::cmd("HKEYS")
        .arg("skiff:revoked")
        .query(&mut conn)
        .unwrap();
    assert_eq!(fields, vec!["t:forever"]);
}
