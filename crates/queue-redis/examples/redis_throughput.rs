//! A rough throughput check of the Redis store's hot path: batch enqueue, then fetch + complete
//! in batches, as a consumer with `--batch` free permits would.
//!
//! ```text
//! cargo run --release -p queue-redis --example redis_throughput -- redis://127.0.0.1:6390/0 100000 200
//! ```
//!
//! Arguments: URL (default `redis://127.0.0.1:6379/0`; `redis+cluster://…` for a Redis
//! Cluster), task count (default 100,000), batch size (default 200), queues (default `bench`;
//! several, comma-separated, share the tasks round-robin and get 4 workers each: on a cluster,
//! name queues whose hash tags live on different masters). Uses its own key prefix and flushes
//! it at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use queue_core::testing::successes;
use queue_core::{to_msgpack, Envelope, Storage};
use queue_redis::{RedisOptions, RedisStorage};

fn join<T>(r: Result<queue_core::Result<T>, tokio::task::JoinError>) -> queue_core::Result<T> {
    r.map_err(|e| queue_core::Error::storage_msg("redis", e.to_string()))?
}

#[tokio::main]
async fn main() -> queue_core::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "redis://127.0.0.1:6379/0".into());
    let total: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let batch: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(200);
    let queues: Vec<String> = args
        .next()
        .unwrap_or_else(|| "bench".into())
        .split(',')
        .map(str::to_owned)
        .collect();
    let prefix = format!("skiff-bench-{}", std::process::id());
    let store = Arc::new(RedisStorage::open(RedisOptions::new(url).key_prefix(prefix)).await?);
    let now = chrono::Utc::now();
    let args = to_msgpack(&())?;

    let start = Instant::now();
    let mut producers = Vec::new();
    for chunk in 0..total.div_ceil(1000) {
        let n = 1000.min(total - chunk * 1000);
        let queue = &queues[chunk % queues.len()];
        let envs: Vec<Envelope> = (0..n)
            .map(|_| Envelope::new(queue, "noop", args.clone(), now))
            .collect();
        let store = store.clone();
        producers.push(tokio::spawn(async move { store.enqueue(envs).await }));
        if producers.len() >= 4 {
            join(producers.remove(0).await)?;
        }
    }
    for p in producers {
        join(p.await)?;
    }
    let took = start.elapsed();
    println!(
        "enqueue: {total} tasks in {took:?} = {:.0}/s (batches of 1000, 4 in flight)",
        total as f64 / took.as_secs_f64()
    );

    let start = Instant::now();
    let mut workers = Vec::new();
    for queue in queues
        .iter()
        .flat_map(|q| std::iter::repeat_n(q.clone(), 4))
    {
        let store = store.clone();
        workers.push(tokio::spawn(async move {
            let mut done = 0usize;
            let (mut in_fetch, mut in_complete) = (Duration::ZERO, Duration::ZERO);
            loop {
                let t = Instant::now();
                let got = store.fetch(&queue, batch, Duration::from_secs(30)).await?;
                in_fetch += t.elapsed();
                if got.is_empty() {
                    println!("worker: {in_fetch:?} in fetch, {in_complete:?} in complete");
                    return Ok::<_, queue_core::Error>(done);
                }
                done += got.len();
                let acks = successes(&got, Some(Duration::from_secs(3600)));
                let t = Instant::now();
                store.complete(acks).await?;
                in_complete += t.elapsed();
            }
        }));
    }
    let mut processed = 0;
    for w in workers {
        processed += join(w.await)?;
    }
    let took = start.elapsed();
    println!(
        "process: {processed} tasks in {took:?} = {:.0}/s (fetch + complete, batches of {batch}, 4 workers per queue, {} queues)",
        processed as f64 / took.as_secs_f64(),
        queues.len()
    );
    store.flush().await?;
    Ok(())
}
