//! Drives `examples/soak.rs` as separate processes, the way outside scripts do.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The soak example binary, brought up to date once per test process.
pub fn soak_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| super::example_binary("soak")).clone()
}

/// Runs `soak URL args...` to completion and returns its stdout; panics on failure.
pub fn run(url: &str, args: &[&str]) -> String {
    let out: Output = Command::new(soak_binary())
        .arg(url)
        .args(args)
        .output()
        .expect("run soak");
    assert!(
        out.status.success(),
        "soak {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `soak URL enqueue OPTIONS...` (`options`: words separated by spaces) to completion
/// and returns its stdout; panics on failure.
pub fn enqueue(url: &str, options: &str) -> String {
    let mut args = vec!["enqueue"];
    args.extend(options.split_whitespace());
    run(url, &args)
}

/// Starts `soak URL work ...` in the background.
pub fn spawn_worker(url: &str, args: &[&str]) -> Child {
    Command::new(soak_binary())
        .arg(url)
        .arg("work")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn soak worker")
}

/// Starts `soak URL args...` in the background with its stderr written to `stderr_to`.
pub fn spawn_logged(url: &str, args: &[&str], stderr_to: &Path) -> Child {
    let log = std::fs::File::create(stderr_to).expect("create a log file");
    Command::new(soak_binary())
        .arg(url)
        .args(args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn soak")
}

/// Waits for a child to exit successfully within `limit`; kills it and panics otherwise.
pub fn wait_success(mut child: Child, limit: Duration) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for worker") {
            assert!(status.success(), "worker exited with {status}");
            return;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("worker did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills a child with SIGKILL (`kill -9`) and reaps it.
pub fn kill9(mut child: Child) {
    child.kill().expect("kill -9 worker");
    let _ = child.wait();
}

/// The store's counts, from `soak URL stats`.
pub fn stats(url: &str) -> serde_json::Value {
    let line = run(url, &["stats"]);
    serde_json::from_str(line.trim()).expect("stats prints one JSON line")
}

/// How many times each `done <n>` line appears in the record file (`cron <T>` lines of
/// periodic fires are skipped).
pub fn done_counts(record: &Path) -> BTreeMap<u64, u32> {
    let text = std::fs::read_to_string(record).unwrap_or_default();
    let mut counts = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with("cron ")) {
        let n = line
            .strip_prefix("done ")
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("malformed record line {line:?}"));
        *counts.entry(n).or_insert(0) += 1;
    }
    counts
}

/// Asserts every n in `range` was done at least once; returns the number of duplicate runs.
pub fn assert_all_done(record: &Path, range: std::ops::Range<u64>) -> u64 {
    let counts = done_counts(record);
    let missing: Vec<u64> = range.clone().filter(|n| !counts.contains_key(n)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} tasks never ran, e.g. {:?}",
        missing.len(),
        range.end - range.start,
        &missing[..missing.len().min(10)]
    );
    counts.values().map(|c| u64::from(c - 1)).sum()
}

/// Kills and restarts a worker `cycles` times, then lets a last one drain the store. Returns
/// how many distinct tasks were done before the last worker started.
pub fn kill_restart_drain(url: &str, record: &Path, cycles: u32, run_for: Duration) -> usize {
    let rec = record.to_str().expect("utf-8 path");
    let args = ["--concurrency", "16", "--record", rec, "--lease-ms", "2000"];
    for _ in 0..cycles {
        let worker = spawn_worker(url, &args);
        std::thread::sleep(run_for);
        kill9(worker);
    }
    let done_before_drain = done_counts(record).len();
    let mut last: Vec<&str> = args.to_vec();
    last.extend(["--exit-when-idle-ms", "1500"]);
    wait_success(spawn_worker(url, &last), Duration::from_secs(300));
    done_before_drain
}

/// The kill -9 scenario on any store: 10,000 tasks of 0-20 ms at concurrency 16 (at least
/// ~6 s of work), three workers killed after 0.7 s each, then one that drains the store. Asserts
/// that the kills landed mid-run, every task ran, and nothing is left ready, scheduled, leased
/// or dead. Returns the number of duplicate runs.
pub fn kill_9_scenario(url: &str) -> u64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let record = dir.path().join("record.txt");
    let out = enqueue(url, "--count 10000 --batch 500 --sleep-ms 20");
    assert!(out.contains("\"enqueued\":10000"), "{out}");

    let done_before_drain = kill_restart_drain(url, &record, 3, Duration::from_millis(700));
    assert!(
        done_before_drain < 10_000,
        "the kills should interrupt the run"
    );

    let duplicates = assert_all_done(&record, 0..10_000);
    assert_drained(url);
    // At-least-once allows duplicates, bounded by what was in flight at each kill: at most the
    // concurrency (16) per kill, plus tasks whose ack had not been flushed.
    assert!(duplicates <= 3 * 200, "too many duplicates: {duplicates}");
    duplicates
}

