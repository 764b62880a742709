//! Signed and encrypted tasks on each real store, read back raw: no argument or result is
//! readable in the SQLite file, in Redis's values or in PostgreSQL's rows; a consumer restarted
//! with rotated keys runs what the old key sealed; an unsigned task is dead-lettered; the
//! workflows (pipelines, chords, error handlers) run sealed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::future::Future;
use std::time::Duration;

use skiff::prelude::*;
use skiff::seal::{Keyring, Sealing};
use skiff::{Error, FailureKind, RunningConsumer};

const WAIT: Duration = Duration::from_secs(30);
const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const K2_K1: &str =
    "k2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=,k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const SECRET: &str = "sealed-card-4242-4242";
const VISIBLE: &str = "plain-card-1234-5678";

#[skiff::task]
async fn echo(card: String) -> Result<String, TaskError> {
    Ok(format!("{card} charged"))
}

fn sealing(keys: &str) -> Sealing {
    let keys = Keyring::parse(keys).unwrap();
    Sealing::new().signing(keys.clone()).encryption(keys)
}

fn consumer(queue: &Queue) -> RunningConsumer {
    Consumer::builder(queue.clone())
        .workers(2)
        .poll_interval(Duration::from_millis(100))
        .register(echo)
        .build()
        .unwrap()
        .spawn()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// `open` opens the store afresh (a restart); `raw` returns everything the store holds.
async fn scenario<O, OF, R, RF>(open: O, raw: R)
where
    O: Fn() -> OF,
    OF: Future<Output = Queue>,
    R: Fn() -> RF,
    RF: Future<Output = Vec<u8>>,
{
    // The raw reader sees what a plain producer stores: it would catch a leak.
    let plain = open().await;
    let forged = echo(VISIBLE.into()).enqueue(&plain).await.unwrap();
    assert!(
        contains(&raw().await, VISIBLE),
        "the raw reader reads the store"
    );

    let producer = open().await.with_sealing(sealing(K1));
    let sealed = echo(SECRET.into()).enqueue(&producer).await.unwrap();
    assert!(
        !contains(&raw().await, SECRET),
        "arguments readable at rest"
    );
    drop(producer);

    // A worker restarted with the new key first still runs what k1 sealed.
    let queue = open().await.with_sealing(sealing(K2_K1));
    let running = consumer(&queue);
    let handle = queue.handle::<String>(sealed.id());
    assert_eq!(handle.get(WAIT).await.unwrap(), format!("{SECRET} charged"));
    assert!(!contains(&raw().await, SECRET), "result readable at rest");
    // The unsigned task never ran.
    match queue.handle::<String>(forged.id()).get(WAIT).await {
        Err(Error::TaskFailed { failure, .. }) => {
            assert_eq!(failure.kind, FailureKind::BadSignature, "{failure:?}");
        }
        other => panic!("an unsigned task must be refused, got {other:?}"),
    }
    // Without the keys, a reader is told why it cannot read the result.
    let err = plain
        .handle::<String>(sealed.id())
        .get(WAIT)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("SKIFF_ENCRYPTION_KEYS"), "{err}");
    running.shutdown(WAIT).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sealed.db");
    let url = format!("sqlite://{}", path.display());
    scenario(
        || async { Queue::connect(&url).await.unwrap() },
        || async {
            // The database file and its write-ahead log, byte for byte.
            let mut bytes = std::fs::read(&path).unwrap_or_default();
            let mut wal = path.clone().into_os_string();
            wal.push("-wal");
            bytes.extend(std::fs::read(&wal).unwrap_or_default());
            bytes
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_on_redis() {
    let server = queue_redis::testing::RedisServer::start();
    let url = server.url();
    scenario(
        || async { Queue::connect(&url).await.unwrap() },
        || async {
            // Every value of every key, by type.
            let client = redis::Client::open(url.as_str()).unwrap();
            let mut con = client.get_multiplexed_async_connection().await.unwrap();
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg("*")
                .query_async(&mut con)
                .await
                .unwrap();
            let mut bytes = Vec::new();
            for key in keys {
                let kind: String = redis::cmd("TYPE")
                    .arg(&key)
                    .query_async(&mut con)
                    .await
                    .unwrap();
                let values: Vec<Vec<u8>> = match kind.as_str() {
                    "string" => vec![redis::cmd("GET")
                        .arg(&key)
                        .query_async(&mut con)
                        .await
                        .unwrap()],
                    "hash" => redis::cmd("HGETALL")
                        .arg(&key)
                        .query_async(&mut con)
                        .await
                        .unwrap(),
                    "zset" => redis::cmd("ZRANGE")
                        .arg(&key)
                        .arg(0)
                        .arg(-1)
                        .query_async(&mut con)
                        .await
                        .unwrap(),
                    "list" => redis::cmd("LRANGE")
                        .arg(&key)
                        .arg(0)
                        .arg(-1)
                        .query_async(&mut con)
                        .await
                        .unwrap(),
                    "set" => redis::cmd("SMEMBERS")
                        .arg(&key)
                        .query_async(&mut con)
                        .await
                        .unwrap(),
                    _ => Vec::new(),
                };
                bytes.extend(key.into_bytes());
                values.into_iter().for_each(|v| bytes.extend(v));
            }
            bytes
        },
    )
    .await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_on_postgres() {
    let base = queue_postgres::testing::shared_url();
    let schema = queue_postgres::testing::unique_schema("sealed");
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}schema={schema}");
    let pool = sqlx::PgPool::connect(&base).await.unwrap();
    scenario(
        || async { Queue::connect(&url).await.unwrap() },
        || async {
            // Every row of every table of the store's schema, as text (bytea as hex).
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
            )
            .bind(&schema)
            .fetch_all(&pool)
            .await
            .unwrap();
            let mut text = String::new();
            for table in tables {
                let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT t::text FROM \"{schema}\".\"{table}\" t"
                )))
                .fetch_all(&pool)
                .await
                .unwrap();
                rows.iter().for_each(|r| text.push_str(r));
            }
            // A secret stored in a bytea column appears as its hex digits.
            let mut bytes = text.clone().into_bytes();
            bytes.extend(decode_hex_runs(&text));
            bytes
        },
    )
    .await;
}

