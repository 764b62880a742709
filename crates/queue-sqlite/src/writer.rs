//! Group commit: every write of a store goes through one writer task and one connection.
//!
//! Callers send a message (an enqueue batch, or any other write as a [`Work`]) over a bounded
//! channel and await a oneshot reply. The writer takes the first waiting message, drains
//! whatever else is queued (up to `max_batch` messages or [`MAX_ROWS`] enqueued rows), and runs
//! them all in ONE `BEGIN IMMEDIATE` transaction: 100 producers calling `enqueue` at once cost
//! a handful of commits, not 100. Consecutive enqueue messages are merged into the same
//! multi-row `INSERT`s. Replies are sent only after the commit, so a caller that got `Ok` knows
//! its write is durable (per the `synchronous` setting).
//!
//! # Failures
//!
//! If the batch's transaction fails, it is rolled back and every message is run again in a
//! transaction of its own, so one failing write cannot fail its neighbours. A busy database
//! (another process's writer held the lock beyond `busy_timeout`) is retried a few times first.
//!
//! # Wake-ups
//!
//! Each write reports [`Effects`]; after the commit the writer bumps the store's `work` and
//! `results` watch channels, which wake in-process `wait_for_work` and `wait_result` callers.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use sqlx::{Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot, watch, Mutex};

use queue_core::clock::to_millis;
use queue_core::storage::RevocationCache;
use queue_core::{Clock, EnqueueOutcome, Error, Result};

use crate::direct::Direct;
use crate::enqueue::{insert_tasks, NewTask};
use crate::error::{is_busy, Context};
use crate::files::{FileWatch, Hold};
use crate::sql::MAX_CHUNK;
use crate::wait::WalStamp;

/// The most enqueued rows one transaction takes (more wait for the next one).
pub(crate) const MAX_ROWS: usize = 16_384;

/// What the store's parts share with the writer.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) clock: Arc<dyn Clock>,
    /// Bumped when work may have become available.
    pub(crate) work: watch::Sender<u64>,
    /// Bumped when a result was written.
    pub(crate) results: watch::Sender<u64>,
    pub(crate) counters: Counters,
    /// "No revocation exists" as last read, for `check_revoked` (see `storage.rs`).
    pub(crate) revocations: RevocationCache,
    /// Bumped when the database's files changed, by any process (see the `files` module).
    pub(crate) files: watch::Sender<u64>,
    /// The `-wal` file, when the files are watched: the writer notes its stamp after each
    /// commit, so waits can tell this process's commits from others'.
    pub(crate) wal: Option<PathBuf>,
    /// The `-wal` file as this process's last commit left it.
    own_wal: StdMutex<WalStamp>,
    /// The watch on the database's files, when they are watched (see the `files` module).
    pub(crate) watch: OnceLock<FileWatch>,
}

impl Shared {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            work: watch::channel(0).0,
            results: watch::channel(0).0,
            counters: Counters::default(),
            revocations: RevocationCache::new(),
            files: watch::channel(0).0,
            wal: None,
            own_wal: StdMutex::new(WalStamp::default()),
            watch: OnceLock::new(),
        }
    }

    /// The same, for a store whose files are watched: `wal` is its `-wal` file.
    pub(crate) fn watching(clock: Arc<dyn Clock>, wal: PathBuf) -> Self {
        Self {
            wal: Some(wal),
            ..Self::new(clock)
        }
    }

    /// Keeps the watch on the database's files on while the returned hold lives (`None`
    /// when the files are not watched); a wait takes it before it first looks.
    pub(crate) fn hold_watch(&self) -> Option<Hold<'_>> {
        self.watch.get().map(FileWatch::hold)
    }

    /// After a commit of this process: notes how it left the `-wal` file.
    /// Only while the watch is on: no wait looks at it otherwise (one `stat` per commit saved),
    /// and a wait that turns the watch on and finds the note stale only looks once too often.
    pub(crate) fn note_own_commit(&self) {
        if !self.watch.get().is_some_and(FileWatch::is_on) {
            return;
        }
        if let Some(wal) = &self.wal {
            let stamp = WalStamp::read(wal);
            *self.own_wal.lock().unwrap_or_else(|e| e.into_inner()) = stamp;
        }
    }

    /// Whether the `-wal` file is as this process's last commit left it.
    pub(crate) fn wal_is_own(&self, now: WalStamp) -> bool {
        *self.own_wal.lock().unwrap_or_else(|e| e.into_inner()) == now
    }

    pub(crate) fn now(&self) -> i64 {
        to_millis(self.clock.now())
    }

    /// Wakes the consumers waiting for work (a commit made tasks deliverable).
    pub(crate) fn wake_work(&self) {
        self.work.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn wake(&self, fx: &Effects) {
        if fx.work {
            self.wake_work();
        }
        if fx.results {
            self.results.send_modify(|v| *v = v.wrapping_add(1));
        }
    }
}

