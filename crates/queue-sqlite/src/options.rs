//! [`SqliteOptions`]: where the store lives and how it talks to SQLite.
//!
//! Build options from a path ([`SqliteOptions::new`]), from a URL
//! ([`SqliteOptions::from_url`], what [`SqliteStorage::connect`](crate::SqliteStorage::connect)
//! uses) or for a throw-away store ([`SqliteOptions::in_memory`]), adjust them with the chained
//! setters, and pass them to [`SqliteStorage::open`](crate::SqliteStorage::open).
//!
//! The URL forms and parameters are listed on [`SqliteOptions::from_url`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use queue_core::clock::system_clock;
use queue_core::{Clock, Error, Result};

/// How hard SQLite works to make a commit survive a power cut.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Synchronous {
    /// `PRAGMA synchronous=NORMAL` (the default): with WAL, a commit survives a crash of the
    /// process; the last commits before a power cut may be lost, never corrupted.
    #[default]
    Normal,
    /// `PRAGMA synchronous=FULL`: every commit is on disk before the call returns.
    Full,
}

/// Where the store lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Location {
    /// A database file.
    File(PathBuf),
    /// An anonymous store in a temporary file, removed when the store is dropped.
    Anonymous,
}

/// Options for [`SqliteStorage::open`](crate::SqliteStorage::open).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use queue_sqlite::{SqliteOptions, Synchronous};
///
/// let options = SqliteOptions::new("skiff.db")
///     .synchronous(Synchronous::Full)
///     .busy_timeout(Duration::from_secs(30))
///     .pool_size(8)
///     .poll_interval(Duration::from_millis(20));
/// assert_eq!(options.path(), Some(std::path::Path::new("skiff.db")));
///
/// let parsed = SqliteOptions::from_url("sqlite:///tmp/skiff.db?synchronous=full").unwrap();
/// assert_eq!(parsed.path(), Some(std::path::Path::new("/tmp/skiff.db")));
/// ```
#[derive(Clone)]
pub struct SqliteOptions {
    pub(crate) location: Location,
    pub(crate) synchronous: Synchronous,
    pub(crate) busy_timeout: Duration,
    pub(crate) pool_size: u32,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) poll_interval: Duration,
    pub(crate) max_batch: usize,
    pub(crate) watch_files: bool,
    pub(crate) direct_enqueue: bool,
}

impl fmt::Debug for SqliteOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteOptions")
            .field("location", &self.location)
            .field("synchronous", &self.synchronous)
            .field("busy_timeout", &self.busy_timeout)
            .field("pool_size", &self.pool_size)
            .field("poll_interval", &self.poll_interval)
            .field("max_batch", &self.max_batch)
            .field("watch_files", &self.watch_files)
            .field("direct_enqueue", &self.direct_enqueue)
            .finish_non_exhaustive()
    }
}

