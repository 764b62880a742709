//! Introspection and flush: counts, listings, one task, queue names.

use futures::future::try_join_all;
use queue_core::clock::from_millis;
use queue_core::storage::{Counts, Page, TaskRecord, TaskState};
use queue_core::{Envelope, Result, TaskId};
use redis::Value;

use crate::conn::Conn;
use crate::store::RedisStorage;
use crate::wire::{self, next};
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};

/// Keys deleted per `UNLINK` by [`RedisStorage::flush_all`].
const FLUSH_BATCH: usize = 1000;

/// One pending task as the admin script lists it, with its sort key.
pub(crate) struct Row {
    pub(crate) record: TaskRecord,
    key: (i64, i64),
}

pub(crate) fn parse_row(row: Value, now: i64) -> Result<Row> {
    let mut row = wire::array(row)?.into_iter();
    let id = wire::task_id(next(&mut row)?)?;
    let queue = wire::text(next(&mut row)?)?;
    let raw = wire::bytes(next(&mut row)?)?;
    let priority = wire::int(next(&mut row)?)?;
    let run_at = wire::int(next(&mut row)?)?;
    let token = wire::bytes(next(&mut row)?)?;
    let expires = wire::int(next(&mut row)?)?;
    let deliveries = wire::int(next(&mut row)?)?;
    let attempts = wire::int(next(&mut row)?)?;
    let seq = wire::int(next(&mut row)?)?;
    let state = if !token.is_empty() {
        TaskState::Leased
    } else if run_at <= now {
        TaskState::Ready
    } else {
        TaskState::Scheduled
    };
    let key = match state {
        // A stored priority is an i16, but the value read back may be anything.
        TaskState::Ready => (priority.saturating_neg(), seq),
        TaskState::Scheduled => (run_at, seq),
        TaskState::Leased => (expires, seq),
    };
    let envelope = Envelope::decode(&raw)
        .map(|mut env| {
            env.deliveries = wire::count32(deliveries);
            env.attempt = wire::count32(attempts);
            env.priority = i16::try_from(priority).unwrap_or(env.priority);
            env
        })
        .map_err(|e| e.to_string());
    Ok(Row {
        record: TaskRecord {
            id,
            queue,
            state,
            run_at: from_millis(run_at),
            lease_expires_at: (state == TaskState::Leased).then(|| from_millis(expires)),
            envelope,
        },
        key,
    })
}

fn state_name(state: TaskState) -> &'static str {
    match state {
        TaskState::Ready => "ready",
        TaskState::Scheduled => "scheduled",
        TaskState::Leased => "leased",
    }
}

impl RedisStorage {
    /// The counts of one queue.
    async fn count_queue(&self, queue: &str, now: i64) -> Result<Counts> {
        let mut inv = self.qcall(&self.scripts.admin_read, queue, now);
        inv.arg("counts").arg(queue);
        let c: Vec<i64> = self.run(inv, "count tasks").await?;
        let get = |i: usize| wire::count64(c.get(i).copied().unwrap_or(0));
        Ok(Counts {
            ready: get(0),
            scheduled: get(1),
            leased: get(2),
            dead: get(3),
            results: get(4),
        })
    }

    /// The counts of each of `queues`, read at once.
    async fn counts_of(&self, queues: &[String]) -> Result<Vec<Counts>> {
        let now = self.now_ms();
        try_join_all(queues.iter().map(|q| self.count_queue(q, now))).await
    }

    pub(crate) async fn count_tasks(&self, queue: Option<&str>) -> Result<Counts> {
        if let Some(q) = queue {
            return self.count_queue(q, self.now_ms()).await;
        }
        let queues = self.registered_queues().await?;
        let mut total = Counts::default();
        for c in self.counts_of(&queues).await? {
            total.ready += c.ready;
            total.scheduled += c.scheduled;
            total.leased += c.leased;
            total.dead += c.dead;
            total.results += c.results;
        }
        Ok(total)
    }

    async fn list_queue(
        &self,
        state: TaskState,
        queue: &str,
        start: u64,
        count: u64,
    ) -> Result<Vec<Row>> {
        let now = self.now_ms();
        let mut inv = self.qcall(&self.scripts.admin, queue, now);
        inv.arg("list")
            .arg(queue)
            .arg(state_name(state))
            .arg(start)
            .arg(count);
        let rows: Vec<Value> = self.run(inv, "list tasks").await?;
        Ok(wire::parsed_rows(rows, "task", |r| parse_row(r, now)))
    }

