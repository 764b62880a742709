//! The Storage conformance suite on a Redis Cluster of 3 masters and 3 replicas that the tests
//! start (`queue_redis::testing::shared_cluster_url`: one cluster for the whole run, a fresh
//! key prefix per case), and what only a cluster shows: queues on different masters served by
//! one store, wake-ups per master, a failover.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use queue_core::storage::{Completion, Outcome};
use queue_core::testing::{async_trait, Backend};
use queue_core::{Clock, Envelope, Storage, SystemClock, TaskId};
use queue_redis::{RedisOptions, RedisStorage};

fn options(tag: &str) -> RedisOptions {
    RedisOptions::new(support::shared_cluster_url())
        .key_prefix(support::unique_prefix(tag))
        .pool_size(2)
        .blocking_pool_size(4)
}

struct Cluster;

#[async_trait]
impl Backend for Cluster {
    type Store = RedisStorage;

    async fn open(&self, clock: Arc<dyn Clock>) -> RedisStorage {
        RedisStorage::open(options("cluster").clock(clock))
            .await
            .expect("open a store on the test cluster")
    }

    async fn insert_raw(&self, store: &RedisStorage, queue: &str, id: TaskId, raw: Vec<u8>) {
        store.insert_raw(queue, id, raw).await.expect("insert_raw");
    }
}

fn cluster_backend() -> Cluster {
    Cluster
}

queue_core::conformance_tests!(cluster_backend);

/// The same suite with `?wait=1`: every change waits for the replica of its master.
mod durable {
    use super::*;

    struct DurableCluster;

    #[async_trait]
    impl Backend for DurableCluster {
        type Store = RedisStorage;

        async fn open(&self, clock: Arc<dyn Clock>) -> RedisStorage {
            RedisStorage::open(options("cluster-wait").wait_replicas(1).clock(clock))
                .await
                .expect("open a store on the test cluster")
        }

        async fn insert_raw(&self, store: &RedisStorage, queue: &str, id: TaskId, raw: Vec<u8>) {
            store.insert_raw(queue, id, raw).await.expect("insert_raw");
        }
    }

    fn durable_backend() -> DurableCluster {
        DurableCluster
    }

    queue_core::conformance_tests!(durable_backend);
}

const LEASE: Duration = Duration::from_secs(30);

fn env(queue: &str) -> Envelope {
    Envelope::new(
        queue,
        "t",
        queue_core::to_msgpack(&()).unwrap(),
        SystemClock.now(),
    )
}

