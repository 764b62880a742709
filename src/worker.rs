//! The entry point of worker binaries: Huey's consumer flags, logging, signals.
//!
//! Tasks are compiled into the program that runs them, so a worker is a small binary of your
//! own that registers its tasks and hands over to [`main`]:
//!
//! ```no_run
//! use skiff::prelude::*;
//!
//! #[skiff::task(retries = 3, retry_delay = "10s")]
//! async fn send_email(to: String) -> Result<(), TaskError> {
//!     # let _ = to;
//!     Ok(())
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     let mut registry = skiff::Registry::new();
//!     registry.register_fn(send_email);
//!     skiff::worker::main(registry)
//! }
//! ```
//!
//! Then `my-worker --url redis://127.0.0.1/0 -w 32`. [`run`] is the same thing inside a Tokio
//! runtime you already have, with the flags given as a [`WorkerArgs`] value.
//!
//! # Running workers
//!
//! | flag | default | what |
//! |---|---|---|
//! | `--url URL` (env `SKIFF_URL`) | `sqlite://skiff.db` | the store |
//! | `--queue LIST` | `default` | the queue(s) to consume: `emails`, or weighted `critical:6,default:3,low:1` (see [`ConsumerBuilder::queues`](crate::ConsumerBuilder::queues)) |
//! | `--strict-priority` | off | take from the queues in the listed order instead of by weight |
//! | `-w, --workers N` | 4 × CPUs | tasks run at once |
//! | `--prefetch N` | = workers | most tasks leased ahead of a free worker, only while tasks are short (`0`: none; see [`ConsumerBuilder::prefetch`](crate::ConsumerBuilder::prefetch)) |
//! | `--periodic` / `-n, --no-periodic` | periodic on | run the periodic (cron) scheduler |
//! | `-s, --scheduler-interval D` | `1s` | longest idle wait for work (the consumer's poll interval) |
//! | `-t, --shutdown-timeout D` | `30s` | how long a shutdown waits for running tasks |
//! | `--connect-timeout D` | `30s` | how long to wait at start for a store that is unreachable or still loading (Redis `LOADING`, PostgreSQL starting up), retrying with backoff |
//! | `-M, --max-tasks N` | none | stop gracefully after N tasks have finished |
//! | `-f, --flush-locks` | off | release every lock of the store at startup |
//! | `-v, --verbose` / `-q, --quiet` | `info` | log `debug` (`-vv`: `trace`) / only warnings and errors; without either, `RUST_LOG` is honoured |
//! | `-l, --logfile PATH` | stderr | append logs to a file |
//!
//! Durations are seconds (`2`, `0.5`) or carry a unit (`500ms`, `30s`, `5m`, `1h`).
//!
//! # Stopping workers safely
//!
//! SIGTERM or SIGINT (Ctrl-C) starts a graceful shutdown: no new task is fetched, running tasks
//! get up to `--shutdown-timeout` to finish, and those still running then are handed back to
//! the queue for another worker. A second SIGINT during the shutdown exits at once (exit code
//! 130); the tasks held then come back when their leases run out, so nothing is lost either way.
//! Give a process supervisor (systemd's `TimeoutStopSec`, Docker's `stop_grace_period`) more
//! time than the shutdown timeout.

use std::fmt;
use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{ArgAction, Parser};
use queue_core::{Error, Registry, Result, DEFAULT_QUEUE};
use queue_runtime::{Consumer, Event, ShutdownReport};
use tokio::sync::{broadcast, oneshot};
use tracing_subscriber::EnvFilter;

/// The store a worker uses when neither `--url` nor `SKIFF_URL` names one.
pub const DEFAULT_URL: &str = "sqlite://skiff.db";

