//! The frame around every page, shared pieces (times, pagination, forms), error pages and
//! the embedded assets.

use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::security::{with_cookie, Session};
use super::State;

const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/app.js");

/// The navigation entries: (relative link, label).
const NAV: [(&str, &str); 5] = [
    ("", "Overview"),
    ("scheduled", "Scheduled"),
    ("dead", "Dead letters"),
    ("periodic", "Periodic"),
    ("workers", "Workers"),
];

/// A whole page: `body` inside the frame, with the session's cookie when it is new.
pub(super) fn page(
    state: &State,
    session: &Session,
    current: &str,
    title: &str,
    notice: Option<&str>,
    body: Markup,
) -> Response {
    // The overview is the mount path itself: `/dashboard`, not `/dashboard/`.
    let overview = if session.base.is_empty() {
        "/"
    } else {
        session.base.as_str()
    };
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // Every link and form is relative to the dashboard's mount point.
                base href=(format!("{}/", session.base));
                title { (title) " · " (state.title) }
                link rel="stylesheet" href="assets/style.css";
                script src="assets/app.js" defer {}
            }
            body {
                header {
                    a.brand href=(overview) { (state.title) }
                    nav {
                        @for (href, label) in NAV {
                            a href=(if href.is_empty() { overview } else { href })
                                class=[(href == current).then_some("current")] { (label) }
                        }
                    }
                    @if state.read_only { span.badge { "read-only" } }
                }
                main {
                    @if let Some(notice) = notice { p.notice role="status" { (notice) } }
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    with_cookie(session, markup.into_response())
}

/// A form that POSTs to `action` with the CSRF token, holding one button.
pub(super) fn button(
    session: &Session,
    action: &str,
    label: &str,
    back: &str,
    confirm: Option<&str>,
) -> Markup {
    html! {
        form.inline method="post" action=(action) data-confirm=[confirm] {
            input type="hidden" name="csrf" value=(session.token);
            input type="hidden" name="back" value=(back);
            button type="submit" { (label) }
        }
    }
}

/// A time as `2026-12-04 01:02:03Z (5s ago)`.
pub(super) fn time(at: DateTime<Utc>, now: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(at.to_rfc3339()) title=(at.to_rfc3339()) {
            (at.format("%Y-%m-%d %H:%M:%SZ")) " " span.muted { "(" (relative(at, now)) ")" }
        }
    }
}

/// `5s ago`, `in 3m`, `now`.
pub(super) fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (at - now).num_seconds();
    let text = span(secs.unsigned_abs());
    match secs {
        0 => "now".into(),
        s if s > 0 => format!("in {text}"),
        _ => format!("{text} ago"),
    }
}

/// `42s`, `3m`, `5h`, `2d`.
pub(super) fn span(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7_200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    }
}

/// "Previous" and "Next" links for page `page` of a listing whose current page held `shown`
/// rows; `link(p)` is the relative link of page `p`.
pub(super) fn pager(page: u64, shown: usize, link: impl Fn(u64) -> String) -> Markup {
    let more = shown >= super::PAGE_SIZE as usize;
    html! {
        nav.pager {
            @if page > 0 { a href=(link(page - 1)) { "← Previous" } }
            span.muted { "page " (page + 1) }
            @if more { a href=(link(page + 1)) { "Next →" } }
        }
    }
}

/// The page a store error answers: no internal text, which goes to the log instead.
pub(super) fn store_error(err: &queue_core::Error) -> Response {
    tracing::warn!(error = %err, "dashboard: the store could not be read");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "The store could not be read. The service's log has the details.",
    )
}

/// A plain error page with `status`.
pub(super) fn error_page(status: StatusCode, message: &str) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { (status.as_u16()) " · Skiff" } }
            body { h1 { (status.as_u16()) } p { (message) } }
        }
    };
    (status, markup).into_response()
}

pub(super) async fn not_found() -> Response {
    error_page(StatusCode::NOT_FOUND, "No such page.")
}

pub(super) async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

pub(super) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, content_type),
            (axum::http::header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// A small inline bar chart of processed (up) and failed (down) tasks per minute, oldest on
/// the left, for the 60 minutes ending at `now`'s minute.
pub(super) fn chart(processed: &[u64; 60], failed: &[u64; 60], large: bool) -> Markup {
    let (width, height) = if large { (600u64, 120u64) } else { (180, 36) };
    let peak = processed
        .iter()
        .chain(failed.iter())
        .copied()
        .max()
        .unwrap_or(0)
        .max(1);
    let bar = width / 60;
    let half = height / 2;
    let mut bars = String::new();
    for (i, (&ok, &bad)) in processed.iter().zip(failed.iter()).enumerate() {
        let x = i as u64 * bar;
        let up = ok * (half - 1) / peak + u64::from(ok > 0);
        let down = bad * (half - 1) / peak + u64::from(bad > 0);
        if up > 0 {
            bars.push_str(&format!(
                r#"<rect class="ok" x="{x}" y="{}" width="{}" height="{up}"/>"#,
                half - up,
                bar.saturating_sub(1).max(1)
            ));
        }
        if down > 0 {
            bars.push_str(&format!(
                r#"<rect class="bad" x="{x}" y="{half}" width="{}" height="{down}"/>"#,
                bar.saturating_sub(1).max(1)
            ));
        }
    }
    let total_ok: u64 = processed.iter().sum();
    let total_bad: u64 = failed.iter().sum();
    html! {
        svg.chart width=(width) height=(height) viewBox=(format!("0 0 {width} {height}"))
            role="img" aria-label=(format!("last hour: {total_ok} processed, {total_bad} failed")) {
            line x1="0" y1=(half) x2=(width) y2=(half) {}
            // Only numbers go into this string (built above).
            (PreEscaped(bars))
        }
    }
}
