//! The control plane's state lives in the file: a paused queue stays paused for a store
//! opened again, and a worker's heartbeat is seen by another store on the same file.

use std::time::Duration;

use queue_core::{Heartbeat, Storage, WorkerInfo};
use queue_sqlite::SqliteStorage;

use crate::{env, open_manual};

#[tokio::test]
async fn a_paused_queue_stays_paused_when_the_store_is_opened_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plane.db");
    {
        let (store, _clock) = open_manual(&path).await;
        store.enqueue(vec![env("emails")]).await.unwrap();
        assert!(store.set_paused("emails", true).await.unwrap());
    }
    let (store, _clock) = open_manual(&path).await;
    assert_eq!(
        store.paused_queues().await.unwrap(),
        vec!["emails".to_owned()]
    );
    assert!(store
        .fetch("emails", 10, Duration::from_secs(30))
        .await
        .unwrap()
        .is_empty());
    assert!(store.set_paused("emails", false).await.unwrap());
    assert_eq!(
        store
            .fetch("emails", 10, Duration::from_secs(30))
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn another_store_on_the_file_sees_the_workers_and_the_pause() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("shared.db").display());
    let (a, b) = (
        SqliteStorage::connect(&url).await.unwrap(),
        SqliteStorage::connect(&url).await.unwrap(),
    );
    let worker = WorkerInfo::this_process(vec![("default".into(), 1)], 4, chrono::Utc::now());
    let beat = Heartbeat {
        worker: worker.clone(),
        running: Vec::new(),
        progress: Vec::new(),
        ttl: Duration::from_secs(60),
        throughput: vec![],
        periodic: vec![],
    };
    a.heartbeat(&beat).await.unwrap();
    let seen = b.workers().await.unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].info, worker);
    a.set_paused("default", true).await.unwrap();
    b.enqueue(vec![env("default")]).await.unwrap();
    assert!(b
        .fetch("default", 10, Duration::from_secs(30))
        .await
        .unwrap()
        .is_empty());
}
