//! Every change the dashboard makes: `POST`s with a CSRF token, answered by a redirect back
//! to the page they came from with a notice of what was done.

use std::str::FromStr;

use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::{NaiveDateTime, TimeZone, Utc};
use queue_core::{CancelRequest, TaskId};

use super::dead::{matching, DeadFilter};
use super::layout::{error_page, store_error};
use super::security::{encode, mount_path, Session};
use super::{Shared, SCAN_LIMIT};

/// A posted form: its fields in order (a field may repeat, like `id`).
type Fields = Vec<(String, String)>;

fn field<'a>(fields: &'a Fields, name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// Why a POST is refused before it changes anything, or `None` when it may go on.
fn refuse(dash: &super::State, headers: &HeaderMap, fields: &Fields) -> Option<Response> {
    if dash.read_only {
        return Some(error_page(
            StatusCode::FORBIDDEN,
            "This dashboard is read-only.",
        ));
    }
    let cookie = Session::cookie_token(headers);
    let sent = field(fields, "csrf");
    let valid =
        matches!((cookie.as_deref(), sent), (Some(c), Some(s)) if c == s && dash.csrf.verify(s));
    if valid {
        None
    } else {
        Some(error_page(
            StatusCode::FORBIDDEN,
            "Missing or invalid CSRF token: reload the page and try again.",
        ))
    }
}

/// Redirects to the page the form came from (a relative link inside the dashboard), with a
/// notice of what was done.
fn back(base: &str, fields: &Fields, notice: &str) -> Response {
    let back = field(fields, "back").unwrap_or("");
    let back = back.trim_start_matches("./");
    // Only relative links inside the dashboard: no scheme, host or absolute path.
    let safe = !back.starts_with('/')
        && !back.contains("//")
        && !back.contains('\\')
        && !back.contains(':')
        && !back.chars().any(char::is_control);
    let back = if safe { back } else { "" };
    let sep = if back.contains('?') { '&' } else { '?' };
    // The overview is the mount path itself (`/dashboard`; `/dashboard/` is another route).
    let page = match (back.is_empty(), base.is_empty()) {
        (true, true) => "/".to_owned(),
        (true, false) => base.to_owned(),
        (false, _) => format!("{base}/{back}"),
    };
    let target = format!("{page}{sep}notice={}", encode(notice));
    Redirect::to(&target).into_response()
}

fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

pub(super) async fn queue_action(
    State(dash): State<Shared>,
    Path((name, action)): Path<(String, String)>,
    request: Request,
) -> Response {
    let (base, headers, fields) = match read(request).await {
        Ok(parts) => parts,
        Err(response) => return response,
    };
    if let Some(refused) = refuse(&dash, &headers, &fields) {
        return refused;
    }
    let queue = &dash.queue;
    let done = match action.as_str() {
        "pause" => queue
            .pause(&name)
            .await
            .map(|_| format!("Paused queue {name}.")),
        "resume" => queue
            .resume(&name)
            .await
            .map(|_| format!("Resumed queue {name}.")),
        "purge" => queue
            .purge(&name)
            .await
            .map(|n| format!("Purged {} from queue {name}.", plural(n, "waiting task"))),
        _ => return error_page(StatusCode::NOT_FOUND, "No such action."),
    };
    match done {
        Ok(notice) => back(&base, &fields, &notice),
        Err(err) => action_error(&err),
    }
}

pub(super) async fn task_action(
    State(dash): State<Shared>,
    Path((id, action)): Path<(String, String)>,
    request: Request,
) -> Response {
    let (base, headers, fields) = match read(request).await {
        Ok(parts) => parts,
        Err(response) => return response,
    };
    if let Some(refused) = refuse(&dash, &headers, &fields) {
        return refused;
    }
    let Ok(id) = TaskId::from_str(&id) else {
        return error_page(StatusCode::NOT_FOUND, "That is not a task id.");
    };
    let queue = &dash.queue;
    let storage = queue.storage();
    let done = match action.as_str() {
        "cancel" => queue.cancel(id).await.map(|found| match found {
            CancelRequest::Running => {
                "Cancel requested: the worker stops the task within about a second.".to_owned()
            }
            CancelRequest::Pending => "Canceled: the task will not run.".to_owned(),
            CancelRequest::NotFound => "The task is no longer pending or running.".to_owned(),
        }),
        "revoke" => queue
            .revoke(id)
            .await
            .map(|()| "Revoked: the task will be dropped instead of run.".to_owned()),
        "run-now" => storage
            .reschedule(id, queue.clock().now())
            .await
            .map(|moved| {
                if moved {
                    "The task runs now.".to_owned()
                } else {
                    "The task is no longer waiting.".to_owned()
                }
            }),
        "reschedule" => {
            let Some(at) = field(&fields, "at").and_then(parse_local) else {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    "Give the time to run at as YYYY-MM-DDTHH:MM (UTC).",
                );
            };
            storage.reschedule(id, at).await.map(|moved| {
                if moved {
                    format!("Rescheduled to {}.", at.format("%Y-%m-%d %H:%M:%SZ"))
                } else {
                    "The task is no longer waiting.".to_owned()
                }
            })
        }
        _ => return error_page(StatusCode::NOT_FOUND, "No such action."),
    };
    match done {
        Ok(notice) => back(&base, &fields, &notice),
        Err(err) => action_error(&err),
    }
}

