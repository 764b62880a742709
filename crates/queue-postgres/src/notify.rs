//! Wake-ups: one `LISTEN` connection per store, and the registry its waits subscribe to.
//!
//! Writes that give a queue work (enqueue, retries, deferrals, follow-ups, reschedules,
//! requeues) notify the store's channel with `w<queue>`, and writes that store results notify
//! `r<id>,<id>…` (or `r*` for a large batch). A wait's registration on a queue announces itself
//! with `a<store>:<ms>:<queue>`, so that writers know whom to notify (see the `notifier`
//! module).
//!
//! * The hot writes (`enqueue`, `complete`, the dead-lettering in `fetch`) notify only whom
//!   some process waits for, and only after their commit ([`after_commit`], one read of the
//!   `work_waits` / `result_waits` tables, [`NOTIFY_WAITING`], run by the store's notifier
//!   task on its own connection, so the writer returns without waiting for it, and writes
//!   that arrive together share one read: see the `notifier` module). A NOTIFY takes a lock for the
//!   whole cluster from its commit until the commit is flushed, so writers that notify in
//!   their own transaction commit one at a time, one WAL flush each: 64 producers that
//!   notified got no more than one producer plus a little. A wait registers before it sleeps
//!   and then looks once more (see the `wait` module), so a wake-up is never lost: either that
//!   look sees the write, or the writer's read after its commit sees the registration. The
//!   notifying transaction commits with `synchronous_commit = off`: it stores nothing.
//! * Application transactions (`EnqueueIn`) and the rare writes (reschedules, requeues,
//!   revocation-driven paths) still notify in their own statement, delivered when — and only
//!   if — their transaction commits.
//!
//! The store's listener task holds a `PgListener` on its own connection and turns each
//! notification into a wake-up of the waits registered for that queue or task id
//! ([`Waiters`]). Waits of this process are also woken directly by the store's own writes,
//! without waiting for the round trip through the server.
//!
//! When the connection is lost, the task marks the listener down (waits then poll every
//! `poll_interval`), reconnects with backoff (50 ms doubling to 2 s), and once it listens
//! again wakes every wait, since notifications sent meanwhile were lost. A connection that
//! died without being closed (a network partition) is found by a `SELECT 1` after
//! [`CHECK_WHEN_QUIET`] without a notification, which must answer within the query timeout.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::PgConnection;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::Context;
use crate::notifier::Inbox;
use crate::sql::{q, Sql};

/// After a commit: `pg_notify` for each queue of `$2` and for the task ids of `$3` that some
/// process waits for (registrations of the ids go: their result is written). A read of two
/// tiny tables and nothing else when nobody waits; otherwise a transaction that commits
/// without waiting for its WAL flush (it stores nothing that must survive a crash).
pub(crate) const NOTIFY_WAITING: &str = "\
WITH w AS (
    SELECT 'w' || queue AS m FROM {s}.work_waits WHERE queue = ANY ($2::text[]) AND until > now()
), r AS (
    DELETE FROM {s}.result_waits WHERE id = ANY ($3::uuid[]) RETURNING id
)
SELECT count(pg_notify($1, m)) FROM (
    SELECT m FROM w
    UNION ALL
    SELECT CASE WHEN count(*) > 200 THEN 'r*' ELSE 'r' || string_agg(id::text, ',') END
    FROM r HAVING count(*) > 0
) n
WHERE set_config('synchronous_commit', 'off', true) IS NOT NULL";

/// Notifies, after a write committed, the waits of other processes on `queues` and `results`
/// (this process's own waits are woken directly by the caller). See the module docs.
pub(crate) async fn after_commit(
    conn: &mut PgConnection,
    sql: &Sql,
    channel: &str,
    queues: &[String],
    results: &[Uuid],
) -> queue_core::Result<()> {
    if queues.is_empty() && results.is_empty() {
        return Ok(());
    }
    sqlx::query(q(&sql.notify_waiting))
        .bind(channel)
        .bind(queues)
        .bind(results)
        .execute(conn)
        .await
        .ctx("notify waiting consumers")?;
    Ok(())
}

