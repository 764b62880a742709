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
//! Where no watch can be set up (no inotify instances left, an unusual file system), the store
//! says so in its log and waits poll as before.
//!
//! [`Shared::note_own_commit`]: crate::writer::Shared::note_own_commit

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;

use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use crate::writer::Shared;

/// The watch on a store's files; dropping it stops the watch.
pub(crate) struct FileWatch {
    _watcher: RecommendedWatcher,
}

impl std::fmt::Debug for FileWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileWatch").finish_non_exhaustive()
    }
}

/// Watches the directory of the database at `db` for changes to it or its `-wal` file, and
/// bumps `shared.files` on each. `None` (with a warning in the log) if the watch cannot be set up.
pub(crate) fn spawn(db: &Path, shared: &Arc<Shared>) -> Option<FileWatch> {
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
    let watched = notify::recommended_watcher(handler)
        .and_then(|mut w| w.watch(&dir, RecursiveMode::NonRecursive).map(|()| w));
    match watched {
        Ok(watcher) => Some(FileWatch { _watcher: watcher }),
        Err(err) => {
            tracing::warn!(
                path = %dir.display(),
                error = %err,
                "cannot watch the SQLite database for other processes' commits; idle waits poll instead"
            );
            None
        }
    }
}