/// A worker's command-line flags (Huey's consumer flags). See the [module docs](self) for the
/// table.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use clap::Parser;
/// use skiff::worker::WorkerArgs;
///
/// let args = WorkerArgs::try_parse_from(["worker", "--url", "sqlite://jobs.db", "-w", "8", "-n", "-M", "100"])?;
/// assert_eq!(args.workers, Some(8));
/// assert!(!args.periodic());
/// assert_eq!(args.max_tasks, Some(100));
/// assert_eq!(args.shutdown_timeout, Duration::from_secs(30));
/// # Ok::<(), clap::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Parser)]
#[command(
    name = "skiff-worker",
    version,
    about = "Runs Skiff tasks from a queue until stopped (SIGTERM or Ctrl-C stop it gracefully).",
    long_about = None
)]
pub struct WorkerArgs {
    /// The store: sqlite://PATH, redis://HOST:PORT/DB, rediss://…, redis+cluster://HOST:PORT/,
    /// postgres://USER@HOST/DB
    #[arg(long, env = "SKIFF_URL", default_value = DEFAULT_URL, hide_env_values = true)]
    pub url: String,

    /// The queue(s) to consume: NAME, or NAME:WEIGHT,NAME:WEIGHT,… (weight 1 when left out).
    #[arg(long, default_value = DEFAULT_QUEUE)]
    pub queue: String,

    /// Take tasks from the queues in the order listed (the next only when the ones before
    /// have nothing due) instead of by weight.
    #[arg(long)]
    pub strict_priority: bool,

    /// How many tasks run at once [default: 4 × CPUs].
    #[arg(short = 'w', long)]
    pub workers: Option<usize>,

    /// The most tasks leased ahead of a free worker while tasks are short; 0: one lease per
    /// free worker [default: twice the number of workers].
    #[arg(long)]
    pub prefetch: Option<usize>,

    /// Run the periodic (cron) scheduler (the default).
    #[arg(long = "periodic", overrides_with = "no_periodic")]
    pub periodic_flag: bool,

    /// Do not run the periodic scheduler in this worker.
    #[arg(short = 'n', long = "no-periodic", overrides_with = "periodic_flag")]
    pub no_periodic: bool,

    /// The longest idle wait for work before the store is asked again (e.g. 1s, 500ms).
    #[arg(short = 's', long, default_value = "1s", value_parser = parse_duration)]
    pub scheduler_interval: Duration,

    /// Log debug messages (-vv: trace).
    #[arg(short = 'v', long, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Log only warnings and errors.
    #[arg(short = 'q', long)]
    pub quiet: bool,

    /// Append logs to this file instead of stderr.
    #[arg(short = 'l', long)]
    pub logfile: Option<PathBuf>,

    /// How long a shutdown waits for running tasks before handing them back to the queue.
    #[arg(short = 't', long, default_value = "30s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// How long to wait at start for a store that is unreachable or still loading, retrying
    /// with backoff (each wait is logged with its reason).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// Stop gracefully after this many tasks have finished (succeeded, failed for good, or were
    /// dropped).
    #[arg(short = 'M', long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_tasks: Option<u64>,

    /// Release every lock in the store at startup (after a crash of the only worker).
    #[arg(short = 'f', long)]
    pub flush_locks: bool,
}

/// Parses `--queue`: `emails`, or `critical:6,default:3,low:1` (a weight of 1 when left out).
///
/// # Examples
///
/// ```
/// let queues = skiff::worker::parse_queues("critical:6,default:3,low")?;
/// assert_eq!(queues, vec![("critical".into(), 6), ("default".into(), 3), ("low".into(), 1)]);
/// assert!(skiff::worker::parse_queues("a:zero").is_err());
/// # Ok::<(), skiff::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::InvalidInput`] for an empty name or a weight that is not a whole number from 1.
pub fn parse_queues(list: &str) -> Result<Vec<(String, u32)>> {
    list.split(',')
        .map(|item| {
            let item = item.trim();
            let (name, weight) = match item.rsplit_once(':') {
                Some((name, weight)) => {
                    let weight = weight
                        .trim()
                        .parse::<u32>()
                        .ok()
                        .filter(|w| *w >= 1)
                        .ok_or_else(|| {
                            Error::InvalidInput(format!(
                            "--queue: weight `{weight}` of `{name}` is not a whole number from 1"
                        ))
                        })?;
                    (name.trim(), weight)
                }
                None => (item, 1),
            };
            if name.is_empty() {
                return Err(Error::InvalidInput(format!(
                    "--queue: an empty queue name in `{list}`"
                )));
            }
            Ok((name.to_owned(), weight))
        })
        .collect()
}