    pub(crate) async fn list_tasks(
        &self,
        state: TaskState,
        queue: Option<&str>,
        page: Page,
    ) -> Result<Vec<TaskRecord>> {
        if page.limit == 0 {
            return Ok(Vec::new());
        }
        let limit = u64::from(page.limit);
        let mut rows = match queue {
            Some(q) => self.list_queue(state, q, page.offset, limit).await?,
            None => {
                // Each queue's first offset + limit rows, merged.
                let want = page.offset.saturating_add(limit);
                let mut all = Vec::new();
                for q in self.registered_queues().await? {
                    all.extend(self.list_queue(state, &q, 0, want).await?);
                }
                all.sort_by(|a, b| (a.key, &a.record.queue).cmp(&(b.key, &b.record.queue)));
                all.into_iter()
                    .skip(usize::try_from(page.offset).unwrap_or(usize::MAX))
                    .collect()
            }
        };
        rows.retain(|r| r.record.state == state);
        rows.truncate(page.limit as usize);
        Ok(rows.into_iter().map(|r| r.record).collect())
    }

    pub(crate) async fn task(&self, id: TaskId) -> Result<Option<TaskRecord>> {
        let Some(queue) = self.pending_queue(id).await? else {
            return Ok(None);
        };
        let now = self.now_ms();
        let mut inv = self.qcall(&self.scripts.admin_read, &queue, now);
        inv.arg("task").arg(&*queue).arg(id.to_string());
        let row: Value = self.run(inv, "read a task").await?;
        if matches!(row, Value::Nil) {
            return Ok(None);
        }
        parse_row(row, now).map(|r| Some(r.record))
    }

    /// The queues with pending or dead tasks, by name.
    pub(crate) async fn queue_names(&self) -> Result<Vec<String>> {
        let queues = self.registered_queues().await?;
        let counts = self.counts_of(&queues).await?;
        Ok(queues
            .into_iter()
            .zip(counts)
            .filter(|(_, c)| c.ready + c.scheduled + c.leased + c.dead > 0)
            .map(|(q, _)| q)
            .collect())
    }

    /// Deletes every key under this store's prefix (`SCAN MATCH prefix:*`, `UNLINK` in batches;
    /// on a cluster, `SCAN` on every master and one `UNLINK` per key). Other prefixes on the
    /// same server are not touched.
    pub(crate) async fn flush_all(&self) -> Result<()> {
        self.leases.clear();
        let mut conn = self.conn().await?;
        let nodes = match &mut conn.conn {
            Conn::Single(_) => vec![None],
            Conn::Cluster(c) => cluster_masters(c)
                .await
                .map_err(|e| self.redactor.error("flush (cluster nodes)", e))?
                .into_iter()
                .map(Some)
                .collect(),
        };
        for node in nodes {
            self.flush_node(&mut conn.conn, node).await?;
        }
        Ok(())
    }

    /// `flush_all` on one node (`None`: the one server; on a cluster, the master that owns
    /// this slot).
    async fn flush_node(&self, conn: &mut Conn, node: Option<u16>) -> Result<()> {
        let pattern = format!("{}:*", glob_escape(&self.prefix));
        // Another store's prefix may extend this one's (`skiff` and `skiff:eu`): of the keys
        // under `prefix:`, only those named as this store names its keys are deleted.
        let pattern_len = self.prefix.len() + 1;
        let mut cursor: u64 = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(FLUSH_BATCH);
            let page = match (&mut *conn, &node) {
                (Conn::Cluster(c), Some(slot)) => {
                    // By a slot of the master (routing by address needs a connection the
                    // client may not have opened yet).
                    let to = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                        Route::new(*slot, SlotAddr::Master),
                    ));
                    c.route_command(scan, to).await.and_then(|v| {
                        redis::from_redis_value::<(u64, Vec<Vec<u8>>)>(v).map_err(Into::into)
                    })
                }
                (conn, _) => scan.query_async(conn).await,
            };
            let (next_cursor, keys) = page.map_err(|e| self.redactor.error("flush (scan)", e))?;
            let mut checked = Vec::with_capacity(keys.len());
            for key in keys {
                let rest = &key[pattern_len..];
                let ours = match classify(rest) {
                    Owner::Ours => true,
                    Owner::Other => false,
                    Owner::IfHashFields(fields) => {
                        let found: Vec<String> = redis::cmd("HKEYS")
                            .arg(&key)
                            .query_async(&mut *conn)
                            .await
                            .unwrap_or_default();
                        let mut found = found;
                        found.sort_unstable();
                        found.iter().map(String::as_str).eq(fields.iter().copied())
                    }
                };
                if ours {
                    checked.push(key);
                }
            }
            if !checked.is_empty() {
                let unlinked = if matches!(conn, Conn::Cluster(_)) {
                    // Keys of different slots: one UNLINK each, sent at once.
                    try_join_all(checked.iter().map(|key| {
                        let mut conn = conn.clone();
                        async move {
                            redis::cmd("UNLINK")
                                .arg(key)
                                .query_async::<i64>(&mut conn)
                                .await
                        }
                    }))
                    .await
                    .map(|_| ())
                } else {
                    redis::cmd("UNLINK")
                        .arg(&checked)
                        .query_async::<i64>(&mut *conn)
                        .await
                        .map(|_| ())
                };
                unlinked.map_err(|e| self.redactor.error("flush (unlink)", e))?;
            }
            if next_cursor == 0 {
                return Ok(());
            }
            cursor = next_cursor;
        }
    }
}

