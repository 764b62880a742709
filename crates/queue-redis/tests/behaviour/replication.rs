//! Replication durability (`?wait=N`, `RedisOptions::wait_replicas`): a change reports success
//! only once N replicas have it; without the option a call succeeds on the master alone.

use std::time::{Duration, Instant};

use queue_core::storage::{AckStatus, Completion, Outcome};
use queue_core::Storage;
use queue_redis::testing::{RedisServer, ServerConfig};
use queue_redis::{RedisOptions, RedisStorage};

use crate::support::raw_client;
use crate::{arc, env, manual_clock, LEASE};

/// Waits until `port`'s `INFO replication` contains `what`.
fn wait_for(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text: String = raw_client(&format!("redis://127.0.0.1:{port}/0"))
            .get_connection()
            .and_then(|mut c| redis::cmd("INFO").arg("replication").query(&mut c))
            .unwrap_or_default();
        if text.contains(what) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{port} never said {what}: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn with_wait_a_change_succeeds_only_once_a_replica_has_it() {
    let master = RedisServer::start();
    let mut replica = RedisServer::with(ServerConfig {
        replica_of: Some(master.port()),
        ..ServerConfig::default()
    });
    wait_for(replica.port(), "master_link_status:up");
    let clock = manual_clock();
    let url = format!("{}?wait=1&wait_timeout_ms=300", master.url());
    let store = RedisStorage::open(RedisOptions::new(url).clock(arc(&clock)))
        .await
        .unwrap();

    // Acknowledged: the replica has the task, and then its completion, when the call returns.
    let first = env(&clock, "durable", "t");
    let id = first.id.to_string();
    store.enqueue(vec![first]).await.unwrap();
    let mut on_replica = raw_client(&replica.url()).get_connection().unwrap();
    let held: u64 = redis::cmd("HEXISTS")
        .arg("skiff:{durable}:task")
        .arg(&id)
        .query(&mut on_replica)
        .unwrap();
    assert_eq!(held, 1, "the replica has the enqueued task");
    let d = store.fetch("durable", 1, LEASE).await.unwrap().remove(0);
    let done = Completion::new(d.lease, Outcome::Success { result: vec![0xc0] }, None);
    assert_eq!(
        store.complete(vec![done]).await.unwrap(),
        vec![AckStatus::Acked]
    );
    let result: u64 = redis::cmd("HEXISTS")
        .arg("skiff:{durable}:results")
        .arg(&id)
        .query(&mut on_replica)
        .unwrap();
    assert_eq!(result, 1, "the replica has the result");

    // Without a replica the change is refused as not durable (yet applied on the master:
    // repeating it is safe).
    replica.stop();
    wait_for(master.port(), "connected_slaves:0");
    let second = env(&clock, "durable", "t");
    let started = Instant::now();
    let err = store.enqueue(vec![second]).await.unwrap_err();
    assert!(err.to_string().contains("0 of 1 replicas"), "{err}");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "waited for the replica"
    );
    assert_eq!(store.counts(Some("durable")).await.unwrap().ready, 1);

    // The same call without the option succeeds on the master alone: what a failover before
    // the replica caught up would lose.
    let plain = RedisStorage::open(RedisOptions::new(master.url()).clock(arc(&clock)))
        .await
        .unwrap();
    plain
        .enqueue(vec![env(&clock, "durable", "t")])
        .await
        .unwrap();
    assert_eq!(plain.counts(Some("durable")).await.unwrap().ready, 2);
}