/// The server-outage scenario on any store with a server: 3,000 tasks of 10 ms (every 10th
/// fails its first attempt) and one worker at concurrency 16 with 2 s leases. Once the worker
/// is connected and working (it has done a task), `outage` takes the server down and brings it
/// back (the worker's calls fail meanwhile and it reconnects). Asserts the worker then drains
/// the store: every task ran, nothing is left ready, scheduled, leased or dead.
pub fn outage_scenario(url: &str, outage: impl FnOnce()) {
    let dir = tempfile::tempdir().expect("temp dir");
    let record = dir.path().join("record.txt");
    let rec = record.to_str().expect("utf-8 path");
    enqueue(
        url,
        "--count 3000 --batch 500 --sleep-ms 10 --fail-first 10",
    );
    let worker = spawn_worker(
        url,
        &[
            "--concurrency",
            "16",
            "--record",
            rec,
            "--lease-ms",
            "2000",
            "--exit-when-idle-ms",
            "2000",
        ],
    );
    let started = Instant::now();
    while done_counts(&record).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the worker did no task within 120 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    outage();
    wait_success(worker, Duration::from_secs(300));

    assert_all_done(&record, 0..3000);
    assert_drained(url);
}

/// Asserts the store has nothing ready, scheduled, leased or dead.
pub fn assert_drained(url: &str) {
    let stats = stats(url);
    for key in ["ready", "scheduled", "leased", "dead"] {
        assert_eq!(stats[key], 0, "{key} should be 0 after the drain: {stats}");
    }
}

/// 1,000 tasks: every 7th fails its first attempt, every 100th fails every attempt. All but
/// the poison ones end done; exactly the 10 poison ones end in the dead-letter queue.
pub fn poison_scenario(url: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let record = dir.path().join("record.txt");
    let rec = record.to_str().expect("utf-8 path");
    enqueue(url, "--count 1000 --fail-first 7 --poison 100 --batch 100");
    wait_success(
        spawn_worker(
            url,
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
    let counts = done_counts(&record);
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
    let stats = stats(url);
    assert_eq!(
        stats["dead"], 10,
        "exactly the 10 poison tasks are dead: {stats}"
    );
    assert_eq!(stats["ready"], 0, "{stats}");
    assert_eq!(stats["scheduled"], 0, "{stats}");
    assert_eq!(stats["leased"], 0, "{stats}");
}

/// Runs `soak URL args...` with extra environment variables; panics on failure.
pub fn run_with_env(url: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let out: Output = Command::new(soak_binary())
        .arg(url)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run soak");
    assert!(
        out.status.success(),
        "soak {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Signing from the outside, the way HARNESS.md describes it: 20 tasks enqueued without
/// keys (forged), 20 with `k1` (signed and encrypted), 10 with a key the worker lacks; a
/// worker restarted with `[k2, k1]` does exactly the 20 genuine ones, and the other 30 end in
/// the dead-letter queue as `bad_signature` and `unknown_key`.
pub fn sealed_scenario(url: &str) {
    const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2_K1: &str = "k2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=,k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K9: &str = "k9:QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8=";
    let keys = |k: &'static str| [("SKIFF_SIGNING_KEYS", k), ("SKIFF_ENCRYPTION_KEYS", k)];
    let dir = tempfile::tempdir().expect("temp dir");
    let record = dir.path().join("record.txt");
    let rec = record.to_str().expect("utf-8 path");

    enqueue(url, "--count 20 --batch 10");
    run_with_env(
        url,
        &["enqueue", "--start", "20", "--count", "20"],
        &keys(K1),
    );
    run_with_env(
        url,
        &["enqueue", "--start", "40", "--count", "10", "--batch", "5"],
        &keys(K9),
    );
    let worker = Command::new(soak_binary())
        .arg(url)
        .args([
            "work",
            "--concurrency",
            "8",
            "--record",
            rec,
            "--exit-when-idle-ms",
            "1000",
        ])
        .envs(keys(K2_K1))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn soak worker");
    wait_success(worker, Duration::from_secs(60));

    let done = done_counts(&record);
    let ran: Vec<u64> = done.keys().copied().collect();
    assert_eq!(
        ran,
        (20..40).collect::<Vec<_>>(),
        "only the genuine tasks ran"
    );
    let stats = stats(url);
    assert_eq!(stats["dead"], 30, "{stats}");
    assert_eq!(stats["ready"], 0, "{stats}");
    assert_eq!(stats["leased"], 0, "{stats}");

    let kinds = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let queue = skiff::connect(url).await.expect("open the store");
            let dead = queue
                .storage()
                .list_dead(None, skiff::Page::first(100))
                .await
                .expect("list dead");
            let mut kinds = BTreeMap::new();
            for d in dead {
                *kinds.entry(d.failure.kind.to_string()).or_insert(0) += 1;
            }
            kinds
        });
    assert_eq!(
        kinds,
        BTreeMap::from([
            ("bad_signature".to_owned(), 20),
            ("unknown_key".to_owned(), 10)
        ]),
        "why the refused tasks are dead"
    );
}

/// The kinds of the dead-letter queue's tasks, counted.
fn dead_kinds(url: &str) -> BTreeMap<String, u64> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let queue = skiff::connect(url).await.expect("open the store");
            let dead = queue
                .storage()
                .list_dead(None, skiff::Page::first(1000))
                .await
                .expect("list dead");
            let mut kinds = BTreeMap::new();
            for d in dead {
                *kinds.entry(d.failure.kind.to_string()).or_insert(0) += 1;
            }
            kinds
        })
}

