//! One task per call (a web handler's enqueue) on a connection kept for it, outside the pool.
//!
//! A pooled connection costs a single enqueue more than its statement: sqlx pings every
//! connection it takes back into the pool, a round trip that shares the machine's cores with
//! the next call. The store keeps one connection for single-task enqueues instead: a call
//! that finds it free uses it ([`SingleConn::try_take`]); concurrent calls, and batches, use
//! the pool. So the store holds up to `pool_size + 3` connections (this one, the notifier's
//! and the listener's).
//!
//! The connection is checked like a pooled one (see the `timeout` module): pinged after a
//! second unused or after a failed call, replaced without a ping after a timeout. A call that
//! fails, times out or is dropped while it runs drops the connection; the next one opens a
//! new one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use tokio::sync::{Mutex, OwnedMutexGuard};

use queue_core::{Error, Result};

use crate::error::BACKEND;
use crate::timeout::Bound;

#[derive(Debug)]
struct Slot {
    conn: Option<PgConnection>,
    /// When the connection was last put back.
    returned_at: Instant,
}

/// The store's connection for single-task enqueues.
#[derive(Debug)]
pub(crate) struct SingleConn {
    connect: PgConnectOptions,
    connect_timeout: Duration,
    slot: Arc<Mutex<Slot>>,
}

/// The connection taken for one call; [`Taken::put_back`] returns it, dropping it closes it.
#[derive(Debug)]
pub(crate) struct Taken {
    guard: OwnedMutexGuard<Slot>,
    conn: Option<PgConnection>,
}

impl SingleConn {
    pub(crate) fn new(connect: PgConnectOptions, connect_timeout: Duration) -> Self {
        Self {
            connect,
            connect_timeout,
            slot: Arc::new(Mutex::new(Slot {
                conn: None,
                returned_at: Instant::now(),
            })),
        }
    }

    /// The connection, if no other call is using it.
    pub(crate) fn try_take(&self) -> Option<Taken> {
        let mut guard = self.slot.clone().try_lock_owned().ok()?;
        let conn = guard.conn.take();
        Some(Taken { guard, conn })
    }
}

impl Taken {
    /// A live connection: the kept one (checked as the pool would), or a new one.
    pub(crate) async fn conn(
        &mut self,
        single: &SingleConn,
        bound: &Bound,
    ) -> Result<&mut PgConnection> {
        let idle = self.guard.returned_at.elapsed();
        if let Some(mut conn) = self.conn.take() {
            if !bound.stale(idle) && (!bound.needs_ping(idle) || conn.ping().await.is_ok()) {
                return Ok(self.conn.insert(conn));
            }
        }
        // Boxed: opening a connection is a future of several KB, rarely run.
        let opened = Box::pin(tokio::time::timeout(
            single.connect_timeout,
            single.connect.connect(),
        ))
        .await
        .map_err(|_| {
            Error::storage_msg(
                BACKEND,
                format!(
                    "connect: no connection to PostgreSQL within {:?}",
                    single.connect_timeout
                ),
            )
        })?
        .map_err(|e| crate::error::storage("connect", e, None))?;
        Ok(self.conn.insert(opened))
    }

    /// Keeps the connection for the next call.
    pub(crate) fn put_back(mut self) {
        self.guard.conn = self.conn.take();
        self.guard.returned_at = Instant::now();
    }
}
