//! Every hot statement is served by an index (EXPLAIN QUERY PLAN).

use queue_sqlite::SqliteStorage;

#[tokio::test]
async fn hot_statements_use_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStorage::connect(&format!("sqlite://{}", dir.path().join("p.db").display()))
        .await
        .unwrap();
    let plans = store.explain().await.unwrap();
    for p in &plans {
        println!("{:>20}: {}", p.name, p.plan.join(" | "));
        assert!(!p.scans_a_table(), "{} scans a table: {:?}", p.name, p.plan);
    }
    let plan = |name: &str| {
        plans
            .iter()
            .find(|p| p.name == name)
            .unwrap()
            .plan
            .join(" | ")
    };
    let claim = plan("claim");
    assert!(claim.contains("tasks_ready"), "claim: {claim}");
    assert!(
        !claim.contains("TEMP B-TREE"),
        "claim must not sort: {claim}"
    );
    assert!(
        plan("promote").contains("tasks_timer"),
        "{}",
        plan("promote")
    );
    assert!(
        plan("complete").contains("tasks_id"),
        "{}",
        plan("complete")
    );
    assert!(plan("extend").contains("tasks_id"), "{}", plan("extend"));
    for (purge, index) in [
        ("purge locks", "locks_expiry"),
        ("purge rate counters", "rates_expiry"),
        ("purge revocations", "revocations_until"),
    ] {
        assert!(plan(purge).contains(index), "{purge}: {}", plan(purge));
    }
    assert!(
        plan("wake-up probe").contains("tasks_ready"),
        "{}",
        plan("wake-up probe")
    );
    assert!(
        plan("wake-up probe").contains("tasks_timer"),
        "{}",
        plan("wake-up probe")
    );
    assert!(
        plan("purge results").contains("results_expiry"),
        "{}",
        plan("purge results")
    );
}

/// Binding a statement's parameters again does not make SQLite prepare it again. SQLite plans a
/// bare `LIMIT ?n` with the bound value and then re-prepares the statement on every new
/// binding: the claim and the promotion were parsed and planned anew on every fetch.
#[tokio::test]
async fn hot_statements_are_not_prepared_again_when_bound_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let store = SqliteStorage::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let plans = store.explain().await.unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    for p in &plans {
        let mut stmt = conn.prepare(&p.sql).unwrap();
        for round in 1..=3_i64 {
            conn.execute_batch("BEGIN").unwrap();
            for i in 1..=stmt.parameter_count() {
                stmt.raw_bind_parameter(i, round * 10).unwrap();
            }
            let mut rows = stmt.raw_query();
            // What the statement does with these values does not matter here, only whether it
            // had to be prepared again to run.
            while let Ok(Some(_)) = rows.next() {}
            drop(rows);
            conn.execute_batch("ROLLBACK").unwrap();
        }
        assert_eq!(
            stmt.get_status(rusqlite::StatementStatus::RePrepare),
            0,
            "{} was prepared again when its parameters were bound again: {}",
            p.name,
            p.sql
        );
    }
}