/// One slot of each master of a cluster (the first of its first range), from `CLUSTER NODES`.
async fn cluster_masters(
    conn: &mut redis::cluster_async::ClusterConnection,
) -> redis::RedisResult<Vec<u16>> {
    let nodes: String = redis::cmd("CLUSTER").arg("NODES").query_async(conn).await?;
    Ok(nodes
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let flags = fields.get(2)?;
            if !flags.contains("master") || flags.contains("fail") {
                return None;
            }
            // "0-5460" or "5461"; entries in brackets are slots being moved.
            let range = fields.get(8..)?.iter().find(|f| !f.starts_with('['))?;
            range.split('-').next()?.parse().ok()
        })
        .collect())
}

/// Whose a key found under `prefix:` is, by what follows the prefix.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    Ours,
    Other,
    /// Ours if it is a hash with exactly these fields (sorted): lock and rate-window names are
    /// free text, so `lock:` or `rate:` could begin another store's prefix.
    IfHashFields(&'static [&'static str]),
}

pub(crate) fn classify(rest: &[u8]) -> Owner {
    let Ok(rest) = std::str::from_utf8(rest) else {
        return Owner::Other;
    };
    // Every key but the rate windows starts with a hash tag (a queue's, or a store-wide
    // group's `{~…}`); prefixes never contain `{`.
    if rest.starts_with('{') {
        return Owner::Ours;
    }
    if rest.starts_with("rate:") {
        return Owner::IfHashFields(&["n", "w"]);
    }
    Owner::Other
}

/// Escapes the glob characters of `SCAN MATCH`.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::glob_escape;

    #[test]
    fn keys_of_a_longer_prefix_are_not_ours() {
        use super::{classify, Owner};
        let id = queue_core::TaskId::new().to_string();
        for ours in [
            "{q}:ready",
            "{~queues}:queues",
            "{~workers}:cancel",
            &format!("{{q}}:dead:{id}"),
            &format!("{{q}}:result-wake:{id}"),
        ] {
            assert_eq!(classify(ours.as_bytes()), Owner::Ours, "{ours}");
        }
        for other in [
            "eu:ids",
            "eu:{q}:ready",
            "dead:eu:ids",
            "ids",
            "result-wake:x",
        ] {
            assert_eq!(classify(other.as_bytes()), Owner::Other, "{other}");
        }
        assert_eq!(classify(b"rate:r"), Owner::IfHashFields(&["n", "w"]));
    }

    #[test]
    fn a_stored_priority_of_any_size_is_listed() {
        use redis::Value;
        let id = queue_core::TaskId::new().to_string();
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        for priority in [i64::MIN, i64::MAX, -1] {
            let row = Value::Array(vec![
                bulk(&id),
                bulk("default"),
                bulk("not an envelope"),
                Value::Int(priority),
                Value::Int(0),
                bulk(""),
                Value::Int(0),
                Value::Int(1),
                Value::Int(0),
                Value::Int(7),
            ]);
            let row = super::parse_row(row, 1).unwrap();
            assert_eq!(row.key, (priority.saturating_neg(), 7), "{priority}");
            assert!(row.record.envelope.is_err());
        }
    }

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("skiff"), "skiff");
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