impl SqliteOptions {
    /// Options for the database file at `path` (created with its schema on first use).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self::at(Location::File(path.into()))
    }

    /// Options for an anonymous store: a temporary file that is removed when the store is
    /// dropped. Nothing survives the process; other processes cannot see it.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = queue_sqlite::SqliteOptions::in_memory();
    /// assert!(options.path().is_none());
    /// ```
    pub fn in_memory() -> Self {
        Self::at(Location::Anonymous)
    }

    fn at(location: Location) -> Self {
        Self {
            location,
            synchronous: Synchronous::Normal,
            busy_timeout: Duration::from_secs(30),
            pool_size: 4,
            clock: system_clock(),
            poll_interval: Duration::from_millis(25),
            max_batch: 1024,
            watch_files: true,
            direct_enqueue: true,
        }
    }

    /// Parses a `sqlite:` URL.
    ///
    /// | URL | Store |
    /// |-----|-------|
    /// | `sqlite://skiff.db` | `skiff.db`, relative to the working directory |
    /// | `sqlite:///var/lib/app/skiff.db` | an absolute path |
    /// | `sqlite::memory:` or `sqlite://:memory:` | an anonymous store, deleted when dropped |
    ///
    /// Query parameters: `synchronous=normal|full`, `busy_timeout_ms=N`, `pool_size=N`,
    /// `poll_interval_ms=N`, `max_batch=N`, `watch_files=true|false`, `direct_enqueue=true|false`, e.g.
    /// `sqlite://skiff.db?synchronous=full`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming what is wrong with the URL (any password in it replaced by
    /// `***`, as a URL meant for another store may carry one).
    pub fn from_url(url: &str) -> Result<Self> {
        // Parts of the URL are quoted in messages as written: scrub what could be a password.
        Self::parse_url(url).map_err(|err| match err {
            Error::InvalidInput(message) => Error::InvalidInput(queue_core::redact::scrub(
                &message,
                &queue_core::redact::secrets(url),
            )),
            other => other,
        })
    }

    fn parse_url(url: &str) -> Result<Self> {
        let shown = queue_core::redact::redact_url(url);
        let rest = url.strip_prefix("sqlite:").ok_or_else(|| {
            Error::InvalidInput(format!(
                "`{shown}` is not a SQLite URL: expected sqlite://PATH, sqlite:///ABS/PATH or sqlite::memory:"
            ))
        })?;
        let (target, query) = match rest.split_once('?') {
            Some((t, q)) => (t, Some(q)),
            None => (rest, None),
        };
        let target = target.strip_prefix("//").unwrap_or(target);
        let mut options = match target {
            ":memory:" => Self::in_memory(),
            "" => {
                return Err(Error::InvalidInput(format!(
                    "`{shown}` names no database file: write sqlite://PATH (e.g. sqlite://skiff.db) or sqlite::memory:"
                )))
            }
            path => Self::new(path),
        };
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            options = options.apply_param(&shown, key, value)?;
        }
        Ok(options)
    }

    /// Applies one query parameter; `url` is the URL as messages show it.
    fn apply_param(self, url: &str, key: &str, value: &str) -> Result<Self> {
        let number = |v: &str| {
            v.parse::<u64>().map_err(|_| {
                Error::InvalidInput(format!("`{key}={v}` in `{url}`: expected a whole number"))
            })
        };
        Ok(match key {
            "synchronous" => match value.to_ascii_lowercase().as_str() {
                "normal" => self.synchronous(Synchronous::Normal),
                "full" => self.synchronous(Synchronous::Full),
                _ => {
                    return Err(Error::InvalidInput(format!(
                        "`synchronous={value}` in `{url}`: expected `normal` or `full`"
                    )))
                }
            },
            "busy_timeout_ms" => self.busy_timeout(Duration::from_millis(number(value)?)),
            "poll_interval_ms" => self.poll_interval(Duration::from_millis(number(value)?)),
            "pool_size" => self.pool_size(u32::try_from(number(value)?).unwrap_or(u32::MAX)),
            "max_batch" => self.max_batch(usize::try_from(number(value)?).unwrap_or(usize::MAX)),
            "watch_files" => match value.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => self.watch_files(true),
                "false" | "0" | "no" => self.watch_files(false),
                _ => {
                    return Err(Error::InvalidInput(format!(
                        "`watch_files={value}` in `{url}`: expected `true` or `false`"
                    )))
                }
            },
            "direct_enqueue" => match value.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => self.direct_enqueue(true),
                "false" | "0" | "no" => self.direct_enqueue(false),
                _ => {
                    return Err(Error::InvalidInput(format!(
                        "`direct_enqueue={value}` in `{url}`: expected `true` or `false`"
                    )))
                }
            },
            _ => {
                return Err(Error::InvalidInput(format!(
                    "unknown parameter `{key}` in `{url}`: known are synchronous, busy_timeout_ms, pool_size, poll_interval_ms, max_batch, watch_files, direct_enqueue"
                )))
            }
        })
    }

    /// The database file, or `None` for an anonymous store.
    pub fn path(&self) -> Option<&Path> {
        match &self.location {
            Location::File(p) => Some(p),
            Location::Anonymous => None,
        }
    }

    /// Durability of commits ([`Synchronous::Normal`] by default).
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// How long a write waits for another process's transaction before failing (30 s by
    /// default). Writes that still meet a busy database are retried a few times.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Connections for reads (results, counts, listings, wake-up probes); 4 by default. All
    /// writes go through one extra connection owned by the group-commit writer.
    pub fn pool_size(mut self, size: u32) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// The clock every time in the store comes from (etas, leases, TTLs, rate windows). The
    /// system clock by default; tests pass a [`ManualClock`](queue_core::ManualClock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How often a waiting consumer (or result waiter) looks for work written by *other*
    /// processes when nothing told it sooner; 25 ms by default. Work written by this process
    /// wakes waiters at once, and so does another process's commit while the database's files
    /// are watched ([`watch_files`](Self::watch_files)).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// The most operations the writer commits in one transaction (1024 by default).
    pub fn max_batch(mut self, max: usize) -> Self {
        self.max_batch = max.max(1);
        self
    }

    /// Whether idle waits are woken by other processes' commits, through a file-change watch
    /// on the database's directory (inotify on Linux); on by default. Off, or where the watch
    /// cannot be set up, they see those commits at their next poll
    /// ([`poll_interval`](Self::poll_interval)).
    ///
    /// # Examples
    ///
    /// ```
    /// let options = queue_sqlite::SqliteOptions::from_url("sqlite://skiff.db?watch_files=false")?;
    /// let same = queue_sqlite::SqliteOptions::new("skiff.db").watch_files(false);
    /// assert_eq!(format!("{options:?}"), format!("{same:?}"));
    /// # Ok::<(), queue_core::Error>(())
    /// ```
    pub fn watch_files(mut self, watch: bool) -> Self {
        self.watch_files = watch;
        self
    }

    /// Whether a single-task enqueue that finds the writer idle runs its `INSERT` on the
    /// calling thread, on a connection of its own (on by default).
    ///
    /// That call then costs SQLite's work and nothing else: no hop to another thread and
    /// back. In exchange it holds its Tokio worker thread for that work, as any blocking call
    /// would: tens of microseconds with `synchronous=normal`, one fsync of the WAL with
    /// `synchronous=full`. Turn it off to keep every statement on SQLite's own thread; batches,
    /// and enqueues that meet a busy writer, always take that path.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = queue_sqlite::SqliteOptions::from_url("sqlite://skiff.db?direct_enqueue=false")?;
    /// let same = queue_sqlite::SqliteOptions::new("skiff.db").direct_enqueue(false);
    /// assert_eq!(format!("{options:?}"), format!("{same:?}"));
    /// # Ok::<(), queue_core::Error>(())
    /// ```
    pub fn direct_enqueue(mut self, direct: bool) -> Self {
        self.direct_enqueue = direct;
        self
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let rel = SqliteOptions::from_url("sqlite://rel/skiff.db").unwrap();
        assert_eq!(rel.path(), Some(Path::new("rel/skiff.db")));
        let abs = SqliteOptions::from_url("sqlite:///abs/skiff.db").unwrap();
        assert_eq!(abs.path(), Some(Path::new("/abs/skiff.db")));
        assert!(SqliteOptions::from_url("sqlite::memory:")
            .unwrap()
            .path()
            .is_none());
        assert!(SqliteOptions::from_url("sqlite://:memory:")
            .unwrap()
            .path()
            .is_none());
        let full = SqliteOptions::from_url("sqlite://a.db?synchronous=FULL&pool_size=2").unwrap();
        assert_eq!(full.synchronous, Synchronous::Full);
        assert_eq!(full.pool_size, 2);
    }

    #[test]
    fn rejects_bad_urls_with_a_reason() {
        for (url, needle) in [
            ("redis://x", "not a SQLite URL"),
            ("sqlite://", "names no database file"),
            (
                "sqlite://a.db?synchronous=off",
                "expected `normal` or `full`",
            ),
            ("sqlite://a.db?bogus=1", "unknown parameter `bogus`"),
            ("sqlite://a.db?pool_size=x", "whole number"),
        ] {
            let err = SqliteOptions::from_url(url).err().unwrap().to_string();
            assert!(err.contains(needle), "{url}: {err}");
        }
    }

    #[test]
    fn errors_do_not_show_a_password() {
        for url in [
            "redis://:s3cret@host:6379/0",
            "postgres://app:s3cret@db/app",
            "sqlite://u:s3cret@host/a.db?bogus=1",
            "sqlite://a.db?synchronous=off&password=s3cret",
            "sqlite://u:s3cret@host/a.db?pool_size=x",
            // Found by the `store_url` fuzz target: a parameter name echoed from the raw URL.
            "sqlite:///abs/skiff.db?synch//:s3cret@horonous=full&pool_size=2",
        ] {
            let err = SqliteOptions::from_url(url).err().unwrap().to_string();
            assert!(!err.contains("s3cret"), "{url}: {err}");
            assert!(err.contains("***"), "{url}: {err}");
        }
    }
}
