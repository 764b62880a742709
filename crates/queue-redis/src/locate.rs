//! Finding a task's queue from its id alone, without a store-wide index.
//!
//! Everything one task's lifecycle writes lives under its queue's hash tag (one Redis Cluster
//! slot; see `lua/common.lua`), but several [`Storage`](queue_core::Storage) calls name a task
//! by id alone: completing and extending leases, `get_result` / `wait_result`, reschedule,
//! cancel, progress, and the dead-letter calls by id. A store-wide id → queue index would be a
//! key of another slot, written in a call of its own beside every enqueue and kept as long as
//! a task's result or dead letter: a second round trip on the hot path and a second source of
//! truth that a crash between the two calls would leave wrong. Instead:
//!
//! * **Leases** this store handed out are remembered in memory ([`LeaseQueues`]: id → queue,
//!   filled by `fetch`, emptied by `complete`), so the runtime's completions, renewals and
//!   progress reports cost nothing extra.
//! * **Anything else** is looked up in every queue of the registry (`P:{~queues}:queues`, the
//!   queues ever used): one read-only call per queue, all sent at once (`admin.lua` `locate`,
//!   which answers per id whether the queue holds it pending, a result of it, a dead letter of
//!   it). Its cost grows with the number of queues, not with the number of tasks.
//!
//! An id is unique within its queue: a fixed id enqueued into two queues makes two tasks, and
//! a lookup by id alone answers the first queue by name that holds it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::try_join_all;
use queue_core::{Result, TaskId};

use crate::store::RedisStorage;

/// At most this many leases are remembered; past it the memory starts again (a lease it
/// forgot is found by a lookup in every queue).
const REMEMBERED_LEASES: usize = 200_000;

/// Ids per `locate` call.
const LOCATE_CHUNK: usize = 500;

/// The flag of `admin.lua` `locate`: a pending task of the queue.
pub(crate) const PENDING: u8 = 1;
/// The flag of `admin.lua` `locate`: a result of the id.
pub(crate) const RESULT: u8 = 2;
/// The flag of `admin.lua` `locate`: a dead letter of the id.
pub(crate) const DEAD: u8 = 4;

/// The queue of each lease this store handed out and has not completed (see the module docs).
#[derive(Default)]
pub(crate) struct LeaseQueues {
    map: Mutex<HashMap<TaskId, Arc<str>>>,
}

impl LeaseQueues {
    /// Remembers that `ids` were leased from `queue`.
    pub(crate) fn leased(&self, queue: &str, ids: impl Iterator<Item = TaskId>) {
        let queue: Arc<str> = Arc::from(queue);
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        for id in ids {
            if map.len() >= REMEMBERED_LEASES {
                map.clear();
            }
            map.insert(id, Arc::clone(&queue));
        }
    }

    /// The queue `id` was leased from, if remembered.
    pub(crate) fn get(&self, id: &TaskId) -> Option<Arc<str>> {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// Forgets `ids` (completed).
    pub(crate) fn forget(&self, ids: impl Iterator<Item = TaskId>) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        for id in ids {
            map.remove(&id);
        }
    }