/// The bytes of every `\x…` hex run in PostgreSQL's text output.
#[cfg(feature = "postgres")]
fn decode_hex_runs(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for run in text.split("\\\\x").chain(text.split("\\x")).skip(1) {
        let digits: Vec<u8> = run.bytes().take_while(u8::is_ascii_hexdigit).collect();
        for pair in digits.chunks_exact(2) {
            let hex = std::str::from_utf8(pair).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
        }
        out.push(0);
    }
    out
}

/// `skiff::worker` (here the `worker` example) reads its keys from the environment: it runs
/// the signed task, refuses the unsigned one, and logs the key ids, never the keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_takes_its_keys_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("worker.db").display());
    let plain = Queue::connect(&url).await.unwrap();
    let sealed = plain.with_sealing(sealing(K1));
    let charge = |amount: u64| {
        skiff::Envelope::new(
            skiff::DEFAULT_QUEUE,
            "charge_payment",
            skiff::to_msgpack(&(7u64, amount)).unwrap(),
            chrono::Utc::now(),
        )
    };
    let forged = plain.enqueue_envelope(charge(1)).await.unwrap().id();
    let genuine = sealed.enqueue_envelope(charge(500)).await.unwrap().id();

    let worker = support::example_binary("worker");
    let out = std::process::Command::new(worker)
        .args(["--url", &url, "--max-tasks", "1", "--workers", "2"])
        .env("SKIFF_SIGNING_KEYS", K1)
        .env("SKIFF_ENCRYPTION_KEYS", K1)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("k1"), "the log names the key id: {log}");
    assert!(!log.contains("AAECAwQF"), "the log shows a key: {log}");

    let receipt: serde_json::Value = sealed.handle(genuine).get(WAIT).await.unwrap();
    assert_eq!(receipt["amount_cents"], 500);
    match sealed.handle::<serde_json::Value>(forged).get(WAIT).await {
        Err(Error::TaskFailed { failure, .. }) => {
            assert_eq!(failure.kind, FailureKind::BadSignature, "{failure:?}");
        }
        other => panic!("the unsigned task must be refused, got {other:?}"),
    }
}