impl WorkerArgs {
    /// The default flags with the store at `url` (for tests and programs that set flags in
    /// code).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut args = skiff::worker::WorkerArgs::new("sqlite://jobs.db");
    /// args.max_tasks = Some(10);
    /// assert!(args.periodic());
    /// ```
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            queue: DEFAULT_QUEUE.to_owned(),
            workers: None,
            prefetch: None,
            periodic_flag: false,
            no_periodic: false,
            scheduler_interval: Duration::from_secs(1),
            verbose: 0,
            quiet: false,
            logfile: None,
            shutdown_timeout: Duration::from_secs(30),
            connect_timeout: crate::DEFAULT_CONNECT_TIMEOUT,
            max_tasks: None,
            flush_locks: false,
            strict_priority: false,
        }
    }

    /// Whether the periodic scheduler runs (`--periodic`, the default, unless `--no-periodic`
    /// comes last).
    pub fn periodic(&self) -> bool {
        !self.no_periodic
    }

    /// The log filter the flags ask for: `-v` debug, `-vv` trace, `-q` warn; otherwise
    /// `RUST_LOG`, or `info`.
    fn log_filter(&self) -> EnvFilter {
        let level = match (self.verbose, self.quiet) {
            (0, true) => "warn",
            (1, _) => "debug",
            (2.., _) => "trace",
            (0, false) => {
                return EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| EnvFilter::new("info"));
            }
        };
        EnvFilter::new(level)
    }
}

/// Why a worker stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// SIGTERM.
    Terminate,
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// `--max-tasks` tasks had finished.
    MaxTasks,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Terminate => "SIGTERM",
            Self::Interrupt => "SIGINT",
            Self::MaxTasks => "--max-tasks reached",
        })
    }
}

/// What a worker did, returned by [`run`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerReport {
    /// Why it stopped.
    pub stopped_by: StopReason,
    /// Tasks that finished while it ran (succeeded, dead-lettered, canceled, revoked, expired,
    /// unknown), as seen on its event stream.
    pub finished: u64,
    /// What the graceful shutdown did.
    pub shutdown: ShutdownReport,
}

