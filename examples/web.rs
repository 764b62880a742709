//! A web service with Skiff inside: axum handlers enqueue tasks, a consumer runs them in the
//! same Tokio app, and the queue's health and metrics are served over HTTP.
//!
//! ```text
//! cargo run --example web                                   # SQLite file skiff-web.db, port 8000
//! SKIFF_URL=redis://127.0.0.1:6379/0 PORT=8080 cargo run --features redis --example web
//! SKIFF_URL=postgres://app@localhost/app cargo run --features postgres --example web
//! SKIFF_URL=redis+cluster://127.0.0.1:7000/ cargo run --features redis --example web
//!
//! curl -X POST 'http://127.0.0.1:8000/users?email=ada@example.com&name=Ada'
//!   {"user_id":1,"email_task_id":"0190…"}
//! curl -X POST 'http://127.0.0.1:8000/payments?amount=19.99'
//!   {"payment_id":2,"task_id":"0190…"}
//! curl http://127.0.0.1:8000/tasks/0190…
//!   {"task_id":"0190…","complete":true,"state":null,"result":{…},"error":null}
//! curl http://127.0.0.1:8000/health/queue
//! curl http://127.0.0.1:8000/metrics
//! open http://127.0.0.1:8000/dashboard                     # the dashboard (feature `dashboard`)
//! ```
//!
//! | variable | default | what |
//! |---|---|---|
//! | `SKIFF_URL` | `sqlite://skiff-web.db` | the store |
//! | `PORT` | `8000` | the port to listen on |
//! | `HOST` | `127.0.0.1` | the address to listen on (`0.0.0.0` in a container) |
//! | `WORKERS` | `16` | tasks the in-process consumer runs at once (`0`: no consumer, run `examples/worker.rs` instead) |
//! | `MAX_BACKLOG` | `10000` | `/health/queue` answers 503 above this many waiting tasks |
//! | `DASHBOARD_PASSWORD` | unset | when set, `/dashboard` asks for HTTP Basic credentials |
//! | `DASHBOARD_USER` | `admin` | the user name those credentials must carry |
//! | `DASHBOARD_READ_ONLY` | `false` | `true`: the dashboard shows everything and changes nothing |
//!
//! Without `DASHBOARD_PASSWORD` the dashboard is open to whoever reaches the port: keep `HOST`
//! on loopback, or set a password (and serve it behind TLS).
//!
//! Ctrl-C or SIGTERM stop it gracefully: the server stops taking requests and finishes the ones
//! it has, then the consumer finishes its running tasks (or hands them back to the queue).

#[path = "shared/tasks.rs"]
mod tasks;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};
use skiff::prelude::*;
use skiff::{health, msgpack_to_json, HealthOptions, Metrics, StoredResult, TaskId, TaskState};

/// What every handler shares.
struct App {
    queue: Queue,
    metrics: Metrics,
    next_id: AtomicU64,
    max_backlog: u64,
}

type Shared = Arc<App>;

/// A JSON error with a status code: `{"error": "..."}`.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<skiff::Error> for ApiError {
    /// The store's error goes to the log, not to the client: its text names hosts, files and
    /// queries that an HTTP client has no business seeing.
    fn from(err: skiff::Error) -> Self {
        tracing::warn!(error = %err, "store error");
        Self(
            StatusCode::SERVICE_UNAVAILABLE,
            "the task store is unavailable; try again later".into(),
        )
    }
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

/// The query parameters, or a JSON 400 when the query string does not parse.
fn params(query: Params) -> Result<HashMap<String, String>, ApiError> {
    query
        .map(|Query(map)| map)
        .map_err(|e| bad_request(format!("bad query string: {e}")))
}

fn required<'a>(params: &'a HashMap<String, String>, name: &str) -> Result<&'a str, ApiError> {
    match params.get(name).map(|v| v.trim()) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(bad_request(format!("missing query parameter `{name}`"))),
    }
}

