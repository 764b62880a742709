//! [`RedisOptions`]: how to open a [`RedisStorage`](crate::RedisStorage).
//!
//! Everything has a default except the URL. Build with [`RedisOptions::new`] and chained
//! setters, then pass to [`RedisStorage::open`](crate::RedisStorage::open), which validates.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use queue_core::clock::system_clock;
use queue_core::{Clock, Error, Result};

use crate::redact::redact_url;

/// Options for [`RedisStorage::open`](crate::RedisStorage::open).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use queue_core::ManualClock;
/// use queue_redis::RedisOptions;
///
/// let options = RedisOptions::new("redis://:secret@127.0.0.1:6379/0")
///     .pool_size(32)
///     .key_prefix("myapp")
///     .clock(Arc::new(ManualClock::new()))
///     .block_timeout(Duration::from_secs(2));
/// // Debug output never shows the password.
/// assert!(!format!("{options:?}").contains("secret"));
/// ```
#[derive(Clone)]
pub struct RedisOptions {
    pub(crate) url: String,
    pub(crate) pool_size: usize,
    pub(crate) blocking_pool_size: usize,
    pub(crate) key_prefix: String,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) block_timeout: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) promote_limit: usize,
    pub(crate) functions: bool,
    pub(crate) max_clock_skew: Option<Duration>,
    /// Whether `clock` was set, and whether `max_clock_skew` was: a custom clock (a test's
    /// `ManualClock`) is trusted unless a bound is asked for explicitly.
    pub(crate) custom_clock: bool,
    pub(crate) skew_explicit: bool,
    pub(crate) wait_replicas: u32,
    pub(crate) wait_timeout: Duration,
}

/// The default of [`RedisOptions::max_clock_skew`].
pub const DEFAULT_MAX_CLOCK_SKEW: Duration = Duration::from_secs(5);