/// Writer statistics, for tests and monitoring.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) transactions: AtomicU64,
    pub(crate) operations: AtomicU64,
    pub(crate) busy_retries: AtomicU64,
    pub(crate) direct_enqueues: AtomicU64,
    /// Enqueue calls under way.
    pub(crate) enqueues_in_call: AtomicUsize,
    /// Single enqueues in a row that found no other call under way (see [`Writer::enqueue`]).
    pub(crate) lone_calls: AtomicU32,
}

/// Lone single enqueues in a row after which calls stop yielding before they look for company…
const LONE_CALLS: u32 = 8;
/// …except every this many, which yield to find it again.
const PROBE_EVERY: u32 = 16;

/// One enqueue call under way, counted while it lives.
struct Arrival<'a>(&'a AtomicUsize);

impl<'a> Arrival<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Arrival<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a write changed, so the writer knows whom to wake after the commit.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Effects {
    /// Tasks may have become deliverable.
    pub(crate) work: bool,
    /// A result was written.
    pub(crate) results: bool,
}

/// One write operation, run inside the writer's transaction. `run` may be called more than once
/// (after a rollback), so it must not consume its inputs.
#[async_trait]
pub(crate) trait Work: Send + 'static {
    /// What the caller gets back.
    type Output: Send + 'static;

    /// Runs the operation on the writer's connection, inside a transaction, at `now` (ms).
    async fn run(
        &mut self,
        conn: &mut SqliteConnection,
        now: i64,
        fx: &mut Effects,
    ) -> Result<Self::Output>;
}

trait Job: Send {
    fn run<'a>(
        &'a mut self,
        conn: &'a mut SqliteConnection,
        now: i64,
        fx: &'a mut Effects,
    ) -> BoxFuture<'a, Result<()>>;

    fn finish(self: Box<Self>, err: Option<Error>);
}

struct Pending<W: Work> {
    work: W,
    out: Option<W::Output>,
    reply: oneshot::Sender<Result<W::Output>>,
}

impl<W: Work> Job for Pending<W> {
    fn run<'a>(
        &'a mut self,
        conn: &'a mut SqliteConnection,
        now: i64,
        fx: &'a mut Effects,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.out = Some(self.work.run(conn, now, fx).await?);
            Ok(())
        })
    }

    fn finish(self: Box<Self>, err: Option<Error>) {
        let result = match (err, self.out) {
            (Some(e), _) => Err(e),
            (None, Some(out)) => Ok(out),
            (None, None) => Err(Error::storage_msg(
                crate::error::BACKEND,
                "write produced no output",
            )),
        };
        let _ = self.reply.send(result);
    }
}

enum Msg {
    Enqueue {
        rows: Vec<NewTask>,
        out: Vec<EnqueueOutcome>,
        reply: oneshot::Sender<Result<Vec<EnqueueOutcome>>>,
    },
    Job(Box<dyn Job>),
}

impl Msg {
    fn rows(&self) -> usize {
        match self {
            Self::Enqueue { rows, .. } => rows.len(),
            Self::Job(_) => 1,
        }
    }

