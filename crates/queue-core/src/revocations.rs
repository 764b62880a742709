//! [`RevocationCache`]: a store's memory of "no revocation exists", so that
//! [`Storage::check_revoked`](crate::Storage::check_revoked) costs nothing in the usual case.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A store's last answer to "does any revocation exist?", for the fast path of
/// [`Storage::check_revoked`](crate::Storage::check_revoked): while nothing is revoked (the
/// usual case), checking a batch needs no read.
///
/// How a store uses it:
///
/// * When a read answers the question (a fetch can answer it in the same round trip, so the
///   check of the batch it fetched needs nothing more), take [`version`](Self::version)
///   *before* the read and hand the answer and that version to [`record`](Self::record).
/// * In `check_revoked`, ask [`any_exists`](Self::any_exists): it answers "no" from the cache
///   while a "none" answer is known, and otherwise runs the store's own read and records it.
/// * Run each revocation this store writes inside [`writing`](Self::writing): the version
///   moves when the write starts and when it ends (or is dropped), so an answer read before
///   or during the write is not used after it.
///
/// A "none" answer is believed for the cache's time to live ([`DEFAULT_TTL`](Self::DEFAULT_TTL),
/// 100 ms, unless built [`with_ttl`](Self::with_ttl)) in real time, not the store's
/// [`Clock`](crate::Clock). A revocation written by another process therefore applies to every
/// batch fetched after it (each fetch reads the answer), and to checks without a fetch within
/// that time.
///
/// # Examples
///
/// ```
/// use queue_core::storage::RevocationCache;
///
/// # futures::executor::block_on(async {
/// let cache = RevocationCache::new();
/// let mut reads = 0;
/// for _ in 0..3 {
///     let any = cache
///         .any_exists(|| {
///             reads += 1;
///             async { Ok::<_, std::io::Error>(false) } // e.g. `EXISTS revoked`
///         })
///         .await?;
///     assert!(!any);
/// }
/// assert_eq!(reads, 1, "the answer was reused");
///
/// cache.writing(async { /* store a revocation */ }).await;
/// let any = cache.any_exists(|| async { Ok::<_, std::io::Error>(true) }).await?;
/// assert!(any, "read again after this store's own write");
/// # Ok::<(), std::io::Error>(()) }).unwrap();
/// ```
pub struct RevocationCache {
    /// When "none" was read, and the version it was read at.
    none_since: Mutex<Option<(Instant, u64)>>,
    /// Moved when each revocation write of this store starts and ends.
    version: AtomicU64,
    ttl: Duration,
}

impl RevocationCache {
    /// How long a "none" answer is believed unless built [`with_ttl`](Self::with_ttl).
    pub const DEFAULT_TTL: Duration = Duration::from_millis(100);

    /// An empty cache (nothing known) with [`DEFAULT_TTL`](Self::DEFAULT_TTL).
    pub fn new() -> Self {
        Self::with_ttl(Self::DEFAULT_TTL)
    }

    /// An empty cache that believes a "none" answer for `ttl`.
    pub fn with_ttl(ttl: Duration) -> Self {
        Self {
            none_since: Mutex::new(None),
            version: AtomicU64::new(0),
            ttl,
        }
    }

    /// The version of this store's own revocation writes now; read it before the read whose
    /// answer goes to [`record`](Self::record).
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }

    /// Records whether any revocation exists, as read just now, with the
    /// [`version`](Self::version) taken before the read.
    pub fn record(&self, any: bool, version: u64) {
        *self.none_since.lock().unwrap_or_else(|e| e.into_inner()) =
            (!any).then(|| (Instant::now(), version));
    }

    /// Whether "none" is known: recorded at `version` (no write of this store since) and
    /// younger than the time to live.
    pub fn none_known(&self, version: u64) -> bool {
        let cached = *self.none_since.lock().unwrap_or_else(|e| e.into_inner());
        cached.is_some_and(|(at, v)| v == version && at.elapsed() < self.ttl)
    }

    /// Whether any revocation may exist: `false` while "none" is known, else the answer of
    /// `read` (the store's own query), which is recorded.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future records nothing.
    pub async fn any_exists<F, Fut, E>(&self, read: F) -> Result<bool, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<bool, E>>,
    {
        let version = self.version();
        if self.none_known(version) {
            return Ok(false);
        }
        let any = read().await?;
        self.record(any, version);
        Ok(any)
    }

    /// [`Storage::check_revoked`](crate::Storage::check_revoked) with this cache's fast path:
    /// no flags for no tasks; all `false`, without running `check`, while no revocation exists
    /// (as [`any_exists`](Self::any_exists) answers with `read`); otherwise the flags of
    /// `check`, the store's own check of the `tasks` tasks.
    ///
    /// A store's fetch reads whether any revocation exists in its claim and
    /// [`record`](Self::record)s it, so the check of the batch it fetched needs no read of its
    /// own: a revocation written (by any process) before a batch is claimed applies to it.
    /// Without a fetch the answer is reused for the time to live; revocations written through
    /// this store ([`writing`](Self::writing)) invalidate it at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use queue_core::storage::RevocationCache;
    ///
    /// # futures::executor::block_on(async {
    /// let cache = RevocationCache::new();
    /// let any = || async { Ok::<_, std::io::Error>(false) }; // e.g. `EXISTS revoked`
    /// let each = || async { Ok(vec![true, true]) }; // the store's check of each task
    /// assert_eq!(cache.check_revoked(2, any, each).await?, [false, false]);
    /// # Ok::<(), std::io::Error>(()) }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Dropping the future records nothing.
    pub async fn check_revoked<R, RF, C, CF, E>(
        &self,
        tasks: usize,
        read: R,
        check: C,
    ) -> Result<Vec<bool>, E>
    where
        R: FnOnce() -> RF,
        RF: Future<Output = Result<bool, E>>,
        C: FnOnce() -> CF,
        CF: Future<Output = Result<Vec<bool>, E>>,
    {
        if tasks == 0 {
            return Ok(Vec::new());
        }
        if !self.any_exists(read).await? {
            return Ok(vec![false; tasks]);
        }
        check().await
    }

    /// Runs `write`, a revocation write of this store, moving the version when it starts and
    /// when it ends, so no "none" answer read before it ends is used after it.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future moves the version as the end of the write would.
    pub async fn writing<F: Future>(&self, write: F) -> F::Output {
        let _moved = VersionMove::start(&self.version);
        write.await
    }
}

