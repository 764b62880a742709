//! The overview: every queue's counts, whether it is paused, and what live workers processed
//! and failed per minute over the last hour; refreshed over server-sent events.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, DurationRound, Utc};
use futures::Stream;
use maud::{html, Markup};
use queue_core::{Counts, Queue, WorkerStatus};
use serde::Deserialize;

use super::layout::{self, button, chart, store_error};
use super::security::{encode, Session};
use super::Shared;

/// How often the live overview is sent again.
const REFRESH: Duration = Duration::from_secs(2);

/// One queue's row.
struct QueueRow {
    name: String,
    counts: Counts,
    paused: bool,
    processed: [u64; 60],
    failed: [u64; 60],
}

/// Per-minute sums over the last hour, oldest first, from the workers' heartbeats.
struct Hour {
    processed: [u64; 60],
    failed: [u64; 60],
}

impl Default for Hour {
    fn default() -> Self {
        Self {
            processed: [0; 60],
            failed: [0; 60],
        }
    }
}

/// The notice a page shows after an action redirected to it.
#[derive(Deserialize)]
pub(super) struct Notice {
    pub(super) notice: Option<String>,
}

async fn gather(queue: &Queue) -> queue_core::Result<(Vec<QueueRow>, Hour)> {
    let storage = queue.storage();
    let paused: BTreeSet<String> = storage.paused_queues().await?.into_iter().collect();
    let mut names: BTreeSet<String> = storage.queues().await?.into_iter().collect();
    names.extend(paused.iter().cloned());
    let workers = storage.workers().await?;
    // Queues with nothing stored still show while a worker consumes them or finished work
    // in them this hour.
    for w in &workers {
        names.extend(w.info.queues.iter().map(|(q, _)| q.clone()));
        names.extend(w.throughput.iter().map(|c| c.queue.clone()));
    }
    let now = queue.clock().now();
    let hours = per_queue_hour(&workers, now);
    let mut total = Hour::default();
    let mut rows = Vec::with_capacity(names.len());
    for name in names {
        let counts = storage.counts(Some(&name)).await?;
        let hour = hours.get(&name);
        let processed = hour.map_or([0; 60], |h| h.processed);
        let failed = hour.map_or([0; 60], |h| h.failed);
        for i in 0..60 {
            total.processed[i] += processed[i];
            total.failed[i] += failed[i];
        }
        rows.push(QueueRow {
            paused: paused.contains(&name),
            name,
            counts,
            processed,
            failed,
        });
    }
    Ok((rows, total))
}

/// Sums the workers' per-minute counts by queue into the 60 minutes ending at `now`'s minute.
fn per_queue_hour(workers: &[WorkerStatus], now: DateTime<Utc>) -> BTreeMap<String, Hour> {
    let this_minute = now
        .duration_trunc(chrono::Duration::minutes(1))
        .unwrap_or(now);
    let mut hours: BTreeMap<String, Hour> = BTreeMap::new();
    for count in workers.iter().flat_map(|w| &w.throughput) {
        let age = (this_minute - count.minute).num_minutes();
        let Ok(age) = usize::try_from(age) else {
            continue;
        };
        if age >= 60 {
            continue;
        }
        let hour = hours.entry(count.queue.clone()).or_default();
        hour.processed[59 - age] += count.processed;
        hour.failed[59 - age] += count.failed;
    }
    hours
}

