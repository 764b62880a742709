//! Shared multiplexed connections for ordinary (non-blocking) commands.
//!
//! A `redis` multiplexed connection pipelines the requests of every task that holds a clone of
//! it, so a few connections serve any number of concurrent calls: 64 producers calling
//! `enqueue` at once share round trips and system calls instead of queueing for a pooled
//! connection. Taking a lane costs nothing on the wire (a pool would `PING` each connection it
//! hands out, one extra round trip per call).
//!
//! Calls spread over the lanes round-robin. A lane connects on first use; when a call on it
//! fails in a way that means the connection is gone (I/O error, dropped connection, timeout),
//! every lane is emptied and the next call on each connects again, so the store recovers after
//! a server restart or a network partition without help. Every lane, not just the failed one:
//! the others reach the same server on the same path, so what broke one (a restart, a
//! partition after which a NAT or firewall forgot the connections) has most likely broken them
//! too, and a connection that died silently is only found by a call that times out on it. Were
//! each lane left to find out for itself, a caller whose calls follow one another (the
//! fetcher) would wait out the response timeout once per lane after a partition before it got
//! through. Calls in flight on the old connections finish on them.

use std::sync::atomic::{AtomicUsize, Ordering};

use redis::RedisError;
use tokio::sync::Mutex;

use crate::conn::{Conn, Connector};

/// See the [module docs](self).
pub(crate) struct Lanes {
    connector: Connector,
    lanes: Vec<Mutex<Option<Conn>>>,
    next: AtomicUsize,
}

/// A connection taken from lane `lane`: a clone of its multiplexed (or cluster) connection.
pub(crate) struct Lane {
    pub(crate) lane: usize,
    pub(crate) conn: Conn,
}

impl std::ops::Deref for Lane {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        &self.conn
    }
}

impl std::ops::DerefMut for Lane {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.conn
    }
}

impl Lanes {
    pub(crate) fn new(connector: Connector, count: usize) -> Self {
        Self {
            connector,
            lanes: (0..count.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// Whether the lanes reach a Redis Cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        self.connector.is_cluster()
    }

    /// How many lanes there are.
    pub(crate) fn len(&self) -> usize {
        self.lanes.len()
    }

    /// The next lane's connection, connecting it if needed.
    pub(crate) async fn get(&self) -> Result<Lane, RedisError> {
        let lane = self.next.fetch_add(1, Ordering::Relaxed) % self.lanes.len();
        let mut slot = self.lanes[lane].lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(Lane {
                lane,
                conn: conn.clone(),
            });
        }
        let conn = self.connector.connect().await?;
        *slot = Some(conn.clone());
        Ok(Lane { lane, conn })
    }

    /// Empties every lane if `err`, from a call on `lane`, means its connection is gone (see
    /// the [module docs](self)).
    pub(crate) async fn failed(&self, lane: usize, err: &RedisError) {
        // A cluster connection reconnects to each node and refreshes the slot map itself
        // (after a failover, a new master); a new one would start from the seeds again.
        if broken(err) && !self.connector.is_cluster() {
            tracing::debug!(lane, "a Redis connection broke; every lane reconnects");
            for (i, slot) in self.lanes.iter().enumerate() {
                if i == lane {
                    *slot.lock().await = None;
                } else if let Ok(mut slot) = slot.try_lock() {
                    // A lane locked now is connecting (a new connection: kept) or handing out
                    // a clone (emptied by the next failure if it is broken too).
                    *slot = None;
                }
            }
        }
    }

    /// How many lanes hold a connection now.
    pub(crate) fn connected(&self) -> usize {
        self.lanes
            .iter()
            .filter(|l| l.try_lock().map(|g| g.is_some()).unwrap_or(true))
            .count()
    }
}

/// Whether an error means the connection cannot be used again.
pub(crate) fn broken(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_dropped()
        || err.is_unrecoverable_error()
        || err.is_timeout()
        || err.is_connection_refusal()
}