/// `POST /users?email=..&name=..`: creates a user and enqueues its welcome email.
async fn create_user(
    State(app): State<Shared>,
    query: Params,
) -> Result<impl IntoResponse, ApiError> {
    let params = params(query)?;
    let email = required(&params, "email")?;
    let name = required(&params, "name")?;
    if email.len() > 254 || !email.contains('@') || email.starts_with('@') || email.ends_with('@') {
        return Err(bad_request(format!("`{email}` is not an email address")));
    }
    if name.chars().count() > 100 {
        return Err(bad_request("`name` is longer than 100 characters"));
    }
    let user_id = app.next_id.fetch_add(1, Ordering::Relaxed);
    let handle = tasks::send_welcome_email(user_id, email.to_owned(), name.to_owned())
        .enqueue(&app.queue)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "user_id": user_id, "email_task_id": handle.id().to_string() })),
    ))
}

/// `POST /payments?amount=19.99`: enqueues the charge (priority 100, before other work).
async fn create_payment(
    State(app): State<Shared>,
    query: Params,
) -> Result<impl IntoResponse, ApiError> {
    let params = params(query)?;
    let raw = required(&params, "amount")?;
    let amount: f64 = raw
        .parse()
        .map_err(|_| bad_request(format!("`amount={raw}` is not a number")))?;
    if !amount.is_finite() || amount <= 0.0 || amount > 1e12 {
        return Err(bad_request(format!(
            "`amount={raw}` must be a positive amount"
        )));
    }
    let cents = (amount * 100.0).round() as u64;
    let payment_id = app.next_id.fetch_add(1, Ordering::Relaxed);
    let handle = tasks::charge_payment(payment_id, cents)
        .enqueue(&app.queue)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "payment_id": payment_id, "task_id": handle.id().to_string() })),
    ))
}

/// `GET /tasks/{id}`: whether the task is complete, and its result (any task, decoded from the
/// stored msgpack without knowing its type) or its failure.
async fn get_task(
    State(app): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: TaskId = id
        .parse()
        .map_err(|e: skiff::Error| bad_request(e.to_string()))?;
    let storage = app.queue.storage();
    // Result first, then the pending task, then the result again: a task that finishes
    // between the first two reads has left the pending tasks and has a result by the third.
    let mut result = storage.get_result(id).await?;
    let mut record = None;
    if result.is_none() {
        record = storage.get_task(id).await?;
        if record.is_none() {
            result = storage.get_result(id).await?;
        }
    }
    let body = match result {
        Some(StoredResult::Success(bytes)) => json!({
            "task_id": id.to_string(), "complete": true, "state": null,
            "result": msgpack_to_json(&bytes), "error": null,
        }),
        Some(StoredResult::Failure(failure)) => json!({
            "task_id": id.to_string(), "complete": true, "state": null, "result": null,
            "error": {
                "kind": failure.kind.to_string(),
                "message": failure.message,
                "attempts": failure.attempts,
            },
        }),
        None => match record {
            Some(record) => json!({
                "task_id": id.to_string(), "complete": false,
                "state": match record.state {
                    TaskState::Ready => "ready",
                    TaskState::Scheduled => "scheduled",
                    TaskState::Leased => "running",
                },
                "result": null, "error": null,
            }),
            None => {
                return Err(ApiError(
                    StatusCode::NOT_FOUND,
                    format!("no task {id} (or its result has expired)"),
                ))
            }
        },
    };
    Ok(Json(body))
}