/// The queues some store waits on, and for how many more milliseconds, at most a year (read
/// by the listener once it listens: see the `notifier` module). A registration written by hand
/// as `infinity` reads as a year, not as an error that would keep the listener down.
pub(crate) const WATCHED_QUEUES: &str = "\
SELECT queue, CASE WHEN until = 'infinity' THEN 31536000000
                   ELSE least(ceil(extract(epoch FROM until - now()) * 1000), 31536000000)::int8 END
FROM {s}.work_waits WHERE until > now()";

/// Wait subscriptions by key (queue name or task id).
#[derive(Debug)]
pub(crate) struct Registry<K> {
    map: Mutex<HashMap<K, watch::Sender<u64>>>,
}

impl<K: Eq + Hash + Clone> Registry<K> {
    fn new() -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, watch::Sender<u64>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribes to wake-ups of `key`; wake-ups from now on are seen by the subscription.
    pub(crate) fn subscribe(&self, key: K) -> Subscription<'_, K> {
        let rx = self
            .lock()
            .entry(key.clone())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        Subscription {
            registry: self,
            key,
            rx: Some(rx),
        }
    }

    /// Wakes the subscriptions of `key`, if any.
    pub(crate) fn wake(&self, key: &K) {
        if let Some(tx) = self.lock().get(key) {
            tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Wakes every subscription.
    pub(crate) fn wake_all(&self) {
        for tx in self.lock().values() {
            tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

/// A wait's subscription; removes its registry entry when the last subscriber goes.
pub(crate) struct Subscription<'a, K: Eq + Hash + Clone> {
    registry: &'a Registry<K>,
    key: K,
    rx: Option<watch::Receiver<u64>>,
}

impl<K: Eq + Hash + Clone> Subscription<'_, K> {
    /// Forgets wake-ups so far.
    pub(crate) fn mark_seen(&mut self) {
        if let Some(rx) = self.rx.as_mut() {
            rx.borrow_and_update();
        }
    }

    /// Resolves at the next wake-up after the last [`mark_seen`](Self::mark_seen).
    pub(crate) async fn woken(&mut self) {
        match self.rx.as_mut() {
            Some(rx) => {
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending().await,
        }
    }
}

impl<K: Eq + Hash + Clone> Drop for Subscription<'_, K> {
    fn drop(&mut self) {
        drop(self.rx.take());
        let mut map = self.registry.lock();
        if map
            .get(&self.key)
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            map.remove(&self.key);
        }
    }
}

/// The wake-ups of one store.
#[derive(Debug)]
pub(crate) struct Waiters {
    /// Waits for work, by queue.
    pub(crate) work: Registry<String>,
    /// Waits for results, by task id.
    pub(crate) results: Registry<Uuid>,
    /// Whether the listener is up (waits poll while it is not).
    pub(crate) listening: watch::Sender<bool>,
    /// Queues this process registered in `work_waits`, and until when (local clock, with a
    /// margin) the registration holds. Forgotten whenever the listener goes down or comes
    /// back: a crashed server empties the unlogged table.
    registered: Mutex<HashMap<String, Instant>>,
    /// Changes each time the listener goes down or comes back: a registration made in an
    /// earlier epoch may have been lost.
    epoch: std::sync::atomic::AtomicU64,
    /// The notifier's inbox, told of other stores' registrations.
    pub(crate) inbox: Arc<Inbox>,
}

impl Waiters {
    pub(crate) fn new(inbox: Arc<Inbox>) -> Self {
        Self {
            work: Registry::new(),
            results: Registry::new(),
            listening: watch::channel(false).0,
            registered: Mutex::new(HashMap::new()),
            epoch: std::sync::atomic::AtomicU64::new(0),
            inbox,
        }
    }

    /// The listener's epoch (see the field).
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn registered(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.registered.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether this process's registration of a wait on `queue` holds until `until`.
    pub(crate) fn work_registered(&self, queue: &str, until: Instant) -> bool {
        self.registered()
            .get(queue)
            .is_some_and(|&held| held >= until)
    }

    /// Records a registration of a wait on `queue` that holds until `held`, made in `epoch`
    /// (not recorded if the listener went down or came back since).
    pub(crate) fn record_work_registration(&self, queue: &str, held: Instant, epoch: u64) {
        let mut registered = self.registered();
        if self.epoch() == epoch {
            registered.insert(queue.to_owned(), held);
        }
    }

    /// Acts on one notification payload.
    pub(crate) fn dispatch(&self, payload: &str) {
        match payload.split_at_checked(1) {
            Some(("w", "*")) => self.work.wake_all(),
            Some(("w", queue)) => self.work.wake(&queue.to_owned()),
            Some(("r", "*")) => self.results.wake_all(),
            Some(("r", ids)) => {
                for id in ids.split(',').filter_map(|s| Uuid::parse_str(s).ok()) {
                    self.results.wake(&id);
                }
            }
            Some(("a", registration)) => {
                let mut parts = registration.splitn(3, ':');
                match (
                    parts.next(),
                    parts.next().map(str::parse::<u64>),
                    parts.next(),
                ) {
                    (Some(store), Some(Ok(ms)), Some(queue)) => {
                        self.inbox
                            .registration_heard(store, Duration::from_millis(ms), queue);
                    }
                    _ => tracing::debug!(payload, "ignoring an unreadable Skiff registration"),
                }
            }
            _ => tracing::debug!(payload, "ignoring an unknown Skiff notification"),
        }
    }

    fn set_listening(&self, up: bool) {
        if !up {
            self.inbox.lose_sight();
        }
        let changed = self.listening.send_if_modified(|now| {
            let changed = *now != up;
            *now = up;
            changed
        });
        if changed {
            // Down: waits switch to polling. Up: notifications sent while it was down are
            // lost, so every wait looks again (and registers again: the server may have
            // crashed and lost the registrations).
            {
                let mut registered = self.registered();
                self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                registered.clear();
            }
            self.work.wake_all();
            self.results.wake_all();
        }
    }
}

/// The `LISTEN` channel of the store on `schema`.
pub(crate) fn channel(schema: &str) -> String {
    format!("skiff_{schema}")
}

/// How long the `LISTEN` connection may stay quiet before the listener checks, with a
/// round trip, that it still answers.
pub(crate) const CHECK_WHEN_QUIET: Duration = Duration::from_secs(5);

/// How the listener connects, and how long it waits for the server.
#[derive(Clone, Debug)]
pub(crate) struct ListenConfig {
    pub(crate) connect: PgConnectOptions,
    pub(crate) acquire_timeout: Duration,
    /// The bound on each of its statements (`PostgresOptions::query_timeout`).
    pub(crate) timeout: Duration,
    /// The store's bound: told when the listener loses its connection, so the pool pings the
    /// connections that may have died with it (see the `timeout` module).
    pub(crate) bound: Arc<crate::timeout::Bound>,
    /// [`WATCHED_QUEUES`] on the store's schema.
    pub(crate) watched_queues: Arc<str>,
}

/// Starts the listener task of a store. Resolves `ready` after its first attempt to listen
/// (whatever the outcome); stops when `stop` is cancelled.
pub(crate) fn spawn(
    config: ListenConfig,
    channel: String,
    waiters: Arc<Waiters>,
    stop: CancellationToken,
    ready: oneshot::Sender<()>,
) {
    tokio::spawn(async move {
        tokio::select! {
            () = stop.cancelled() => {}
            () = run(&config, &channel, &waiters, ready) => {}
        }
        waiters.set_listening(false);
    });
}

/// Connects, listens on `channel`, and reads the registrations that hold
/// ([`WATCHED_QUEUES`]: announcements of later ones are queued on the connection and heard
/// after this read), within the statement bound.
async fn listen(
    config: &ListenConfig,
    channel: &str,
) -> Result<(PgListener, Vec<(String, Duration)>), String> {
    // A pool of its own for each connection: a dropped `PgListener` hands its connection back
    // with an `UNLISTEN *`, which never ends on a connection that died silently; in a pool
    // shared across attempts it would hold the only connection, and no attempt could ever
    // connect again.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(config.acquire_timeout)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_lazy_with(config.connect.clone());
    let attempt = async {
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.eager_reconnect(false);
        listener.listen(channel).await?;
        let held: Vec<(String, i64)> = sqlx::query_as(q(&config.watched_queues))
            .fetch_all(&mut listener)
            .await?;
        let held = held
            .into_iter()
            .map(|(queue, ms)| (queue, Duration::from_millis(u64::try_from(ms).unwrap_or(0))))
            .collect();
        Ok::<_, sqlx::Error>((listener, held))
    };
    match tokio::time::timeout(config.timeout + config.acquire_timeout, attempt).await {
        Ok(Ok(listening)) => Ok(listening),
        Ok(Err(err)) => Err(crate::redact::redact_url(&err.to_string())),
        Err(_) => Err(format!(
            "the server did not answer within {:?}",
            config.timeout + config.acquire_timeout
        )),
    }
}

/// Receives notifications until the connection is lost, or found dead: after
/// [`CHECK_WHEN_QUIET`] without a notification it must answer a `SELECT 1` within the
/// statement bound. A connection that died silently (a partition after which a NAT or
/// firewall forgot it, a vanished server host) would otherwise keep the listener waiting
/// forever while the waits, believing it up, slept without polling.
async fn receive(listener: &mut PgListener, config: &ListenConfig, waiters: &Waiters) -> String {
    loop {
        tokio::select! {
            received = listener.try_recv() => match received {
                Ok(Some(n)) => waiters.dispatch(n.payload()),
                Ok(None) => return "the connection was closed".to_owned(),
                Err(err) => return crate::redact::redact_url(&err.to_string()),
            },
            // `try_recv` is cancel-safe: a notification half read stays buffered for the next.
            () = tokio::time::sleep(CHECK_WHEN_QUIET) => {
                let check = sqlx::query("SELECT 1").execute(&mut *listener);
                match tokio::time::timeout(config.timeout, check).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(err)) => return crate::redact::redact_url(&err.to_string()),
                    Err(_) => {
                        return format!(
                            "it did not answer a check within {:?} (PostgresOptions::query_timeout)",
                            config.timeout
                        )
                    }
                }
            }
        }
    }
}

