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
