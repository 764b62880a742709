//! The store vacuums its task table itself every `vacuum_every` finished tasks, so that claims
//! do not walk ever more dead index entries (see the `vacuum` module of the crate).

use std::time::{Duration, Instant};

use queue_core::storage::{Completion, Outcome};
use queue_core::Storage;
use queue_postgres::testing::shared_options;
use queue_postgres::PostgresStorage;

use crate::{arc, env, manual_clock};

/// How many times the store's task table has been vacuumed by hand (not by autovacuum).
async fn vacuums(store: &PostgresStorage) -> i64 {
    sqlx::query_scalar(
        "SELECT vacuum_count FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'tasks'",
    )
    .bind(store.schema())
    .fetch_one(store.pool())
    .await
    .unwrap()
}

/// Enqueues, fetches and completes `n` tasks.
async fn process(store: &PostgresStorage, clock: &queue_core::ManualClock, n: usize) {
    let batch = (0..n).map(|_| env(clock, "vac", "t")).collect();
    store.enqueue(batch).await.unwrap();
    let mut done = 0;
    while done < n {
        let got = store
            .fetch("vac", 100, Duration::from_secs(30))
            .await
            .unwrap();
        assert!(!got.is_empty(), "{done} of {n} processed, then none due");
        done += got.len();
        let acks = got
            .iter()
            .map(|d| Completion::new(d.lease, Outcome::Success { result: vec![] }, None))
            .collect();
        store.complete(acks).await.unwrap();
    }
}

#[tokio::test]
async fn the_task_table_is_vacuumed_every_so_many_finished_tasks() {
    let clock = manual_clock();
    let store = PostgresStorage::open(
        shared_options("vacuum")
            .clock(arc(&clock))
            .vacuum_every(150),
    )
    .await
    .unwrap();
    let before = vacuums(&store).await;
    process(&store, &clock, 200).await;
    // The vacuum runs in the background, and the statistics are published a moment later.
    let deadline = Instant::now() + Duration::from_secs(60);
    while vacuums(&store).await == before {
        assert!(
            Instant::now() < deadline,
            "no vacuum of the task table after 200 finished tasks (vacuum_every 150)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn no_vacuum_before_the_count_or_when_turned_off() {
    let clock = manual_clock();
    for (every, n) in [(1_000, 200), (0, 400)] {
        let store = PostgresStorage::open(
            shared_options("no-vacuum")
                .clock(arc(&clock))
                .vacuum_every(every),
        )
        .await
        .unwrap();
        process(&store, &clock, n).await;
        // Long enough for a background vacuum to show in the statistics.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(vacuums(&store).await, 0, "vacuum_every {every}, {n} tasks");
    }
}

/// A role that does not own the task table may not vacuum it: the store finds that out at
/// open, says so once in its log, and never tries (PostgreSQL 15 would answer each attempt with
/// a warning and skip the table, so the store would go on asking every `vacuum_every` tasks).
#[tokio::test]
async fn a_role_that_does_not_own_the_table_leaves_it_to_autovacuum() {
    let clock = manual_clock();
    let options = shared_options("vacuum-role").clock(arc(&clock));
    let schema = options.schema_name().to_owned();
    let owner = PostgresStorage::open(options.clone()).await.unwrap();
    assert!(owner.vacuums_itself());
    let role = queue_postgres::testing::unique_schema("app");
    for statement in [
        format!("CREATE ROLE \"{role}\" LOGIN PASSWORD 'app-secret'"),
        format!("GRANT USAGE ON SCHEMA \"{schema}\" TO \"{role}\""),
        format!("GRANT ALL ON ALL TABLES IN SCHEMA \"{schema}\" TO \"{role}\""),
        format!("GRANT ALL ON ALL SEQUENCES IN SCHEMA \"{schema}\" TO \"{role}\""),
        format!("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA \"{schema}\" TO \"{role}\""),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(owner.pool())
            .await
            .unwrap();
    }
    let app = PostgresStorage::open(
        options
            .map_connect(|c| c.username(&role).password("app-secret"))
            .migrate(false)
            .vacuum_every(10),
    )
    .await
    .unwrap();
    assert!(!app.vacuums_itself());
    process(&app, &clock, 30).await;
    assert!(
        !PostgresStorage::open(shared_options("vacuum-off").vacuum_every(0))
            .await
            .unwrap()
            .vacuums_itself()
    );
    drop(app);
    for statement in [
        format!("DROP OWNED BY \"{role}\""),
        format!("DROP ROLE \"{role}\""),
    ] {
        // A connection of the app's pool may still be closing: the role goes with the test run
        // otherwise.
        let _ = sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(owner.pool())
            .await;
    }
}
