//! Clear errors: pool exhaustion, an unreachable server, bad input, secrets kept out.

use std::time::Duration;

use sqlx::Connection;

use queue_core::{Error, Storage, TaskId};
use queue_postgres::testing::shared_options;
use queue_postgres::{PostgresOptions, PostgresStorage};

use crate::{env, manual_clock, within, LEASE};

#[tokio::test]
async fn an_exhausted_pool_is_an_error_after_the_timeout_not_a_hang() {
    let store = PostgresStorage::open(
        shared_options("pool")
            .pool_size(1)
            .acquire_timeout(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    let held = store.pool().acquire().await.unwrap();
    let err = within("an exhausted pool hung", store.counts(None))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("pool exhausted"), "{text}");
    assert!(text.contains("all 1 connections"), "{text}");
    drop(held);
    assert_eq!(store.counts(None).await.unwrap().ready, 0, "usable again");
}

/// Connections returned to the pool moments ago are handed out without a ping (sqlx pinged
/// them on their return). When they die behind the store's back, one call may fail; that
/// failure makes the pool ping every connection idle since, so the next call gets a live one.
#[tokio::test]
async fn connections_killed_behind_the_stores_back_cost_at_most_one_failed_call() {
    let store = PostgresStorage::open(shared_options("killed").pool_size(2).listen(false))
        .await
        .unwrap();
    let clock = manual_clock();
    let mut pids = Vec::new();
    {
        let mut a = store.pool().acquire().await.unwrap();
        let mut b = store.pool().acquire().await.unwrap();
        for conn in [&mut a, &mut b] {
            let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            pids.push(pid);
        }
    }
    // Both back in the pool (after sqlx's release ping), then killed.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut admin = sqlx::PgConnection::connect(&queue_postgres::testing::shared_url())
        .await
        .unwrap();
    for pid in &pids {
        let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .fetch_one(&mut admin)
            .await
            .unwrap();
        assert!(killed, "backend {pid}");
    }
    // A batch: single-task enqueues have a connection of their own (tested below).
    let batch = || vec![env(&clock, "q", "t"), env(&clock, "q", "t")];
    let first = store.enqueue(batch()).await;
    if let Err(err) = &first {
        assert!(err.is_transient(), "{err:?}");
    }
    store
        .enqueue(batch())
        .await
        .expect("the second call after the kill gets a live connection");
    let ready = store.counts(None).await.unwrap().ready;
    assert_eq!(ready, if first.is_ok() { 4 } else { 2 });
}

#[tokio::test]
async fn the_single_enqueue_connection_killed_behind_the_stores_back_costs_at_most_one_failed_call()
{
    let store = PostgresStorage::open(shared_options("killed_single").listen(false))
        .await
        .unwrap();
    let clock = manual_clock();
    store.enqueue(vec![env(&clock, "q", "t")]).await.unwrap();
    let mut admin = sqlx::PgConnection::connect(&queue_postgres::testing::shared_url())
        .await
        .unwrap();
    // The backend whose last statement was this store's single-row insert.
    let pattern = format!("INSERT INTO \"{}\".tasks%VALUES ($1::uuid%", store.schema());
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE query LIKE $1 AND pid <> pg_backend_pid()",
    )
    .bind(&pattern)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(killed, 1, "{pattern}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let first = store.enqueue(vec![env(&clock, "q", "t")]).await;
    if let Err(err) = &first {
        assert!(err.is_transient(), "{err:?}");
    }
    for _ in 0..3 {
        store
            .enqueue(vec![env(&clock, "q", "t")])
            .await
            .expect("the calls after the failed one get a live connection");
    }
    let ready = store.counts(None).await.unwrap().ready;
    assert_eq!(ready, if first.is_ok() { 5 } else { 4 });
}

#[tokio::test]
async fn an_unreachable_server_is_a_clear_error_without_the_password() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://app:hunter2@127.0.0.1:{port}/app");
    let options = PostgresOptions::new(&url)
        .unwrap()
        .acquire_timeout(Duration::from_millis(500));
    let err = within("connecting to nothing hung", PostgresStorage::open(options))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("could not connect to PostgreSQL"), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}/app")), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!format!("{err:?}").contains("hunter2"));
}

#[tokio::test]
async fn text_postgres_cannot_store_is_refused_as_bad_input() {
    let clock = manual_clock();
    let store = PostgresStorage::open(shared_options("nul").clock(crate::arc(&clock)))
        .await
        .unwrap();
    let bad = env(&clock, "q\0ueue", "t");
    let err = store.enqueue(vec![bad]).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    assert!(err.to_string().contains("NUL"), "{err}");
    let err = store.acquire_lock("l\0ck", "me", LEASE).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    let err = store.rate_limit("k\0", 1, LEASE).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    // The same input checks as every store.
    let mut empty = env(&clock, "q", "t");
    empty.queue.clear();
    assert!(matches!(
        store.enqueue(vec![empty]).await.unwrap_err(),
        Error::InvalidInput(_)
    ));
    // Nothing was stored.
    assert_eq!(store.counts(None).await.unwrap(), Default::default());
    assert!(store.get_task(TaskId::new()).await.unwrap().is_none());
}

#[tokio::test]
async fn bad_urls_are_refused_before_connecting() {
    for (url, needle) in [
        ("mysql://h/db", "not a PostgreSQL URL"),
        (
            "postgres://u:pw@h/db?schema=no-dashes",
            "not a valid Skiff schema",
        ),
        ("postgres://u:pw@h/db?pool_size=many", "whole number"),
    ] {
        let err = PostgresStorage::connect(url).await.unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{url}: {err:?}");
        assert!(err.to_string().contains(needle), "{url}: {err}");
    }
}
