//! Query plans: with a backlog and statistics, no hot statement scans a table; the claim reads
//! `tasks_ready` and `tasks_timer`, completions and extensions the primary key.

use queue_core::Storage;
use queue_postgres::testing::shared_options;
use queue_postgres::PostgresStorage;

use crate::{arc, env, manual_clock};

#[tokio::test]
async fn hot_statements_use_indexes_not_table_scans() {
    let clock = manual_clock();
    let store = PostgresStorage::open(shared_options("plans").clock(arc(&clock)))
        .await
        .unwrap();
    // A backlog: ready tasks in a few queues, scheduled ones, results.
    for queue in ["default", "mail", "reports"] {
        let mut batch = Vec::new();
        for n in 0..2000 {
            let mut e = env(&clock, queue, "t");
            if n % 2 == 0 {
                e.eta = Some(clock_now(&clock) + chrono::Duration::hours(1));
            }
            batch.push(e);
        }
        store.enqueue(batch).await.unwrap();
    }
    // Many revocations by name, most without an end, a few lapsing: the purge must read
    // the partial index of ends, not every revocation.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO \"{s}\".revocations (kind, target, until, once) \
         SELECT 1, 'name' || g, CASE WHEN g % 100 = 0 THEN g END, false \
         FROM generate_series(1, 20000) g",
        s = store.schema()
    )))
    .execute(store.pool())
    .await
    .unwrap();
    for table in ["tasks", "revocations"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ANALYZE \"{}\".{table}",
            store.schema()
        )))
        .execute(store.pool())
        .await
        .unwrap();
    }

    let plans = store.explain().await.unwrap();
    assert_eq!(plans.len(), 8);
    for plan in &plans {
        assert!(!plan.scans_a_table(), "{}: {:#?}", plan.name, plan.plan);
    }
    let plan = |name: &str| plans.iter().find(|p| p.name == name).unwrap();
    assert!(
        plan("claim").uses_index("tasks_ready"),
        "{:#?}",
        plan("claim").plan
    );
    assert!(
        plan("claim").uses_index("tasks_timer"),
        "{:#?}",
        plan("claim").plan
    );
    assert!(
        plan("complete").uses_index("tasks_pkey"),
        "{:#?}",
        plan("complete").plan
    );
    assert!(
        plan("extend").uses_index("tasks_pkey"),
        "{:#?}",
        plan("extend").plan
    );
    assert!(
        plan("purge expired").uses_index("revocations_until"),
        "{:#?}",
        plan("purge expired").plan
    );
}

fn clock_now(clock: &queue_core::ManualClock) -> chrono::DateTime<chrono::Utc> {
    queue_core::Clock::now(clock)
}
