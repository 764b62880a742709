//! The dashboard over HTTP, on a real SQLite file, mounted at `/dashboard` inside another
//! router: every page, CSRF, read-only mode, escaping, no internal error text, the actions.
//! (`tests/dashboard_browser.rs` drives the same pages in Chromium.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use skiff::dashboard::Dashboard;
use skiff::{
    to_msgpack, Completion, Envelope, FailureKind, Outcome, Page, Queue, TaskFailure, TaskId,
    TaskState,
};

/// A dashboard on a SQLite file, served on a free port under `/dashboard`.
struct App {
    base: String,
    queue: Queue,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl App {
    async fn start(configure: impl FnOnce(Dashboard) -> Dashboard) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("dash.db").display());
        let queue = skiff::connect(&url).await.unwrap();
        Self::serve(queue, configure, dir).await
    }

    async fn serve(
        queue: Queue,
        configure: impl FnOnce(Dashboard) -> Dashboard,
        dir: tempfile::TempDir,
    ) -> Self {
        let app = axum::Router::new()
            .route(
                "/",
                axum::routing::get(|| async { "the application's own page" }),
            )
            .nest(
                "/dashboard",
                configure(Dashboard::new(queue.clone())).router(),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/dashboard", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            base,
            queue,
            http,
            _dir: dir,
        }
    }

    /// The URL of `path`, relative to the dashboard (`""`: the overview, the mount path).
    fn url(&self, path: &str) -> String {
        match path {
            "" => self.base.clone(),
            p if p.starts_with('?') => format!("{}{p}", self.base),
            p => format!("{}/{p}", self.base),
        }
    }

    /// GET `path` (relative to the dashboard): status and body.
    async fn get(&self, path: &str) -> (StatusCode, String) {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    }

    /// A CSRF token, as a browser gets it: the cookie set by the first page.
    async fn token(&self) -> String {
        let response = self.http.get(self.url("")).send().await.unwrap();
        let cookie = response
            .headers()
            .get(SET_COOKIE)
            .expect("the first page sets the CSRF cookie")
            .to_str()
            .unwrap()
            .to_owned();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(cookie.contains("Path=/dashboard"), "{cookie}");
        let value = cookie.split(';').next().unwrap();
        value.strip_prefix("skiff_csrf=").unwrap().to_owned()
    }

    /// POST a form to `path` with the cookie `cookie` (if any): status and `Location`.
    async fn post(
        &self,
        path: &str,
        cookie: Option<&str>,
        fields: &[(&str, &str)],
    ) -> (StatusCode, String) {
        let mut request = self
            .http
            .post(format!("{}/{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(fields));
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, format!("skiff_csrf={cookie}"));
        }
        let response = request.send().await.unwrap();
        let location = response
            .headers()
            .get(LOCATION)
            .map(|l| l.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (response.status(), location)
    }

    /// POST with a valid token; expects the redirect back and returns its location.
    async fn act(&self, path: &str, fields: &[(&str, &str)]) -> String {
        let token = self.token().await;
        let mut all = vec![("csrf", token.as_str())];
        all.extend_from_slice(fields);
        let (status, location) = self.post(path, Some(&token), &all).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "POST {path}");
        location
    }

    async fn enqueue(&self, queue: &str, task: &str) -> TaskId {
        let env = Envelope::new(
            queue,
            task,
            to_msgpack(&("hello", 42)).unwrap(),
            chrono::Utc::now(),
        );
        let id = env.id;
        self.queue.enqueue_envelope(env).await.unwrap();
        id
    }

    async fn schedule(&self, queue: &str, task: &str) -> TaskId {
        let mut env = Envelope::new(queue, task, to_msgpack(&()).unwrap(), chrono::Utc::now());
        env.eta = Some(chrono::Utc::now() + chrono::Duration::hours(2));
        let id = env.id;
        self.queue.enqueue_envelope(env).await.unwrap();
        id
    }

    /// Enqueues a task and dead-letters it with `message` (first in line: top priority).
    async fn dead(&self, queue: &str, task: &str, message: &str) -> TaskId {
        let mut env = Envelope::new(queue, task, to_msgpack(&()).unwrap(), chrono::Utc::now());
        env.priority = i16::MAX;
        let id = env.id;
        self.queue.enqueue_envelope(env).await.unwrap();
        let storage = self.queue.storage();
        let delivery = storage
            .fetch(queue, 1, Duration::from_secs(60))
            .await
            .unwrap()
            .pop()
            .unwrap();
        assert_eq!(delivery.envelope.id, id);
        let failure = TaskFailure::new(FailureKind::Error, message, 1);
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

    async fn dead_ids(&self, queue: Option<&str>) -> Vec<TaskId> {
        let dead = self
            .queue
            .storage()
            .list_dead(queue, Page::first(1000))
            .await
            .unwrap();
        dead.into_iter().map(|d| d.id).collect()
    }
}

fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn every_page_renders_under_the_mount_path() {
    let app = App::start(|d| d).await;
    let ready = app.enqueue("emails", "send_welcome").await;
    let scheduled = app.schedule("emails", "send_reminder").await;
    let dead = app.dead("reports", "build_report", "disk full").await;

    let (status, overview) = app.get("").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        overview.contains(r#"<base href="/dashboard/">"#),
        "{overview}"
    );
    assert!(overview.contains(r#"href="queues/emails""#));
    assert!(overview.contains(r#"href="queues/reports""#));
    assert!(overview.contains(r#"data-live="live/overview""#));

    let (status, queue) = app.get("queues/emails").await;
    assert_eq!(status, StatusCode::OK);
    assert!(queue.contains("send_welcome") && queue.contains(&ready.to_string()));
    assert!(
        !queue.contains("send_reminder"),
        "the ready list holds only ready tasks"
    );
    let (_, queue) = app.get("queues/emails?state=scheduled").await;
    assert!(queue.contains("send_reminder") && queue.contains(&scheduled.to_string()));

    let (status, task) = app.get(&format!("tasks/{ready}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(task.contains("send_welcome"));
    assert!(
        task.contains("&quot;hello&quot;") && task.contains("42"),
        "decoded arguments: {task}"
    );

    let (status, dead_page) = app.get("dead").await;
    assert_eq!(status, StatusCode::OK);
    assert!(dead_page.contains("build_report") && dead_page.contains("disk full"));
    assert!(dead_page.contains(&dead.to_string()));
    let (_, dead_task) = app.get(&format!("tasks/{dead}")).await;
    assert!(dead_task.contains("disk full") && dead_task.contains("dead"));

    let (status, sched) = app.get("scheduled").await;
    assert_eq!(status, StatusCode::OK);
    assert!(sched.contains(&scheduled.to_string()));
    assert!(!sched.contains(&ready.to_string()));

    for page in ["workers", "periodic", "assets/style.css", "assets/app.js"] {
        assert_eq!(app.get(page).await.0, StatusCode::OK, "{page}");
    }
    assert_eq!(app.get("no/such/page").await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get(&format!("tasks/{}", TaskId::new())).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.get("tasks/not-an-id").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_post_without_a_valid_csrf_token_is_refused_and_changes_nothing() {
    let app = App::start(|d| d).await;
    app.enqueue("emails", "send_welcome").await;
    let token = app.token().await;
    let paused = || async { app.queue.paused_queues().await.unwrap() };

    // No token at all, a field without the cookie, a cookie without the field, two that
    // differ, and a token minted by another dashboard (another key).
    let other = App::start(|d| d).await.token().await;
    type Attempt<'a> = (Option<&'a str>, Vec<(&'a str, &'a str)>);
    let attempts: Vec<Attempt<'_>> = vec![
        (None, vec![]),
        (None, vec![("csrf", token.as_str())]),
        (Some(token.as_str()), vec![]),
        (Some(token.as_str()), vec![("csrf", other.as_str())]),
        (Some(other.as_str()), vec![("csrf", other.as_str())]),
        (Some("forged.00"), vec![("csrf", "forged.00")]),
    ];
    for (cookie, fields) in attempts {
        let (status, _) = app.post("queues/emails/pause", cookie, &fields).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "cookie {cookie:?}, fields {fields:?}"
        );
    }
    assert!(paused().await.is_empty(), "a refused POST paused the queue");
    let dead = app.dead("emails", "t", "boom").await;
    let (status, _) = app
        .post("dead/discard", None, &[("id", &dead.to_string())])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(app.dead_ids(None).await, vec![dead]);

    // A GET never changes anything.
    assert_eq!(
        app.get("queues/emails/pause").await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );

    // With the page's token it goes through.
    let (status, location) = app
        .post(
            "queues/emails/pause",
            Some(&token),
            &[("csrf", &token), ("back", "")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.starts_with("/dashboard?notice="), "{location}");
    assert_eq!(paused().await, vec!["emails".to_owned()]);
}

#[tokio::test]
async fn read_only_shows_everything_and_refuses_every_change() {
    let app = App::start(|d| d.read_only(true)).await;
    app.enqueue("emails", "send_welcome").await;
    let dead = app.dead("emails", "send_welcome", "boom").await;
    for page in [
        "",
        "queues/emails",
        "dead",
        &format!("tasks/{dead}"),
        "scheduled",
        "workers",
    ] {
        let (status, body) = app.get(page).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            !body.contains(r#"method="post""#),
            "{page} offers a change: {body}"
        );
    }
    let token = app.token().await;
    for path in [
        "queues/emails/pause",
        "dead/requeue",
        &format!("tasks/{dead}/revoke"),
    ] {
        let (status, _) = app
            .post(
                path,
                Some(&token),
                &[("csrf", &token), ("id", &dead.to_string())],
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
    assert!(app.queue.paused_queues().await.unwrap().is_empty());
    assert_eq!(app.dead_ids(None).await, vec![dead]);
}

#[tokio::test]
async fn hostile_names_and_messages_render_as_text() {
    let app = App::start(|d| d).await;
    let script = "<script>alert(1)</script>";
    let queue = "<b>q</b>";
    let id = app.enqueue(queue, script).await;
    let dead = app
        .dead(queue, script, "<img src=x onerror=alert(2)>")
        .await;
    let pages = [
        String::new(),
        format!("queues/{}", encode(queue)),
        format!("queues/{}?q={}", encode(queue), encode(script)),
        format!("tasks/{id}"),
        format!("tasks/{dead}"),
        "dead".into(),
        format!("dead?task={}", encode(script)),
    ];
    for page in pages {
        let (status, body) = app.get(&page).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(
            !body.contains("<script>alert"),
            "{page}: raw script tag in {body}"
        );
        assert!(!body.contains("<img src=x"), "{page}: raw img tag");
        assert!(!body.contains("<b>q</b>"), "{page}: raw queue name");
    }
    let (_, body) = app.get(&format!("tasks/{id}")).await;
    assert!(
        body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{body}"
    );
    // A notice comes from the query string: escaped too.
    let (_, body) = app.get(&format!("?notice={}", encode(script))).await;
    assert!(!body.contains("<script>alert") && body.contains("&lt;script&gt;"));
    // A redirect back never leaves the dashboard.
    for back in [
        "https://evil.example/",
        "//evil.example/",
        "/elsewhere",
        "javascript:alert(1)",
    ] {
        let location = app.act("queues/x/pause", &[("back", back)]).await;
        assert!(
            location.starts_with("/dashboard?notice="),
            "{back} -> {location}"
        );
    }
}

#[tokio::test]
async fn store_errors_answer_a_generic_page() {
    // A Redis store whose server is gone: every page fails inside the store.
    let server = queue_redis::testing::RedisServer::start();
    let url = server.url();
    let queue = skiff::connect(&url).await.unwrap();
    let app = App::serve(queue, |d| d, tempfile::tempdir().unwrap()).await;
    app.enqueue("emails", "send_welcome").await;
    assert_eq!(app.get("").await.0, StatusCode::OK);
    drop(server);
    for page in [
        "",
        "queues/emails",
        "dead",
        "workers",
        &format!("tasks/{}", TaskId::new()),
    ] {
        let (status, body) = app.get(page).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{page}");
        assert!(body.contains("could not be read"), "{body}");
        for secret in ["127.0.0.1", "redis", "refused", "Connection", "error:"] {
            assert!(!body.contains(secret), "{page} leaks `{secret}`: {body}");
        }
    }
}

#[tokio::test]
async fn queue_actions_pause_resume_and_purge() {
    let app = App::start(|d| d).await;
    for _ in 0..3 {
        app.enqueue("emails", "send_welcome").await;
    }
    app.schedule("emails", "later").await;
    let location = app.act("queues/emails/pause", &[("back", "")]).await;
    assert!(location.contains("notice=Paused"), "{location}");
    let (_, overview) = app.get("").await;
    assert!(overview.contains("paused"));
    assert!(overview.contains(r#"action="queues/emails/resume""#));
    let (_, page) = app.get("queues/emails").await;
    assert!(
        page.contains(r#"class="badge paused""#)
            && page.contains(r#"action="queues/emails/resume""#)
    );
    app.act("queues/emails/resume", &[]).await;
    assert!(app.queue.paused_queues().await.unwrap().is_empty());
    let location = app.act("queues/emails/purge", &[]).await;
    assert!(location.contains("4%20waiting%20tasks"), "{location}");
    let counts = app.queue.storage().counts(Some("emails")).await.unwrap();
    assert_eq!((counts.ready, counts.scheduled), (0, 0));
    assert_eq!(
        app.post("queues/emails/explode", None, &[]).await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn task_actions_run_now_reschedule_revoke_and_cancel() {
    let app = App::start(|d| d).await;
    let storage = app.queue.storage().clone();
    let later = app.schedule("emails", "later").await;
    app.act(&format!("tasks/{later}/run-now"), &[("back", "scheduled")])
        .await;
    assert_eq!(
        storage.get_task(later).await.unwrap().unwrap().state,
        TaskState::Ready
    );

    let other = app.schedule("emails", "other").await;
    app.act(
        &format!("tasks/{other}/reschedule"),
        &[("at", "2099-01-02T03:04")],
    )
    .await;
    let record = storage.get_task(other).await.unwrap().unwrap();
    assert_eq!(record.run_at.to_rfc3339(), "2099-01-02T03:04:00+00:00");
    let token = app.token().await;
    let (status, _) = app
        .post(
            &format!("tasks/{other}/reschedule"),
            Some(&token),
            &[("csrf", &token), ("at", "soon")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let revoked = app.enqueue("emails", "revoked").await;
    app.act(&format!("tasks/{revoked}/revoke"), &[]).await;
    assert_eq!(
        storage
            .check_revoked(&[(revoked, "revoked")])
            .await
            .unwrap(),
        vec![true]
    );

    let canceled = app.enqueue("emails", "canceled").await;
    let location = app
        .act(
            &format!("tasks/{canceled}/cancel"),
            &[("back", &format!("tasks/{canceled}"))],
        )
        .await;
    assert!(
        location.starts_with(&format!("/dashboard/tasks/{canceled}?notice=Canceled")),
        "{location}"
    );
    assert_eq!(
        storage
            .check_revoked(&[(canceled, "canceled")])
            .await
            .unwrap(),
        vec![true]
    );
}

#[tokio::test]
async fn dead_letters_requeue_and_discard_one_a_selection_or_all() {
    let app = App::start(|d| d).await;
    let a = app.dead("emails", "send", "smtp down").await;
    let b = app.dead("emails", "send", "smtp down").await;
    let c = app.dead("emails", "other", "bad input").await;
    let d = app.dead("reports", "build", "disk full").await;

    // Filters: by queue in the store, by task and kind in the page.
    let (_, page) = app.get("dead?queue=reports").await;
    assert!(page.contains(&d.to_string()) && !page.contains(&a.to_string()));
    let (_, page) = app.get("dead?task=other").await;
    assert!(page.contains(&c.to_string()) && !page.contains(&a.to_string()));
    let (_, page) = app.get("dead?kind=panic").await;
    assert!(page.contains("No dead tasks here"));

    let location = app
        .act(
            "dead/requeue",
            &[
                ("scope", "selected"),
                ("id", &a.to_string()),
                ("back", "dead"),
            ],
        )
        .await;
    assert!(
        location.contains("Requeued%201%20dead%20task"),
        "{location}"
    );
    let location = app
        .act(
            "dead/discard",
            &[
                ("scope", "selected"),
                ("id", &b.to_string()),
                ("id", &c.to_string()),
            ],
        )
        .await;
    assert!(
        location.contains("Discarded%202%20dead%20tasks"),
        "{location}"
    );
    assert_eq!(app.dead_ids(None).await, vec![d]);
    assert_eq!(
        app.queue
            .storage()
            .get_task(a)
            .await
            .unwrap()
            .unwrap()
            .state,
        TaskState::Ready
    );

    // "All" with a task filter takes only the matches; without, the whole queue filter.
    let e = app.dead("reports", "build", "again").await;
    let f = app.dead("reports", "other", "again").await;
    app.act(
        "dead/discard",
        &[("scope", "all"), ("queue", "reports"), ("task", "other")],
    )
    .await;
    assert_eq!(app.dead_ids(None).await, vec![d, e]);
    app.act("dead/requeue", &[("scope", "all"), ("queue", "reports")])
        .await;
    assert!(app.dead_ids(None).await.is_empty());
    assert!(app.queue.storage().get_task(f).await.unwrap().is_none());
    let location = app.act("dead/requeue", &[("scope", "selected")]).await;
    assert!(location.contains("Nothing%20selected"));
}

#[tokio::test]
async fn listings_are_paged_and_searchable() {
    let app = App::start(|d| d).await;
    let mut ids = Vec::new();
    for i in 0..120 {
        let name = if i % 3 == 0 {
            "resize_image"
        } else {
            "send_email"
        };
        ids.push(app.enqueue("media", name).await);
    }
    let rows = |body: &str| body.matches("<tr data-id=").count();
    let (_, first) = app.get("queues/media").await;
    assert_eq!(rows(&first), 50);
    assert!(first.contains("page=1") && first.contains("Next"));
    let (_, last) = app.get("queues/media?state=ready&page=2").await;
    assert_eq!(rows(&last), 20);
    assert!(!last.contains("Next"));
    assert!(last.contains(&ids[119].to_string()) && !last.contains(&ids[0].to_string()));

    let (_, found) = app.get("queues/media?q=resize").await;
    assert_eq!(rows(&found), 40);
    assert!(!found.contains("send_email"));
    // An id opens the task.
    let response = app
        .http
        .get(format!("{}/queues/media?q={}", app.base, ids[7]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers()[LOCATION].to_str().unwrap(),
        format!("/dashboard/tasks/{}", ids[7])
    );
}

#[tokio::test]
async fn the_overview_streams_itself_over_server_sent_events() {
    let app = App::start(|d| d).await;
    app.enqueue("emails", "send_welcome").await;
    let mut response = app
        .http
        .get(format!("{}/live/overview", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut seen = String::new();
    while !seen.contains("event: overview") || !seen.contains("queues/emails") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .expect("an event within 10 s")
            .unwrap()
            .expect("the stream stays open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    // A second event follows with the new state.
    app.enqueue("reports", "build").await;
    while !seen.contains("queues/reports") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .expect("another event within 10 s")
            .unwrap()
            .expect("the stream stays open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[skiff::task]
async fn tick() -> Result<(), skiff::TaskError> {
    Ok(())
}

#[tokio::test]
async fn workers_periodic_tasks_and_the_hourly_chart_come_from_live_consumers() {
    let app = App::start(|d| d).await;
    let running = skiff::Consumer::builder(app.queue.clone())
        .workers(4)
        .poll_interval(Duration::from_millis(100))
        .register(tick)
        .periodic_task(
            tick,
            skiff::Schedule::every(Duration::from_secs(1)).unwrap(),
        )
        .heartbeat_interval(Duration::from_millis(100))
        .build()
        .unwrap()
        .spawn();
    for _ in 0..3 {
        tick().enqueue(&app.queue).await.unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, workers) = app.get("workers").await;
        let (_, periodic) = app.get("periodic").await;
        let (_, overview) = app.get("").await;
        let processed = overview
            .split("last hour: ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        // The row of `tick` shows its next and its last fire.
        let fired = periodic.contains("<td>tick</td>") && periodic.matches("<time").count() >= 2;
        if workers.contains(&format!("{}@", std::process::id())) && fired && processed >= 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "workers:\n{workers}\nperiodic:\n{periodic}\nprocessed {processed}\n{:?}\n{:?}",
            app.queue.workers().await.unwrap(),
            app.queue.counts().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every task is done: the queue holds nothing, yet shows with what it processed.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while app.queue.counts().await.unwrap().ready > 0 {
        assert!(std::time::Instant::now() < deadline, "the ticks never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, overview) = app.get("").await;
    assert!(
        overview.contains(r#"<tr data-queue="default">"#),
        "{overview}"
    );
    assert!(!overview.contains("last hour: 0 processed"), "{overview}");
    running.shutdown(Duration::from_secs(10)).await.unwrap();
    // Gone from the live workers once it stopped.
    let (_, workers) = app.get("workers").await;
    assert!(workers.contains("No live workers"), "{workers}");
}

#[tokio::test]
async fn encrypted_arguments_show_only_to_a_dashboard_with_the_key() {
    use skiff::seal::{Keyring, Sealing};
    let keys = Keyring::parse("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sealed.db").display());
    let plain = skiff::connect(&url).await.unwrap();
    let keyed = plain.with_sealing(Sealing::new().encryption(keys));
    let env = Envelope::new(
        "cards",
        "charge",
        to_msgpack(&"card-4242-4242").unwrap(),
        chrono::Utc::now(),
    );
    let id = env.id;
    keyed.enqueue_envelope(env).await.unwrap();

    let without = App::serve(plain, |d| d, tempfile::tempdir().unwrap()).await;
    let with = App::serve(keyed, |d| d, dir).await;
    for page in [format!("tasks/{id}"), "queues/cards".into()] {
        let (_, body) = without.get(&page).await;
        assert!(
            !body.contains("card-4242"),
            "{page} shows the plaintext without the key"
        );
    }
    let (_, body) = without.get(&format!("tasks/{id}")).await;
    assert!(body.contains("encrypted with key `k1`"), "{body}");
    let (_, body) = with.get(&format!("tasks/{id}")).await;
    assert!(body.contains("card-4242-4242"), "{body}");
}
