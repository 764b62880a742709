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
//! A failed round is tried once more on a new connection, then logged; those waits then find
//! the work when their timeout makes them look again. The task ends with the store.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

#[derive(Debug, Default)]
struct Inbox {
    pending: Mutex<Pending>,
    ready: Notify,
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
    /// Starts the notifier's task.
    pub(crate) fn spawn(config: Config) -> Self {
        let inbox = Arc::new(Inbox::default());
        let stop = CancellationToken::new();
        tokio::spawn(run(config, inbox.clone(), stop.clone()));
        Self {
            inbox,
            _stop: stop.drop_guard(),
        }
    }

    /// After a committed write: other processes' waits on `queues` and `results` are to be
    /// notified.
    pub(crate) fn after_commit(&self, queues: Vec<String>, results: Vec<Uuid>) {
        if queues.is_empty() && results.is_empty() {
            return;
        }
        {
            let mut pending = self.inbox.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.queues.extend(queues);
            pending.results.extend(results);
        }
        self.inbox.ready.notify_one();
    }
}

async fn run(config: Config, inbox: Arc<Inbox>, stop: CancellationToken) {
    let mut conn: Option<PgConnection> = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = inbox.ready.notified() => {}
        }
        let round = std::mem::take(&mut *inbox.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if round.queues.is_empty() && round.results.is_empty() {
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