/// `soak garbage`: 36 entries that do not decode, among 300 good tasks. A worker
/// dead-letters each with its reason (undecodable, or a newer format) and runs every good
/// task; nothing else ends dead.
pub fn garbage_scenario(url: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let record = dir.path().join("record.txt");
    let rec = record.to_str().expect("utf-8 path");
    enqueue(url, "--count 150 --batch 50");
    let written = run(url, &["garbage", "--count", "36"]);
    assert!(written.contains(r#""written":36"#), "{written}");
    enqueue(url, "--count 150 --start 150 --batch 50");
    wait_success(
        spawn_worker(
            url,
            &[
                "--concurrency",
                "16",
                "--record",
                rec,
                "--exit-when-idle-ms",
                "1000",
            ],
        ),
        Duration::from_secs(120),
    );
    assert_all_done(&record, 0..300);
    let stats = stats(url);
    assert_eq!(stats["dead"], 36, "{stats}");
    assert_eq!(
        dead_kinds(url),
        BTreeMap::from([
            ("newer_format".to_owned(), 6),
            ("undecodable".to_owned(), 30)
        ]),
        "each garbage entry dead-lettered with its reason"
    );
}

/// `enqueue --retry-after-secs 10^13`: the --fail-first tasks ask for a retry absurdly far
/// away. Each runs once (no redelivery loop, no panic) and waits, scheduled; the others are
/// done; nothing is dead.
pub fn retry_after_scenario(url: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let record = dir.path().join("record.txt");
    let rec = record.to_str().expect("utf-8 path");
    enqueue(
        url,
        "--count 100 --fail-first 10 --retry-after-secs 10000000000000",
    );
    let worker = spawn_worker(url, &["--concurrency", "8", "--record", rec]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let settled = loop {
        let stats = stats(url);
        if stats["ready"] == 0 && stats["leased"] == 0 && stats["scheduled"] == 10 {
            break stats;
        }
        assert!(Instant::now() < deadline, "never settled: {stats}");
        std::thread::sleep(Duration::from_millis(100));
    };
    // A few more seconds: a redelivery loop would show as more attempts.
    std::thread::sleep(Duration::from_secs(2));
    kill9(worker);
    let done = done_counts(&record);
    for n in 0..100u64 {
        assert_eq!(done.contains_key(&n), n % 10 != 0, "task {n}");
    }
    let waiting = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let queue = skiff::connect(url).await.expect("open the store");
            queue
                .storage()
                .list(skiff::TaskState::Scheduled, None, skiff::Page::first(100))
                .await
                .expect("list scheduled")
        });
    let in_a_year = chrono::Utc::now() + chrono::Duration::days(365);
    let mut ids: Vec<u64> = Vec::new();
    for record in &waiting {
        let env = record.envelope.as_ref().expect("decodes");
        assert_eq!(env.attempt, 1, "one attempt ran, no loop: {env:?}");
        assert!(
            record.run_at > in_a_year,
            "retried far away: {}",
            record.run_at
        );
        let (n, _, _): (u64, u64, u64) = skiff::from_msgpack(&env.args).expect("args");
        ids.push(n);
    }
    ids.sort_unstable();
    assert_eq!(ids, (0..100).step_by(10).collect::<Vec<u64>>());
    let stats = stats(url);
    assert_eq!(stats["dead"], 0, "{settled} then {stats}");
}

/// The chaos run: 40,000 tasks of 0–40 ms (every 13th fails its first attempt), `cycles`
/// cycles of two workers (4 tasks at once each, 2 s leases) killed with `kill -9` after 0.4 s,
/// `every_tenth` after every 10th cycle (a server restart), then a worker that drains the
/// store. Asserts nothing was lost and nothing is left; returns (tasks done before the drain,
/// duplicate runs).
pub fn chaos_scenario(url: &str, cycles: u32, mut every_tenth: impl FnMut()) -> (usize, u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let record = dir.path().join("record.txt");
    let rec = record.to_str().expect("utf-8 path");
    enqueue(
        url,
        "--count 40000 --batch 1000 --sleep-ms 40 --fail-first 13",
    );
    let args = ["--concurrency", "4", "--record", rec, "--lease-ms", "2000"];
    for cycle in 1..=cycles {
        let a = spawn_worker(url, &args);
        let b = spawn_worker(url, &args);
        std::thread::sleep(Duration::from_millis(400));
        kill9(a);
        kill9(b);
        if cycle % 10 == 0 {
            every_tenth();
        }
    }
    let done_before_drain = done_counts(&record).len();
    let mut last: Vec<&str> = args.to_vec();
    last.extend(["--exit-when-idle-ms", "1500"]);
    wait_success(spawn_worker(url, &last), Duration::from_secs(600));
    let duplicates = assert_all_done(&record, 0..40_000);
    assert_drained(url);
    (done_before_drain, duplicates)
}
