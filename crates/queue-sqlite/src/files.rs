//! Wake-ups from other processes: a file-change watch on the database's directory.
//!
//! Every commit appends to the database's `-wal` file (a checkpoint writes the database file
//! itself), so a change to either, reported by the operating system (inotify on Linux, through
//! the `notify` crate), means another process may have written tasks or results. The watch
//! bumps the store's `files` channel, and idle waits (see the `wait` module) look again at
//! once instead of at their next poll: a task enqueued by a producer process starts in a
//! worker process within a few milliseconds, without a polling loop.
//!
//! The store's own commits change the file too. The writer notes the `-wal` file's size and
//! modification time after each of its commits ([`Shared::note_own_commit`]); a wait woken by
//! a change that leaves the file as the writer left it knows the change was its own process's,
//! whose writes wake it directly, and does not look. A commit of another process followed at
//! once by one of this process's is then seen at the next poll instead (`poll_interval`).
//!
//! The watch is on only while some wait of this process needs it ([`FileWatch::hold`]), and
//! [`LINGER`] after the last one ended: every write to a watched file costs the kernel an event
//! and the watch's thread a wake-up, and a process that only enqueues (a web app) would pay
//! that on each of its own commits for nothing (about a sixth of one producer's CPU time).
//!
//! Where no watch can be set up (no inotify instances left, an unusual file system), the store
//! says so in its log and waits poll as before.
//!
//! [`Shared::note_own_commit`]: crate::writer::Shared::note_own_commit

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::time::Instant;

use crate::writer::Shared;

/// How long the watch stays on after the last wait that held it ended (shorter in unit tests).
pub(crate) const LINGER: Duration = if cfg!(test) {
    Duration::from_millis(100)
} else {
    Duration::from_secs(5)
};

/// The watch on a store's files, on while held ([`FileWatch::hold`]).
pub(crate) struct FileWatch {
    dir: PathBuf,
    state: Mutex<State>,
}

struct State {
    watcher: RecommendedWatcher,
    /// Waits holding the watch now.
    holders: usize,
    /// Whether the directory is watched.
    on: bool,
    /// When the last holder let go.
    idle_since: Instant,
    /// A failure to watch was logged already.
    warned: bool,
}

impl std::fmt::Debug for FileWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileWatch")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// A wait's hold on the watch; the watch may stop [`LINGER`] after the last hold is dropped.
pub(crate) struct Hold<'a>(&'a FileWatch);

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.holders = state.holders.saturating_sub(1);
        if state.holders == 0 {
            state.idle_since = Instant::now();
        }
    }
}

impl FileWatch {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Turns the watch on, if it is not, for as long as the returned hold lives. A change
    /// made after this call wakes the store's `files` channel.
    pub(crate) fn hold(&self) -> Hold<'_> {
        let mut state = self.lock();
        state.holders += 1;
        if !state.on {
            match state.watcher.watch(&self.dir, RecursiveMode::NonRecursive) {
                Ok(()) => state.on = true,
                Err(err) if !state.warned => {
                    state.warned = true;
                    tracing::warn!(
                        path = %self.dir.display(),
                        error = %err,
                        "cannot watch the SQLite database for other processes' commits; idle waits poll instead"
                    );
                }
                Err(_) => {}
            }
        }
        Hold(self)
    }

    /// Stops the watch if nothing held it for [`LINGER`].
    fn stop_if_idle(&self) {
        let mut state = self.lock();
        if state.on && state.holders == 0 && state.idle_since.elapsed() >= LINGER {
            state.on = false;
            // Removing an inotify watch can take milliseconds (the kernel waits for readers
            // of its marks): this runs on a blocking thread, see `spawn`.
            if let Err(err) = state.watcher.unwatch(&self.dir) {
                tracing::debug!(error = %err, "could not stop watching the SQLite database");
            }
        }
    }

    /// Whether the directory is watched now.
    pub(crate) fn is_on(&self) -> bool {
        self.lock().on
    }
}

/// A watch (off until held) on the directory of the database at `db`, for changes to it or
/// its `-wal` file, bumping `shared.files` on each; and a task that turns it off when idle.
/// `None` (with a warning in the log) if no watcher can be made.
pub(crate) fn spawn(db: &Path, shared: &Arc<Shared>) -> Option<()> {
    let dir = match db.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => Path::new(".").to_owned(),
    };
    let name = db.file_name()?.to_owned();
    let mut wal = name.clone();
    wal.push("-wal");
    let names: [OsString; 2] = [name, wal];
    let weak = Arc::downgrade(shared);
    let handler = move |event: notify::Result<Event>| {
        let Ok(event) = event else { return };
        if !matches!(event.kind, EventKind::Modify(_) | EventKind::Create(_)) {
            return;
        }
        let ours = event
            .paths
            .iter()
            .any(|p| p.file_name().is_some_and(|n| names.iter().any(|x| x == n)));
        if ours {
            if let Some(shared) = weak.upgrade() {
                shared.files.send_modify(|v| *v = v.wrapping_add(1));
            }
        }
    };
    let watcher = match notify::recommended_watcher(handler) {
        Ok(watcher) => watcher,
        Err(err) => {
            tracing::warn!(
                path = %dir.display(),
                error = %err,
                "cannot watch the SQLite database for other processes' commits; idle waits poll instead"
            );
            return None;
        }
    };
    let watch = FileWatch {
        dir,
        state: Mutex::new(State {
            watcher,
            holders: 0,
            on: false,
            idle_since: Instant::now(),
            warned: false,
        }),
    };
    if shared.watch.set(watch).is_err() {
        return None;
    }
    tokio::spawn(stop_when_idle(Arc::downgrade(shared)));
    Some(())
}

/// Turns the store's watch off when nothing held it for [`LINGER`]; ends with the store.
async fn stop_when_idle(shared: Weak<Shared>) {
    loop {
        tokio::time::sleep(LINGER).await;
        let Some(strong) = shared.upgrade() else {
            return;
        };
        let idle = strong.watch.get().is_some_and(|w| {
            let state = w.lock();
            state.on && state.holders == 0 && state.idle_since.elapsed() >= LINGER
        });
        if idle {
            let stopped = tokio::task::spawn_blocking(move || {
                if let Some(w) = strong.watch.get() {
                    w.stop_if_idle();
                }
            });
            if stopped.await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use queue_core::clock::system_clock;

    #[tokio::test]
    async fn the_watch_is_on_while_held_and_stops_after_it_lingered() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("q.db");
        let shared = Arc::new(Shared::watching(system_clock(), crate::wait::wal_path(&db)));
        assert!(spawn(&db, &shared).is_some());
        let watch = shared.watch.get().unwrap();
        assert!(!watch.is_on(), "off until a wait holds it");

        let hold = watch.hold();
        assert!(watch.is_on());
        let mut files = shared.files.subscribe();
        std::fs::write(&db, b"x").unwrap();
        tokio::time::timeout(Duration::from_secs(5), files.changed())
            .await
            .expect("a change while held wakes the channel")
            .unwrap();

        drop(hold);
        let again = watch.hold();
        tokio::time::sleep(LINGER * 3).await;
        assert!(watch.is_on(), "held again: stays on");
        drop(again);
        for _ in 0..100 {
            tokio::time::sleep(LINGER).await;
            if !watch.is_on() {
                return;
            }
        }
        panic!("the watch is still on long after the last hold ended");
    }
}