/// Parses the flags, runs a worker on a new Tokio runtime until SIGTERM, SIGINT or
/// `--max-tasks`, and returns the process's exit code. Errors (a bad URL, an unreachable
/// store, no task registered) are logged and printed as one line on stderr.
///
/// # Examples
///
/// See the [module docs](self).
pub fn main(registry: Registry) -> ExitCode {
    let args = WorkerArgs::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("skiff worker: could not start the Tokio runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let logs_to_file = args.logfile.is_some();
    match runtime.block_on(run(registry, args)) {
        Ok(report) => {
            tracing::info!(?report, "worker stopped");
            ExitCode::SUCCESS
        }
        Err(err) => {
            if logs_to_file {
                tracing::error!(error = %err, "worker failed");
            }
            eprintln!("skiff worker: {}", one_line(&err.to_string()));
            ExitCode::FAILURE
        }
    }
}

/// Runs a worker with `args` in the current Tokio runtime: sets up logging (unless a global
/// `tracing` subscriber is set already), opens the store, flushes locks if asked, and runs a
/// consumer of `registry`'s tasks until SIGTERM, SIGINT or `--max-tasks`, then shuts it down
/// gracefully. A second SIGINT during the shutdown exits the process at once.
///
/// # Examples
///
/// ```no_run
/// # use skiff::prelude::*;
/// # #[skiff::task] async fn ping() -> Result<(), TaskError> { Ok(()) }
/// use skiff::worker::{run, WorkerArgs};
///
/// # #[tokio::main] async fn main() -> Result<(), skiff::Error> {
/// let mut registry = skiff::Registry::new();
/// registry.register_fn(ping);
/// let mut args = WorkerArgs::new("sqlite://jobs.db");
/// args.max_tasks = Some(100);
/// let report = run(registry, args).await?;
/// assert!(report.finished >= 100);
/// # Ok(()) }
/// ```
///
/// # Cancel safety
///
/// Dropping the future stops the consumer at once, like a crash: the tasks it held come back
/// when their leases run out.
pub async fn run(registry: Registry, args: WorkerArgs) -> Result<WorkerReport> {
    init_logging(&args)?;
    let queue = crate::connect_within(&args.url, args.connect_timeout).await?;
    tracing::info!(url = %crate::redact(&args.url), queue = %args.queue, "store opened");
    // SKIFF_SIGNING_KEYS / SKIFF_ENCRYPTION_KEYS: the log shows key ids, never keys.
    let sealing = crate::seal::Sealing::from_env()?;
    if !sealing.is_off() {
        tracing::info!(?sealing, "tasks are signed and/or encrypted");
    }
    let queue = queue.with_sealing(sealing);
    if args.flush_locks {
        let flushed = queue.storage().flush_locks().await?;
        tracing::info!(flushed, "released every lock (--flush-locks)");
    }

    let queues = parse_queues(&args.queue)?;
    let mut builder = Consumer::builder(queue)
        .queues(queues)
        .strict_priority(args.strict_priority)
        .periodic(args.periodic())
        .poll_interval(args.scheduler_interval)
        .shutdown_timeout(args.shutdown_timeout)
        .registry(registry);
    if let Some(workers) = args.workers {
        builder = builder.workers(workers);
    }
    if let Some(prefetch) = args.prefetch {
        builder = builder.prefetch(prefetch);
    }
    let consumer = builder.build()?;
    let finished = Arc::new(AtomicU64::new(0));
    let (reached_tx, reached_rx) = oneshot::channel();
    let counter = tokio::spawn(count_finished(
        consumer.events(),
        finished.clone(),
        args.max_tasks,
        reached_tx,
    ));
    let running = consumer.spawn();

    let max_reached = async {
        if reached_rx.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let stopped_by = tokio::select! {
        signal = stop_signal() => signal?,
        () = max_reached => StopReason::MaxTasks,
    };
    tracing::info!(
        reason = %stopped_by,
        timeout = ?args.shutdown_timeout,
        "shutting down: waiting for running tasks (Ctrl-C again to exit at once)"
    );
    let force = tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::warn!("second interrupt: exiting now; held tasks return after their lease");
            std::process::exit(130);
        }
    });
    let shutdown = running.shutdown(args.shutdown_timeout).await;
    force.abort();
    // The event stream closes with the consumer; the counter has seen everything then.
    let _ = tokio::time::timeout(Duration::from_secs(5), counter).await;
    let shutdown = shutdown?;
    Ok(WorkerReport {
        stopped_by,
        finished: finished.load(Ordering::SeqCst),
        shutdown,
    })
}

/// Whether an event ends a task (it will not run again).
fn finishes_task(event: &Event) -> bool {
    matches!(
        event,
        Event::Complete { .. }
            | Event::DeadLettered { .. }
            | Event::Canceled { .. }
            | Event::Revoked { .. }
            | Event::Expired { .. }
            | Event::UnknownTask { .. }
    )
}

