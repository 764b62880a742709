//! The control plane on Redis, beyond the conformance suite: paused queues outlive the store
//! and the server, waits on a paused queue do not spin on wake-up tokens, purges of large
//! queues go in batches, unreadable or expired heartbeats do not break `workers`.

use std::time::{Duration, Instant};

use queue_core::storage::{Completion, Outcome};
use queue_core::{
    AckStatus, FailureKind, Heartbeat, Lease, Storage, TaskFailure, WorkerInfo, WorkerStatus,
};
use queue_redis::{RedisOptions, RedisStorage};

use crate::support::{self, RedisServer, ServerConfig};
use crate::{arc, env, manual_clock, LEASE};

fn beat(id: &str, at: chrono::DateTime<chrono::Utc>, progress: Vec<(Lease, Vec<u8>)>) -> Heartbeat {
    let mut worker = WorkerInfo::this_process(vec![("q".into(), 1)], 4, at);
    worker.id = id.into();
    Heartbeat {
        worker,
        running: vec![],
        progress,
        ttl: Duration::from_secs(10),
        throughput: vec![],
        periodic: vec![],
    }
}

fn now(clock: &queue_core::ManualClock) -> chrono::DateTime<chrono::Utc> {
    use queue_core::Clock;
    clock.now()
}

async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    support::raw_client(url)
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_paused_queue_stays_paused_for_a_new_store_on_the_same_server() {
    let clock = manual_clock();
    let options = support::shared_options("paused-reopen").clock(arc(&clock));
    let first = RedisStorage::open(options.clone()).await.unwrap();
    let batch: Vec<_> = (0..5).map(|_| env(&clock, "q", "t")).collect();
    first.enqueue(batch).await.unwrap();
    assert!(first.set_paused("q", true).await.unwrap());
    drop(first);

    let second = RedisStorage::open(options).await.unwrap();
    assert_eq!(second.paused_queues().await.unwrap(), vec!["q".to_owned()]);
    assert!(second.fetch("q", 10, LEASE).await.unwrap().is_empty());
    assert!(!second.set_paused("q", true).await.unwrap(), "still paused");
    // Five enqueues left five wake-up tokens: the wait takes them and keeps waiting.
    let started = Instant::now();
    second
        .wait_for_work("q", Duration::from_millis(500))
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "a paused queue's wait returned after {:?}",
        started.elapsed()
    );
    assert!(second.set_paused("q", false).await.unwrap());
    assert_eq!(second.fetch("q", 10, LEASE).await.unwrap().len(), 5);
}

#[tokio::test]
async fn a_paused_queue_stays_paused_across_a_server_restart() {
    let mut server = RedisServer::with(ServerConfig {
        appendonly: true,
        ..ServerConfig::default()
    });
    let clock = manual_clock();
    let options = RedisOptions::new(server.url())
        .clock(arc(&clock))
        .response_timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(10));
    let store = RedisStorage::open(options.clone()).await.unwrap();
    store.enqueue(vec![env(&clock, "q", "t")]).await.unwrap();
    store.set_paused("q", true).await.unwrap();
    drop(store);

    server.restart();
    let store = RedisStorage::open(options).await.unwrap();
    assert_eq!(store.paused_queues().await.unwrap(), vec!["q".to_owned()]);
    assert!(store.fetch("q", 10, LEASE).await.unwrap().is_empty());
    store.set_paused("q", false).await.unwrap();
    assert_eq!(store.fetch("q", 10, LEASE).await.unwrap().len(), 1);
}

