//! Delays, etas, rescheduling and unique keys through a running consumer.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use queue_core::{Task as _, TaskOptions};

use crate::common::{builder, queue, WAIT};

task!(Stamp, "stamp", () -> i64, TaskOptions::new(), |ctx| {
    Ok(Utc::now().timestamp_millis())
});

#[tokio::test(flavor = "multi_thread")]
async fn delayed_tasks_run_no_earlier_than_their_eta() {
    let q = queue();
    let running = builder(&q)
        .register_task::<Stamp>()
        .build()
        .unwrap()
        .spawn();
    let eta = Utc::now() + TimeDelta::milliseconds(300);
    let at_eta = Stamp::call(()).eta(eta).enqueue(&q).await.unwrap();
    let before = Utc::now();
    let delayed = Stamp::call(())
        .delay(Duration::from_millis(250))
        .enqueue(&q)
        .await
        .unwrap();
    let now = Stamp::call(()).enqueue(&q).await.unwrap();

    let started = at_eta.get(WAIT).await.unwrap();
    assert!(
        started >= eta.timestamp_millis(),
        "ran {}ms early",
        eta.timestamp_millis() - started
    );
    let started = delayed.get(WAIT).await.unwrap();
    assert!(started >= (before + TimeDelta::milliseconds(250)).timestamp_millis());
    assert!(now.get(WAIT).await.is_ok());
    running.shutdown(WAIT).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn rescheduled_tasks_run_at_their_new_eta() {
    let q = queue();
    let sooner = Stamp::call(())
        .delay(Duration::from_secs(3600))
        .enqueue(&q)
        .await
        .unwrap();
    let later = Stamp::call(()).enqueue(&q).await.unwrap();
    let new_eta = Utc::now() + TimeDelta::milliseconds(200);
    assert!(sooner.reschedule(new_eta).await.unwrap());
    // Read before the call: the call's own "now" is no earlier, however slow the machine.
    let pushed_at = Utc::now();
    assert!(later
        .reschedule_in(Duration::from_millis(300))
        .await
        .unwrap());

    let running = builder(&q)
        .register_task::<Stamp>()
        .build()
        .unwrap()
        .spawn();
    assert!(sooner.get(WAIT).await.unwrap() >= new_eta.timestamp_millis());
    let ran = later.get(WAIT).await.unwrap();
    assert!(ran >= (pushed_at + TimeDelta::milliseconds(300)).timestamp_millis());
    running.shutdown(WAIT).await.unwrap();
}

task!(Slowly, "slowly", (n: u32) -> u32, TaskOptions::new(), |ctx| {
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(n)
});

#[tokio::test(flavor = "multi_thread")]
async fn a_unique_key_enqueues_once_and_both_handles_get_the_result() {
    let q = queue();
    let first = Slowly::call((1,))
        .unique_key("report:42")
        .enqueue(&q)
        .await
        .unwrap();
    let second = Slowly::call((2,))
        .unique_key("report:42")
        .enqueue(&q)
        .await
        .unwrap();
    assert_eq!(first.id(), second.id(), "the second enqueue is a no-op");
    assert_eq!(q.counts().await.unwrap().ready, 1);

    let running = builder(&q)
        .register_task::<Slowly>()
        .build()
        .unwrap()
        .spawn();
    assert_eq!(
        second.get(WAIT).await.unwrap(),
        1,
        "the first task's result"
    );
    assert_eq!(first.get(WAIT).await.unwrap(), 1);

    // Once it finished, the key is free again.
    let third = Slowly::call((3,))
        .unique_key("report:42")
        .enqueue(&q)
        .await
        .unwrap();
    assert_ne!(third.id(), first.id());
    assert_eq!(third.get(WAIT).await.unwrap(), 3);
    running.shutdown(WAIT).await.unwrap();
}