/// Queue names whose hash tags fall on `n` different masters of `cluster` (by name).
fn queues_on_masters(url_port: &support::RedisCluster, n: usize) -> Vec<String> {
    let mut picked: Vec<(u16, String)> = Vec::new();
    for i in 0..1000 {
        let q = format!("q{i}");
        let master = url_port.master_of(&format!("{{{q}}}"));
        if !picked.iter().any(|(m, _)| *m == master) {
            picked.push((master, q));
        }
        if picked.len() == n {
            break;
        }
    }
    assert_eq!(picked.len(), n, "queues on {n} masters");
    picked.into_iter().map(|(_, q)| q).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_store_serves_queues_on_every_master_and_wakes_each() {
    let cluster = support::RedisCluster::start();
    let queues = queues_on_masters(&cluster, 3);
    let store = Arc::new(
        // With `wait=1`: each change waits for the replica of the master that took it.
        RedisStorage::open(
            RedisOptions::new(format!("{}?wait=1", cluster.url())).blocking_pool_size(4),
        )
        .await
        .unwrap(),
    );
    // One batch over three masters: a call per queue.
    let batch: Vec<Envelope> = queues.iter().map(|q| env(q)).collect();
    store.enqueue(batch).await.unwrap();
    for q in &queues {
        let got = store.fetch(q, 10, LEASE).await.unwrap();
        assert_eq!(got.len(), 1, "{q}");
        let done: Vec<Completion> = got
            .iter()
            .map(|d| Completion::new(d.lease, Outcome::Success { result: vec![0xc0] }, None))
            .collect();
        store.complete(done).await.unwrap();
        assert!(store.get_result(got[0].lease.id).await.unwrap().is_some());
    }
    assert_eq!(store.counts(None).await.unwrap().results, 3);

    // Idle waits block on each queue's own master at once; an enqueue wakes only its queue.
    // (First take the wake-up tokens the enqueue above left.)
    for q in &queues {
        store
            .wait_for_work(q, Duration::from_millis(10))
            .await
            .unwrap();
    }
    let waits: Vec<_> = queues
        .iter()
        .map(|q| {
            let store = Arc::clone(&store);
            let q = q.clone();
            tokio::spawn(async move {
                let start = std::time::Instant::now();
                store
                    .wait_for_work(&q, Duration::from_secs(3))
                    .await
                    .unwrap();
                start.elapsed()
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    store.enqueue(vec![env(&queues[1])]).await.unwrap();
    let mut waited = Vec::new();
    for w in waits {
        waited.push(w.await.unwrap());
    }
    assert!(waited[1] < Duration::from_secs(2), "woken: {waited:?}");
    assert!(
        waited[0] >= Duration::from_millis(2500),
        "not woken: {waited:?}"
    );
    assert!(
        waited[2] >= Duration::from_millis(2500),
        "not woken: {waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_is_an_error_for_a_while_then_the_store_carries_on() {
    let mut cluster = support::RedisCluster::start();
    let q = queues_on_masters(&cluster, 1).remove(0);
    let store = RedisStorage::open(
        RedisOptions::new(cluster.url())
            .response_timeout(Duration::from_secs(2))
            .connect_timeout(Duration::from_secs(1)),
    )
    .await
    .unwrap();
    store.enqueue(vec![env(&q)]).await.unwrap();
    let master = cluster.master_of(&format!("{{{q}}}"));
    cluster.kill(master);
    // Calls fail (or wait) while the replica is promoted; none panics, and within the
    // failover's time the store works again on the new master.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut errors = 0;
    loop {
        match store.enqueue(vec![env(&q)]).await {
            Ok(_) => break,
            Err(err) => {
                errors += 1;
                assert!(
                    std::time::Instant::now() < deadline,
                    "the store did not recover: {err}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    cluster.wait_ok(Duration::from_secs(30));
    assert_ne!(
        cluster.master_of(&format!("{{{q}}}")),
        master,
        "the replica took over"
    );
    let got = store.fetch(&q, 10, LEASE).await.unwrap();
    assert!(
        !got.is_empty(),
        "the queue is served by the new master ({errors} errors)"
    );
}

/// With `wait=1`, an enqueue that enters its queue in the registry (the first of the queue,
/// then one per registration mark) also waits for the replica of the master that holds the
/// registry (another master than the queue's): a queue missing from the registry after a
/// failover would hide its tasks and results from every lookup by id. The queue's
/// registration mark is set only after that wait succeeded, so a registration that failed is
/// tried again by the queue's next enqueue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_wait_an_enqueue_that_registers_its_queue_waits_for_the_registrys_replica_too() {
    let mut cluster = support::RedisCluster::start();
    cluster.wait_synced(Duration::from_secs(30));
    let registry_master = cluster.master_of("{~queues}");
    let mut others = (0..1000)
        .map(|i| format!("q{i}"))
        .filter(|q| cluster.master_of(&format!("{{{q}}}")) != registry_master);
    let q = others.next().unwrap();
    let new_queue = others.next().unwrap();
    let store = RedisStorage::open(RedisOptions::new(format!(
        "{}?wait=1&wait_timeout_ms=2000",
        cluster.url()
    )))
    .await
    .unwrap();
    store.enqueue(vec![env(&q)]).await.unwrap();
    // The registry master's replica, from the master's own view.
    let mut conn = redis::Client::open(format!("redis://127.0.0.1:{registry_master}/"))
        .unwrap()
        .get_connection()
        .unwrap();
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut conn)
        .unwrap();
    let replica: u16 = info
        .lines()
        .find(|l| l.starts_with("slave0:"))
        .and_then(|l| l.split(',').find_map(|kv| kv.strip_prefix("port=")))
        .and_then(|p| p.parse().ok())
        .expect("the registry's master has a replica");
    cluster.kill(replica);
    // The registered queue's enqueues write nothing on the registry's master.
    store.enqueue(vec![env(&q)]).await.unwrap();
    // A new queue's first enqueue does, and fails without the registry's replica...
    let err = store.enqueue(vec![env(&new_queue)]).await.unwrap_err();
    assert!(err.to_string().contains("replicas acknowledged"), "{err}");
    // ...and so does its next one: no mark was set for a registration not acknowledged.
    let err = store.enqueue(vec![env(&new_queue)]).await.unwrap_err();
    assert!(err.to_string().contains("replicas acknowledged"), "{err}");
}
