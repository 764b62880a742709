//! A server out of memory: what only reads or frees data still runs, what adds data fails with
//! a storage error and works again once there is room.

use std::time::Duration;

use queue_core::storage::Page;
use queue_core::{Error, Storage, TaskId};
use queue_redis::{RedisOptions, RedisStorage};

use crate::support::{self, RedisServer};
use crate::{arc, env, manual_clock};

async fn config_set(url: &str, name: &str, value: &str) {
    let mut conn = support::raw_client(url)
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg(name)
        .arg(value)
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn reads_and_purges_run_while_the_server_is_out_of_memory() {
    let server = RedisServer::start();
    let clock = manual_clock();
    let store = RedisStorage::open(RedisOptions::new(server.url()).clock(arc(&clock)))
        .await
        .unwrap();
    assert!(store.runs_functions());
    store.enqueue(vec![env(&clock, "q", "t")]).await.unwrap();

    // Any use of memory is now over the limit.
    config_set(&server.url(), "maxmemory", "1").await;
    config_set(&server.url(), "maxmemory-policy", "noeviction").await;
    let refused = store
        .enqueue(vec![env(&clock, "q", "t")])
        .await
        .unwrap_err();
    assert!(
        matches!(refused, Error::Storage { .. }) && refused.to_string().contains("OOM"),
        "{refused}"
    );
    assert_eq!(store.counts(Some("q")).await.unwrap().ready, 1);
    assert_eq!(store.queues().await.unwrap(), vec!["q".to_owned()]);
    store
        .wait_for_work("q", Duration::from_millis(10))
        .await
        .unwrap();
    store.purge_expired(100).await.unwrap();
    assert_eq!(store.purge_dead(None).await.unwrap(), 0);
    assert_eq!(store.discard_dead(&[TaskId::new()]).await.unwrap(), 0);
    assert!(store
        .list_dead(None, Page::first(10))
        .await
        .unwrap()
        .is_empty());

    config_set(&server.url(), "maxmemory", "0").await;
    store.enqueue(vec![env(&clock, "q", "t")]).await.unwrap();
    assert_eq!(store.counts(Some("q")).await.unwrap().ready, 2);
}