/// `2026-12-04T10:30` or `2026-12-04T10:30:15`, as UTC.
fn parse_local(text: &str) -> Option<chrono::DateTime<Utc>> {
    ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .map(|naive| Utc.from_utc_datetime(&naive))
}

pub(super) async fn dead_action(
    State(dash): State<Shared>,
    Path(action): Path<String>,
    request: Request,
) -> Response {
    let (base, headers, fields) = match read(request).await {
        Ok(parts) => parts,
        Err(response) => return response,
    };
    if let Some(refused) = refuse(&dash, &headers, &fields) {
        return refused;
    }
    let storage = dash.queue.storage();
    let filter = DeadFilter {
        queue: field(&fields, "queue").map(str::to_owned),
        task: field(&fields, "task").map(str::to_owned),
        kind: field(&fields, "kind").map(str::to_owned),
        ..DeadFilter::default()
    };
    let all = field(&fields, "scope") == Some("all");
    let ids: Vec<TaskId> = if all {
        if filter.scans() {
            // The matches among the first SCAN_LIMIT dead tasks, as the page showed them.
            match matching(&dash, &filter, 0, SCAN_LIMIT).await {
                Ok((dead, _)) => dead.into_iter().map(|d| d.id).collect(),
                Err(err) => return store_error(&err),
            }
        } else {
            Vec::new()
        }
    } else {
        let parsed: Result<Vec<TaskId>, _> = fields
            .iter()
            .filter(|(k, _)| k == "id")
            .map(|(_, v)| TaskId::from_str(v))
            .collect();
        match parsed {
            Ok(ids) if !ids.is_empty() => ids,
            Ok(_) => return back(&base, &fields, "Nothing selected."),
            Err(_) => return error_page(StatusCode::BAD_REQUEST, "That is not a task id."),
        }
    };
    let whole_queue = all && !filter.scans();
    let done = match (action.as_str(), whole_queue) {
        ("requeue", true) => storage.requeue_all_dead(filter.queue()).await,
        ("requeue", false) => storage.requeue_dead(&ids).await,
        ("discard", true) => storage.purge_dead(filter.queue()).await,
        ("discard", false) => storage.discard_dead(&ids).await,
        _ => return error_page(StatusCode::NOT_FOUND, "No such action."),
    };
    match done {
        Ok(n) => {
            let verb = if action == "requeue" {
                "Requeued"
            } else {
                "Discarded"
            };
            back(
                &base,
                &fields,
                &format!("{verb} {}.", plural(n, "dead task")),
            )
        }
        Err(err) => action_error(&err),
    }
}

/// An action's error: invalid input is shown (it is the user's own), anything else is a
/// store error whose text goes to the log.
fn action_error(err: &queue_core::Error) -> Response {
    match err {
        queue_core::Error::InvalidInput(message) => error_page(
            StatusCode::BAD_REQUEST,
            &format!("Invalid input: {message}"),
        ),
        other => store_error(other),
    }
}

/// The mount path, the headers and the form fields of a POST.
async fn read(request: Request) -> Result<(String, HeaderMap, Fields), Response> {
    let (parts, body) = request.into_parts();
    let base = mount_path(&parts);
    let headers = parts.headers.clone();
    let Form(fields) = Form::<Fields>::from_request(Request::from_parts(parts, body), &())
        .await
        .map_err(|_| error_page(StatusCode::BAD_REQUEST, "Expected a form."))?;
    Ok((base, headers, fields))
}
