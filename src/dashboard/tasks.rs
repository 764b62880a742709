//! Pages of pending tasks: one queue's lists (with search), the scheduled tasks of every
//! queue, and one task's whole record.

use std::str::FromStr;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Redirect, Response};
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use queue_core::{Page, StoredResult, TaskId, TaskRecord, TaskState, WorkerStatus};
use serde::Deserialize;

use super::layout::{button, error_page, page, pager, span, store_error, time};
use super::security::{encode, Session};
use super::{Shared, State as Dash, PAGE_SIZE, SCAN_LIMIT};

/// The query of a listing.
#[derive(Deserialize, Default)]
pub(super) struct ListQuery {
    state: Option<String>,
    page: Option<u64>,
    q: Option<String>,
    notice: Option<String>,
}

fn parse_state(text: Option<&str>) -> TaskState {
    match text {
        Some("scheduled") => TaskState::Scheduled,
        Some("leased") => TaskState::Leased,
        _ => TaskState::Ready,
    }
}

fn state_name(state: TaskState) -> &'static str {
    match state {
        TaskState::Ready => "ready",
        TaskState::Scheduled => "scheduled",
        TaskState::Leased => "leased",
    }
}

/// Lists pending tasks of one state, a page at a time; with `search`, the tasks whose name
/// contains it among the first [`SCAN_LIMIT`] (the page then pages through the matches).
async fn list(
    dash: &Dash,
    state: TaskState,
    queue: Option<&str>,
    page: u64,
    search: Option<&str>,
) -> queue_core::Result<(Vec<TaskRecord>, bool)> {
    let storage = dash.queue.storage();
    let limit = u64::from(PAGE_SIZE);
    let Some(search) = search else {
        let records = storage
            .list(
                state,
                queue,
                Page {
                    offset: page * limit,
                    limit: PAGE_SIZE,
                },
            )
            .await?;
        return Ok((records, false));
    };
    let mut matches = Vec::new();
    let mut offset = 0;
    let chunk = 500u32;
    let skip = page * limit;
    let mut truncated = false;
    while offset < SCAN_LIMIT {
        let batch = storage
            .list(
                state,
                queue,
                Page {
                    offset,
                    limit: chunk,
                },
            )
            .await?;
        let done = batch.len() < chunk as usize;
        offset += batch.len() as u64;
        matches.extend(
            batch
                .into_iter()
                .filter(|r| r.envelope.as_ref().is_ok_and(|e| e.task.contains(search))),
        );
        if matches.len() as u64 > skip + limit {
            break;
        }
        if done {
            return Ok((page_of(matches, skip, limit), false));
        }
        truncated = offset >= SCAN_LIMIT;
    }
    Ok((page_of(matches, skip, limit), truncated))
}

