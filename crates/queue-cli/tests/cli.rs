//! Runs the `skiff` binary against real stores: a SQLite file, a private `redis-server` and a
//! schema of the PostgreSQL test server.
//!
//! Each store is seeded through `skiff::Queue` / `Storage` (one dead task, one result, one
//! leased task, three ready and one scheduled), then every command is checked in both the
//! human and the `--json` form.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{json, Value};
use skiff::{
    to_msgpack, Completion, Envelope, FailureKind, Outcome, Queue, TaskFailure, TaskId,
    DEFAULT_QUEUE,
};

/// What [`seed`] stored.
struct Seeded {
    dead: TaskId,
    done: TaskId,
    leased: TaskId,
    ready: Vec<TaskId>,
    scheduled: TaskId,
}

fn envelope(task: &str, args: &impl serde::Serialize) -> Envelope {
    Envelope::new(
        DEFAULT_QUEUE,
        task,
        to_msgpack(args).unwrap(),
        chrono::Utc::now(),
    )
}

/// Enqueues and moves tasks into every state, the way a producer and a worker would.
async fn seed(queue: &Queue) -> Seeded {
    let storage = queue.storage().clone();
    let lease = Duration::from_secs(300);

    // One task fails for good: dead-lettered, its failure kept as its result.
    let dead = queue
        .enqueue_envelope(envelope("charge_card", &(4200u32, "EUR")))
        .await
        .unwrap()
        .id();
    let got = storage.fetch(DEFAULT_QUEUE, 1, lease).await.unwrap();
    assert_eq!(got[0].envelope.id, dead);
    let failure = TaskFailure::new(FailureKind::Error, "card declined", 3);
    storage
        .complete(vec![Completion::new(
            got[0].lease,
            Outcome::Dead { failure },
            None,
        )])
        .await
        .unwrap();

    // One succeeds with a result.
    let done = queue
        .enqueue_envelope(envelope("add", &(2i64, 3i64)))
        .await
        .unwrap()
        .id();
    let got = storage.fetch(DEFAULT_QUEUE, 1, lease).await.unwrap();
    assert_eq!(got[0].envelope.id, done);
    storage
        .complete(vec![Completion::new(
            got[0].lease,
            Outcome::Success {
                result: to_msgpack(&json!({"sum": 5})).unwrap(),
            },
            None,
        )])
        .await
        .unwrap();

    // One is held by a worker.
    let leased = queue
        .enqueue_envelope(envelope("resize_image", &("cat.png", 128u32)))
        .await
        .unwrap()
        .id();
    let got = storage.fetch(DEFAULT_QUEUE, 1, lease).await.unwrap();
    assert_eq!(got[0].envelope.id, leased);

    let mut ready = Vec::new();
    for name in ["ada", "bob", "cy"] {
        let env = envelope("send_email", &(format!("{name}@example.com"), "Welcome"));
        ready.push(queue.enqueue_envelope(env).await.unwrap().id());
    }
    let mut later = envelope("send_email", &("dee@example.com", "Reminder"));
    later.eta = Some(chrono::Utc::now() + chrono::Duration::hours(1));
    let scheduled = queue.enqueue_envelope(later).await.unwrap().id();
    Seeded {
        dead,
        done,
        leased,
        ready,
        scheduled,
    }
}

/// Runs `skiff --url URL ARGS…` with no `SKIFF_URL` from the environment.
fn skiff(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_skiff"))
        .env_remove("SKIFF_URL")
        .arg("--url")
        .arg(url)
        .args(args)
        .output()
        .expect("run the skiff binary")
}

