//! Clocks (issue: a worker whose clock runs 60 s ahead steals locks and expires others'
//! leases). Every time a Redis store writes is its own clock's, so `open` refuses a clock
//! further than `max_clock_skew` from the server's `TIME`.

use std::sync::Arc;
use std::time::Duration;

use queue_core::{Clock, Error, ManualClock, Storage};
use queue_redis::{RedisOptions, RedisStorage, DEFAULT_MAX_CLOCK_SKEW};

use crate::support::RedisServer;

fn skewed(by_secs: i64) -> Arc<dyn Clock> {
    let at = chrono::Utc::now() + chrono::Duration::seconds(by_secs);
    Arc::new(ManualClock::starting_at(at))
}

async fn open(options: RedisOptions) -> queue_core::Result<RedisStorage> {
    RedisStorage::open(options).await
}

#[tokio::test]
async fn a_clock_far_from_the_servers_is_refused_at_open() {
    let server = RedisServer::start();
    let bound = Some(DEFAULT_MAX_CLOCK_SKEW);
    for (skew, side) in [(60, "ahead of"), (-60, "behind")] {
        let options = RedisOptions::new(server.url())
            .clock(skewed(skew))
            .max_clock_skew(bound);
        match open(options).await {
            Err(Error::InvalidInput(message)) => {
                assert!(message.contains(side), "{message}");
                let secs: f64 = message
                    .split("clock is ")
                    .nth(1)
                    .and_then(|rest| rest.split(' ').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0.0);
                assert!((55.0..65.0).contains(&secs), "{message}");
                assert!(message.contains("max_clock_skew"), "{message}");
            }
            other => panic!("a clock {skew} s off opened: {other:?}"),
        }
    }
    // Within the bound, and the default (the system clock, checked).
    let near = RedisOptions::new(server.url())
        .clock(skewed(1))
        .max_clock_skew(bound);
    assert!(open(near).await.is_ok());
    assert!(open(RedisOptions::new(server.url())).await.is_ok());
}

#[tokio::test]
async fn without_the_bound_a_clock_ahead_takes_a_lock_another_worker_holds() {
    // What the bound prevents: a store that skips the check (a test's clock is trusted,
    // or `max_clock_skew(None)`) and runs 60 s ahead sees a 30 s lock as expired.
    let server = RedisServer::start();
    let honest = open(RedisOptions::new(server.url())).await.unwrap();
    let ahead = open(
        RedisOptions::new(server.url())
            .clock(skewed(60))
            .max_clock_skew(None),
    )
    .await
    .unwrap();
    let ttl = Duration::from_secs(30);
    assert!(honest.acquire_lock("report", "honest", ttl).await.unwrap());
    assert!(
        ahead.acquire_lock("report", "ahead", ttl).await.unwrap(),
        "the clock 60 s ahead takes a lock held for 30 s"
    );
}