/// `GET /health/queue`: 200 with the counts, or 503 with the reason.
async fn queue_health(State(app): State<Shared>) -> Response {
    let options = HealthOptions {
        max_backlog: Some(app.max_backlog),
        ..Default::default()
    };
    let status = health(&app.queue, options).await;
    let mut body = json!({ "ok": status.ok, "reason": status.reason });
    if let Some(c) = status.counts {
        body["pending"] = json!(c.ready);
        body["scheduled"] = json!(c.scheduled);
        body["running"] = json!(c.leased);
        body["dead"] = json!(c.dead);
        body["results"] = json!(c.results);
    }
    let code = if status.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

/// `GET /metrics`: Prometheus text.
async fn metrics(State(app): State<Shared>) -> Response {
    match app.queue.counts().await {
        Ok(counts) => app.metrics.set_counts(&counts),
        Err(err) => tracing::warn!(error = %err, "metrics: could not read the queue's counts"),
    }
    let storage = app.queue.storage();
    match (storage.queues().await, storage.paused_queues().await) {
        (Ok(queues), Ok(paused)) => app.metrics.set_paused(&queues, &paused),
        (Err(err), _) | (_, Err(err)) => {
            tracing::warn!(error = %err, "metrics: could not read which queues are paused");
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(),
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError(StatusCode::NOT_FOUND, "no such route".into())
}

fn router(app: Shared, dashboard: Router) -> Router {
    Router::new()
        .route("/users", post(create_user))
        .route("/payments", post(create_payment))
        .route("/tasks/{id}", get(get_task))
        .route("/health/queue", get(queue_health))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(app)
        .nest("/dashboard", dashboard)
        // The dashboard's overview is `/dashboard`; a typed `/dashboard/` lands there too.
        .route(
            "/dashboard/",
            get(|| async { axum::response::Redirect::permanent("/dashboard") }),
        )
}

/// The dashboard, behind HTTP Basic when `password` is set: the application's own auth layer
/// (any tower layer works the same way).
fn dashboard(queue: Queue, read_only: bool, credentials: Option<(String, String)>) -> Router {
    let router = skiff::dashboard::Dashboard::new(queue)
        .read_only(read_only)
        .router();
    match credentials {
        Some((user, password)) => {
            let expected = Arc::new(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            ));
            router.layer(axum::middleware::from_fn(
                move |request: axum::extract::Request, next: axum::middleware::Next| {
                    let expected = expected.clone();
                    async move {
                        let given = request
                            .headers()
                            .get(header::AUTHORIZATION)
                            .map(|v| v.as_bytes().to_vec())
                            .unwrap_or_default();
                        if constant_time_eq(&given, expected.as_bytes()) {
                            next.run(request).await
                        } else {
                            (
                                StatusCode::UNAUTHORIZED,
                                [(
                                    header::WWW_AUTHENTICATE,
                                    r#"Basic realm="skiff", charset="UTF-8""#,
                                )],
                                "credentials required",
                            )
                                .into_response()
                        }
                    }
                },
            ))
        }
        None => router,
    }
}

/// Compares without stopping at the first difference (the time taken tells nothing).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing requests, then running tasks");
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v.parse().map_err(|_| format!("{name}={v} is not valid")),
        _ => Ok(default),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let url = std::env::var("SKIFF_URL").unwrap_or_else(|_| "sqlite://skiff-web.db".into());
    let host: std::net::IpAddr = env_or("HOST", [127, 0, 0, 1].into())?;
    let port: u16 = env_or("PORT", 8000)?;
    let workers: usize = env_or("WORKERS", 16)?;
    let max_backlog: u64 = env_or("MAX_BACKLOG", 10_000)?;
    let read_only: bool = env_or("DASHBOARD_READ_ONLY", false)?;
    let credentials = std::env::var("DASHBOARD_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty())
        .map(|password| {
            let user = std::env::var("DASHBOARD_USER")
                .ok()
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| "admin".into());
            (user, password)
        });

    // Tasks signed and encrypted when SKIFF_SIGNING_KEYS / SKIFF_ENCRYPTION_KEYS are set.
    let queue = skiff::connect(&url)
        .await?
        .with_sealing(skiff::seal::Sealing::from_env()?);
    let metrics = Metrics::new();
    // The consumer runs inside this app; with WORKERS=0 separate workers run the tasks.
    let running = if workers > 0 {
        let consumer = Consumer::builder(queue.clone())
            .workers(workers)
            .registry(tasks::registry())
            .build()?;
        metrics.observe(consumer.events());
        Some(consumer.spawn())
    } else {
        None
    };

    let dashboard = dashboard(queue.clone(), read_only, credentials);
    let app = Arc::new(App {
        queue,
        metrics,
        // Ids that do not repeat across restarts of the example.
        next_id: AtomicU64::new(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() * 1000)
                .unwrap_or(1),
        ),
        max_backlog,
    });
    let listener = tokio::net::TcpListener::bind((host, port)).await?;
    tracing::info!(store = %skiff::redact(&url), "listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router(app, dashboard))
        .with_graceful_shutdown(shutdown_signal())
        .await?;

    if let Some(running) = running {
        let report = running.shutdown(Duration::from_secs(30)).await?;
        tracing::info!(?report, "consumer stopped");
    }
    Ok(())
}
