//! The dashboard in a real browser: headless Chromium driven over WebDriver (Debian's
//! `chromium` and `chromium-driver`, which `.ci/run` installs). Loads every page, watches the
//! overview update itself, requeues a dead task and sees it leave the list, pauses a queue and
//! sees its state, cancels a running task; and takes the README's screenshot
//! (`target/dashboard.png`; copied to `docs/dashboard.png` when `SKIFF_UPDATE_SCREENSHOT=1`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use skiff::prelude::*;
use skiff::{to_msgpack, Completion, Envelope, FailureKind, Outcome, StoredResult, TaskFailure};

#[path = "support/webdriver.rs"]
mod webdriver;

use webdriver::Browser;

#[skiff::task]
async fn send_email(to: String) -> Result<usize, TaskError> {
    Ok(to.len())
}

#[skiff::task]
async fn charge_card(amount: u64) -> Result<(), TaskError> {
    Err(TaskError::fatal(format!("card declined for {amount}")))
}

/// Runs until it is canceled.
#[skiff::task]
async fn build_report(name: String) -> Result<String, TaskError> {
    tokio::time::sleep(Duration::from_secs(600)).await;
    Ok(name)
}

/// Dead-letters a task of `queue` (which no consumer reads) straight through the store.
async fn dead_letter(queue: &Queue, name: &str, task: &str, message: &str) -> skiff::TaskId {
    let env = Envelope::new(name, task, to_msgpack(&"x").unwrap(), chrono::Utc::now());
    let id = env.id;
    queue.enqueue_envelope(env).await.unwrap();
    let storage = queue.storage();
    let delivery = storage
        .fetch(name, 1, Duration::from_secs(60))
        .await
        .unwrap()
        .pop()
        .unwrap();
    let failure = TaskFailure::new(FailureKind::Error, message, 3);
    storage
        .complete(vec![Completion::new(
            delivery.lease,
            Outcome::Dead { failure },
            None,
        )])
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn operate_the_queues_from_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let queue = skiff::connect(&format!("sqlite://{}", dir.path().join("b.db").display()))
        .await
        .unwrap();
    let consumer = Consumer::builder(queue.clone())
        .workers(4)
        .poll_interval(Duration::from_millis(50))
        .register(send_email)
        .register(charge_card)
        .register(build_report)
        .heartbeat_interval(Duration::from_millis(200))
        .build()
        .unwrap()
        .spawn();
    let app = axum::Router::new().nest("/dashboard", skiff::dashboard::router(queue.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let site = format!("http://{}/dashboard", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    // Some history for the chart, a few dead letters, a scheduled task.
    for i in 0..40 {
        send_email(format!("user{i}@example.com"))
            .enqueue(&queue)
            .await
            .unwrap();
    }
    for amount in [5, 7] {
        charge_card(amount).enqueue(&queue).await.unwrap();
    }
    let dead = dead_letter(&queue, "invoices", "render_invoice", "template missing").await;
    let kept = dead_letter(&queue, "invoices", "render_invoice", "font missing").await;
    send_email("later@example.com".into())
        .delay(Duration::from_secs(3600))
        .enqueue(&queue)
        .await
        .unwrap();

    let browser = Browser::start().await;

    // Every page loads and says what it is.
    browser.goto(&site).await;
    browser
        .wait_text(true, "processed tasks on the overview", |t| {
            t.contains("default") && t.contains("invoices") && !t.contains("\n0 processed")
        })
        .await;
    for (path, heading) in [
        ("queues/default", "Queue default"),
        ("queues/default?state=scheduled", "Queue default"),
        ("scheduled", "Scheduled"),
        ("dead", "Dead letters"),
        ("periodic", "Periodic tasks"),
        ("workers", "Workers"),
        (&format!("tasks/{dead}"), &format!("Task {dead}")),
    ] {
        browser.goto(&format!("{site}/{path}")).await;
        let h1 = browser.find("h1").await;
        assert_eq!(browser.text(&h1).await, heading, "{path}");
    }
    browser.goto(&format!("{site}/scheduled")).await;
    assert!(browser.body_text().await.contains("send_email"));

    // The overview updates itself: a new queue appears without a reload.
    browser.goto(&site).await;
    let env = Envelope::new(
        "webhooks",
        "deliver",
        to_msgpack(&()).unwrap(),
        chrono::Utc::now(),
    );
    queue.enqueue_envelope(env).await.unwrap();
    browser
        .wait_text(false, "the live overview to show a new queue", |t| {
            t.contains("webhooks")
        })
        .await;

    // Requeue one dead task: it leaves the list.
    browser.goto(&format!("{site}/dead?queue=invoices")).await;
    let row = format!(r#"tr[data-id="{dead}"] input[name="id"]"#);
    browser.click(&browser.find(&row).await).await;
    let requeue = browser
        .find(r#"#dead-form button[value="selected"]:not([formaction])"#)
        .await;
    browser.click(&requeue).await;
    let text = browser
        .wait_text(false, "the requeue notice", |t| {
            t.contains("Requeued 1 dead task")
        })
        .await;
    assert!(
        !text.contains("template missing"),
        "the requeued task is still listed"
    );
    assert!(
        text.contains("font missing"),
        "the other dead task is gone too"
    );
    assert!(browser.find_all(&row).await.is_empty());
    assert!(queue.storage().get_dead(dead).await.unwrap().is_none());
    assert!(queue.storage().get_dead(kept).await.unwrap().is_some());

    // Pause a queue: its row says so.
    browser.goto(&site).await;
    browser
        .click_on(r#"tr[data-queue="invoices"] form[action$="/pause"] button"#)
        .await;
    browser
        .wait_text(false, "the pause notice", |t| {
            t.contains("Paused queue invoices")
        })
        .await;
    let state = browser
        .text_of(r#"tr[data-queue="invoices"] td.state"#)
        .await;
    assert_eq!(state, "paused");
    assert_eq!(
        queue.paused_queues().await.unwrap(),
        vec!["invoices".to_owned()]
    );

    // The screenshot for the README: the overview with history, a paused queue, dead letters.
    let png = browser.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("dashboard.png"), &png).unwrap();
    if std::env::var_os("SKIFF_UPDATE_SCREENSHOT").is_some() {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::write(docs.join("dashboard.png"), &png).unwrap();
    }

    // Cancel a running task from the workers page.
    let report = build_report("q4".into()).enqueue(&queue).await.unwrap();
    let id = report.id();
    browser.goto(&format!("{site}/workers")).await;
    browser
        .wait_text(true, "the running task on the workers page", |t| {
            t.contains("build_report")
        })
        .await;
    let cancel = browser
        .find(&format!(r#"form[action="tasks/{id}/cancel"] button"#))
        .await;
    browser.click(&cancel).await;
    browser.accept_dialog().await;
    browser
        .wait_text(false, "the cancel notice", |t| {
            t.contains("Cancel requested")
        })
        .await;
    let result = queue
        .storage()
        .wait_result(id, Duration::from_secs(20))
        .await
        .unwrap();
    match result {
        Some(StoredResult::Failure(f)) => assert_eq!(f.kind, FailureKind::Canceled),
        other => panic!("the canceled task ended as {other:?}"),
    }
    browser.goto(&format!("{site}/tasks/{id}")).await;
    browser
        .wait_text(true, "the task page to show the cancellation", |t| {
            t.contains("canceled")
        })
        .await;

    browser.quit().await;
    consumer.shutdown(Duration::from_secs(10)).await.unwrap();
}