fn page_of(matches: Vec<TaskRecord>, skip: u64, limit: u64) -> Vec<TaskRecord> {
    matches
        .into_iter()
        .skip(usize::try_from(skip).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .collect()
}

/// A table of pending tasks, with row actions when `actions` is on.
fn records_table(
    dash: &Dash,
    session: &Session,
    records: &[TaskRecord],
    now: DateTime<Utc>,
    back: &str,
) -> Markup {
    html! {
        @if records.is_empty() {
            p.empty { "Nothing here." }
        } @else {
            table.tasks {
                thead { tr {
                    th { "Task" } th { "Id" } th { "Queue" } th { "State" } th { "Due" }
                    th.num { "Attempt" } th { "Priority" }
                    @if !dash.read_only { th { "Actions" } }
                } }
                tbody {
                    @for r in records {
                        @let link = format!("tasks/{}", r.id);
                        tr data-id=(r.id.to_string()) {
                            td { a href=(link) { (task_name(r)) } }
                            td.id { a href=(link) { code { (r.id.to_string()) } } }
                            td { a href=(format!("queues/{}", encode(&r.queue))) { (r.queue) } }
                            td { (state_name(r.state)) }
                            td { (time(r.run_at, now)) }
                            td.num { (r.envelope.as_ref().map_or(0, |e| e.attempt)) }
                            td.num { (r.envelope.as_ref().map_or(0, |e| e.priority)) }
                            @if !dash.read_only {
                                td.actions {
                                    @if r.state == TaskState::Scheduled {
                                        (button(session, &format!("{link}/run-now"), "Run now", back, None))
                                    }
                                    @if r.state == TaskState::Leased {
                                        (button(session, &format!("{link}/cancel"), "Cancel", back, Some("Cancel this running task?")))
                                    } @else {
                                        (button(session, &format!("{link}/revoke"), "Revoke", back, Some("Revoke this task? It will be dropped instead of run.")))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn task_name(r: &TaskRecord) -> String {
    match &r.envelope {
        Ok(env) => env.task.clone(),
        Err(_) => "(undecodable)".into(),
    }
}

pub(super) async fn queue_page(
    State(dash): State<Shared>,
    session: Session,
    Path(name): Path<String>,
    Query(query): Query<ListQuery>,
) -> Response {
    let state = parse_state(query.state.as_deref());
    let page_no = query.page.unwrap_or(0);
    let search = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    // A search for an id opens that task.
    if let Some(id) = search.and_then(|q| TaskId::from_str(q).ok()) {
        return Redirect::to(&format!("{}/tasks/{id}", session.base)).into_response_with(&session);
    }
    let counts = match dash.queue.storage().counts(Some(&name)).await {
        Ok(c) => c,
        Err(err) => return store_error(&err),
    };
    let paused = match dash.queue.storage().paused_queues().await {
        Ok(p) => p.contains(&name),
        Err(err) => return store_error(&err),
    };
    let (records, truncated) = match list(&dash, state, Some(&name), page_no, search).await {
        Ok(r) => r,
        Err(err) => return store_error(&err),
    };
    let now = dash.queue.clock().now();
    let here = format!("queues/{}", encode(&name));
    let q_param = search
        .map(|q| format!("&q={}", encode(q)))
        .unwrap_or_default();
    let back = format!("{here}?state={}&page={page_no}{q_param}", state_name(state));
    let tabs = [
        (TaskState::Ready, counts.ready),
        (TaskState::Scheduled, counts.scheduled),
        (TaskState::Leased, counts.leased),
    ];
    let body = html! {
        div.actions {
            @if paused { span.badge.paused { "paused" } " No worker takes its tasks until it is resumed." }
            @if !dash.read_only {
                @if paused {
                    (button(&session, &format!("{here}/resume"), "Resume", &back, None))
                } @else {
                    (button(&session, &format!("{here}/pause"), "Pause", &back, None))
                }
                (button(&session, &format!("{here}/purge"), "Purge", &back,
                    Some("Delete every pending task of this queue?")))
            }
        }
        nav.tabs {
            @for (tab, count) in tabs {
                a href=(format!("{here}?state={}", state_name(tab)))
                    class=[(tab == state).then_some("current")] {
                    (state_name(tab)) " " span.count { (count) }
                }
            }
            a href=(format!("dead?queue={}", encode(&name))) { "dead " span.count { (counts.dead) } }
        }
        form.search method="get" action=(here) {
            input type="hidden" name="state" value=(state_name(state));
            input type="search" name="q" value=[search] placeholder="task name or id";
            button type="submit" { "Search" }
        }
        @if truncated {
            p.muted { "Searched the first " (SCAN_LIMIT) " " (state_name(state)) " tasks of this queue." }
        }
        (records_table(&dash, &session, &records, now, &back))
        (pager(page_no, records.len(), |p| format!("{here}?state={}&page={p}{q_param}", state_name(state))))
    };
    page(
        &dash,
        &session,
        "",
        &format!("Queue {name}"),
        query.notice.as_deref(),
        body,
    )
}

pub(super) async fn scheduled_page(
    State(dash): State<Shared>,
    session: Session,
    Query(query): Query<ListQuery>,
) -> Response {
    let page_no = query.page.unwrap_or(0);
    let search = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let (records, truncated) = match list(&dash, TaskState::Scheduled, None, page_no, search).await
    {
        Ok(r) => r,
        Err(err) => return store_error(&err),
    };
    let now = dash.queue.clock().now();
    let q_param = search
        .map(|q| format!("&q={}", encode(q)))
        .unwrap_or_default();
    let back = format!("scheduled?page={page_no}{q_param}");
    let body = html! {
        p.muted { "Tasks of every queue waiting for their eta, soonest first." }
        form.search method="get" action="scheduled" {
            input type="search" name="q" value=[search] placeholder="task name";
            button type="submit" { "Search" }
        }
        @if truncated { p.muted { "Searched the first " (SCAN_LIMIT) " scheduled tasks." } }
        (records_table(&dash, &session, &records, now, &back))
        (pager(page_no, records.len(), |p| format!("scheduled?page={p}{q_param}")))
    };
    page(
        &dash,
        &session,
        "scheduled",
        "Scheduled",
        query.notice.as_deref(),
        body,
    )
}

/// Everything known of one task.
struct TaskView {
    record: Option<TaskRecord>,
    dead: Option<queue_core::DeadTask>,
    result: Option<Result<StoredResult, ()>>,
    progress: Option<serde_json::Value>,
    holder: Option<WorkerStatus>,
}

async fn task_view(dash: &Dash, id: TaskId) -> queue_core::Result<TaskView> {
    let storage = dash.queue.storage();
    let record = storage.get_task(id).await?;
    let dead = match record {
        Some(_) => None,
        None => storage.get_dead(id).await?,
    };
    // A result this dashboard cannot open (sealed with a key it lacks) is shown as such.
    let result = match storage.get_result(id).await {
        Ok(r) => r.map(Ok),
        Err(err) if err.is_transient() => return Err(err),
        Err(_) => Some(Err(())),
    };
    let progress = storage
        .get_progress(id)
        .await?
        .map(|bytes| queue_core::msgpack_to_json(&bytes));
    let holder = storage
        .workers()
        .await?
        .into_iter()
        .find(|w| w.running.iter().any(|r| r.id == id));
    Ok(TaskView {
        record,
        dead,
        result,
        progress,
        holder,
    })
}

#[derive(Deserialize)]
pub(super) struct TaskQuery {
    notice: Option<String>,
}

pub(super) async fn task_page(
    State(dash): State<Shared>,
    session: Session,
    Path(id): Path<String>,
    Query(query): Query<TaskQuery>,
) -> Response {
    let Ok(id) = TaskId::from_str(&id) else {
        return error_page(StatusCode::NOT_FOUND, "That is not a task id.");
    };
    let view = match task_view(&dash, id).await {
        Ok(v) => v,
        Err(err) => return store_error(&err),
    };
    if view.record.is_none() && view.dead.is_none() && view.result.is_none() {
        return error_page(
            StatusCode::NOT_FOUND,
            "No such task. Finished tasks are known by their result until it expires.",
        );
    }
    let now = dash.queue.clock().now();
    let here = format!("tasks/{id}");
    let envelope = view
        .record
        .as_ref()
        .map(|r| &r.envelope)
        .or(view.dead.as_ref().map(|d| &d.envelope));
    let state = match (&view.record, &view.dead) {
        (Some(r), _) => state_name(r.state).to_owned(),
        (None, Some(_)) => "dead".to_owned(),
        (None, None) => "finished".to_owned(),
    };
    let body = html! {
        dl.fields {
            dt { "Id" } dd { code { (id.to_string()) } }
            dt { "State" } dd.state { (state) }
            @if let Some(Ok(env)) = envelope {
                dt { "Task" } dd { (env.task) }
                dt { "Queue" } dd { a href=(format!("queues/{}", encode(&env.queue))) { (env.queue) } }
                dt { "Arguments" } dd { pre.args { (pretty(&queue_core::msgpack_to_json(&env.args))) } }
                dt { "Attempt" } dd { (env.attempt) " of " (env.retry.max_retries + 1) }
                dt { "Deliveries" } dd { (env.deliveries) }
                dt { "Priority" } dd { (env.priority) }
                dt { "Enqueued" } dd { (time(env.enqueued_at, now)) }
                @if let Some(eta) = env.eta { dt { "Eta" } dd { (time(eta, now)) } }
                @if let Some(exp) = env.expires_at { dt { "Expires" } dd { (time(exp, now)) } }
                @if let Some(t) = env.timeout { dt { "Timeout" } dd { (span(t.as_secs())) } }
                @if let Some(key) = &env.unique_key { dt { "Unique key" } dd { code { (key) } } }
            }
            @if let Some(Err(why)) = envelope {
                dt { "Envelope" } dd { "does not decode: " (why) }
            }
            @if let Some(r) = &view.record {
                dt { "Due" } dd { (time(r.run_at, now)) }
                @if let Some(until) = r.lease_expires_at { dt { "Lease until" } dd { (time(until, now)) } }
            }
            @if let Some(w) = &view.holder {
                dt { "Worker" } dd { (w.info.pid) "@" (w.info.hostname) " " span.muted { "(" (w.info.id) ")" } }
            }
            @if let Some(p) = &view.progress { dt { "Progress" } dd { pre { (pretty(p)) } } }
            @if let Some(d) = &view.dead {
                dt { "Failed" } dd { (time(d.failed_at, now)) }
                dt { "Failure" } dd.failure { strong { (d.failure.kind.to_string()) } ": " (d.failure.message) " (" (d.failure.attempts) " attempts)" }
            }
            @match &view.result {
                Some(Ok(StoredResult::Success(bytes))) => {
                    dt { "Result" } dd { pre.result { (pretty(&queue_core::msgpack_to_json(bytes))) } }
                }
                Some(Ok(StoredResult::Failure(f))) => {
                    dt { "Failure" } dd.failure { strong { (f.kind.to_string()) } ": " (f.message) " (" (f.attempts) " attempts)" }
                }
                Some(Err(())) => { dt { "Result" } dd { "sealed with a key this dashboard does not have" } }
                None => {}
            }
        }
        @if !dash.read_only {
            div.actions {
                @match (&view.record, &view.dead) {
                    (Some(r), _) => {
                        @if r.state == TaskState::Scheduled {
                            (button(&session, &format!("{here}/run-now"), "Run now", &here, None))
                            form.inline method="post" action=(format!("{here}/reschedule")) {
                                input type="hidden" name="csrf" value=(session.token);
                                input type="hidden" name="back" value=(here);
                                label { "Run at (UTC) " input type="datetime-local" name="at" required; }
                                button type="submit" { "Reschedule" }
                            }
                        }
                        (button(&session, &format!("{here}/cancel"), "Cancel", &here, Some("Cancel this task?")))
                        (button(&session, &format!("{here}/revoke"), "Revoke", &here, Some("Revoke this task?")))
                    }
                    (None, Some(_)) => {
                        form.inline method="post" action="dead/requeue" {
                            input type="hidden" name="csrf" value=(session.token);
                            input type="hidden" name="back" value=(here);
                            input type="hidden" name="id" value=(id.to_string());
                            button type="submit" { "Requeue" }
                        }
                        form.inline method="post" action="dead/discard" data-confirm="Discard this dead task?" {
                            input type="hidden" name="csrf" value=(session.token);
                            input type="hidden" name="back" value="dead";
                            input type="hidden" name="id" value=(id.to_string());
                            button type="submit" { "Discard" }
                        }
                    }
                    _ => {}
                }
            }
        }
    };
    page(
        &dash,
        &session,
        "",
        &format!("Task {id}"),
        query.notice.as_deref(),
        body,
    )
}

/// JSON, indented, for a `<pre>` (escaped by the template).
pub(super) fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// A redirect that keeps a freshly minted CSRF cookie.
trait WithSession {
    fn into_response_with(self, session: &Session) -> Response;
}

impl WithSession for Redirect {
    fn into_response_with(self, session: &Session) -> Response {
        super::security::with_cookie(session, axum::response::IntoResponse::into_response(self))
    }
}