/// Counts finished tasks until the stream closes; signals `reached` once `max` have finished.
async fn count_finished(
    mut events: broadcast::Receiver<Event>,
    finished: Arc<AtomicU64>,
    max: Option<u64>,
    reached: oneshot::Sender<()>,
) {
    let mut reached = Some(reached);
    loop {
        match events.recv().await {
            Ok(event) if finishes_task(&event) => {
                let n = finished.fetch_add(1, Ordering::SeqCst) + 1;
                if max.is_some_and(|max| n >= max) {
                    if let Some(tx) = reached.take() {
                        let _ = tx.send(());
                    }
                }
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "the --max-tasks counter fell behind; it may stop late"
                );
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Waits for SIGTERM or SIGINT.
async fn stop_signal() -> Result<StopReason> {
    let signal_error = |err: std::io::Error| {
        Error::InvalidInput(format!("could not listen for stop signals: {err}"))
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).map_err(signal_error)?;
        tokio::select! {
            _ = term.recv() => Ok(StopReason::Terminate),
            res = tokio::signal::ctrl_c() => res.map(|()| StopReason::Interrupt).map_err(signal_error),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .map(|()| StopReason::Interrupt)
            .map_err(signal_error)
    }
}

/// Sets up a global `tracing` subscriber from the flags (`-v`, `-q`, `-l`), unless one is set
/// already (then the flags' log settings are ignored).
fn init_logging(args: &WorkerArgs) -> Result<()> {
    let filter = args.log_filter();
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let installed = match &args.logfile {
        Some(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|err| {
                    Error::InvalidInput(format!("cannot open log file {}: {err}", path.display()))
                })?;
            builder
                .with_ansi(false)
                .with_writer(Mutex::new(file))
                .try_init()
        }
        None => builder.with_writer(std::io::stderr).try_init(),
    };
    if installed.is_err() {
        tracing::debug!("a tracing subscriber is already set; keeping it");
    }
    Ok(())
}

/// Parses `2`, `0.5` (seconds) or `500ms`, `30s`, `5m`, `1h`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use skiff::worker::parse_duration;
///
/// assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
/// assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
/// assert!(parse_duration("soon").is_err());
/// ```
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (e.g. 30s, 500ms, 5m, 2)"))?;
    let seconds = match unit.trim() {
        "" | "s" | "sec" | "secs" => value,
        "ms" => value / 1000.0,
        "m" | "min" | "mins" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`: use ms, s, m or h"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use futures::future::BoxFuture;
    use queue_core::{to_msgpack, Envelope, Queue, Task, TaskContext, TaskError};

    use super::*;

    struct Ping;
    impl Task for Ping {
        const NAME: &'static str = "ping";
        type Args = ();
        type Output = ();
        fn run(_: TaskContext, _: ()) -> BoxFuture<'static, std::result::Result<(), TaskError>> {
            Box::pin(async { Ok(()) })
        }
    }

    fn parse(args: &[&str]) -> WorkerArgs {
        WorkerArgs::try_parse_from(std::iter::once("worker").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn every_flag_parses() {
        let long = parse(&[
            "--url",
            "redis://127.0.0.1:6390/1",
            "--queue",
            "emails",
            "--workers",
            "12",
            "--prefetch",
            "0",
            "--no-periodic",
            "--scheduler-interval",
            "250ms",
            "--verbose",
            "--logfile",
            "/tmp/w.log",
            "--shutdown-timeout",
            "1m",
            "--max-tasks",
            "5",
            "--flush-locks",
        ]);
        let mut expected = WorkerArgs::new("redis://127.0.0.1:6390/1");
        expected.queue = "emails".into();
        expected.workers = Some(12);
        expected.prefetch = Some(0);
        expected.no_periodic = true;
        expected.scheduler_interval = Duration::from_millis(250);
        expected.verbose = 1;
        expected.logfile = Some("/tmp/w.log".into());
        expected.shutdown_timeout = Duration::from_secs(60);
        expected.max_tasks = Some(5);
        expected.flush_locks = true;
        assert_eq!(long, expected);
        assert!(!long.periodic());

        let short = parse(&[
            "--url",
            "sqlite://a.db",
            "-w",
            "3",
            "-n",
            "-s",
            "2",
            "-q",
            "-l",
            "w.log",
            "-t",
            "10",
            "-M",
            "7",
            "-f",
        ]);
        assert_eq!(short.workers, Some(3));
        assert!(!short.periodic());
        assert_eq!(short.scheduler_interval, Duration::from_secs(2));
        assert!(short.quiet);
        assert_eq!(short.logfile, Some(PathBuf::from("w.log")));
        assert_eq!(short.shutdown_timeout, Duration::from_secs(10));
        assert_eq!(short.max_tasks, Some(7));
        assert!(short.flush_locks);

        // The last of --periodic / --no-periodic wins; -vv is trace.
        assert!(parse(&["--url", "x", "-n", "--periodic"]).periodic());
        assert!(!parse(&["--url", "x", "--periodic", "-n"]).periodic());
        assert_eq!(parse(&["--url", "x", "-vv"]).verbose, 2);
        // Defaults.
        let defaults = parse(&["--url", "sqlite://d.db"]);
        assert_eq!(defaults, WorkerArgs::new("sqlite://d.db"));
        assert!(defaults.periodic());
    }

    #[test]
    fn bad_flags_are_refused() {
        let fails = |args: &[&str]| {
            WorkerArgs::try_parse_from(std::iter::once("worker").chain(args.iter().copied()))
                .is_err()
        };
        assert!(fails(&["-w", "many"]));
        assert!(fails(&["-s", "soon"]));
        assert!(fails(&["-t", "5 fortnights"]));
        assert!(fails(&["-v", "-q"]));
        assert!(fails(&["-M", "-1"]));
        assert!(fails(&["-M", "0"]));
        assert!(fails(&["--bogus"]));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("20ms"), Ok(Duration::from_millis(20)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("3d").is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn max_tasks_stops_after_n_finished_tasks_and_flush_locks_releases_locks() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("w.db").display());
        let queue = crate::connect(&url).await.unwrap();
        let now = chrono::Utc::now();
        let total = 50;
        let batch = (0..total)
            .map(|_| Envelope::new(DEFAULT_QUEUE, "ping", to_msgpack(&()).unwrap(), now))
            .collect();
        queue.enqueue_envelopes(batch).await.unwrap();
        let hour = Duration::from_secs(3600);
        // Held by a worker that crashed: it would block others for an hour.
        let storage = queue.storage().clone();
        assert!(storage
            .acquire_lock("stale", "crashed", hour)
            .await
            .unwrap());

        let mut registry = Registry::new();
        registry.register::<Ping>();
        let mut args = WorkerArgs::new(url.clone());
        args.workers = Some(1);
        args.max_tasks = Some(3);
        args.flush_locks = true;
        args.quiet = true;
        let report = run(registry, args).await.unwrap();

        assert_eq!(report.stopped_by, StopReason::MaxTasks);
        assert!(report.finished >= 3, "{report:?}");
        let counts = Queue::counts(&queue).await.unwrap();
        assert!(counts.results >= 3, "{counts:?}");
        assert!(
            counts.ready > 0,
            "the worker stopped before draining the queue: {counts:?}"
        );
        assert_eq!(
            counts.leased, 0,
            "every task held was finished or handed back"
        );
        assert!(
            storage.acquire_lock("stale", "next", hour).await.unwrap(),
            "--flush-locks released the stale lock"
        );
    }

    #[tokio::test]
    async fn a_bad_url_is_an_error_not_a_panic() {
        let mut registry = Registry::new();
        registry.register::<Ping>();
        let mut args = WorkerArgs::new("ftp://user:secret@host/x");
        args.quiet = true;
        let err = run(registry, args).await.unwrap_err().to_string();
        assert!(err.contains("unsupported store URL"), "{err}");
        assert!(!err.contains("secret"), "{err}");
    }
}