/// Runs a command that must succeed; returns stdout.
fn ok(url: &str, args: &[&str]) -> String {
    let out = skiff(url, args);
    assert!(
        out.status.success(),
        "skiff {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a `--json` command that must succeed; returns the one JSON document it printed.
fn ok_json(url: &str, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let text = ok(url, &all);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not one JSON document ({e}):\n{text}"))
}

/// Runs a command that must be refused for want of `--yes` (stdin is not a terminal): exit
/// code 2, one line on stderr; returns it.
fn refused(url: &str, args: &[&str]) -> String {
    let out = skiff(url, args);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "skiff {args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout when refused");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    assert!(stderr.contains("nothing changed"), "{stderr}");
    stderr
}

/// Runs a command that must fail with exit code 1 and exactly one line on stderr; returns it.
fn fails(url: &str, args: &[&str]) -> String {
    let out = skiff(url, args);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "skiff {args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout on error");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    assert!(stderr.starts_with("skiff: error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

/// The table row whose first column is `first`, split on whitespace.
fn row<'a>(table: &'a str, first: &str) -> Vec<&'a str> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&first))
        .unwrap_or_else(|| panic!("no row `{first}` in\n{table}"))
}

const TASK_KEYS: [&str; 11] = [
    "args",
    "attempt",
    "deliveries",
    "error",
    "id",
    "lease_expires_at",
    "priority",
    "queue",
    "run_at",
    "state",
    "task",
];

/// Every command against a seeded store at `url`.
async fn check_every_command(url: &str) {
    let queue = skiff::connect(url).await.unwrap();
    let s = seed(&queue).await;

    // ----- stats
    let stats = ok_json(url, &["stats"]);
    assert_eq!(
        stats,
        json!({"ready": 3, "scheduled": 1, "leased": 1, "dead": 1, "results": 2})
    );
    let human = ok(url, &["stats"]);
    assert_eq!(row(&human, "STATE"), ["STATE", "TASKS"]);
    assert_eq!(row(&human, "ready"), ["ready", "3"]);
    assert_eq!(row(&human, "dead"), ["dead", "1"]);
    assert_eq!(row(&human, "results"), ["results", "2"]);
    let other = ok_json(url, &["stats", "--queue", "nope"]);
    assert_eq!(
        keys(&other),
        ["dead", "leased", "ready", "results", "scheduled"]
    );
    assert_eq!(other["ready"], 0);
    assert_eq!(other["dead"], 0);

    // ----- queues
    let queues = ok_json(url, &["queues"]);
    assert_eq!(queues[0]["queue"], "default");
    assert_eq!(queues[0]["ready"], 3);

    // ----- pending (paged), scheduled, leased
    let pending = ok_json(url, &["pending"]);
    let pending = pending.as_array().unwrap();
    assert_eq!(pending.len(), 3);
    for (entry, id) in pending.iter().zip(&s.ready) {
        assert_eq!(keys(entry), TASK_KEYS);
        assert_eq!(entry["id"], id.to_string());
        assert_eq!(entry["task"], "send_email");
        assert_eq!(entry["state"], "ready");
        assert_eq!(entry["queue"], "default");
        assert_eq!(entry["error"], Value::Null);
        assert_eq!(entry["lease_expires_at"], Value::Null);
    }
    assert_eq!(pending[0]["args"], json!(["ada@example.com", "Welcome"]));
    let page = ok_json(url, &["pending", "--limit", "2", "--offset", "1"]);
    let ids: Vec<&str> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [s.ready[1].to_string(), s.ready[2].to_string()]);
    assert_eq!(ok_json(url, &["pending", "--queue", "other"]), json!([]));
    let human = ok(url, &["pending", "--limit", "2"]);
    assert_eq!(
        row(&human, "ID"),
        ["ID", "QUEUE", "TASK", "PRIORITY", "ATTEMPT", "RUN", "AT", "ARGS"]
    );
    let first = row(&human, &s.ready[0].to_string());
    assert_eq!(&first[1..5], ["default", "send_email", "0", "0"]);
    assert_eq!(first[6], r#"["ada@example.com","Welcome"]"#);
    assert!(human.contains("next page: --offset 2"), "{human}");
    assert_eq!(
        ok(url, &["pending", "--queue", "other"]).trim(),
        "no ready tasks"
    );

    let scheduled = ok_json(url, &["scheduled"]);
    assert_eq!(scheduled[0]["id"], s.scheduled.to_string());
    assert_eq!(scheduled[0]["args"], json!(["dee@example.com", "Reminder"]));
    assert_eq!(scheduled[0]["state"], "scheduled");
    let leased = ok_json(url, &["leased"]);
    assert_eq!(leased.as_array().unwrap().len(), 1);
    assert_eq!(leased[0]["id"], s.leased.to_string());
    assert_eq!(leased[0]["deliveries"], 1);
    assert!(leased[0]["lease_expires_at"].is_string());
    let human = ok(url, &["leased"]);
    assert!(row(&human, "ID").contains(&"EXPIRES"), "{human}");
    assert!(human.contains("resize_image"), "{human}");

    // ----- dead list / show
    let dead = ok_json(url, &["dead", "list"]);
    let dead = dead.as_array().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        keys(&dead[0]),
        [
            "args",
            "attempts",
            "error",
            "failed_at",
            "id",
            "kind",
            "queue",
            "task"
        ]
    );
    assert_eq!(dead[0]["id"], s.dead.to_string());
    assert_eq!(dead[0]["task"], "charge_card");
    assert_eq!(dead[0]["error"], "card declined");
    assert_eq!(dead[0]["kind"], "error");
    assert_eq!(dead[0]["attempts"], 3);
    assert_eq!(dead[0]["args"], json!([4200, "EUR"]));
    let failed_at = dead[0]["failed_at"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(failed_at).is_ok(),
        "{failed_at}"
    );
    let human = ok(url, &["dead", "list"]);
    assert_eq!(
        row(&human, "ID"),
        ["ID", "QUEUE", "TASK", "KIND", "ATTEMPTS", "FAILED", "AT", "ERROR"]
    );
    let line = row(&human, &s.dead.to_string());
    assert_eq!(&line[1..5], ["default", "charge_card", "error", "3"]);
    assert_eq!(&line[6..], ["card", "declined"]);

    let show = ok_json(url, &["dead", "show", &s.dead.to_string()]);
    assert_eq!(show["envelope"]["task"], "charge_card");
    assert_eq!(show["envelope"]["args"], json!([4200, "EUR"]));
    assert_eq!(show["error"], "card declined");
    let human = ok(url, &["dead", "show", &s.dead.to_string()]);
    assert_eq!(row(&human, "args")[1], "[4200,\"EUR\"]");

    // ----- result
    let done = ok_json(url, &["result", &s.done.to_string()]);
    assert_eq!(
        done,
        json!({"id": s.done.to_string(), "status": "success", "state": null,
               "result": {"sum": 5}, "failure": null})
    );
    assert_eq!(
        row(&ok(url, &["result", &s.done.to_string()]), "result"),
        ["result", "{\"sum\":5}"]
    );
    let failed = ok_json(url, &["result", &s.dead.to_string()]);
    assert_eq!(failed["status"], "failure");
    assert_eq!(
        failed["failure"],
        json!({"kind": "error", "message": "card declined", "attempts": 3})
    );
    let pending_result = ok_json(url, &["result", &s.ready[0].to_string()]);
    assert_eq!(pending_result["status"], "pending");
    assert_eq!(pending_result["state"], "ready");
    assert_eq!(pending_result["result"], Value::Null);

    // ----- revoke / restore
    let target = s.ready[2].to_string();
    assert_eq!(
        ok_json(url, &["revoke", &target]),
        json!({"revoked": target})
    );
    assert!(
        queue
            .storage()
            .check_revoked(&[(s.ready[2], "send_email")])
            .await
            .unwrap()[0]
    );
    assert!(ok(url, &["restore", &target]).contains("restored task"));
    assert!(
        !queue
            .storage()
            .check_revoked(&[(s.ready[2], "send_email")])
            .await
            .unwrap()[0]
    );
    assert!(fails(url, &["restore", &target]).contains("is not revoked"));
    let unknown = TaskId::new().to_string();
    assert!(fails(url, &["revoke", &unknown]).contains("--force"));
    assert_eq!(
        ok_json(url, &["revoke", &unknown, "--force"])["revoked"],
        unknown
    );
    assert!(fails(url, &["revoke", &s.done.to_string()]).contains("finished already"));

    // ----- unknown and malformed ids
    assert!(fails(url, &["dead", "show", &unknown]).contains("no dead task"));
    assert!(fails(url, &["dead", "requeue", &unknown]).contains("no dead task"));
    assert!(fails(url, &["dead", "discard", &unknown, "--yes"]).contains("no dead task"));
    assert!(fails(url, &["result", &unknown]).contains("no task or result"));
    assert!(fails(url, &["result", "not-an-id"]).contains("is not a task id"));

    // ----- dead requeue by id, --all, purge
    let requeued = ok_json(url, &["dead", "requeue", &s.dead.to_string()]);
    assert_eq!(
        requeued,
        json!({"requeued": 1, "ids": [s.dead.to_string()]})
    );
    let stats = ok_json(url, &["stats"]);
    assert_eq!(
        (stats["dead"].as_u64(), stats["ready"].as_u64()),
        (Some(0), Some(4))
    );
    assert_eq!(
        ok_json(url, &["dead", "requeue", "--all", "--yes"]),
        json!({"requeued": 0})
    );
    assert_eq!(ok(url, &["dead", "list"]).trim(), "no dead tasks");
    assert_eq!(ok_json(url, &["dead", "list"]), json!([]));
    assert_eq!(
        ok_json(url, &["dead", "purge", "--yes"]),
        json!({"purged": 0})
    );

    // ----- control plane: pause, resume, workers, task, cancel, purge
    assert_eq!(ok_json(url, &["queues"])[0]["paused"], false);
    assert_eq!(
        ok_json(url, &["pause", "default"]),
        json!({"queue": "default", "paused": true, "changed": true})
    );
    assert_eq!(ok_json(url, &["pause", "default"])["changed"], false);
    assert_eq!(ok_json(url, &["queues"])[0]["paused"], true);
    assert_eq!(row(&ok(url, &["queues"]), "default")[1], "paused");
    assert_eq!(ok_json(url, &["resume", "default"])["changed"], true);
    assert_eq!(ok_json(url, &["queues"])[0]["paused"], false);

    assert_eq!(ok(url, &["workers"]).trim(), "no live workers");
    let worker =
        skiff::WorkerInfo::this_process(vec![("default".into(), 1)], 8, chrono::Utc::now());
    let beat = skiff::Heartbeat {
        worker: worker.clone(),
        running: vec![skiff::RunningTask {
            id: s.leased,
            task: "resize_image".into(),
            queue: "default".into(),
            since: chrono::Utc::now(),
        }],
        progress: Vec::new(),
        ttl: Duration::from_secs(300),
        throughput: vec![skiff::MinuteCount {
            queue: "default".into(),
            minute: chrono::Utc::now(),
            processed: 12,
            failed: 3,
        }],
        periodic: vec![skiff::PeriodicStatus {
            task: "nightly_report".into(),
            queue: "default".into(),
            schedule: "0 0 3 * * *".into(),
            next: Some(chrono::Utc::now()),
            last: None,
        }],
    };
    queue.storage().heartbeat(&beat).await.unwrap();
    let workers = ok_json(url, &["workers"]);
    assert_eq!(workers[0]["pid"], std::process::id());
    assert_eq!(workers[0]["id"], worker.id);
    assert_eq!(workers[0]["running"][0]["id"], s.leased.to_string());
    assert_eq!(workers[0]["last_hour"]["processed"], 12);
    assert_eq!(workers[0]["last_hour"]["failed"], 3);
    assert_eq!(workers[0]["throughput"][0]["queue"], "default");
    assert_eq!(workers[0]["periodic"][0]["task"], "nightly_report");
    assert_eq!(workers[0]["periodic"][0]["last"], Value::Null);
    let human = ok(url, &["workers"]);
    assert!(
        human.contains("resize_image") && human.contains("12/3"),
        "{human}"
    );

    let task = ok_json(url, &["task", &s.leased.to_string()]);
    assert_eq!(task["state"], "leased");
    assert_eq!(task["task"], "resize_image");
    assert_eq!(task["worker"]["pid"], std::process::id());
    assert_eq!(task["progress"], Value::Null);
    let finished = ok_json(url, &["task", &s.done.to_string()]);
    assert_eq!(finished["state"], "finished");
    assert_eq!(finished["result"]["status"], "success");
    assert!(fails(url, &["task", &TaskId::new().to_string()]).contains("no task with id"));

    assert_eq!(
        ok_json(url, &["cancel", &s.leased.to_string()]),
        json!({"canceled": s.leased.to_string(), "state": "running"})
    );
    assert_eq!(
        ok_json(url, &["cancel", &s.ready[0].to_string()])["state"],
        "pending"
    );
    assert!(
        fails(url, &["cancel", &TaskId::new().to_string()]).contains("no pending or running task")
    );
    let canceled = queue.storage().heartbeat(&beat).await.unwrap();
    assert_eq!(canceled, vec![s.leased], "the worker learns of the cancel");

    let before = ok_json(url, &["stats"]);
    let waiting = before["ready"].as_u64().unwrap() + before["scheduled"].as_u64().unwrap();
    assert!(refused(url, &["purge", "default"]).contains("without --yes"));
    assert_eq!(
        ok_json(url, &["stats"]),
        before,
        "nothing purged without --yes"
    );
    assert_eq!(
        ok_json(url, &["purge", "default", "--yes"]),
        json!({"queue": "default", "purged": waiting})
    );
    let after = ok_json(url, &["stats"]);
    assert_eq!(
        (
            after["ready"].as_u64(),
            after["scheduled"].as_u64(),
            after["leased"].as_u64()
        ),
        (Some(0), Some(0), Some(1))
    );

    // ----- flush
    let before = ok_json(url, &["stats"]);
    assert!(refused(url, &["flush"]).contains("without --yes"));
    assert_eq!(
        ok_json(url, &["stats"]),
        before,
        "nothing flushed without --yes"
    );
    assert_eq!(ok_json(url, &["flush", "--yes"]), json!({"flushed": true}));
    assert_eq!(
        ok_json(url, &["stats"]),
        json!({"ready": 0, "scheduled": 0, "leased": 0, "dead": 0, "results": 0})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("skiff.db").display());
    check_every_command(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_on_redis() {
    let server = queue_redis::testing::RedisServer::start();
    check_every_command(&server.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_on_a_redis_cluster() {
    let cluster = queue_redis::testing::RedisCluster::start();
    check_every_command(&cluster.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_on_postgres() {
    let url = queue_postgres::testing::shared_url();
    let schema = queue_postgres::testing::unique_schema("cli");
    let sep = if url.contains('?') { '&' } else { '?' };
    check_every_command(&format!("{url}{sep}schema={schema}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_requeue_all_and_purge_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("skiff.db").display());
    let queue = skiff::connect(&url).await.unwrap();
    seed(&queue).await;
    // Without --yes (and no terminal to ask on) nothing changes, exit 2.
    assert!(refused(&url, &["dead", "purge"]).contains("dead tasks of every queue"));
    assert!(
        refused(&url, &["dead", "requeue", "--all", "--queue", "default"])
            .contains("dead tasks of queue default")
    );
    assert_eq!(ok_json(&url, &["stats"])["dead"], 1);
    assert_eq!(
        ok_json(&url, &["dead", "purge", "--yes"]),
        json!({"purged": 1})
    );
    assert_eq!(ok_json(&url, &["stats"])["dead"], 0);
    queue.storage().flush().await.unwrap();
    seed(&queue).await;
    assert_eq!(
        ok(&url, &["dead", "requeue", "--all", "--yes"]).trim(),
        "requeued 1 dead task"
    );
}

/// Fetches the next ready task of the default queue and dead-letters it; returns its id.
async fn kill_next(queue: &Queue) -> TaskId {
    let storage = queue.storage();
    let got = storage
        .fetch(DEFAULT_QUEUE, 1, Duration::from_secs(300))
        .await
        .unwrap();
    let failure = TaskFailure::new(FailureKind::Error, "gave up", 1);
    let dead = Completion::new(got[0].lease, Outcome::Dead { failure }, None);
    storage.complete(vec![dead]).await.unwrap();
    got[0].envelope.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_discard_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("skiff.db").display());
    let queue = skiff::connect(&url).await.unwrap();
    let s = seed(&queue).await;
    let (dead, ready, unknown) = (
        s.dead.to_string(),
        s.ready[2].to_string(),
        TaskId::new().to_string(),
    );

    // Without --yes (and no terminal to ask on) nothing changes, exit 2.
    assert!(refused(&url, &["dead", "discard", &dead]).contains(&format!("dead task {dead}")));
    let many = refused(&url, &["dead", "discard", &dead, &unknown]);
    assert!(
        many.contains(&format!("delete 2 dead tasks ({dead}, {unknown})")),
        "{many}"
    );
    assert_eq!(ok_json(&url, &["stats"])["dead"], 1);
    assert!(fails(&url, &["dead", "discard", "not-an-id", "--yes"]).contains("is not a task id"));
    assert!(fails(&url, &["dead", "discard", &unknown, &ready, "--yes"])
        .contains("none of the 2 ids given is a dead task"));

    // The dead task goes; an unknown id, a ready task and a repeated id count nothing.
    assert_eq!(
        ok_json(
            &url,
            &["dead", "discard", &dead, &unknown, &ready, &dead, "--yes"]
        ),
        json!({"discarded": 1, "not_dead": 2})
    );
    let stats = ok_json(&url, &["stats"]);
    assert_eq!(
        (stats["dead"].as_u64(), stats["ready"].as_u64()),
        (Some(0), Some(3))
    );
    assert!(fails(&url, &["dead", "requeue", &dead]).contains("no dead task"));
    assert!(fails(&url, &["dead", "discard", &dead, "--yes"]).contains("no dead task"));

    let (a, b) = (kill_next(&queue).await, kill_next(&queue).await);
    let (a, b) = (a.to_string(), b.to_string());
    assert_eq!(
        ok(&url, &["dead", "discard", &a, &b, &unknown, "--yes"]).trim(),
        "deleted 2 dead tasks (1 of the ids given was not a dead task)"
    );
    assert_eq!(ok(&url, &["dead", "list"]).trim(), "no dead tasks");
}

/// Runs `skiff --json --url URL ARGS…` with the encryption keys in the environment.
fn ok_json_with_keys(url: &str, keys: &str, args: &[&str]) -> Value {
    ok_json_with_env(url, "SKIFF_ENCRYPTION_KEYS", keys, args)
}

/// Runs `skiff --json --url URL ARGS…` with `var=value` in the environment.
fn ok_json_with_env(url: &str, var: &str, value: &str, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .env_remove("SKIFF_URL")
        .env(var, value)
        .args(["--json", "--url", url])
        .args(args)
        .output()
        .expect("run the skiff binary");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_arguments_and_results_need_the_key() {
    const KEYS: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("skiff.db").display());
    let keys = skiff::seal::Keyring::parse(KEYS).unwrap();
    let queue = skiff::connect(&url)
        .await
        .unwrap()
        .with_sealing(skiff::seal::Sealing::new().encryption(keys));
    let s = seed(&queue).await;
    let dead = s.dead.to_string();
    let done = s.done.to_string();

    // Without the key: shown as encrypted, never as the plain values.
    let show = ok_json(&url, &["dead", "show", &dead]);
    let args = show["envelope"]["args"].as_str().unwrap();
    assert!(args.starts_with("<encrypted with key `k1`"), "{args}");
    let result = ok_json(&url, &["result", &done]);
    let shown = result["result"].as_str().unwrap();
    assert!(shown.starts_with("<encrypted with key `k1`"), "{shown}");
    let pending = ok(&url, &["pending"]);
    assert!(!pending.contains("@example.com"), "{pending}");

    // With other keys (signing only, or encryption keys without `k1`): still shown as
    // encrypted, not an error.
    for (var, keys) in [
        ("SKIFF_SIGNING_KEYS", KEYS),
        (
            "SKIFF_ENCRYPTION_KEYS",
            "k9:QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8=",
        ),
    ] {
        let result = ok_json_with_env(&url, var, keys, &["result", &done]);
        let shown = result["result"].as_str().unwrap();
        assert!(
            shown.starts_with("<encrypted with key `k1`"),
            "{var}: {shown}"
        );
        let task = ok_json_with_env(&url, var, keys, &["task", &done]);
        assert!(
            task["result"]["value"]
                .as_str()
                .unwrap()
                .starts_with("<encrypted"),
            "{task}"
        );
    }

    // With it: the values.
    let show = ok_json_with_keys(&url, KEYS, &["dead", "show", &dead]);
    assert_eq!(show["envelope"]["args"], json!([4200, "EUR"]));
    let result = ok_json_with_keys(&url, KEYS, &["result", &done]);
    assert_eq!(result["result"], json!({"sum": 5}));

    // A requeue without the key keeps the seal: the task is back, still encrypted, and
    // opens with the key.
    let requeued = ok(&url, &["dead", "requeue", &dead]);
    assert!(requeued.starts_with("requeued dead task"), "{requeued}");
    let task = ok_json(&url, &["task", &dead]);
    assert!(
        task["args"].as_str().unwrap().starts_with("<encrypted"),
        "{task}"
    );
    let task = ok_json_with_keys(&url, KEYS, &["task", &dead]);
    assert_eq!(task["args"], json!([4200, "EUR"]), "{task}");
}

#[test]
fn bad_urls_and_unreachable_stores_fail_in_one_line() {
    let err = fails("ftp://x", &["stats"]);
    assert!(err.contains("unsupported store URL"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let missing = format!("sqlite://{}", dir.path().join("missing.db").display());
    assert!(fails(&missing, &["stats"]).contains("no SQLite store"));
    assert!(
        !dir.path().join("missing.db").exists(),
        "no empty store was created"
    );

    // Nothing listens on a port we just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://:sup3rsecret@127.0.0.1:{port}/0");
    let err = fails(&url, &["stats"]);
    assert!(!err.contains("sup3rsecret"), "password leaked: {err}");
    for url in [
        format!("postgres://app:sup3rsecret@127.0.0.1:{port}/app?acquire_timeout_ms=200"),
        format!("postgresql://127.0.0.1:{port}/app?user=app&password=sup3rsecret&acquire_timeout_ms=200"),
    ] {
        let err = fails(&url, &["stats"]);
        assert!(err.contains("could not connect"), "{err}");
        assert!(!err.contains("sup3rsecret"), "password leaked: {err}");
    }

    // No URL at all.
    let out = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .env_remove("SKIFF_URL")
        .arg("stats")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SKIFF_URL"));

    // SKIFF_URL is read from the environment.
    let out = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .env("SKIFF_URL", "ftp://from-env")
        .args(["--json", "stats"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("from-env"));
}

#[test]
fn hostile_timeouts_are_clamped() {
    for timeout in ["inf", "1e300", "-5", "NaN", "0"] {
        let out = Command::new(env!("CARGO_BIN_EXE_skiff"))
            .args([
                "--url",
                "sqlite::memory:",
                &format!("--timeout={timeout}"),
                "stats",
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "--timeout {timeout}: {stderr}");
        assert!(
            !stderr.contains("panicked"),
            "--timeout {timeout}: {stderr}"
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    for command in [["dead", "requeue"], ["dead", "discard"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_skiff"))
            .args(["--url", "sqlite::memory:"])
            .args(command)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{command:?} without an id");
    }
}
