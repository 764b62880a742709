//! The store's notifier: one task and one connection that tell other processes' waits about
//! committed writes (see the `notify` module for why it happens after the commit).
//!
//! A hot write (`enqueue`, `complete`, the dead-lettering in `fetch`) hands its queues and
//! result ids to the notifier ([`Notifier::after_commit`]) and returns. The notifier runs
//! [`NOTIFY_WAITING`](crate::notify::NOTIFY_WAITING) for everything handed to it since its last
//! round, on a connection of its own: the read starts after every commit it covers, so a wait
//! registered before it is notified, and one registered after it looks once more and sees
//! those writes. Writes that arrive while a round runs join the next round: 64 producers cost
//! about one read per round trip, not one each; and the writers' pooled connections go back
//! to the pool at once (no round trip on them after the write).
//!
//! **Queues nobody waits on are not read for.** A store that registers a wait on a queue
//! announces it on the store's channel (`a<store>:<ms>:<queue>`, see
//! [`REGISTER_WORK_WAIT`](crate::wait::REGISTER_WORK_WAIT)), and the listener keeps what it
//! hears in a [`Watch`]: the queues other stores wait on, and until when at most. A write to a
//! queue no other store waits on hands nothing to the notifier (this store's own waits are
//! woken directly by the writer). That read cost a one-producer web handler a quarter of its
//! rate on an idle server (3,094–3,378 against 4,081–4,129 enqueues/s).
//!
//! Skipping must not lose a wake-up. A wait registers, then looks once more; a write that
//! commits after that look and skips because its store has not heard of the registration yet
//! would leave the wait asleep. So a skipped queue is remembered, and when a registration on
//! it is heard, the notifier reads for it then (a catch-up round): the registration committed
//! before its announcement arrived, so that read sees it. The watch is complete only while the
//! listener listens: until it has listened and read the registrations that hold (the seed,
//! [`WATCHED_QUEUES`](crate::notify::WATCHED_QUEUES)), and again after it loses its connection
//! (announcements sent meanwhile are lost), every write is read for, and the seed ends with a
//! catch-up round for every queue skipped before. A store that does not listen never skips.
//!
//! A failed round is tried once more on a new connection, then logged; those waits then find
//! the work when their timeout makes them look again. The task ends with the store, after a
//! last round for what was handed to it before (if the runtime still runs: a process that
//! exits at once may not send it, and those waits find the work at their next poll).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgConnection};
use tokio::sync::Notify;
use tokio_util::sync::{CancellationToken, DropGuard};
use uuid::Uuid;

use crate::sql::Sql;

/// Queues and result ids handed over since the last round.
#[derive(Debug, Default)]
struct Pending {
    queues: BTreeSet<String>,
    results: Vec<Uuid>,
}

/// What this store knows of other stores' waits on queues (see the [module docs](self)).
#[derive(Debug, Default)]
struct Watch {
    /// Whether `queues` holds every registration that may still hold: false until the
    /// listener has listened and read them, and again once it loses its connection.
    complete: bool,
    /// Queues other stores registered waits on, and until when (this process's clock, at
    /// the latest) those registrations hold.
    queues: HashMap<String, Instant>,
    /// Queues a write skipped since the last registration heard on them.
    skipped: HashSet<String>,
}

/// What the store's writers and listener hand to the notifier's task.
#[derive(Debug)]
pub(crate) struct Inbox {
    pending: Mutex<Pending>,
    ready: Notify,
    watch: Mutex<Watch>,
    /// This store's name in the announcements of its registrations (it ignores its own).
    store: String,
}

impl Inbox {
    pub(crate) fn new() -> Self {
        Self {
            pending: Mutex::new(Pending::default()),
            ready: Notify::new(),
            watch: Mutex::new(Watch::default()),
            store: Uuid::now_v7().simple().to_string(),
        }
    }

    /// This store's name in the announcements of its registrations.
    pub(crate) fn store(&self) -> &str {
        &self.store
    }

    fn watch(&self) -> MutexGuard<'_, Watch> {
        self.watch.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands `queues` and `results` to the task (nothing to do if both are empty).
    fn hand(&self, queues: Vec<String>, results: Vec<Uuid>) {
        if queues.is_empty() && results.is_empty() {
            return;
        }
        {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.queues.extend(queues);
            pending.results.extend(results);
        }
        self.ready.notify_one();
    }