#[tokio::test]
async fn purging_a_large_queue_goes_in_batches_and_leaves_nothing_behind() {
    let clock = manual_clock();
    let store = support::shared_store("purge-large", arc(&clock)).await;
    let prefix = store.key_prefix().to_owned();
    let later = now(&clock) + chrono::TimeDelta::seconds(600);
    let batch: Vec<_> = (0..2_500)
        .map(|i| {
            let mut e = env(&clock, "big", "t");
            if i % 2 == 0 {
                e.unique_key = Some(format!("k{i}"));
            }
            if i % 5 == 0 {
                e.eta = Some(later);
            }
            e
        })
        .collect();
    store.enqueue(batch).await.unwrap();
    let running = store.fetch("big", 10, LEASE).await.unwrap();
    assert_eq!(running.len(), 10);

    assert_eq!(store.purge_queue("big").await.unwrap(), 2_490);
    let c = store.counts(Some("big")).await.unwrap();
    assert_eq!((c.ready, c.scheduled, c.leased), (0, 0, 10));
    let mut conn = raw(&support::shared_url()).await;
    let ids: usize = redis::cmd("ZCARD")
        .arg(format!("{prefix}:{{big}}:leased"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let tasks: usize = redis::cmd("HLEN")
        .arg(format!("{prefix}:{{big}}:task"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let running_unique = running
        .iter()
        .filter(|d| d.envelope.unique_key.is_some())
        .count();
    let unique: usize = redis::cmd("HLEN")
        .arg(format!("{prefix}:{{big}}:unique"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        (ids, tasks, unique),
        (10, 10, running_unique),
        "only the running tasks are left"
    );
}

#[tokio::test]
async fn progress_goes_with_a_dead_lettered_task() {
    let clock = manual_clock();
    let store = support::shared_store("progress-dead", arc(&clock)).await;
    let prefix = store.key_prefix().to_owned();
    let id = store
        .enqueue(vec![env(&clock, "q", "t")])
        .await
        .unwrap()
        .remove(0)
        .id();
    let d = store.fetch("q", 1, LEASE).await.unwrap().remove(0);
    store
        .heartbeat(&beat("w", now(&clock), vec![(d.lease, b"half".to_vec())]))
        .await
        .unwrap();
    assert_eq!(
        store.get_progress(id).await.unwrap(),
        Some(b"half".to_vec())
    );
    let failure = TaskFailure::new(FailureKind::Error, "boom", 1);
    let done = Completion::new(d.lease, Outcome::Dead { failure }, None);
    assert_eq!(
        store.complete(vec![done]).await.unwrap(),
        vec![AckStatus::Acked]
    );
    assert_eq!(store.get_progress(id).await.unwrap(), None);
    let exists: i64 = redis::cmd("EXISTS")
        .arg(format!("{prefix}:{{q}}:progress"))
        .query_async(&mut raw(&support::shared_url()).await)
        .await
        .unwrap();
    assert_eq!(exists, 0, "the progress hash is gone with its last field");
}

#[tokio::test]
async fn workers_skip_unreadable_heartbeats_and_clean_up_expired_ones_a_batch_at_a_time() {
    let clock = manual_clock();
    let store = support::shared_store("workers", arc(&clock)).await;
    let prefix = store.key_prefix().to_owned();
    let (workers, exp) = (
        format!("{prefix}:{{~workers}}:workers"),
        format!("{prefix}:{{~workers}}:worker-exp"),
    );
    let mut conn = raw(&support::shared_url()).await;
    let now_ms = queue_core::clock::to_millis(now(&clock));
    // An entry no Skiff version wrote, live for an hour, and 250 long expired ones.
    let mut pipe = redis::pipe();
    pipe.cmd("HSET")
        .arg(&workers)
        .arg("garbage")
        .arg("not msgpack")
        .ignore();
    pipe.cmd("ZADD")
        .arg(&exp)
        .arg(now_ms + 3_600_000)
        .arg("garbage")
        .ignore();
    for i in 0..250 {
        let status = WorkerStatus::of(&beat(&format!("old{i}"), now(&clock), vec![]), now(&clock));
        pipe.cmd("HSET")
            .arg(&workers)
            .arg(format!("old{i}"))
            .arg(status.encode().unwrap())
            .ignore();
        pipe.cmd("ZADD")
            .arg(&exp)
            .arg(now_ms - 1)
            .arg(format!("old{i}"))
            .ignore();
    }
    let () = pipe.query_async(&mut conn).await.unwrap();
    store
        .heartbeat(&beat("live", now(&clock), vec![]))
        .await
        .unwrap();

    let count = |conn: &mut redis::aio::MultiplexedConnection| {
        let mut conn = conn.clone();
        let exp = exp.clone();
        async move {
            let n: usize = redis::cmd("ZCARD")
                .arg(&exp)
                .query_async(&mut conn)
                .await
                .unwrap();
            n
        }
    };
    // The heartbeat removed 100 expired entries; each listing removes 100 more.
    assert_eq!(count(&mut conn).await, 2 + 150);
    let live = store.workers().await.unwrap();
    assert_eq!(
        live.iter().map(|w| w.info.id.as_str()).collect::<Vec<_>>(),
        vec!["live"],
        "the unreadable entry is skipped, the expired ones are not listed"
    );
    assert_eq!(count(&mut conn).await, 2 + 50);
    store.workers().await.unwrap();
    assert_eq!(count(&mut conn).await, 2);
    let left: usize = redis::cmd("HLEN")
        .arg(&workers)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 2, "their statuses went with them");
}