    fn finish(self, err: Option<Error>) {
        match self {
            Self::Enqueue { out, reply, .. } => {
                let _ = reply.send(match err {
                    Some(e) => Err(e),
                    None => Ok(out),
                });
            }
            Self::Job(job) => job.finish(err),
        }
    }
}

/// The writer's connection: taken by the writer task for each batch, or by a caller whose
/// single enqueue finds the writer idle (see [`Writer::enqueue`]). `None` once closed.
type Conn = Arc<Mutex<Option<SqliteConnection>>>;

/// The sending side of the writer, held by the store.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Msg>,
    conn: Conn,
    shared: Arc<Shared>,
    /// The connection for single enqueues on their caller's thread, when that is on.
    direct: Option<Arc<Direct>>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Msg")
    }
}

fn stopped() -> Error {
    Error::ShutDown(
        "the SQLite store's writer task has stopped (was its Tokio runtime shut down?)".into(),
    )
}

impl Writer {
    /// Starts the writer task on `conn`; `direct` serves single enqueues on their caller's
    /// thread (see the `direct` module).
    pub(crate) fn spawn(
        conn: SqliteConnection,
        shared: Arc<Shared>,
        max_batch: usize,
        direct: Option<Direct>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(max_batch.max(64) * 4);
        let conn = Arc::new(Mutex::new(Some(conn)));
        tokio::spawn(run(conn.clone(), rx, shared.clone(), max_batch));
        Self {
            tx,
            conn,
            shared,
            direct: direct.map(Arc::new),
        }
    }