    /// Keeps the queues of `queues` that another store may wait on; the others are
    /// remembered as skipped. Keeps them all while the watch is incomplete.
    fn waited_on(&self, queues: &mut Vec<String>) {
        let mut watch = self.watch();
        if !watch.complete {
            return;
        }
        let now = Instant::now();
        let Watch {
            queues: watched,
            skipped,
            ..
        } = &mut *watch;
        queues.retain(|queue| match watched.get(queue) {
            Some(&until) if until > now => true,
            held => {
                if held.is_some() {
                    watched.remove(queue);
                }
                if !skipped.contains(queue) {
                    skipped.insert(queue.clone());
                }
                false
            }
        });
    }

    /// The listener heard store `store` register a wait on `queue` for `hold`: writes to
    /// `queue` are read for from now on, and once now if one was skipped.
    pub(crate) fn registration_heard(&self, store: &str, hold: Duration, queue: &str) {
        if store == self.store {
            return;
        }
        let until = later(Instant::now(), hold);
        let catch_up = {
            let mut watch = self.watch();
            let held = watch.queues.entry(queue.to_owned()).or_insert(until);
            *held = (*held).max(until);
            watch.skipped.remove(queue)
        };
        if catch_up {
            self.hand(vec![queue.to_owned()], Vec::new());
        }
    }

    /// The listener listens and has read the registrations that hold (`queue`, for how much
    /// longer): the watch is complete, and every queue skipped before is read for once.
    pub(crate) fn watch_from(&self, registrations: Vec<(String, Duration)>) {
        let now = Instant::now();
        let skipped: Vec<String> = {
            let mut watch = self.watch();
            watch.queues = registrations
                .into_iter()
                .map(|(queue, left)| (queue, later(now, left)))
                .collect();
            watch.complete = true;
            watch.skipped.drain().collect()
        };
        self.hand(skipped, Vec::new());
    }

    /// The listener lost its connection: announcements may be lost until it listens again.
    pub(crate) fn lose_sight(&self) {
        let mut watch = self.watch();
        watch.complete = false;
        watch.queues.clear();
    }
}

/// The longest a registration is taken to hold: announcements come from the server, where a
/// hand-made one may name any length.
const LONGEST_HOLD: Duration = Duration::from_secs(365 * 24 * 3600);

/// `from + hold`, with `hold` at most [`LONGEST_HOLD`] (an `Instant` cannot hold any sum).
fn later(from: Instant, hold: Duration) -> Instant {
    from + hold.min(LONGEST_HOLD)
}

/// The sending side, held by the store; dropping it ends the task.
#[derive(Debug)]
pub(crate) struct Notifier {
    inbox: Arc<Inbox>,
    _stop: DropGuard,
}

/// What the notifier's task needs.
pub(crate) struct Config {
    pub(crate) connect: PgConnectOptions,
    pub(crate) connect_timeout: Duration,
    pub(crate) query_timeout: Duration,
    pub(crate) sql: Arc<Sql>,
    pub(crate) channel: String,
}

impl Notifier {
    /// Starts the notifier's task, which takes what is handed to `inbox`.
    pub(crate) fn spawn(config: Config, inbox: Arc<Inbox>) -> Self {
        let stop = CancellationToken::new();
        tokio::spawn(run(config, inbox.clone(), stop.clone()));
        Self {
            inbox,
            _stop: stop.drop_guard(),
        }
    }

    /// After a committed write: other processes' waits on `queues` and `results` are to be
    /// notified (queues no other store waits on are skipped: see the [module docs](self)).
    pub(crate) fn after_commit(&self, mut queues: Vec<String>, results: Vec<Uuid>) {
        self.inbox.waited_on(&mut queues);
        self.inbox.hand(queues, results);
    }
}

