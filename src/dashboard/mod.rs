//! A web dashboard: see and repair the queues from a browser, mounted inside your own axum
//! application (feature `dashboard`).
//!
//! [`router`] returns an [`axum::Router`] to nest under any path (nested at `/dashboard`, the
//! overview is `/dashboard`; axum routes `/dashboard/` elsewhere, so add a redirect if your
//! users type it, as the `web` example does). Its pages are rendered on
//! the server ([maud](https://maud.lambda.xyz), every value escaped), the overview updates
//! itself over server-sent events, and its stylesheet and script are compiled into the
//! binary: nothing to build with Node, nothing to serve from disk.
//!
//! | page | shows | actions |
//! | --- | --- | --- |
//! | overview | per queue: ready, scheduled, leased, dead, paused; processed and failed per minute over the last hour (live) | pause, resume, purge a queue |
//! | queue | its pending, scheduled and leased tasks, paged; search by task name or id | |
//! | task | decoded arguments, attempts, progress, the worker holding it, result or failure | cancel, run now, reschedule, revoke; requeue or discard a dead task |
//! | dead letters | filter by queue, task and kind | requeue or discard one, a selection, or all |
//! | scheduled | tasks waiting for their eta | run now, reschedule, revoke |
//! | periodic | schedules, next and last fire, as the live workers report them | |
//! | workers | live workers, what they run, heartbeat age | cancel a running task |
//!
//! # Safe by default
//!
//! - Every request that changes something is a `POST` carrying a CSRF token (a signed value
//!   the page also sets as a `SameSite=Strict` cookie); a `POST` without a valid one gets
//!   `403` and changes nothing.
//! - [`Dashboard::read_only`] shows everything and refuses every change.
//! - Authentication is yours: the router is a plain axum router, so wrap it in the tower
//!   layer your application already uses (the `web` example uses HTTP Basic when
//!   `DASHBOARD_PASSWORD` is set).
//! - A store error answers a generic `500` page; its text goes to the log (`tracing`), never
//!   into the response.
//! - Arguments and results sealed with [`crate::seal`] show as encrypted unless the queue
//!   given here has the keys ([`Queue::with_sealing`]).
//!
//! # Bounded on big stores
//!
//! Every page reads a bounded amount: listings are pages of [`PAGE_SIZE`]; counts come from
//! the stores' indexes; a search by task name, or a filter of dead letters by task or kind,
//! looks at the first [`SCAN_LIMIT`] entries and says so.
//!
//! # Example
//!
//! ```no_run
//! use axum::Router;
//! use skiff::prelude::*;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let queue = Queue::connect("sqlite://app.db").await?;
//!     let app = Router::new()
//!         // .route("/orders", post(create_order)) ... your own routes
//!         .nest("/dashboard", skiff::dashboard::router(queue.clone()));
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//!     axum::serve(listener, app).await?;
//!     Ok(())
//! }
//! ```

mod actions;
mod dead;
mod layout;
mod overview;
mod security;
mod tasks;
mod workers;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use queue_core::Queue;

/// Rows per page in every listing.
pub const PAGE_SIZE: u32 = 50;

/// How many entries a search by task name (or a dead-letter filter by task or kind) looks at.
pub const SCAN_LIMIT: u64 = 5_000;

/// A dashboard for one queue (store), configured before it becomes a router.
///
/// # Examples
///
/// ```
/// use skiff::dashboard::Dashboard;
///
/// let queue = skiff::Queue::memory();
/// // Everything visible, nothing changeable: POSTs answer 403.
/// let app: axum::Router = axum::Router::new()
///     .nest("/dashboard", Dashboard::new(queue).read_only(true).router());
/// # drop(app);
/// ```
#[derive(Clone, Debug)]
pub struct Dashboard {
    queue: Queue,
    read_only: bool,
    title: String,
}

impl Dashboard {
    /// A dashboard of `queue`'s store; it shows sealed arguments opened when `queue` has the
    /// keys ([`Queue::with_sealing`]).
    pub fn new(queue: Queue) -> Self {
        Self {
            queue,
            read_only: false,
            title: "Skiff".into(),
        }
    }

    /// Shows everything and refuses every change (buttons hidden, POSTs answer 403).
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// The name shown in the header and the window title (default "Skiff").
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }

    /// The router, to nest under any path (`Router::nest("/dashboard", …)`) or serve as is.
    pub fn router(self) -> Router {
        let state = Arc::new(State {
            queue: self.queue,
            read_only: self.read_only,
            title: self.title,
            csrf: security::CsrfKey::generate(),
        });
        Router::new()
            .route("/", get(overview::page))
            .route("/live/overview", get(overview::live))
            .route("/queues/{name}", get(tasks::queue_page))
            .route("/tasks/{id}", get(tasks::task_page))
            .route("/scheduled", get(tasks::scheduled_page))
            .route("/dead", get(dead::page))
            .route("/workers", get(workers::workers_page))
            .route("/periodic", get(workers::periodic_page))
            .route("/assets/style.css", get(layout::stylesheet))
            .route("/assets/app.js", get(layout::script))
            .route("/queues/{name}/{action}", post(actions::queue_action))
            .route("/tasks/{id}/{action}", post(actions::task_action))
            .route("/dead/{action}", post(actions::dead_action))
            .fallback(layout::not_found)
            .with_state(state)
    }
}

/// A dashboard of `queue`'s store with the defaults: `Dashboard::new(queue).router()`.
///
/// # Examples
///
/// ```
/// let app: axum::Router = axum::Router::new()
///     .nest("/dashboard", skiff::dashboard::router(skiff::Queue::memory()));
/// # drop(app);
/// ```
pub fn router(queue: Queue) -> Router {
    Dashboard::new(queue).router()
}

/// What every handler shares.
struct State {
    queue: Queue,
    read_only: bool,
    title: String,
    csrf: security::CsrfKey,
}

type Shared = Arc<State>;
