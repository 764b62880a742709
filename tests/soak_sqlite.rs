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
    let record = dir.path().join("record.txt");

    soak::run(
        &url,
        &[
            "enqueue",
            "--count",
            "1000",
            "--fail-first",
            "7",
            "--poison",
            "100",
            "--batch",
            "100",
        ],
    );
    let rec = record.to_str().unwrap();
    soak::wait_success(
        soak::spawn_worker(
            &url,
            &[
                "--concurrency",
                "32",
                "--record",
                rec,
                "--exit-when-idle-ms",
                "1000",
            ],
        ),
        Duration::from_secs(120),
    );
    let counts = soak::done_counts(&record);
    for n in 0..1000u64 {
        if n % 100 == 0 {
            assert!(
                !counts.contains_key(&n),
                "poison task {n} must never succeed"
            );
        } else {
            assert!(counts.contains_key(&n), "task {n} never ran");
        }
    }
    let stats = soak::stats(&url);
    assert_eq!(
        stats["dead"], 10,
        "exactly the 10 poison tasks are dead: {stats}"
    );
    assert_eq!(stats["ready"], 0);
    assert_eq!(stats["leased"], 0);
}