async fn run(config: Config, inbox: Arc<Inbox>, stop: CancellationToken) {
    let mut conn: Option<PgConnection> = None;
    loop {
        // What was handed over before the store was dropped is still sent (a producer that
        // enqueues and drops its store at once, while the runtime goes on): the store's last
        // writes are checked first, then the stop, after one last round.
        let stopping = tokio::select! {
            biased;
            () = inbox.ready.notified() => false,
            () = stop.cancelled() => true,
        };
        let round = std::mem::take(&mut *inbox.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if round.queues.is_empty() && round.results.is_empty() {
            if stopping {
                return;
            }
            continue;
        }
        let queues: Vec<String> = round.queues.into_iter().collect();
        let mut last = None;
        for _ in 0..2 {
            match notify(&config, &mut conn, &queues, &round.results).await {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(err) => {
                    conn = None;
                    last = Some(err);
                }
            }
        }
        if let Some(err) = last {
            tracing::warn!(error = %err, "could not notify waiting consumers after a write");
        }
        if stopping {
            return;
        }
    }
}

/// One round on `conn` (opened first if there is none), within the timeouts.
async fn notify(
    config: &Config,
    conn: &mut Option<PgConnection>,
    queues: &[String],
    results: &[Uuid],
) -> Result<(), String> {
    if conn.is_none() {
        let opened = tokio::time::timeout(config.connect_timeout, config.connect.connect())
            .await
            .map_err(|_| format!("no connection within {:?}", config.connect_timeout))?
            .map_err(|e| crate::redact::redact_url(&e.to_string()))?;
        *conn = Some(opened);
    }
    let Some(c) = conn.as_mut() else {
        return Err("no connection".into());
    };
    let call = crate::notify::after_commit(c, &config.sql, &config.channel, queues, results);
    match tokio::time::timeout(config.query_timeout, call).await {
        Ok(done) => done.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {:?}", config.query_timeout)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the writers handed to the task so far (and forgets it).
    fn handed(inbox: &Inbox) -> Vec<String> {
        let round = std::mem::take(&mut *inbox.pending.lock().unwrap());
        round.queues.into_iter().collect()
    }

    fn write(inbox: &Inbox, queues: &[&str]) {
        let mut queues: Vec<String> = queues.iter().map(|q| (*q).to_owned()).collect();
        inbox.waited_on(&mut queues);
        inbox.hand(queues, Vec::new());
    }

    #[test]
    fn until_the_watch_is_complete_every_write_is_read_for() {
        let inbox = Inbox::new();
        write(&inbox, &["a", "b"]);
        assert_eq!(handed(&inbox), ["a", "b"]);
        inbox.watch_from(Vec::new());
        write(&inbox, &["a"]);
        assert!(handed(&inbox).is_empty(), "nobody waits on a");
        inbox.lose_sight();
        write(&inbox, &["a"]);
        assert_eq!(
            handed(&inbox),
            ["a"],
            "announcements may be lost while not listening"
        );
    }

    #[test]
    fn only_queues_another_store_waits_on_are_read_for() {
        let inbox = Inbox::new();
        inbox.watch_from(vec![("seeded".to_owned(), Duration::from_secs(60))]);
        inbox.registration_heard("other", Duration::from_secs(60), "heard");
        inbox.registration_heard(inbox.store(), Duration::from_secs(60), "own");
        inbox.registration_heard("other", Duration::ZERO, "expired");
        inbox.registration_heard("other", Duration::MAX, "forever");
        write(
            &inbox,
            &["seeded", "heard", "own", "expired", "forever", "idle"],
        );
        assert_eq!(handed(&inbox), ["forever", "heard", "seeded"]);
    }

    #[test]
    fn a_registration_heard_after_a_skipped_write_is_read_for_at_once() {
        let inbox = Inbox::new();
        inbox.watch_from(Vec::new());
        write(&inbox, &["jobs", "mail"]);
        assert!(handed(&inbox).is_empty());
        // The wait on "jobs" may have looked before that write committed: a catch-up round.
        inbox.registration_heard("other", Duration::from_secs(60), "jobs");
        assert_eq!(handed(&inbox), ["jobs"]);
        // Once only; later writes are read for because the queue is watched.
        inbox.registration_heard("other", Duration::from_secs(60), "jobs");
        assert!(handed(&inbox).is_empty());
        write(&inbox, &["jobs"]);
        assert_eq!(handed(&inbox), ["jobs"]);
        // "mail" was skipped too: a watch read anew after a lost connection reads for it once.
        inbox.lose_sight();
        inbox.watch_from(Vec::new());
        assert_eq!(handed(&inbox), ["mail"]);
    }
}