    /// Forgets everything (the store was flushed).
    pub(crate) fn clear(&self) {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

impl RedisStorage {
    /// The registry key: the set of every queue ever used.
    pub(crate) fn registry_key(&self) -> String {
        self.wkey("queues", "queues")
    }

    /// The `SADD` that enters `queues` in the registry.
    pub(crate) fn register_cmd<'a>(&self, queues: impl IntoIterator<Item = &'a str>) -> redis::Cmd {
        let mut cmd = redis::cmd("SADD");
        cmd.arg(self.registry_key());
        for q in queues {
            cmd.arg(q);
        }
        cmd
    }

    /// Every queue ever used (the registry), sorted by name.
    pub(crate) async fn registered_queues(&self) -> Result<Vec<String>> {
        let mut cmd = redis::cmd("SMEMBERS");
        cmd.arg(self.registry_key());
        let mut names: Vec<String> = self.cmd(&cmd, "list queues").await?;
        names.sort();
        Ok(names)
    }

    /// Where each of `ids` is: per id, the queues that hold it, with the `locate` flags
    /// ([`PENDING`], [`RESULT`], [`DEAD`]) of each, queues in name order.
    pub(crate) async fn locate(&self, ids: &[TaskId]) -> Result<Vec<Vec<(String, u8)>>> {
        let mut found = vec![Vec::new(); ids.len()];
        if ids.is_empty() {
            return Ok(found);
        }
        let queues = self.registered_queues().await?;
        let now = self.now_ms();
        let calls = queues.iter().flat_map(|q| {
            ids.chunks(LOCATE_CHUNK)
                .enumerate()
                .map(move |(chunk, part)| (q, chunk, part))
        });
        let replies = try_join_all(calls.map(|(q, chunk, part)| async move {
            let mut inv = self.qcall(&self.scripts.admin_read, q, now);
            inv.arg("locate").arg(q.as_str());
            for id in part {
                inv.arg(id.to_string());
            }
            let flags: Vec<i64> = self.run(inv, "look up tasks by id").await?;
            Ok::<_, queue_core::Error>((q, chunk * LOCATE_CHUNK, flags))
        }))
        .await?;
        for (q, first, flags) in replies {
            for (i, f) in flags.into_iter().enumerate() {
                let f = u8::try_from(f).unwrap_or(0) & (PENDING | RESULT | DEAD);
                if let (true, Some(slot)) = (f != 0, found.get_mut(first + i)) {
                    slot.push((q.clone(), f));
                }
            }
        }
        Ok(found)
    }

    /// The queues that hold `id`, each with the `locate` flags (see [`locate`](Self::locate)).
    pub(crate) async fn locate_one(&self, id: TaskId) -> Result<Vec<(String, u8)>> {
        Ok(self.locate(&[id]).await?.pop().unwrap_or_default())
    }

    /// The queue where `id` is pending (the first by name), looked up in every queue; never
    /// from remembered leases, which may be older than the task. `None`: pending nowhere.
    pub(crate) async fn pending_queue(&self, id: TaskId) -> Result<Option<Arc<str>>> {
        Ok(self
            .locate_one(id)
            .await?
            .into_iter()
            .find(|(_, f)| f & PENDING != 0)
            .map(|(q, _)| Arc::from(q.as_str())))
    }

    /// The queue of each of `ids`, tasks whose leases the caller holds: remembered leases
    /// first, then a lookup in every queue for the rest. `None`: pending nowhere. (A
    /// remembered queue is right for a lease: its task was leased from there, and if the
    /// lease is no longer current the call finds it stale, as it should.)
    pub(crate) async fn lease_queues(&self, ids: &[TaskId]) -> Result<Vec<Option<Arc<str>>>> {
        let mut out: Vec<Option<Arc<str>>> = ids.iter().map(|id| self.leases.get(id)).collect();
        let missing: Vec<usize> = (0..ids.len()).filter(|&i| out[i].is_none()).collect();
        if missing.is_empty() {
            return Ok(out);
        }
        let unknown: Vec<TaskId> = missing.iter().map(|&i| ids[i]).collect();
        let found = self.locate(&unknown).await?;
        for (i, places) in missing.into_iter().zip(found) {
            out[i] = places
                .into_iter()
                .find(|(_, f)| f & PENDING != 0)
                .map(|(q, _)| Arc::from(q.as_str()));
        }
        Ok(out)
    }

    /// The queues of `ids` with flag `flag`, grouped: queue → the indexes into `ids` found
    /// there (each index under the first queue by name that has the flag).
    pub(crate) async fn group_by_flag(
        &self,
        ids: &[TaskId],
        flag: u8,
    ) -> Result<Vec<(String, Vec<usize>)>> {
        let found = self.locate(ids).await?;
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, places) in found.into_iter().enumerate() {
            if let Some((q, _)) = places.into_iter().find(|(_, f)| f & flag != 0) {
                match groups.iter_mut().find(|(g, _)| *g == q) {
                    Some((_, list)) => list.push(i),
                    None => groups.push((q, vec![i])),
                }
            }
        }
        Ok(groups)
    }
}

/// Groups `items` by the queue `queue_of` gives each, keeping their order within a queue and
/// the queues in order of first appearance: (queue, indexes into `items`).
pub(crate) fn group_by<T>(
    items: &[T],
    mut queue_of: impl FnMut(usize, &T) -> Option<Arc<str>>,
) -> Vec<(Arc<str>, Vec<usize>)> {
    let mut groups: Vec<(Arc<str>, Vec<usize>)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(q) = queue_of(i, item) else {
            continue;
        };
        match groups.iter_mut().find(|(g, _)| *g == q) {
            Some((_, list)) => list.push(i),
            None => groups.push((q, vec![i])),
        }
    }
    groups
}
