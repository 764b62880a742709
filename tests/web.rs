//! Drives `examples/web.rs` over HTTP, as a browser or another service would: enqueue through
//! the API, poll the task until it is complete, read health and metrics, stop it with SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Value};

mod support;

/// The web example binary, brought up to date once per test process.
fn web_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| support::example_binary("web")).clone()
}

/// A running web example, killed on drop if the test did not stop it.
struct Web {
    child: Option<Child>,
    base: String,
    _dir: tempfile::TempDir,
}

impl Web {
    async fn start(extra_env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.path().join("web.log")).unwrap();
        let mut cmd = Command::new(web_binary());
        cmd.env(
            "SKIFF_URL",
            format!("sqlite://{}", dir.path().join("web.db").display()),
        )
        .env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        // Its log lines go to stdout; keep them with stderr for `log()`.
        .stdout(log.try_clone().unwrap())
        .stderr(log);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut web = Self {
            child: Some(cmd.spawn().expect("start the web example")),
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        // Wait until it accepts connections (bounded; it may still be building its store).
        for _ in 0..600 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return web;
            }
            if let Some(status) = web.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("the web example exited early ({status}): {}", web.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the web example never listened: {}", web.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("web.log")).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGTERM, then waits (bounded) for a clean exit.
    async fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        for _ in 0..1200 {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "exit after SIGTERM: {status}\n{}",
                    self.log()
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        panic!("the web example did not stop after SIGTERM");
    }
}

impl Drop for Web {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.json::<Value>().await.unwrap();
    (status, body)
}

/// Polls `GET /tasks/{id}` until the task is complete (bounded number of polls).
async fn wait_complete(client: &reqwest::Client, web: &Web, id: &str) -> Value {
    for _ in 0..600 {
        let (status, body) = send(client.get(web.url(&format!("/tasks/{id}")))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["task_id"], id);
        if body["complete"] == true {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("task {id} never completed: {}", web.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_payments_tasks_health_and_metrics_over_http() {
    let web = Web::start(&[]).await;
    let client = reqwest::Client::new();

    // A new user: its welcome email is enqueued and run by the in-process consumer.
    let (status, user) = send(client.post(web.url("/users?email=ada@example.com&name=Ada"))).await;
    assert_eq!(status, 201, "{user}");
    assert!(user["user_id"].is_u64(), "{user}");
    let email_task = user["email_task_id"].as_str().unwrap().to_owned();
    let done = wait_complete(&client, &web, &email_task).await;
    assert_eq!(done["error"], Value::Null);
    assert!(
        done["result"].to_string().contains("ada@example.com"),
        "{done}"
    );

    // A payment over the card limit fails for good: the task shows its failure.
    let (status, payment) = send(client.post(web.url("/payments?amount=50000"))).await;
    assert_eq!(status, 202, "{payment}");
    assert!(payment["payment_id"].is_u64());
    let task = payment["task_id"].as_str().unwrap().to_owned();
    let failed = wait_complete(&client, &web, &task).await;
    assert_eq!(failed["result"], Value::Null);
    assert_eq!(failed["error"]["kind"], "error");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("card declined"),
        "{failed}"
    );
    let (status, ok_payment) = send(client.post(web.url("/payments?amount=19.99"))).await;
    assert_eq!(status, 202);
    let paid = wait_complete(&client, &web, ok_payment["task_id"].as_str().unwrap()).await;
    assert!(paid["result"].to_string().contains("1999"), "{paid}");

    // Bad input is a JSON 400, never a crash.
    for (method, path) in [
        ("POST", "/users?email=ada@example.com"),
        ("POST", "/users?name=Ada"),
        ("POST", "/users?email=nope&name=Ada"),
        ("POST", "/payments"),
        ("POST", "/payments?amount=abc"),
        ("POST", "/payments?amount=-5"),
        ("POST", "/payments?amount=NaN"),
        ("GET", "/tasks/not-a-task-id"),
    ] {
        let req = match method {
            "POST" => client.post(web.url(path)),
            _ => client.get(web.url(path)),
        };
        let (status, body) = send(req).await;
        assert_eq!(status, 400, "{method} {path}: {body}");
        assert!(body["error"].is_string(), "{method} {path}: {body}");
    }
    let unknown = skiff::TaskId::new();
    let (status, body) = send(client.get(web.url(&format!("/tasks/{unknown}")))).await;
    assert_eq!(status, 404, "{body}");

    // Health: the store answers and nothing is waiting.
    let (status, health) = send(client.get(web.url("/health/queue"))).await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["ok"], true);
    assert_eq!(health["pending"], 0);
    assert_eq!(health["scheduled"], 0);
    assert_eq!(health["dead"], 1);

    // Metrics in the Prometheus text format; an operator paused the queue meanwhile.
    let store = format!("sqlite://{}", web._dir.path().join("web.db").display());
    let operator = skiff::connect(&store).await.unwrap();
    assert!(operator.pause("default").await.unwrap());
    let resp = client.get(web.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = resp.text().await.unwrap();
    for line in [
        "skiff_tasks_processed_total{task=\"send_welcome_email\"} 1",
        "skiff_tasks_processed_total{task=\"charge_payment\"} 1",
        "skiff_tasks_dead_total{task=\"charge_payment\"} 1",
        "skiff_queue_tasks{state=\"dead\"} 1",
        "skiff_events_lost_total 0",
        "skiff_queue_paused{queue=\"default\"} 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in\n{text}"
        );
    }
    assert!(text.contains("skiff_task_duration_seconds_count{task=\"send_welcome_email\"} 1"));

    web.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_503_over_the_backlog_limit() {
    // No consumer in the app (WORKERS=0), so enqueued tasks wait.
    let web = Web::start(&[("WORKERS", "0"), ("MAX_BACKLOG", "1")]).await;
    let client = reqwest::Client::new();
    let (status, health) = send(client.get(web.url("/health/queue"))).await;
    assert_eq!(
        (status, &health["ok"]),
        (200, &Value::Bool(true)),
        "{health}"
    );

    for name in ["a", "b"] {
        let path = format!("/users?email={name}@example.com&name={name}");
        let (status, user) = send(client.post(web.url(&path))).await;
        assert_eq!(status, 201, "{user}");
        let id = user["email_task_id"].as_str().unwrap();
        let (_, task) = send(client.get(web.url(&format!("/tasks/{id}")))).await;
        assert_eq!(
            (&task["complete"], &task["state"]),
            (&Value::Bool(false), &Value::from("ready"))
        );
    }
    let (status, health) = send(client.get(web.url("/health/queue"))).await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["ok"], false);
    assert_eq!(health["pending"], 2);
    assert!(
        health["reason"].as_str().unwrap().contains("backlog of 2"),
        "{health}"
    );
    web.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_internal_error_text_or_email_address_leaves_the_app() {
    // At `info`, the welcome email is logged by user id, not by address.
    let web = Web::start(&[("RUST_LOG", "info")]).await;
    let client = reqwest::Client::new();
    let (status, user) = send(client.post(web.url("/users?email=ada@example.com&name=Ada"))).await;
    assert_eq!(status, 201, "{user}");
    wait_complete(&client, &web, user["email_task_id"].as_str().unwrap()).await;
    let log = web.log();
    assert!(log.contains("welcome email sent"), "{log}");
    assert!(
        !log.contains("ada@example.com"),
        "an address in the info log: {log}"
    );
    drop(web);

    // A store that goes away: the client gets a 503 with a generic message; the details
    // (the store's URL, the driver's error) stay in the log.
    let mut server = queue_redis::testing::RedisServer::start();
    let url = server.url();
    let web = Web::start(&[("SKIFF_URL", url.as_str()), ("WORKERS", "0")]).await;
    server.stop();
    let (status, body) = send(client.post(web.url("/users?email=bo@example.com&name=Bo"))).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body,
        json!({"error": "the task store is unavailable; try again later"})
    );
}

/// The web example on a Redis Cluster (3 masters, 3 replicas): `SKIFF_URL=redis+cluster://…`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_example_runs_on_a_redis_cluster() {
    let cluster = queue_redis::testing::RedisCluster::start();
    let url = cluster.url();
    assert!(url.starts_with("redis+cluster://"), "{url}");
    let web = Web::start(&[("SKIFF_URL", url.as_str())]).await;
    let client = reqwest::Client::new();
    let (status, user) = send(client.post(web.url("/users?email=ada@example.com&name=Ada"))).await;
    assert_eq!(status, 201, "{user}");
    let done = wait_complete(&client, &web, user["email_task_id"].as_str().unwrap()).await;
    assert_eq!(done["error"], Value::Null, "{done}");
    let (status, health) = send(client.get(web.url("/health/queue"))).await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["ok"], true, "{health}");
    web.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_is_mounted_and_asks_for_basic_credentials_when_a_password_is_set() {
    let client = reqwest::Client::new();
    let open = Web::start(&[]).await;
    let page = client.get(open.url("/dashboard/")).send().await.unwrap();
    assert_eq!(
        page.url().path(),
        "/dashboard",
        "/dashboard/ redirects to the overview"
    );
    assert_eq!(page.status().as_u16(), 200);
    assert!(page
        .text()
        .await
        .unwrap()
        .contains(r#"<base href="/dashboard/">"#));
    open.stop().await;

    let web = Web::start(&[
        ("DASHBOARD_PASSWORD", "s3cret"),
        ("DASHBOARD_READ_ONLY", "true"),
    ])
    .await;
    let status =
        |req: reqwest::RequestBuilder| async move { req.send().await.unwrap().status().as_u16() };
    let none = client.get(web.url("/dashboard"));
    assert_eq!(status(none).await, 401);
    let wrong = client
        .get(web.url("/dashboard/dead"))
        .basic_auth("admin", Some("guess"));
    assert_eq!(status(wrong).await, 401);
    let user = client
        .get(web.url("/dashboard"))
        .basic_auth("root", Some("s3cret"));
    assert_eq!(
        status(user).await,
        401,
        "the user name counts too (DASHBOARD_USER, default admin)"
    );
    let right = client
        .get(web.url("/dashboard"))
        .basic_auth("admin", Some("s3cret"));
    let page = right.send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let body = page.text().await.unwrap();
    assert!(body.contains("read-only") && !body.contains(r#"method="post""#));
    // The application's own routes stay as they were.
    assert_eq!(status(client.get(web.url("/health/queue"))).await, 200);
    web.stop().await;
}