/// The part of the overview that the live stream replaces.
fn live_part(state: &super::State, session: &Session, rows: &[QueueRow], total: &Hour) -> Markup {
    let sum: u64 = total.processed.iter().sum();
    let failed: u64 = total.failed.iter().sum();
    html! {
        section.hour {
            h2 { "Last hour" }
            p { strong { (sum) } " processed, " strong { (failed) } " failed (reported by live workers)" }
            (chart(&total.processed, &total.failed, true))
        }
        @if rows.is_empty() {
            p.empty { "No queues yet: nothing has been enqueued." }
        } @else {
            table.queues {
                thead { tr {
                    th { "Queue" } th.num { "Ready" } th.num { "Scheduled" } th.num { "Leased" }
                    th.num { "Dead" } th { "State" } th { "Last hour" }
                    @if !state.read_only { th { "Actions" } }
                } }
                tbody {
                    @for row in rows {
                        tr data-queue=(row.name) {
                            td { a href=(format!("queues/{}", encode(&row.name))) { (row.name) } }
                            td.num.ready { (row.counts.ready) }
                            td.num { (row.counts.scheduled) }
                            td.num { (row.counts.leased) }
                            td.num { a href=(format!("dead?queue={}", encode(&row.name))) { (row.counts.dead) } }
                            td.state { @if row.paused { span.badge.paused { "paused" } } @else { "running" } }
                            td { (chart(&row.processed, &row.failed, false)) }
                            @if !state.read_only {
                                td.actions {
                                    @let base = format!("queues/{}", encode(&row.name));
                                    @if row.paused {
                                        (button(session, &format!("{base}/resume"), "Resume", "", None))
                                    } @else {
                                        (button(session, &format!("{base}/pause"), "Pause", "", None))
                                    }
                                    (button(session, &format!("{base}/purge"), "Purge", "",
                                        Some("Delete every pending task of this queue?")))
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub(super) async fn page(
    State(state): State<Shared>,
    session: Session,
    Query(notice): Query<Notice>,
) -> Response {
    let (rows, total) = match gather(&state.queue).await {
        Ok(data) => data,
        Err(err) => return store_error(&err),
    };
    let body = html! {
        div #live data-live="live/overview" { (live_part(&state, &session, &rows, &total)) }
    };
    layout::page(
        &state,
        &session,
        "",
        "Overview",
        notice.notice.as_deref(),
        body,
    )
}

/// Server-sent events: the overview's live part every [`REFRESH`], as HTML.
pub(super) async fn live(State(state): State<Shared>, session: Session) -> Response {
    let stream = futures::stream::unfold(
        (state, session, true),
        |(state, session, first)| async move {
            if !first {
                tokio::time::sleep(REFRESH).await;
            }
            let event = match gather(&state.queue).await {
                Ok((rows, total)) => Event::default()
                    .event("overview")
                    .data(live_part(&state, &session, &rows, &total).into_string()),
                Err(err) => {
                    tracing::warn!(error = %err, "dashboard: the store could not be read");
                    Event::default()
                        .event("unavailable")
                        .data("the store could not be read")
                }
            };
            Some((Ok::<_, Infallible>(event), (state, session, false)))
        },
    );
    sse(stream)
}

fn sse(stream: impl Stream<Item = Result<Event, Infallible>> + Send + 'static) -> Response {
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use queue_core::{MinuteCount, WorkerInfo};

    #[test]
    fn minutes_land_in_their_slot_and_old_ones_drop_out() {
        let now: DateTime<Utc> = "2026-12-04T10:30:20Z".parse().unwrap_or_default();
        let minute = |m: i64| {
            now.duration_trunc(chrono::Duration::minutes(1))
                .unwrap_or(now)
                - chrono::Duration::minutes(m)
        };
        let count = |m, processed, failed| MinuteCount {
            queue: "q".into(),
            minute: minute(m),
            processed,
            failed,
        };
        let worker = |counts| WorkerStatus {
            info: WorkerInfo::this_process(vec![], 1, now),
            running: vec![],
            last_seen: now,
            throughput: counts,
            periodic: vec![],
        };
        let workers = [
            worker(vec![count(0, 5, 1), count(59, 2, 0), count(60, 100, 100)]),
            worker(vec![count(0, 3, 0), count(-1, 7, 7)]),
        ];
        let hours = per_queue_hour(&workers, now);
        let hour = &hours["q"];
        assert_eq!(hour.processed[59], 8);
        assert_eq!(hour.failed[59], 1);
        assert_eq!(hour.processed[0], 2);
        assert_eq!(
            hour.processed.iter().sum::<u64>(),
            10,
            "60 minutes old and future minutes are left out"
        );
    }
}
