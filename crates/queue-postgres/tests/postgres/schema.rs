//! Schemas: created at connect under an advisory lock, one per store, newer ones refused;
//! stores sharing one schema see each other's revocations.

use std::sync::Arc;

use queue_core::{Error, Storage};
use queue_postgres::testing::{shared_options, shared_url, unique_schema};
use queue_postgres::{PostgresOptions, PostgresStorage, SCHEMA_VERSION};

use crate::{env, manual_clock};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_workers_starting_at_once_migrate_once() {
    let options = shared_options("migrate10");
    let schema = options.schema_name().to_owned();
    let opens: Vec<_> = (0..10)
        .map(|_| {
            let options = options.clone();
            tokio::spawn(async move { PostgresStorage::open(options).await })
        })
        .collect();
    let mut stores = Vec::new();
    for open in opens {
        stores.push(open.await.unwrap().expect("every worker opens the store"));
    }
    let applied: Vec<(i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT version, count(*) OVER (PARTITION BY version) FROM \"{schema}\".skiff_migrations ORDER BY version"
    )))
    .fetch_all(stores[0].pool())
    .await
    .unwrap();
    let versions: Vec<i64> = applied.iter().map(|(v, _)| *v).collect();
    assert_eq!(
        versions,
        (1..=SCHEMA_VERSION).collect::<Vec<_>>(),
        "each migration once"
    );
    assert!(applied.iter().all(|(_, n)| *n == 1));
    // All ten work on the same tables.
    let clock = manual_clock();
    stores[3]
        .enqueue(vec![env(&clock, "q", "t")])
        .await
        .unwrap();
    assert_eq!(stores[7].counts(None).await.unwrap().ready, 1);
}

#[tokio::test]
async fn a_store_written_by_a_newer_skiff_is_refused() {
    let options = shared_options("newer");
    let schema = options.schema_name().to_owned();
    let store = PostgresStorage::open(options.clone()).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE \"{schema}\".skiff_meta SET value = value + 1 WHERE key = 'schema_version'"
    )))
    .execute(store.pool())
    .await
    .unwrap();
    let err = PostgresStorage::open(options).await.unwrap_err();
    assert!(
        matches!(err, Error::NewerSchema { found, supported } if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("newer than this build supports"), "{text}");
    assert!(text.contains("upgrade Skiff"), "{text}");
}

#[tokio::test]
async fn without_migrations_a_missing_schema_is_a_clear_error() {
    let options = shared_options("nomigrate").migrate(false);
    let schema = options.schema_name().to_owned();
    let err = PostgresStorage::open(options)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("schema `{schema}` has no Skiff tables")),
        "{err}"
    );
    assert!(err.contains("migrations on"), "{err}");
}

#[tokio::test]
async fn stores_in_different_schemas_of_one_database_are_separate() {
    let url = shared_url();
    let clock = manual_clock();
    let open = |schema: String| {
        let options = PostgresOptions::new(&url)
            .unwrap()
            .schema(&schema)
            .unwrap()
            .clock(Arc::new(clock.clone()));
        PostgresStorage::open(options)
    };
    let a = open(unique_schema("sep-a")).await.unwrap();
    let b = open(unique_schema("sep-b")).await.unwrap();
    a.enqueue(vec![env(&clock, "q", "t")]).await.unwrap();
    assert_eq!(a.counts(None).await.unwrap().ready, 1);
    assert_eq!(b.counts(None).await.unwrap().ready, 0);
    assert!(b.fetch("q", 10, crate::LEASE).await.unwrap().is_empty());
    // The same schema through a URL parameter is the same store.
    let sep = if url.contains('?') { '&' } else { '?' };
    let same = PostgresStorage::connect(&format!("{url}{sep}schema={}", a.schema()))
        .await
        .unwrap();
    assert_eq!(same.counts(None).await.unwrap().ready, 1);
}

#[tokio::test]
async fn a_revocation_by_another_store_on_the_schema_applies_to_the_next_fetched_batch() {
    let clock = manual_clock();
    let options = shared_options("revoke").clock(crate::arc(&clock));
    let consumer = PostgresStorage::open(options.clone()).await.unwrap();
    let admin = PostgresStorage::open(options).await.unwrap();
    queue_core::testing::revocation_by_another_store_applies_to_the_next_fetched_batch(
        &consumer, &admin,
    )
    .await;
}