    /// Enqueues rows through group commit.
    ///
    /// When the writer is idle (nothing queued, its connection free), no other enqueue is
    /// under way and the rows fit one `INSERT`, the caller runs that statement on the writer's
    /// connection itself: a single
    /// `enqueue` then crosses to SQLite's thread and back, not through the writer task as well
    /// (two thread hops fewer, about a third of the call on a 2-core machine); one task, with
    /// [`SqliteOptions::direct_enqueue`](crate::SqliteOptions::direct_enqueue) on, does not
    /// cross threads at all (see the `direct` module). Otherwise the rows join the writer's
    /// next transaction.
    pub(crate) async fn enqueue(&self, rows: Vec<NewTask>) -> Result<Vec<EnqueueOutcome>> {
        let in_call = &self.shared.counters.enqueues_in_call;
        let _arrived = Arrival::new(in_call);
        if rows.len() <= MAX_CHUNK && self.tx.capacity() == self.tx.max_capacity() {
            let lone_calls = &self.shared.counters.lone_calls;
            let direct = match (&self.direct, rows.as_slice()) {
                (Some(direct), [task]) => {
                    // Calls that arrive together (tasks of this thread, or of others) show up
                    // in the count meanwhile, and group commit then serves them all. On a
                    // runtime's worker a yield also polls the I/O driver and wakes another
                    // worker, so a producer that keeps finding itself alone (a web handler's
                    // enqueue at a time) yields only on every PROBE_EVERY-th call, enough for
                    // tasks of the same thread to show up and end the streak.
                    let lone = lone_calls.load(Ordering::Relaxed);
                    if lone < LONE_CALLS || lone % PROBE_EVERY == 0 {
                        tokio::task::yield_now().await;
                    }
                    Some((direct, task))
                }
                _ => None,
            };
            let by_itself = in_call.load(Ordering::Relaxed) == 1;
            if direct.is_some() {
                if by_itself {
                    lone_calls.fetch_add(1, Ordering::Relaxed);
                } else {
                    lone_calls.store(0, Ordering::Relaxed);
                }
            }
            if by_itself {
                if let Ok(mut guard) = self.conn.try_lock() {
                    if let Some(conn) = guard.as_mut() {
                        if let Some((direct, task)) = direct {
                            if let Some(outcome) = direct.enqueue(task, self.shared.now()) {
                                self.after_direct(&outcome);
                                return Ok(vec![outcome]);
                            }
                        }
                        return alone(conn, self, &rows).await;
                    }
                }
            }
        }
        let (reply, rx) = oneshot::channel();
        let msg = Msg::Enqueue {
            rows,
            out: Vec::new(),
            reply,
        };
        self.tx.send(msg).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// After a direct enqueue's commit: the counters and wake-ups the writer would do.
    fn after_direct(&self, outcome: &EnqueueOutcome) {
        let shared = &*self.shared;
        shared.note_own_commit();
        let c = &shared.counters;
        c.transactions.fetch_add(1, Ordering::Relaxed);
        c.operations.fetch_add(1, Ordering::Relaxed);
        c.direct_enqueues.fetch_add(1, Ordering::Relaxed);
        if matches!(outcome, EnqueueOutcome::Enqueued(_)) {
            shared.wake_work();
        }
    }

    /// Runs `work` in the writer's next transaction.
    pub(crate) async fn call<W: Work>(&self, work: W) -> Result<W::Output> {
        let (reply, rx) = oneshot::channel();
        let job = Pending {
            work,
            out: None,
            reply,
        };
        self.tx
            .send(Msg::Job(Box::new(job)))
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

/// One enqueue statement run by its caller on the idle writer's connection (see
/// [`Writer::enqueue`]), with the writer's busy retries, counters and wake-ups.
async fn alone(
    conn: &mut SqliteConnection,
    writer: &Writer,
    rows: &[NewTask],
) -> Result<Vec<EnqueueOutcome>> {
    let shared = &*writer.shared;
    // If the caller stops waiting, the statement still runs on SQLite's thread: the guard
    // then has the writer wake the consumers after it (see `Nudge`).
    let mut nudge = NudgeOnDrop(Some(writer));
    let rows: Vec<&NewTask> = rows.iter().collect();
    let mut delay = Duration::from_millis(10);
    let mut tries = 0;
    let result = loop {
        let mut fx = Effects::default();
        match insert_tasks(conn, &rows, shared.now(), &mut fx).await {
            Err(err) if is_busy(&err) && tries < 4 => {
                shared.counters.busy_retries.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %err, "SQLite store busy; retrying the write");
                tokio::time::sleep(delay).await;
                delay *= 4;
                tries += 1;
            }
            other => break other.map(|out| (out, fx)),
        }
    };
    nudge.0 = None;
    shared.note_own_commit();
    let (out, fx) = result?;
    let c = &shared.counters;
    c.transactions.fetch_add(1, Ordering::Relaxed);
    c.operations.fetch_add(1, Ordering::Relaxed);
    shared.wake(&fx);
    Ok(out)
}

/// Sends the writer a [`Nudge`] when dropped while armed: a caller of [`alone`] stopped
/// waiting, and its statement may still be running.
struct NudgeOnDrop<'a>(Option<&'a Writer>);

impl Drop for NudgeOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(writer) = self.0 {
            let (reply, _) = oneshot::channel();
            let job = Pending {
                work: Nudge,
                out: None,
                reply,
            };
            if writer.tx.try_send(Msg::Job(Box::new(job))).is_err() {
                // The writer is busy (or gone): waking now may come before the commit, and
                // then the woken only look again at their next poll.
                writer.shared.wake_work();
            }
        }
    }
}

/// A write of nothing that wakes the consumers after the writer's next commit. The writer's
/// transaction starts on the connection after any statement already sent to it, so the
/// wake-up follows the commit of an enqueue whose caller stopped waiting.
struct Nudge;

#[async_trait]
impl Work for Nudge {
    type Output = ();

    async fn run(&mut self, _: &mut SqliteConnection, _: i64, fx: &mut Effects) -> Result<()> {
        fx.work = true;
        Ok(())
    }
}

async fn run(conn: Conn, mut rx: mpsc::Receiver<Msg>, shared: Arc<Shared>, max_batch: usize) {
    while let Some(first) = rx.recv().await {
        let mut guard = conn.lock().await;
        let Some(conn) = guard.as_mut() else {
            first.finish(Some(stopped()));
            continue;
        };
        let mut rows = first.rows();
        let mut batch = vec![first];
        while batch.len() < max_batch && rows < MAX_ROWS {
            match rx.try_recv() {
                Ok(msg) => {
                    rows += msg.rows();
                    batch.push(msg);
                }
                Err(_) => break,
            }
        }
        execute(conn, &shared, batch).await;
    }
    if let Some(conn) = conn.lock().await.take() {
        let _ = conn.close().await;
    }
}

