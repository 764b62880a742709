//! The bound on how long a call waits for PostgreSQL ([`PostgresOptions::query_timeout`]),
//! and what a call that ran past it says about the pool's other connections.
//!
//! A call that times out has most likely lost its connection silently (a network partition
//! after which a NAT or firewall forgot it), and the connections idle in the pool then went
//! through the same partition: sqlx would test each before handing it out with a ping that
//! never gets an answer either, so every caller would wait out the bound once per idle
//! connection before it got a live one. Instead, after a timeout, the connections idle since
//! before it are closed when next taken from the pool, without a ping, and replaced by new
//! ones. The others are pinged as sqlx's `test_before_acquire` would, unless they were
//! returned to the pool less than [`FRESH`] ago and nothing has gone wrong since: sqlx pings
//! every connection when it is returned, so a second ping that soon would only add a round
//! trip to each call. What goes wrong is marked with [`Bound::suspect`]: a failed call, or the
//! store's `LISTEN` connection lost (a server that crashed or restarted); connections idle
//! since before the mark are pinged again whatever their age, so one that died with the
//! server is replaced before a call gets it.
//!
//! [`PostgresOptions::query_timeout`]: crate::PostgresOptions::query_timeout

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt};
use sqlx::pool::PoolConnectionMetadata;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection};

use queue_core::Result;

use crate::error::{timed_out, PoolInfo};

/// How long after its return to the pool (and sqlx's ping then) a connection is handed out
/// without another ping.
pub(crate) const FRESH: Duration = Duration::from_secs(1);

/// See the [module docs](self).
#[derive(Debug)]
pub(crate) struct Bound {
    pub(crate) timeout: Duration,
    /// When a call last timed out.
    timed_out_at: Mutex<Option<Instant>>,
    /// When a call last failed, or the listener lost its connection.
    suspect_at: Mutex<Option<Instant>>,
}

impl Bound {
    pub(crate) fn new(timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            timeout,
            timed_out_at: Mutex::new(None),
            suspect_at: Mutex::new(None),
        })
    }

    /// Runs one call (`what` names it in the error), failing it with a storage error if it has
    /// not finished within the bound. Its future, and with it the connection it used, is then
    /// dropped: sqlx pings that connection before it reuses it, and closes it if the ping
    /// fails.
    ///
    /// Not an `async fn`: one would keep `call` twice in its state, as its argument and inside
    /// the `Timeout` it awaits, and a call's future is boxed and moved whole on every call.
    pub(crate) fn run<'a, T: 'a>(
        &'a self,
        what: &'static str,
        info: &'a PoolInfo,
        call: impl Future<Output = Result<T>> + 'a,
    ) -> impl Future<Output = Result<T>> + 'a {
        tokio::time::timeout(self.timeout, call).map(move |ended| match ended {
            Ok(Ok(done)) => Ok(done),
            Ok(Err(err)) => {
                if matches!(err, queue_core::Error::Storage { .. }) {
                    self.suspect();
                }
                Err(err)
            }
            Err(_) => {
                *self.timed_out_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
                Err(timed_out(what, self.timeout, info))
            }
        })
    }

    /// Marks the connections idle from now back as worth a ping before their next call.
    pub(crate) fn suspect(&self) {
        *self.suspect_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// Whether a connection idle for `idle_for` has been idle since before the last timeout.
    pub(crate) fn stale(&self, idle_for: Duration) -> bool {
        idle_before(&self.timed_out_at, idle_for)
    }

    /// Whether a connection idle for `idle_for` needs a ping before it is handed out.
    pub(crate) fn needs_ping(&self, idle_for: Duration) -> bool {
        idle_for >= FRESH || idle_before(&self.suspect_at, idle_for)
    }

    /// The pool's check of an idle connection before it is handed out (in place of sqlx's
    /// `test_before_acquire`): closed without a ping if stale, handed out as it is if
    /// returned less than [`FRESH`] ago and not suspect, pinged otherwise.
    pub(crate) fn check_idle(self: &Arc<Self>, options: PgPoolOptions) -> PgPoolOptions {
        let bound = self.clone();
        options.test_before_acquire(false).before_acquire(
            move |conn: &mut PgConnection,
                  meta: PoolConnectionMetadata|
                  -> BoxFuture<'_, std::result::Result<bool, sqlx::Error>> {
                let stale = bound.stale(meta.idle_for);
                let ping = bound.needs_ping(meta.idle_for);
                Box::pin(async move {
                    if stale {
                        return Ok(false);
                    }
                    if ping {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            },
        )
    }
}

/// Whether a connection idle for `idle_for` has been idle since before the instant in `mark`.
fn idle_before(mark: &Mutex<Option<Instant>>, idle_for: Duration) -> bool {
    let at = *mark.lock().unwrap_or_else(|e| e.into_inner());
    at.is_some_and(|at| {
        Instant::now()
            .checked_sub(idle_for)
            .is_none_or(|idle_since| idle_since < at)
    })
}
