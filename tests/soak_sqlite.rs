//! The soak harness against a real SQLite file: kill -9 workers mid-run, restart them, and
//! check from the outside that every task was done and nothing is left leased or dead.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::soak;

#[test]
fn sqlite_survives_kill_9_of_workers() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("soak.db").display());
    let duplicates = soak::kill_9_scenario(&url);
    eprintln!("sqlite: duplicates after 3 kills: {duplicates}");
}

#[test]
fn sqlite_poison_and_transient_failures() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("soak.db").display());
    soak::poison_scenario(&url);
}

#[test]
fn sqlite_several_producers_and_workers_on_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("shared.db").display());
    let record = dir.path().join("record.txt");
    let rec = record.to_str().unwrap();
    let log = |name: &str| dir.path().join(name);

    // Two producers enqueue one task per call while three workers consume.
    let producers = [
        soak::spawn_logged(
            &url,
            &["enqueue", "--count", "2500", "--start", "0"],
            &log("p0.log"),
        ),
        soak::spawn_logged(
            &url,
            &["enqueue", "--count", "2500", "--start", "2500"],
            &log("p1.log"),
        ),
    ];
    let worker_args = [
        "work",
        "--concurrency",
        "8",
        "--record",
        rec,
        "--exit-when-idle-ms",
        "3000",
    ];
    let workers: Vec<_> = (0..3)
        .map(|i| soak::spawn_logged(&url, &worker_args, &log(&format!("w{i}.log"))))
        .collect();
    for child in producers.into_iter().chain(workers) {
        soak::wait_success(child, Duration::from_secs(300));
    }
    // A worker that found the store idle for 3 s while a producer was still starting or
    // stalled (a loaded machine) has exited early; one more, started after the last enqueue,
    // finishes what is left.
    soak::wait_success(
        soak::spawn_logged(&url, &worker_args, &log("w3.log")),
        Duration::from_secs(300),
    );

    soak::assert_all_done(&record, 0..5000);
    soak::assert_drained(&url);
    for name in ["p0.log", "p1.log", "w0.log", "w1.log", "w2.log", "w3.log"] {
        let text = std::fs::read_to_string(log(name)).unwrap();
        assert!(
            !text.contains("locked"),
            "{name} reported a locked database:\n{text}"
        );
    }
}

#[test]
fn sqlite_refuses_forged_tasks_and_rotates_keys() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("soak.db").display());
    soak::sealed_scenario(&url);
}

#[test]
fn sqlite_dead_letters_garbage_and_runs_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("garbage.db").display());
    soak::garbage_scenario(&url);
}

#[test]
fn sqlite_takes_an_absurd_retry_after_without_a_loop() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("retry-after.db").display());
    soak::retry_after_scenario(&url);
}

/// 100 cycles of kill -9 of two workers (a few minutes: run with `--run-ignored all`).
#[test]
#[ignore = "a few minutes; run by hand: cargo nextest run --all-features --test soak_sqlite --run-ignored all chaos"]
fn sqlite_chaos_100_cycles() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("chaos.db").display());
    let (done_before_drain, duplicates) = soak::chaos_scenario(&url, 100, || {});
    eprintln!("sqlite chaos: 100 cycles, {done_before_drain} of 40000 done before the drain, 0 lost, {duplicates} duplicate runs");
}
