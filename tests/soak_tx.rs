//! The soak harness's application transactions (`enqueue --rollback`, `orders`) on the stores
//! that share a transaction with the application (SQLite, PostgreSQL): each committed order's
//! task runs, a rolled-back order's never does, with a worker killed mid-run; on Redis the
//! options are refused with exit status 2.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::time::Duration;

use support::soak;

/// 300 tasks in committed transactions and 100 in rolled-back ones, on queue `orders`, while a
/// worker of that queue runs and is killed with `kill -9`; a second worker drains the queue.
fn rollback_scenario(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record.txt");
    let rec = record.to_str().unwrap();
    let args = [
        "--queues",
        "orders",
        "--concurrency",
        "8",
        "--record",
        rec,
        "--lease-ms",
        "2000",
    ];
    let first = soak::spawn_worker(url, &args);
    let out = soak::run(
        url,
        &[
            "enqueue",
            "--count",
            "300",
            "--rollback",
            "100",
            "--queue",
            "orders",
            "--sleep-ms",
            "5",
        ],
    );
    assert!(
        out.contains("\"enqueued\":300") && out.contains("\"rolled_back\":100"),
        "{out}"
    );
    soak::kill9(first);
    let mut last = args.to_vec();
    last.extend(["--exit-when-idle-ms", "1500"]);
    soak::wait_success(soak::spawn_worker(url, &last), Duration::from_secs(300));

    soak::assert_all_done(&record, 0..300);
    let done = soak::done_counts(&record);
    let ran_rolled_back: Vec<_> = done.keys().filter(|n| **n >= 300).collect();
    assert!(
        ran_rolled_back.is_empty(),
        "tasks of rolled-back transactions ran: {ran_rolled_back:?}"
    );
    let orders: serde_json::Value = serde_json::from_str(&soak::run(url, &["orders"])).unwrap();
    assert_eq!(orders["orders"], 300, "{orders}");
    assert_eq!(orders["distinct"], 300, "{orders}");
    let stats: serde_json::Value =
        serde_json::from_str(&soak::run(url, &["stats", "--queue", "orders"])).unwrap();
    for key in ["ready", "scheduled", "leased", "dead"] {
        assert_eq!(stats[key], 0, "{key}: {stats}");
    }
}

#[test]
fn sqlite_rolled_back_orders_never_run() {
    let dir = tempfile::tempdir().unwrap();
    rollback_scenario(&format!(
        "sqlite://{}",
        dir.path().join("orders.db").display()
    ));
}

#[test]
fn postgres_rolled_back_orders_never_run() {
    let url = queue_postgres::testing::shared_url();
    let sep = if url.contains('?') { '&' } else { '?' };
    let schema = queue_postgres::testing::unique_schema("soak-orders");
    rollback_scenario(&format!("{url}{sep}schema={schema}"));
}

#[test]
fn redis_refuses_application_transactions_with_status_2() {
    let server = queue_redis::testing::RedisServer::start();
    for args in [
        &["enqueue", "--count", "1", "--rollback", "1"][..],
        &["orders"][..],
    ] {
        let out = Command::new(soak::soak_binary())
            .arg(server.url())
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("not supported on the redis store") && stderr.lines().count() == 1,
            "{args:?}: {stderr}"
        );
    }
    // Nothing was stored.
    let stats = soak::stats(&server.url());
    assert_eq!(stats["ready"], 0, "{stats}");
}
