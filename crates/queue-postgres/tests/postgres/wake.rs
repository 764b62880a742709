//! LISTEN/NOTIFY: a write by one store wakes the waits of another (through the server, not
//! process memory); waits poll while the listener is down, and it comes back after a restart.
//!
//! The waiting stores poll only once an hour, so a wait that ends within the deadline was
//! ended by a notification.

use std::sync::Arc;
use std::time::Duration;

use queue_core::{Completion, Outcome, Storage, StoredResult, SystemClock};
use queue_postgres::testing::{shared_options, shared_url, PostgresServer};
use queue_postgres::{PostgresOptions, PostgresStorage};

use crate::{env, within, HOUR, LEASE};

/// Two stores on one schema; the first never polls.
async fn pair(tag: &str) -> (PostgresStorage, PostgresStorage) {
    let options = shared_options(tag).clock(Arc::new(SystemClock));
    let a = PostgresStorage::open(options.clone().poll_interval(HOUR))
        .await
        .unwrap();
    let b = PostgresStorage::open(options).await.unwrap();
    assert!(a.is_listening());
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_by_another_store_wakes_a_waiting_one() {
    let (a, b) = pair("wake-work").await;
    let waiter = tokio::spawn(async move {
        a.wait_for_work("jobs", HOUR).await.unwrap();
        a
    });
    // Lets the waiter start waiting first. (If it has not yet, its first look finds the task.)
    tokio::time::sleep(Duration::from_millis(200)).await;
    b.enqueue(vec![env(&SystemClock, "jobs", "t")])
        .await
        .unwrap();
    let a = within("the enqueue did not wake the other store", waiter)
        .await
        .unwrap();
    assert_eq!(a.fetch("jobs", 10, LEASE).await.unwrap().len(), 1);
}

// One thread: the store is dropped before its notifier's task runs at all.
#[tokio::test]
async fn a_store_dropped_right_after_its_enqueue_still_wakes_a_waiting_one() {
    // A producer that enqueues and drops its store at once: the wake-up was handed to the
    // store's notifier, which stops with the store. Before it sent its last round, this ended
    // a wait only when the notifier happened to see the write before the stop (about one round
    // in two); eight rounds in a row all woken show the last round is sent.
    let options = shared_options("wake-dropped").clock(Arc::new(SystemClock));
    let a = Arc::new(
        PostgresStorage::open(options.clone().poll_interval(HOUR))
            .await
            .unwrap(),
    );
    assert!(a.is_listening());
    for round in 0..8 {
        let waiter = {
            let a = a.clone();
            tokio::spawn(async move { a.wait_for_work("jobs", HOUR).await.unwrap() })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let b = PostgresStorage::open(options.clone()).await.unwrap();
        b.enqueue(vec![env(&SystemClock, "jobs", "t")])
            .await
            .unwrap();
        drop(b);
        within(
            &format!("round {round}: the dropped store's enqueue did not wake the other"),
            waiter,
        )
        .await
        .unwrap();
        assert_eq!(a.fetch("jobs", 10, LEASE).await.unwrap().len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_for_another_queue_does_not_end_a_wait() {
    let (a, b) = pair("wake-other").await;
    let a = Arc::new(a);
    let waiter = {
        let a = a.clone();
        tokio::spawn(async move { a.wait_for_work("mine", HOUR).await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    b.enqueue(vec![env(&SystemClock, "theirs", "t")])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiter.is_finished(), "woken by another queue's work");
    b.enqueue(vec![env(&SystemClock, "mine", "t")])
        .await
        .unwrap();
    within("work for its own queue did not wake it", waiter)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_by_another_store_wakes_every_result_waiter() {
    let (a, b) = pair("wake-result").await;
    let a = Arc::new(a);
    let envelope = env(&SystemClock, "jobs", "t");
    let id = envelope.id;
    b.enqueue(vec![envelope]).await.unwrap();
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let a = a.clone();
            tokio::spawn(async move { a.wait_result(id, HOUR).await.unwrap() })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let d = b.fetch("jobs", 1, LEASE).await.unwrap().remove(0);
    let done = Completion::new(d.lease, Outcome::Success { result: vec![0xc0] }, None);
    b.complete(vec![done]).await.unwrap();
    for w in waiters {
        let got = within("the completion did not wake every waiter", w)
            .await
            .unwrap();
        assert_eq!(got, Some(StoredResult::Success(vec![0xc0])));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_listen_waits_poll() {
    let options = shared_options("wake-poll").clock(Arc::new(SystemClock));
    let a = PostgresStorage::open(
        options
            .clone()
            .listen(false)
            .poll_interval(Duration::from_millis(20)),
    )
    .await
    .unwrap();
    assert!(!a.is_listening());
    let b = PostgresStorage::open(options).await.unwrap();
    let waiter = tokio::spawn(async move { a.wait_for_work("jobs", HOUR).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(100)).await;
    b.enqueue(vec![env(&SystemClock, "jobs", "t")])
        .await
        .unwrap();
    within("a polling wait did not see the work", waiter)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_comes_back_after_a_server_crash() {
    let mut server = PostgresServer::start();
    let options = PostgresOptions::new(&server.url())
        .unwrap()
        .clock(Arc::new(SystemClock))
        .acquire_timeout(Duration::from_secs(5));
    let a = PostgresStorage::open(options.clone().poll_interval(HOUR))
        .await
        .unwrap();
    assert!(a.is_listening());
    server.crash();
    within("the store did not notice the lost listener", async {
        while a.is_listening() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    server.restart();
    within("the listener did not reconnect", async {
        while !a.is_listening() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // Notifications flow again: another store's enqueue wakes a wait of the first.
    let b = PostgresStorage::open(options).await.unwrap();
    let waiter = tokio::spawn(async move { a.wait_for_work("jobs", HOUR).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(200)).await;
    b.enqueue(vec![env(&SystemClock, "jobs", "t")])
        .await
        .unwrap();
    within(
        "the enqueue did not wake the store after the restart",
        waiter,
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_notify_only_queues_and_results_someone_waits_for() {
    let (a, b) = pair("wake-registered").await;
    let mut listener = sqlx::postgres::PgListener::connect_with(b.pool())
        .await
        .unwrap();
    listener
        .listen(&format!("skiff_{}", b.schema()))
        .await
        .unwrap();
    // Nobody waits: neither an enqueue nor a completion notifies anything.
    let envelope = env(&SystemClock, "idle", "t");
    let id = envelope.id;
    b.enqueue(vec![envelope]).await.unwrap();
    let d = b.fetch("idle", 1, LEASE).await.unwrap().remove(0);
    let done = Completion::new(d.lease, Outcome::Success { result: vec![0xc0] }, None);
    b.complete(vec![done]).await.unwrap();
    assert_eq!(
        b.get_result(id).await.unwrap(),
        Some(StoredResult::Success(vec![0xc0]))
    );
    // A wait on "busy" (registered by the other store, which announces the registration): its
    // work is notified, and it is the first wake-up sent at all.
    let a = Arc::new(a);
    let waiter = {
        let a = a.clone();
        tokio::spawn(async move { a.wait_for_work("busy", HOUR).await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    b.enqueue(vec![env(&SystemClock, "busy", "t")])
        .await
        .unwrap();
    let first = within(
        "no notification for a waited-on queue",
        next_wake(&mut listener),
    )
    .await;
    assert_eq!(first, "wbusy");
    within("the notified wait did not end", waiter)
        .await
        .unwrap();
    // A result waiter: the completion notifies its id.
    let d = b.fetch("busy", 1, LEASE).await.unwrap().remove(0);
    let id = d.envelope.id;
    let result_waiter = {
        let a = a.clone();
        tokio::spawn(async move { a.wait_result(id, HOUR).await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let done = Completion::new(d.lease, Outcome::Success { result: vec![0xc0] }, None);
    b.complete(vec![done]).await.unwrap();
    let next = within(
        "no notification for a waited-on result",
        next_wake(&mut listener),
    )
    .await;
    assert_eq!(next, format!("r{id}"));
    within("the result waiter was not woken", result_waiter)
        .await
        .unwrap();
}

/// The next wake-up on `listener`'s channel, past the announcements of registrations.
async fn next_wake(listener: &mut sqlx::postgres::PgListener) -> String {
    loop {
        let n = listener.recv().await.unwrap();
        if !n.payload().starts_with('a') {
            return n.payload().to_owned();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_announced_after_a_skipped_write_is_notified() {
    let (_a, b) = pair("wake-late").await;
    let channel = format!("skiff_{}", b.schema());
    let mut listener = sqlx::postgres::PgListener::connect_with(b.pool())
        .await
        .unwrap();
    listener.listen(&channel).await.unwrap();
    // Nobody waits on "late": the write is not read for.
    b.enqueue(vec![env(&SystemClock, "late", "t")])
        .await
        .unwrap();
    // A wait of another store registered before that write committed, but its announcement
    // reaches the writer only now (written here by hand, as that store's statement would).
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {}.work_waits (queue, until) VALUES ('late', now() + interval '1 minute')",
        b.schema()
    )))
    .execute(b.pool())
    .await
    .unwrap();
    sqlx::query("SELECT pg_notify($1, 'aelsewhere:60000:late')")
        .bind(&channel)
        .execute(b.pool())
        .await
        .unwrap();
    let woken = within(
        "the writer did not notify the queue it had skipped",
        next_wake(&mut listener),
    )
    .await;
    assert_eq!(woken, "wlate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_made_registrations_and_announcements_do_not_stop_the_listener() {
    let (a, b) = pair("wake-garbage").await;
    let channel = format!("skiff_{}", b.schema());
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {}.work_waits (queue, until) VALUES ('odd', 'infinity')",
        b.schema()
    )))
    .execute(b.pool())
    .await
    .unwrap();
    for payload in [
        "a",
        "aonly-a-store",
        "astore:soon:q",
        "astore:99999999999999999999999:q",
        "astore:18446744073709551615:odd",
    ] {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&channel)
            .bind(payload)
            .execute(b.pool())
            .await
            .unwrap();
    }
    // A store opened now reads the hand-made registration and listens.
    let options = PostgresOptions::new(&shared_url())
        .unwrap()
        .schema(b.schema())
        .unwrap()
        .clock(Arc::new(SystemClock));
    let c = PostgresStorage::open(options).await.unwrap();
    assert!(c.is_listening());
    // The stores that heard the garbage still wake on notifications.
    let waiter = tokio::spawn(async move { a.wait_for_work("jobs", HOUR).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(200)).await;
    c.enqueue(vec![env(&SystemClock, "jobs", "t")])
        .await
        .unwrap();
    within("a store stopped listening after garbage", waiter)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_waiter_woken_before_its_task_ran_again_is_woken_by_the_new_run() {
    let (a, b) = pair("wake-rerun").await;
    let a = Arc::new(a);
    let envelope = env(&SystemClock, "jobs", "t");
    let id = envelope.id;
    b.enqueue(vec![envelope.clone()]).await.unwrap();
    let waiter = {
        let a = a.clone();
        tokio::spawn(async move { a.wait_result(id, HOUR).await.unwrap() })
    };
    let registration = format!(
        "SELECT 1 FROM \"{}\".result_waits WHERE id = $1",
        b.schema()
    );
    within("the waiter did not register", async {
        loop {
            let found: Option<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(registration.clone()))
                .bind(id.as_uuid())
                .fetch_optional(b.pool())
                .await
                .unwrap();
            if found.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    // The first run ends, and the same envelope is enqueued again before the waiter reads:
    // the writer's wake-up (held back here by a lock on the registration until the new run is
    // pending) wakes the waiter, which finds no result of the run now pending.
    let mut hold = b.pool().begin().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("{registration} FOR UPDATE")))
        .bind(id.as_uuid())
        .fetch_all(&mut *hold)
        .await
        .unwrap();
    let d = b.fetch("jobs", 1, LEASE).await.unwrap().remove(0);
    let first = Completion::new(d.lease, Outcome::Success { result: vec![0x01] }, None);
    b.complete(vec![first]).await.unwrap();
    b.enqueue(vec![envelope]).await.unwrap();
    hold.commit().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "the first run's result was read");
    // The new run ends: its result reaches the waiter.
    let d = b.fetch("jobs", 1, LEASE).await.unwrap().remove(0);
    let second = Completion::new(d.lease, Outcome::Success { result: vec![0x02] }, None);
    b.complete(vec![second]).await.unwrap();
    let got = within("the new run's result did not wake the waiter", waiter)
        .await
        .unwrap();
    assert_eq!(got, Some(StoredResult::Success(vec![0x02])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_of_any_length_registers_for_a_day_at_most() {
    // Other stores keep a registration they heard for a year at most: a wait must announce
    // itself again within that, even when its consumer polls with `Duration::MAX`.
    let (a, b) = pair("wake-forever").await;
    let waiter = tokio::spawn(async move { a.wait_for_work("forever", Duration::MAX).await });
    let left = format!(
        "SELECT EXTRACT(EPOCH FROM until - now())::float8 FROM \"{}\".work_waits WHERE queue = 'forever'",
        b.schema()
    );
    let secs: f64 = within("the wait did not register", async {
        loop {
            let found: Option<f64> = sqlx::query_scalar(sqlx::AssertSqlSafe(left.clone()))
                .fetch_optional(b.pool())
                .await
                .unwrap();
            if let Some(secs) = found {
                break secs;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        secs <= (24 * 3600 + 60) as f64,
        "registered for {secs} s, beyond a day"
    );
    waiter.abort();
}
