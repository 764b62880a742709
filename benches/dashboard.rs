//! How long each dashboard page takes to render on a big store.
//!
//! ```text
//! cargo bench --features dashboard --bench dashboard -- --tasks 1000000
//! cargo bench --features dashboard,redis --bench dashboard -- --url redis://127.0.0.1:6379/9 --tasks 1000000
//! ```
//!
//! Fills the store (a new SQLite file by default) with `--tasks` ready tasks on queue `bulk`
//! plus 10,000 scheduled and 10,000 dead ones, serves the dashboard on a local port, and
//! requests each page `--runs` times over HTTP (the whole response read), printing the
//! median and the slowest time per page. A store given with `--url` is flushed first;
//! `--no-fill` times the pages of a store an earlier run filled (after a `VACUUM ANALYZE` of
//! a PostgreSQL store, say: right after a bulk load its statistics are stale).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use skiff::{to_msgpack, Completion, Envelope, FailureKind, Outcome, TaskFailure};

struct Args {
    url: Option<String>,
    tasks: u64,
    runs: usize,
    fill: bool,
}

fn args() -> Args {
    let mut args = Args {
        url: None,
        tasks: 1_000_000,
        runs: 20,
        fill: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--url" => args.url = it.next(),
            "--tasks" => args.tasks = it.next().and_then(|v| v.parse().ok()).expect("--tasks N"),
            "--runs" => args.runs = it.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            // Time the pages of a store filled by an earlier run (e.g. after a VACUUM).
            "--no-fill" => args.fill = false,
            // `cargo bench` passes --bench; anything else is a mistake worth saying.
            "--bench" => {}
            other => panic!("unknown argument {other}: --url URL --tasks N --runs N --no-fill"),
        }
    }
    args
}

async fn fill(queue: &skiff::Queue, tasks: u64) {
    let started = Instant::now();
    let now = chrono::Utc::now();
    let args = to_msgpack(&("user@example.com", 42)).unwrap();
    let mut left = tasks;
    while left > 0 {
        let n = left.min(5_000);
        let batch = (0..n)
            .map(|i| {
                let task = if i % 7 == 0 {
                    "resize_image"
                } else {
                    "send_email"
                };
                Envelope::new("bulk", task, args.clone(), now)
            })
            .collect();
        queue.enqueue_envelopes(batch).await.unwrap();
        left -= n;
    }
    let later = now + chrono::Duration::hours(1);
    for _ in 0..2 {
        let batch = (0..5_000)
            .map(|_| {
                let mut env = Envelope::new("later", "reminder", args.clone(), now);
                env.eta = Some(later);
                env
            })
            .collect();
        queue.enqueue_envelopes(batch).await.unwrap();
    }
    // 10,000 dead letters, dead-lettered the way a consumer does it.
    let batch = (0..10_000)
        .map(|_| Envelope::new("failing", "charge_card", args.clone(), now))
        .collect();
    queue.enqueue_envelopes(batch).await.unwrap();
    let storage = queue.storage();
    loop {
        let got = storage
            .fetch("failing", 500, Duration::from_secs(600))
            .await
            .unwrap();
        if got.is_empty() {
            break;
        }
        let done = got
            .into_iter()
            .map(|d| {
                let failure = TaskFailure::new(FailureKind::Error, "card declined", 3);
                Completion::new(d.lease, Outcome::Dead { failure }, None)
            })
            .collect();
        storage.complete(done).await.unwrap();
    }
    eprintln!(
        "filled: {tasks} ready, 10000 scheduled, 10000 dead in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let args = args();
    let dir = tempfile::tempdir().unwrap();
    let url = args
        .url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("dash.db").display()));
    let queue = skiff::connect(&url).await.unwrap();
    if args.fill {
        if args.url.is_some() {
            queue.storage().flush().await.unwrap();
        }
        fill(&queue, args.tasks).await;
    }
    let some_task = queue
        .storage()
        .list(skiff::TaskState::Ready, Some("bulk"), skiff::Page::first(1))
        .await
        .unwrap()[0]
        .id;

    let app = axum::Router::new().nest("/dashboard", skiff::dashboard::router(queue.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/dashboard", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();

    let pages = [
        ("overview", String::new()),
        ("queue, first page", "/queues/bulk".to_owned()),
        ("queue, page 1000", "/queues/bulk?page=1000".to_owned()),
        ("queue, search by name", "/queues/bulk?q=resize".to_owned()),
        (
            "queue, scheduled",
            "/queues/later?state=scheduled".to_owned(),
        ),
        ("task", format!("/tasks/{some_task}")),
        ("scheduled", "/scheduled".to_owned()),
        ("dead letters", "/dead".to_owned()),
        ("dead letters, kind filter", "/dead?kind=panic".to_owned()),
        ("workers", "/workers".to_owned()),
        ("periodic", "/periodic".to_owned()),
    ];
    println!(
        "{} ready tasks, store {}; {} runs per page",
        args.tasks,
        skiff::redact(&url),
        args.runs
    );
    println!("| page | median | slowest |\n| --- | --: | --: |");
    for (name, path) in pages {
        let mut times = Vec::with_capacity(args.runs);
        for _ in 0..args.runs {
            let started = Instant::now();
            let response = http.get(format!("{base}{path}")).send().await.unwrap();
            assert!(
                response.status().is_success(),
                "{path}: {}",
                response.status()
            );
            response.bytes().await.unwrap();
            times.push(started.elapsed());
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "| {name} | {:.1} ms | {:.1} ms |",
            ms(times[times.len() / 2]),
            ms(times[times.len() - 1])
        );
    }
}
