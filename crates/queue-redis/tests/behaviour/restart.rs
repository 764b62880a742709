//! Losing the server: operations fail with storage errors (never panic or hang), work again once
//! it is back, and no task is lost.

use std::collections::BTreeSet;
use std::time::Duration;

use queue_core::storage::{Completion, Outcome};
use queue_core::{AckStatus, Error, Storage};
use queue_redis::{RedisOptions, RedisStorage};

use crate::support::{RedisServer, ServerConfig};
use crate::{arc, env, manual_clock, LEASE};

fn is_storage(err: &Error) -> bool {
    matches!(err, Error::Storage { .. })
}

#[tokio::test]
async fn restart_keeps_tasks_and_operations_recover() {
    let mut server = RedisServer::with(ServerConfig {
        appendonly: true,
        ..ServerConfig::default()
    });
    let clock = manual_clock();
    let options = RedisOptions::new(server.url())
        .clock(arc(&clock))
        .pool_size(4)
        // Generous: while the server is down, connecting is refused at once; once it is back,
        // a loaded machine may be slow to answer.
        .response_timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(10));
    let store = RedisStorage::open(options).await.unwrap();
    let batch: Vec<_> = (0..50).map(|_| env(&clock, "q", "t")).collect();
    let all: BTreeSet<_> = batch.iter().map(|e| e.id).collect();
    store.enqueue(batch).await.unwrap();
    let in_flight = store.fetch("q", 10, LEASE).await.unwrap();
    assert_eq!(in_flight.len(), 10);

    server.stop();
    // Every kind of call fails with a storage error while the server is down.
    let err = store
        .enqueue(vec![env(&clock, "q", "t")])
        .await
        .unwrap_err();
    assert!(is_storage(&err), "{err}");
    let err = store.fetch("q", 10, LEASE).await.unwrap_err();
    assert!(is_storage(&err), "{err}");
    let done: Vec<_> = in_flight
        .iter()
        .map(|d| Completion::new(d.lease, Outcome::Success { result: vec![0xc0] }, None))
        .collect();
    let err = store.complete(done.clone()).await.unwrap_err();
    assert!(is_storage(&err), "{err}");
    let err = store
        .wait_for_work("q", Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(is_storage(&err), "{err}");
    assert!(store.counts(None).await.is_err());

    server.restart();
    // The same store works again: the pool replaces its broken connections.
    let counts = store.counts(Some("q")).await.unwrap();
    assert_eq!(
        (counts.ready, counts.leased),
        (40, 10),
        "the AOF kept every task"
    );
    // The completion that failed is applied now (its leases still hold).
    assert_eq!(
        store.complete(done).await.unwrap(),
        vec![AckStatus::Acked; 10]
    );
    let rest = store.fetch("q", 100, LEASE).await.unwrap();
    assert_eq!(rest.len(), 40);

    // A worker that dies with leases in flight: they are delivered again after expiry.
    clock.advance(LEASE + Duration::from_secs(1));
    let again = store.fetch("q", 100, LEASE).await.unwrap();
    assert_eq!(again.len(), 40, "expired leases come back");
    let mut seen: BTreeSet<_> = in_flight.iter().map(|d| d.lease.id).collect();
    seen.extend(again.iter().map(|d| d.lease.id));
    assert_eq!(seen, all, "no task lost");
}

#[tokio::test]
async fn connect_fails_cleanly_when_the_server_is_down() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = RedisStorage::open(
        RedisOptions::new(format!("redis://127.0.0.1:{port}/0"))
            .connect_timeout(Duration::from_millis(500)),
    )
    .await
    .unwrap_err();
    assert!(is_storage(&err), "{err}");
    assert!(
        err.to_string().contains(&port.to_string()),
        "names the server: {err}"
    );
}