impl RedisOptions {
    /// Options for the server at `url` (`redis://[:password@]host[:port][/db]` or `rediss://…`
    /// for TLS), with every other setting at its default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: 4,
            blocking_pool_size: 64,
            key_prefix: "skiff".into(),
            clock: system_clock(),
            block_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            promote_limit: 1000,
            functions: true,
            max_clock_skew: Some(DEFAULT_MAX_CLOCK_SKEW),
            custom_clock: false,
            skew_explicit: false,
            wait_replicas: 0,
            wait_timeout: Duration::from_secs(1),
        }
    }

    /// How many replicas must have each change before a call reports success (default 0:
    /// none; in the URL, `?wait=N`). After every call that changes the store, the store sends
    /// `WAIT N timeout` on the same connection (on a cluster, to every master), and fails the
    /// call with [`Error::Storage`] if fewer than `N` replicas acknowledged it within
    /// [`wait_timeout`](Self::wait_timeout). So an enqueue or a completion that succeeded is
    /// on `N` replicas, and survives a failover to one of them.
    ///
    /// Without it, replication is asynchronous: a failover loses what the old master
    /// acknowledged but had not sent yet (an enqueued task, or a completion — that task then
    /// runs again). A call that fails its wait was still applied on the master: repeating it is
    /// safe (an enqueue by id is a duplicate, a completion is stale).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = queue_redis::RedisOptions::new("redis://127.0.0.1/0")
    ///     .wait_replicas(1)
    ///     .wait_timeout(Duration::from_millis(500));
    /// # drop(options);
    /// ```
    pub fn wait_replicas(mut self, replicas: u32) -> Self {
        self.wait_replicas = replicas;
        self
    }

    /// How long each `WAIT` of [`wait_replicas`](Self::wait_replicas) waits for the replicas
    /// (default 1 s; in the URL, `?wait_timeout_ms=N`).
    ///
    /// # Examples
    ///
    /// ```
    /// let options = queue_redis::RedisOptions::new("redis://127.0.0.1/0?wait=1&wait_timeout_ms=250");
    /// # drop(options);
    /// ```
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// Takes Skiff's own query parameters (`wait`, `wait_timeout_ms`) out of the URL into
    /// these options; the rest of the URL is the client's.
    pub(crate) fn take_url_options(&mut self) -> Result<()> {
        let Some((base, query)) = self.url.split_once('?') else {
            return Ok(());
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let number = || {
                value.parse::<u64>().map_err(|_| {
                    Error::InvalidInput(format!(
                        "Redis URL option `{key}` must be a whole number, got `{value}`"
                    ))
                })
            };
            match key {
                "wait" => {
                    self.wait_replicas = u32::try_from(number()?).map_err(|_| {
                        Error::InvalidInput(format!("Redis URL option `wait={value}` is too large"))
                    })?
                }
                "wait_timeout_ms" => self.wait_timeout = Duration::from_millis(number()?),
                _ => kept.push(pair),
            }
        }
        self.url = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        Ok(())
    }

    /// Connections for ordinary commands (default 4). Each is multiplexed: every concurrent
    /// call pipelines its commands on one of them (round-robin), so a few serve any number of
    /// callers.
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// Connections reserved for blocking waits (`wait_for_work`, `wait_result`; default 64).
    /// A blocking command holds its connection for the whole wait, so these never share the
    /// ordinary pool.
    pub fn blocking_pool_size(mut self, size: usize) -> Self {
        self.blocking_pool_size = size;
        self
    }

    /// The prefix of every key (default `"skiff"`). Stores with different prefixes on one
    /// server are independent; `flush` deletes only its own prefix's keys.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// The clock every time (eta, lease expiry, result TTL, lock TTL, rate window) is read
    /// from (default: the system clock). A clock set here is trusted: its distance from the
    /// server's is not checked unless [`max_clock_skew`](Self::max_clock_skew) is set too.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self.custom_clock = true;
        self
    }

    /// How far this process's clock may be from the Redis server's (default 5 s; `None`: not
    /// checked). Leases, locks, etas, result TTLs and rate windows are times the clients
    /// write, so every client's clock must agree with the others': a worker whose clock runs
    /// 60 s ahead would expire other workers' leases and take their locks. `open` reads the
    /// server's `TIME` and refuses a clock further off than this; `purge_expired` (each
    /// consumer calls it once a minute) checks again and logs an error when a clock has
    /// drifted past it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = queue_redis::RedisOptions::new("redis://127.0.0.1/0")
    ///     .max_clock_skew(Some(Duration::from_secs(1)));
    /// # drop(options);
    /// ```
    pub fn max_clock_skew(mut self, bound: Option<Duration>) -> Self {
        self.max_clock_skew = bound;
        self.skew_explicit = true;
        self
    }

    /// The bound to check, if any (see [`max_clock_skew`](Self::max_clock_skew)).
    pub(crate) fn skew_bound(&self) -> Option<Duration> {
        if self.custom_clock && !self.skew_explicit {
            None
        } else {
            self.max_clock_skew
        }
    }

    /// The longest one blocking wait of an idle consumer lasts before it checks again
    /// (default 5 s). Shorter means more idle traffic; new work wakes a waiter at once either way.
    pub fn block_timeout(mut self, timeout: Duration) -> Self {
        self.block_timeout = timeout;
        self
    }

    /// How long an ordinary command may take before it fails with a storage error (default
    /// 10 s). A command that times out means its connection may have died silently (a network
    /// partition): the store's shared connections are then all replaced on their next use.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// How long connecting may take (default 2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How many due scheduled tasks (and, separately, expired leases) one fetch moves to ready
    /// at most (default 1,000). Bounds the work of every fetch however large the backlog.
    pub fn promote_limit(mut self, limit: usize) -> Self {
        self.promote_limit = limit;
        self
    }

    /// Whether to load Skiff's Lua code once as a Redis Functions library and call it with
    /// `FCALL` (default `true`; used only when the server has Functions, Redis 7.0 and later).
    /// With `false`, or on an older server, each call is `EVALSHA` of a script, which runs the
    /// shared helpers again on every call: the same behaviour, more server time per call.
    pub fn functions(mut self, enabled: bool) -> Self {
        self.functions = enabled;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.pool_size == 0 || self.blocking_pool_size == 0 {
            return Err(Error::InvalidInput(
                "Redis pool sizes must be at least 1".into(),
            ));
        }
        if self.key_prefix.is_empty() || self.key_prefix.contains(['{', '}']) {
            return Err(Error::InvalidInput(format!(
                "Redis key prefix `{}` must be non-empty and must not contain `{{` or `}}` (they would change the keys' hash tag)",
                self.key_prefix
            )));
        }
        if self.promote_limit == 0 {
            return Err(Error::InvalidInput(
                "Redis promote limit must be at least 1".into(),
            ));
        }
        if self.wait_replicas > 0 && self.wait_timeout < Duration::from_millis(1) {
            // `WAIT n 0` would block forever.
            return Err(Error::InvalidInput(
                "Redis wait timeout must be at least 1 ms".into(),
            ));
        }
        if self.block_timeout < Duration::from_millis(10) {
            return Err(Error::InvalidInput(
                "Redis block timeout must be at least 10 ms".into(),
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisOptions")
            .field("url", &redact_url(&self.url))
            .field("pool_size", &self.pool_size)
            .field("blocking_pool_size", &self.blocking_pool_size)
            .field("key_prefix", &self.key_prefix)
            .field("clock", &self.clock)
            .field("block_timeout", &self.block_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("promote_limit", &self.promote_limit)
            .field("functions", &self.functions)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::RedisOptions;

    #[test]
    fn skiffs_url_options_are_taken_out_of_the_url() {
        let mut o = RedisOptions::new("redis://h:1/0?wait=2&protocol=resp3&wait_timeout_ms=250");
        o.take_url_options().unwrap();
        assert_eq!(o.url, "redis://h:1/0?protocol=resp3");
        assert_eq!(
            (o.wait_replicas, o.wait_timeout),
            (2, Duration::from_millis(250))
        );
        let mut o = RedisOptions::new("redis+cluster://h:1/?wait=1");
        o.take_url_options().unwrap();
        assert_eq!(o.url, "redis+cluster://h:1/");
        assert!(RedisOptions::new("redis://h/0?wait=x")
            .take_url_options()
            .is_err());
        let mut o = RedisOptions::new("redis://h/0?wait=1&wait_timeout_ms=0");
        o.take_url_options().unwrap();
        assert!(o.validate().is_err(), "WAIT 1 0 would block forever");
    }
}