async fn execute(conn: &mut SqliteConnection, shared: &Shared, mut batch: Vec<Msg>) {
    let mut fx = Effects::default();
    let result = attempt(conn, shared, &mut batch, &mut fx).await;
    shared.note_own_commit();
    match result {
        Ok(()) => {
            shared.wake(&fx);
            batch.into_iter().for_each(|m| m.finish(None));
        }
        Err(err) if batch.len() == 1 => {
            if let Some(m) = batch.pop() {
                m.finish(Some(err));
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, ops = batch.len(), "SQLite group commit failed; retrying each write alone");
            for mut msg in batch {
                let mut fx = Effects::default();
                let result = attempt(conn, shared, std::slice::from_mut(&mut msg), &mut fx).await;
                shared.note_own_commit();
                if result.is_ok() {
                    shared.wake(&fx);
                }
                msg.finish(result.err());
            }
        }
    }
}

/// Runs `msgs` in one transaction, retrying a busy database a few times.
async fn attempt(
    conn: &mut SqliteConnection,
    shared: &Shared,
    msgs: &mut [Msg],
    fx: &mut Effects,
) -> Result<()> {
    let mut delay = Duration::from_millis(10);
    for _ in 0..4 {
        match once(conn, shared, msgs, fx).await {
            Err(err) if is_busy(&err) => {
                shared.counters.busy_retries.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %err, "SQLite store busy; retrying the write");
                *fx = Effects::default();
                tokio::time::sleep(delay).await;
                delay *= 4;
            }
            other => return other,
        }
    }
    once(conn, shared, msgs, fx).await
}

async fn once(
    conn: &mut SqliteConnection,
    shared: &Shared,
    msgs: &mut [Msg],
    fx: &mut Effects,
) -> Result<()> {
    if let [Msg::Enqueue { rows, out, .. }] = msgs {
        if rows.len() <= MAX_CHUNK {
            // One enqueue message that fits one INSERT (the usual single `enqueue` call): that
            // statement is atomic by itself, so it runs without BEGIN and COMMIT, each a round
            // trip to SQLite's thread.
            let now = shared.now();
            let rows: Vec<&NewTask> = rows.iter().collect();
            *out = insert_tasks(conn, &rows, now, fx).await?;
            let c = &shared.counters;
            c.transactions.fetch_add(1, Ordering::Relaxed);
            c.operations.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
    }
    let mut tx = conn
        .begin_with("BEGIN IMMEDIATE")
        .await
        .ctx("begin a write transaction")?;
    // Taken after the lock: a write that waited for another process still uses the time of
    // its own commit.
    let now = shared.now();
    let mut i = 0;
    while i < msgs.len() {
        let end = (i..msgs.len())
            .find(|&j| !matches!(msgs[j], Msg::Enqueue { .. }))
            .unwrap_or(msgs.len());
        if end > i {
            let outcomes = {
                let rows: Vec<&NewTask> = msgs[i..end]
                    .iter()
                    .flat_map(|m| match m {
                        Msg::Enqueue { rows, .. } => rows.iter(),
                        Msg::Job(_) => [].iter(),
                    })
                    .collect();
                insert_tasks(&mut tx, &rows, now, fx).await?
            };
            let mut outcomes = outcomes.into_iter();
            for msg in &mut msgs[i..end] {
                if let Msg::Enqueue { rows, out, .. } = msg {
                    *out = outcomes.by_ref().take(rows.len()).collect();
                }
            }
            i = end;
        } else {
            if let Msg::Job(job) = &mut msgs[i] {
                job.run(&mut tx, now, fx).await?;
            }
            i += 1;
        }
    }
    tx.commit().await.ctx("commit")?;
    let c = &shared.counters;
    c.transactions.fetch_add(1, Ordering::Relaxed);
    c.operations.fetch_add(msgs.len() as u64, Ordering::Relaxed);
    Ok(())
}