impl Default for RevocationCache {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for RevocationCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationCache")
            .field("none_known", &self.none_known(self.version()))
            .field("version", &self.version())
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// Moves the version on creation and again on drop.
struct VersionMove<'a>(&'a AtomicU64);

impl<'a> VersionMove<'a> {
    fn start(version: &'a AtomicU64) -> Self {
        version.fetch_add(1, Ordering::SeqCst);
        Self(version)
    }
}

impl Drop for VersionMove<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    const LONG: Duration = Duration::from_secs(3600);

    /// Runs `any_exists` with a read answering `answer`; returns its result and whether the
    /// read ran.
    fn ask(cache: &RevocationCache, answer: bool) -> (bool, bool) {
        let ran = Cell::new(false);
        let any = futures::executor::block_on(cache.any_exists(|| {
            ran.set(true);
            async move { Ok::<_, ()>(answer) }
        }))
        .unwrap_or_else(|()| unreachable!());
        (any, ran.get())
    }

    /// `check_revoked` of `tasks` tasks when `any` revocation exists; returns the flags and
    /// whether the store's own check ran.
    fn check(cache: &RevocationCache, tasks: usize, any: bool) -> (Vec<bool>, bool) {
        let checked = Cell::new(false);
        let flags = futures::executor::block_on(cache.check_revoked(
            tasks,
            || async move { Ok::<_, ()>(any) },
            || {
                checked.set(true);
                async move { Ok(vec![true; tasks]) }
            },
        ))
        .unwrap_or_else(|()| unreachable!());
        (flags, checked.get())
    }

    #[test]
    fn check_revoked_runs_the_store_check_only_when_a_revocation_exists() {
        let cache = RevocationCache::with_ttl(LONG);
        assert_eq!(check(&cache, 0, true), (vec![], false), "no tasks, no read");
        assert_eq!(check(&cache, 2, false), (vec![false, false], false));
        assert_eq!(
            check(&cache, 2, true),
            (vec![false, false], false),
            "\"none\" is cached"
        );
        let cache = RevocationCache::with_ttl(LONG);
        assert_eq!(check(&cache, 2, true), (vec![true, true], true));
    }

    #[test]
    fn none_is_reused_until_a_write_of_this_store() {
        let cache = RevocationCache::with_ttl(LONG);
        assert!(!cache.none_known(cache.version()), "nothing known at first");
        assert_eq!(ask(&cache, false), (false, true));
        assert_eq!(ask(&cache, true), (false, false), "cached: no read");
        futures::executor::block_on(cache.writing(async {}));
        assert!(!cache.none_known(cache.version()));
        assert_eq!(
            ask(&cache, true),
            (true, true),
            "read again after the write"
        );
        assert_eq!(ask(&cache, true), (true, true), "`some` is never cached");
    }

    #[test]
    fn an_answer_read_during_a_write_is_not_used_after_it() {
        let cache = RevocationCache::with_ttl(LONG);
        futures::executor::block_on(cache.writing(async {
            let during = cache.version();
            cache.record(false, during);
            assert!(cache.none_known(during));
        }));
        assert!(!cache.none_known(cache.version()));
    }

    #[test]
    fn an_answer_from_before_a_dropped_write_is_not_used() {
        let cache = RevocationCache::with_ttl(LONG);
        let before = cache.version();
        let write = cache.writing(std::future::pending::<()>());
        let mut write = Box::pin(write);
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(write.as_mut().poll(&mut cx).is_pending());
        cache.record(false, before);
        drop(write);
        assert!(!cache.none_known(cache.version()));
    }

    #[test]
    fn none_expires_after_the_ttl() {
        let cache = RevocationCache::with_ttl(Duration::ZERO);
        cache.record(false, cache.version());
        assert!(!cache.none_known(cache.version()));
        assert_eq!(ask(&cache, false), (false, true), "read every time");
        assert_eq!(RevocationCache::default().ttl, RevocationCache::DEFAULT_TTL);
    }

    #[test]
    fn errors_record_nothing() {
        let cache = RevocationCache::with_ttl(LONG);
        let failed =
            futures::executor::block_on(cache.any_exists(|| async { Err::<bool, _>("down") }));
        assert_eq!(failed, Err("down"));
        assert!(!cache.none_known(cache.version()));
    }
}
