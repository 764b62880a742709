//! Starting against a store that is not there yet: `skiff::connect` waits for a Redis or
//! PostgreSQL server that comes up after it started (retrying with backoff up to its connect
//! timeout) instead of failing at once, and gives up with the store's error after it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use skiff::prelude::*;

#[skiff::task]
async fn ping(n: u32) -> Result<u32, TaskError> {
    Ok(n + 1)
}

/// Connects in the background while the server is down, starts it after `down`, and checks
/// the queue works.
async fn waits_for(url: String, down: Duration, start: impl FnOnce()) {
    let started = Instant::now();
    let connecting =
        tokio::spawn(async move { skiff::connect_within(&url, Duration::from_secs(60)).await });
    tokio::time::sleep(down).await;
    assert!(
        !connecting.is_finished(),
        "connect gave up while the server was down"
    );
    start();
    let queue = connecting
        .await
        .unwrap()
        .expect("connected once the server is up");
    assert!(started.elapsed() >= down);
    let running = Consumer::builder(queue.clone())
        .register(ping)
        .build()
        .unwrap()
        .spawn();
    let out = ping(41).enqueue(&queue).await.unwrap();
    assert_eq!(out.get(Duration::from_secs(30)).await.unwrap(), 42);
    running.shutdown(Duration::from_secs(10)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_waits_for_a_redis_server_that_starts_later() {
    let mut server = queue_redis::testing::RedisServer::start();
    let url = server.url();
    server.stop();
    // Restarted in place: the server runs until the end of the test, and is stopped with it.
    waits_for(url, Duration::from_millis(1500), || server.restart()).await;
}

/// A Redis server restarted with data to load answers `LOADING` until it has read it back
/// (here 20,000 keys at 100 µs each: about two seconds). A worker or producer started then
/// waits instead of failing with `BusyLoading`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_waits_for_a_redis_server_that_is_still_loading() {
    let mut server = queue_redis::testing::RedisServer::with(queue_redis::testing::ServerConfig {
        key_load_delay_us: Some(100),
        ..Default::default()
    });
    let url = server.url();
    let mut raw = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let () = redis::cmd("EVAL")
        .arg("for i = 1, 20000 do redis.call('SET', 'load:' .. i, i) end")
        .arg(0)
        .query(&mut raw)
        .unwrap();
    drop(raw);
    server.restart_loading();
    let mut raw = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let loading: redis::RedisResult<String> = redis::cmd("PING").query(&mut raw);
    assert!(
        matches!(&loading, Err(e) if e.to_string().contains("loading the dataset")),
        "the server should still be loading: {loading:?}"
    );
    let queue = skiff::connect_within(&url, Duration::from_secs(60))
        .await
        .expect("connected once the server has loaded its data");
    let loaded: String = redis::cmd("PING").query(&mut raw).unwrap();
    assert_eq!(loaded, "PONG");
    let running = Consumer::builder(queue.clone())
        .register(ping)
        .build()
        .unwrap()
        .spawn();
    let out = ping(1).enqueue(&queue).await.unwrap();
    assert_eq!(out.get(Duration::from_secs(30)).await.unwrap(), 2);
    running.shutdown(Duration::from_secs(10)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_waits_for_a_postgres_server_that_starts_later() {
    let mut server = queue_postgres::testing::PostgresServer::start();
    let url = server.url();
    server.stop();
    let server = std::sync::Arc::new(std::sync::Mutex::new(server));
    let again = server.clone();
    waits_for(url, Duration::from_millis(1500), move || {
        again.lock().unwrap().restart();
    })
    .await;
    drop(server);
}

#[tokio::test]
async fn connect_gives_up_after_its_timeout_with_the_stores_error() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let err = skiff::connect_within(
        &format!("redis://127.0.0.1:{port}/0"),
        Duration::from_secs(1),
    )
    .await
    .unwrap_err();
    let waited = started.elapsed();
    assert!(err.is_transient(), "{err}");
    assert!(waited >= Duration::from_secs(1), "gave up after {waited:?}");
    assert!(waited < Duration::from_secs(20), "gave up after {waited:?}");

    // A bad URL is no reason to wait.
    let started = Instant::now();
    let err = skiff::connect_within("redis://127.0.0.1:notaport/0", Duration::from_secs(30)).await;
    assert!(err.is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
}
