//! The dead-letter queue: filter by queue, task and kind; requeue or discard one, a
//! selection, or all.

use axum::extract::{Query, State};
use axum::response::Response;
use maud::html;
use queue_core::{DeadTask, Page};
use serde::Deserialize;

use super::layout::{self, pager, store_error, time};
use super::security::{encode, Session};
use super::{Shared, State as Dash, PAGE_SIZE, SCAN_LIMIT};

/// The dead-letter page's filters.
#[derive(Deserialize, Default, Clone)]
pub(super) struct DeadFilter {
    pub(super) queue: Option<String>,
    pub(super) task: Option<String>,
    pub(super) kind: Option<String>,
    pub(super) page: Option<u64>,
    pub(super) notice: Option<String>,
}

impl DeadFilter {
    fn clean(value: Option<&String>) -> Option<&str> {
        value.map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    pub(super) fn queue(&self) -> Option<&str> {
        Self::clean(self.queue.as_ref())
    }

    fn task(&self) -> Option<&str> {
        Self::clean(self.task.as_ref())
    }

    fn kind(&self) -> Option<&str> {
        Self::clean(self.kind.as_ref())
    }

    /// Whether a filter applies that the store cannot (task or kind).
    pub(super) fn scans(&self) -> bool {
        self.task().is_some() || self.kind().is_some()
    }

    fn matches(&self, dead: &DeadTask) -> bool {
        self.task().is_none_or(|t| dead.task == t)
            && self
                .kind()
                .is_none_or(|k| dead.failure.kind.to_string() == k)
    }

    /// The query string that keeps these filters (without the page).
    fn query(&self) -> String {
        let mut parts = Vec::new();
        for (name, value) in [
            ("queue", self.queue()),
            ("task", self.task()),
            ("kind", self.kind()),
        ] {
            if let Some(v) = value {
                parts.push(format!("{name}={}", encode(v)));
            }
        }
        parts.join("&")
    }
}

/// One page of dead tasks that pass `filter`, and whether the scan stopped at its limit.
/// Without a task or kind filter this is one store call; with one, the first
/// [`SCAN_LIMIT`] dead tasks of the queue filter are looked at.
pub(super) async fn matching(
    dash: &Dash,
    filter: &DeadFilter,
    page_no: u64,
    limit: u64,
) -> queue_core::Result<(Vec<DeadTask>, bool)> {
    let storage = dash.queue.storage();
    let limit32 = u32::try_from(limit).unwrap_or(u32::MAX);
    if !filter.scans() {
        let dead = storage
            .list_dead(
                filter.queue(),
                Page {
                    offset: page_no * limit,
                    limit: limit32,
                },
            )
            .await?;
        return Ok((dead, false));
    }
    let skip = usize::try_from(page_no * limit).unwrap_or(usize::MAX);
    let want = skip.saturating_add(usize::try_from(limit).unwrap_or(usize::MAX));
    let mut found = Vec::new();
    let mut offset = 0;
    let chunk = 500u32;
    while offset < SCAN_LIMIT {
        let batch = storage
            .list_dead(
                filter.queue(),
                Page {
                    offset,
                    limit: chunk,
                },
            )
            .await?;
        let done = batch.len() < chunk as usize;
        offset += batch.len() as u64;
        found.extend(batch.into_iter().filter(|d| filter.matches(d)));
        if found.len() >= want || done {
            let page = found.into_iter().skip(skip).take(want - skip).collect();
            return Ok((page, false));
        }
    }
    let page = found.into_iter().skip(skip).take(want - skip).collect();
    Ok((page, true))
}

pub(super) async fn page(
    State(dash): State<Shared>,
    session: Session,
    Query(filter): Query<DeadFilter>,
) -> Response {
    let page_no = filter.page.unwrap_or(0);
    let (dead, truncated) = match matching(&dash, &filter, page_no, u64::from(PAGE_SIZE)).await {
        Ok(d) => d,
        Err(err) => return store_error(&err),
    };
    let queues = match dash.queue.storage().queues().await {
        Ok(q) => q,
        Err(err) => return store_error(&err),
    };
    let now = dash.queue.clock().now();
    let query = filter.query();
    let and = if query.is_empty() { "" } else { "&" };
    let back = format!("dead?{query}{and}page={page_no}");
    let scope = match filter.queue() {
        Some(q) => format!("in queue {q}"),
        None => "in every queue".to_owned(),
    };
    let scope = if filter.scans() {
        format!("{scope} that match the filters")
    } else {
        scope
    };
    let table = html! {
        table.dead {
            thead { tr {
                @if !dash.read_only { th { input type="checkbox" data-select-all="id" aria-label="select all"; } }
                th { "Task" } th { "Id" } th { "Queue" } th { "Kind" } th { "Message" } th.num { "Attempts" } th { "Failed" }
            } }
            tbody {
                @for d in &dead {
                    tr data-id=(d.id.to_string()) {
                        @if !dash.read_only { td { input type="checkbox" name="id" value=(d.id.to_string()) aria-label="select"; } }
                        td { a href=(format!("tasks/{}", d.id)) { (d.task) } }
                        td.id { code { (d.id.to_string()) } }
                        td { (d.queue) }
                        td.kind { (d.failure.kind.to_string()) }
                        td.message { (d.failure.message) }
                        td.num { (d.failure.attempts) }
                        td { (time(d.failed_at, now)) }
                    }
                }
            }
        }
    };
    let body = html! {
        form.filters method="get" action="dead" {
            label { "Queue " select name="queue" {
                option value="" { "all" }
                @for q in &queues { option value=(q) selected[filter.queue() == Some(q.as_str())] { (q) } }
            } }
            label { "Task " input type="text" name="task" value=[filter.task()]; }
            label { "Kind " input type="text" name="kind" value=[filter.kind()] placeholder="e.g. error, panic, timeout"; }
            button type="submit" { "Filter" }
        }
        @if truncated { p.muted { "Filtered the first " (SCAN_LIMIT) " dead tasks." } }
        @if dead.is_empty() {
            p.empty { "No dead tasks here." }
        } @else {
            @if dash.read_only {
                (table)
            } @else {
                form #dead-form method="post" action="dead/requeue" {
                    input type="hidden" name="csrf" value=(session.token);
                    input type="hidden" name="back" value=(back);
                    input type="hidden" name="queue" value=[filter.queue()];
                    input type="hidden" name="task" value=[filter.task()];
                    input type="hidden" name="kind" value=[filter.kind()];
                    (table)
                    div.actions {
                        button type="submit" name="scope" value="selected" { "Requeue selected" }
                        button type="submit" name="scope" value="selected" formaction="dead/discard"
                            data-confirm="Discard the selected dead tasks?" { "Discard selected" }
                        button type="submit" name="scope" value="all"
                            data-confirm=(format!("Requeue every dead task {scope}?")) { "Requeue all " (scope) }
                        button type="submit" name="scope" value="all" formaction="dead/discard"
                            data-confirm=(format!("Discard every dead task {scope}?")) { "Discard all " (scope) }
                    }
                }
            }
        }
        (pager(page_no, dead.len(), |p| format!("dead?{query}{and}page={p}")))
    };
    layout::page(
        &dash,
        &session,
        "dead",
        "Dead letters",
        filter.notice.as_deref(),
        body,
    )
}
