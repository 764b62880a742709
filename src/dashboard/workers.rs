//! Live workers (what they run, their heartbeat's age) and the periodic schedules they run.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use maud::html;

use super::layout::{button, page, relative, span, store_error, time};
use super::overview::Notice;
use super::security::{encode, Session};
use super::Shared;

pub(super) async fn workers_page(
    State(dash): State<Shared>,
    session: Session,
    Query(notice): Query<Notice>,
) -> Response {
    let workers = match dash.queue.storage().workers().await {
        Ok(w) => w,
        Err(err) => return store_error(&err),
    };
    let now = dash.queue.clock().now();
    let body = html! {
        @if workers.is_empty() {
            p.empty { "No live workers: none has sent a heartbeat within its time to live." }
        } @else {
            table.workers {
                thead { tr {
                    th { "Worker" } th { "Queues" } th.num { "Busy" } th { "Started" }
                    th { "Heartbeat" } th { "Running" }
                } }
                tbody {
                    @for w in &workers {
                        tr data-worker=(w.info.id) {
                            td { (w.info.pid) "@" (w.info.hostname) br; span.muted.id { (w.info.id) } }
                            td {
                                @for (q, weight) in &w.info.queues {
                                    a href=(format!("queues/{}", encode(q))) { (q) } span.muted { "×" (weight) } " "
                                }
                            }
                            td.num { (w.running.len()) "/" (w.info.concurrency) }
                            td { (time(w.info.started_at, now)) }
                            td { (age(w.last_seen, now)) " ago" }
                            td {
                                @for r in &w.running {
                                    div.running {
                                        a href=(format!("tasks/{}", r.id)) { (r.task) }
                                        " " span.muted { (r.queue) ", for " (relative(r.since, now).trim_end_matches(" ago")) }
                                        @if !dash.read_only {
                                            " " (button(&session, &format!("tasks/{}/cancel", r.id), "Cancel", "workers",
                                                Some("Cancel this running task?")))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page(
        &dash,
        &session,
        "workers",
        "Workers",
        notice.notice.as_deref(),
        body,
    )
}

fn age(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    span(u64::try_from((now - at).num_seconds()).unwrap_or(0))
}

/// What the live tickers report of one periodic task.
struct Periodic {
    queue: String,
    schedule: String,
    next: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
    tickers: usize,
}

pub(super) async fn periodic_page(
    State(dash): State<Shared>,
    session: Session,
    Query(notice): Query<Notice>,
) -> Response {
    let workers = match dash.queue.storage().workers().await {
        Ok(w) => w,
        Err(err) => return store_error(&err),
    };
    let now = dash.queue.clock().now();
    let mut tasks: BTreeMap<String, Periodic> = BTreeMap::new();
    for p in workers.iter().flat_map(|w| &w.periodic) {
        let entry = tasks.entry(p.task.clone()).or_insert_with(|| Periodic {
            queue: p.queue.clone(),
            schedule: p.schedule.clone(),
            next: None,
            last: None,
            tickers: 0,
        });
        entry.tickers += 1;
        entry.next = match (entry.next, p.next) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        entry.last = entry.last.max(p.last);
    }
    let body = html! {
        p.muted { "As the live workers' tickers report them; each fire runs once across all of them." }
        @if tasks.is_empty() {
            p.empty { "No live worker runs a periodic task." }
        } @else {
            table.periodic {
                thead { tr {
                    th { "Task" } th { "Queue" } th { "Schedule" } th { "Next fire" } th { "Last fire" } th.num { "Tickers" }
                } }
                tbody {
                    @for (name, p) in &tasks {
                        tr {
                            td { (name) }
                            td { a href=(format!("queues/{}", encode(&p.queue))) { (p.queue) } }
                            td { code { (p.schedule) } }
                            td { @if let Some(at) = p.next { (time(at, now)) } @else { "—" } }
                            td { @if let Some(at) = p.last { (time(at, now)) } @else { "not since the workers started" } }
                            td.num { (p.tickers) }
                        }
                    }
                }
            }
        }
    };
    page(
        &dash,
        &session,
        "periodic",
        "Periodic tasks",
        notice.notice.as_deref(),
        body,
    )
}
