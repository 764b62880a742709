//! The store's own enqueue and completion run plain `INSERT`s (no `ON CONFLICT`) and fall back
//! to the upserting statements when a row clashes after all: nothing is lost or doubled.

use queue_core::{AckStatus, Completion, EnqueueOutcome, Outcome, Storage, StoredResult, TaskId};
use queue_postgres::testing::shared_options;
use queue_postgres::PostgresStorage;

use crate::{arc, env, manual_clock, LEASE};

async fn count(store: &PostgresStorage, table: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM \"{}\".{table}", store.schema());
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_result_row_left_for_a_running_task_is_replaced_by_its_completion() {
    let clock = manual_clock();
    let store = PostgresStorage::open(shared_options("plain-result").clock(arc(&clock)))
        .await
        .unwrap();
    let envs = vec![env(&clock, "q", "t"), env(&clock, "q", "t")];
    let ids: Vec<TaskId> = envs.iter().map(|e| e.id).collect();
    store.enqueue(envs).await.unwrap();
    let fetched = store.fetch("q", 10, LEASE).await.unwrap();
    assert_eq!(fetched.len(), 2);
    // A result row for the first task, written behind the store's back: the plain insert of
    // the completion clashes with it.
    let sql = format!(
        "INSERT INTO \"{}\".results (id, value) VALUES ($1, '\\x00'::bytea)",
        store.schema()
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(ids[0].as_uuid())
        .execute(store.pool())
        .await
        .unwrap();

    let done: Vec<Completion> = fetched
        .iter()
        .map(|d| {
            let result = queue_core::to_msgpack(&d.envelope.id.to_string()).unwrap();
            Completion::new(d.lease, Outcome::Success { result }, None)
        })
        .collect();
    let status = store.complete(done).await.unwrap();
    assert_eq!(status, vec![AckStatus::Acked, AckStatus::Acked]);
    for id in &ids {
        let stored = store.get_result(*id).await.unwrap().expect("a result");
        let StoredResult::Success(value) = stored else {
            panic!("{stored:?}")
        };
        let text: String = queue_core::from_msgpack(&value).unwrap();
        assert_eq!(
            text,
            id.to_string(),
            "the completion's result replaced the row"
        );
    }
    assert_eq!(count(&store, "results").await, 2);
    assert_eq!(count(&store, "tasks").await, 0);
}

#[tokio::test]
async fn clashing_enqueues_leave_the_store_usable_and_store_nothing_twice() {
    let clock = manual_clock();
    let store = PostgresStorage::open(shared_options("plain-enqueue").clock(arc(&clock)))
        .await
        .unwrap();
    let a = env(&clock, "q", "t");
    // One at a time: the single-task path (its own kept connection).
    for round in 0..3 {
        let out = store.enqueue(vec![a.clone()]).await.unwrap();
        let want = if round == 0 {
            EnqueueOutcome::Enqueued(a.id)
        } else {
            EnqueueOutcome::Duplicate(a.id)
        };
        assert_eq!(out, vec![want], "round {round}");
    }
    // A batch holding the pending id, a fresh one, and the fresh one again.
    let b = env(&clock, "q", "t");
    let out = store
        .enqueue(vec![a.clone(), b.clone(), b.clone()])
        .await
        .unwrap();
    assert_eq!(
        out,
        vec![
            EnqueueOutcome::Duplicate(a.id),
            EnqueueOutcome::Enqueued(b.id),
            EnqueueOutcome::Duplicate(b.id),
        ]
    );
    // Fresh tasks still go in, one at a time and in a batch.
    let c = env(&clock, "q", "t");
    assert_eq!(
        store.enqueue(vec![c.clone()]).await.unwrap(),
        vec![EnqueueOutcome::Enqueued(c.id)]
    );
    let (d, e) = (env(&clock, "q", "t"), env(&clock, "q", "t"));
    assert_eq!(
        store.enqueue(vec![d.clone(), e.clone()]).await.unwrap(),
        vec![
            EnqueueOutcome::Enqueued(d.id),
            EnqueueOutcome::Enqueued(e.id)
        ]
    );
    assert_eq!(count(&store, "tasks").await, 5);
    let fetched = store.fetch("q", 10, LEASE).await.unwrap();
    let got: Vec<TaskId> = fetched.iter().map(|d| d.envelope.id).collect();
    assert_eq!(got, vec![a.id, b.id, c.id, d.id, e.id], "FIFO, each once");
}
