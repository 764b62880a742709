//! The control plane's state lives in the schema: a paused queue stays paused for a store
//! opened again, and a resume by one store wakes a consumer waiting in another.

use queue_core::Storage;
use queue_postgres::testing::shared_options;
use queue_postgres::PostgresStorage;

use crate::{env, manual_clock, within, HOUR, LEASE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_outlives_the_store_and_a_resume_wakes_other_stores() {
    let options = shared_options("plane");
    let clock = manual_clock();
    {
        let store = PostgresStorage::open(options.clone()).await.unwrap();
        store
            .enqueue(vec![env(&clock, "emails", "t")])
            .await
            .unwrap();
        assert!(store.set_paused("emails", true).await.unwrap());
    }
    let store = PostgresStorage::open(options.clone()).await.unwrap();
    assert_eq!(
        store.paused_queues().await.unwrap(),
        vec!["emails".to_owned()]
    );
    assert!(store.fetch("emails", 10, LEASE).await.unwrap().is_empty());

    // A consumer in another store (another process, as far as it knows) waits on the queue.
    let other = PostgresStorage::open(options.poll_interval(HOUR))
        .await
        .unwrap();
    let waiter = tokio::spawn(async move {
        other.wait_for_work("emails", HOUR).await.unwrap();
        other
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        !waiter.is_finished(),
        "a paused queue's task ended the wait"
    );
    assert!(store.set_paused("emails", false).await.unwrap());
    let other = within("the resume did not wake the other store", waiter)
        .await
        .unwrap();
    assert_eq!(other.fetch("emails", 10, LEASE).await.unwrap().len(), 1);
}
