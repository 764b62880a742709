//! The key layout's version, checked when a store opens.
//!
//! Layout 2 (this version; see `lua/common.lua`) keeps everything of a task's lifecycle under
//! its queue's hash tag and each store-wide group under a tag of its own, so it runs on Redis
//! Cluster. Layout 1 (Skiff before it) kept results, unique keys, the id index, dead letters,
//! the registry and the control plane in store-wide keys without a tag (`P:results`,
//! `P:ids`, `P:queues`, …). The two cannot be read as each other: a store of layout 1 would
//! look empty, and its tasks would never run. So `open` looks for layout 1's keys and refuses
//! the store with a message that says what to do; otherwise it records layout 2 in
//! `P:{~queues}:layout`, and refuses a layout it does not know (a newer Skiff's).
//!
//! There is no migration in place: layout 1 does not record the queue of a finished task's
//! result, which layout 2 files under that queue.

use queue_core::{Error, Result};

use crate::store::RedisStorage;

/// The layout this version writes.
pub(crate) const LAYOUT: &str = "2";

/// Store-wide keys of layout 1: any of them means a store of that layout.
const OLD_KEYS: [&str; 10] = [
    "queues", "ids", "results", "unique", "dead", "dead-seq", "revoked", "lock-exp", "workers",
    "paused",
];

impl RedisStorage {
    /// Refuses a store of another key layout; records this one's in a new store.
    pub(crate) async fn check_layout(&self) -> Result<()> {
        // One EXISTS per key: on a cluster they live in different slots.
        let found = futures::future::try_join_all(OLD_KEYS.iter().map(|name| async move {
            let mut cmd = redis::cmd("EXISTS");
            cmd.arg(self.key(name));
            let n: i64 = self.cmd(&cmd, "checking the key layout").await?;
            Ok::<_, Error>((n > 0).then_some(*name))
        }))
        .await?;
        if let Some(name) = found.into_iter().flatten().next() {
            return Err(Error::InvalidInput(format!(
                "the Redis store with key prefix `{p}` was written by an earlier Skiff version \
                 (key layout 1: found `{p}:{name}`), which this version cannot read: it keeps \
                 each queue's results, unique keys and dead letters under the queue's hash tag \
                 (key layout 2, for Redis Cluster). Finish or drain its tasks with the version \
                 that wrote them, then delete its keys (`{p}:*`), or open this version with \
                 another key prefix (RedisOptions::key_prefix)",
                p = self.prefix
            )));
        }
        let marker = self.wkey("queues", "layout");
        let mut set = redis::cmd("SET");
        set.arg(&marker).arg(LAYOUT).arg("NX");
        self.cmd::<Option<String>>(&set, "recording the key layout")
            .await?;
        let mut get = redis::cmd("GET");
        get.arg(&marker);
        let layout: Option<String> = self.cmd(&get, "checking the key layout").await?;
        match layout.as_deref() {
            Some(LAYOUT) | None => Ok(()),
            Some(other) => Err(Error::InvalidInput(format!(
                "the Redis store with key prefix `{}` has key layout {other:?}, which this \
                 version of Skiff (layout {LAYOUT}) does not know: it was written by a newer \
                 version",
                self.prefix
            ))),
        }
    }
}
