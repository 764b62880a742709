//! One worker on a Redis Cluster (3 masters, 3 replicas, started by the test): it consumes
//! queues that live on different masters, takes from each fairly, and is woken by new work on
//! any of them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Mutex;
use std::time::{Duration, Instant};

use queue_redis::testing::RedisCluster;
use skiff::prelude::*;

/// The queue of each task, in the order the tasks ran.
static RAN: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[skiff::task]
async fn tagged(queue: String) -> Result<String, TaskError> {
    tokio::time::sleep(Duration::from_millis(2)).await;
    RAN.lock().unwrap().push(queue.clone());
    Ok(queue)
}

/// Three queue names whose hash tags live on three different masters.
fn queues_on_three_masters(cluster: &RedisCluster) -> Vec<String> {
    let mut picked: Vec<(u16, String)> = Vec::new();
    for i in 0..1000 {
        let q = format!("q{i}");
        let master = cluster.master_of(&format!("{{{q}}}"));
        if !picked.iter().any(|(m, _)| *m == master) {
            picked.push((master, q));
        }
        if picked.len() == 3 {
            break;
        }
    }
    picked.into_iter().map(|(_, q)| q).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_consumes_queues_on_every_master_fairly_and_is_woken_by_each() {
    let cluster = RedisCluster::start();
    let queues = queues_on_three_masters(&cluster);
    let queue = Queue::connect(&cluster.url()).await.unwrap();
    let mut handles = Vec::new();
    for q in &queues {
        for _ in 0..60 {
            handles.push(
                tagged(q.clone())
                    .queue(q.as_str())
                    .enqueue(&queue)
                    .await
                    .unwrap(),
            );
        }
    }
    let running = Consumer::builder(queue.clone())
        .queues(queues.iter().map(|q| (q.as_str(), 1)))
        .workers(6)
        .register(tagged)
        .build()
        .unwrap()
        .spawn();
    for h in handles {
        h.get(Duration::from_secs(120)).await.unwrap();
    }
    // Fair: each queue (each master) had its share of the first half of the run.
    let first: Vec<String> = RAN.lock().unwrap()[..90].to_vec();
    for q in &queues {
        let n = first.iter().filter(|r| *r == q).count();
        assert!(n >= 15, "{q} ran {n} of the first 90 tasks: {first:?}");
    }

    // Idle now: a task on any master's queue is picked up at once, not after a poll.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for q in &queues {
        let started = Instant::now();
        let h = tagged(q.clone())
            .queue(q.as_str())
            .enqueue(&queue)
            .await
            .unwrap();
        h.get(Duration::from_secs(30)).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{q}: an idle worker took {:?} to start a task",
            started.elapsed()
        );
    }
    running.shutdown(Duration::from_secs(10)).await.unwrap();
}