async fn run(config: &ListenConfig, channel: &str, waiters: &Waiters, ready: oneshot::Sender<()>) {
    let mut ready = Some(ready);
    let mut backoff = Duration::from_millis(50);
    let mut warned = false;
    loop {
        let mut listener = match listen(config, channel).await {
            Ok((listener, registrations)) => {
                waiters.inbox.watch_from(registrations);
                listener
            }
            Err(err) => {
                if !warned {
                    tracing::warn!(channel, error = %err, "Skiff cannot LISTEN for wake-ups; waits poll until it can");
                    warned = true;
                }
                waiters.set_listening(false);
                if let Some(ready) = ready.take() {
                    let _ = ready.send(());
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        if warned {
            tracing::info!(channel, "Skiff listens for wake-ups again");
        }
        backoff = Duration::from_millis(50);
        waiters.set_listening(true);
        if let Some(ready) = ready.take() {
            let _ = ready.send(());
        }
        let lost = receive(&mut listener, config, waiters).await;
        tracing::warn!(
            channel,
            error = %lost,
            "lost the LISTEN connection; waits poll while it reconnects"
        );
        warned = true;
        config.bound.suspect();
        waiters.set_listening(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn payloads_wake_the_right_waits_and_entries_are_removed() {
        let w = Waiters::new(Arc::new(Inbox::new()));
        let id = Uuid::now_v7();
        let mut a = w.work.subscribe("a".to_owned());
        let mut b = w.work.subscribe("b".to_owned());
        let mut r = w.results.subscribe(id);
        a.mark_seen();
        b.mark_seen();
        r.mark_seen();
        w.dispatch("wa");
        w.dispatch(&format!("r{},{}", Uuid::now_v7(), id));
        let woken = |s: &mut Subscription<'_, String>| {
            s.rx.as_mut()
                .is_some_and(|rx| rx.has_changed().unwrap_or(false))
        };
        assert!(woken(&mut a));
        assert!(!woken(&mut b));
        assert!(r
            .rx
            .as_mut()
            .is_some_and(|rx| rx.has_changed().unwrap_or(false)));
        w.dispatch("w*");
        assert!(woken(&mut b));
        w.dispatch("nonsense");
        drop((a, b, r));
        assert!(w.work.lock().is_empty());
        assert!(w.results.lock().is_empty());
    }
}
