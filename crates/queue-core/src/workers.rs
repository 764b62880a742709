//! Live workers: what each consumer reports about itself in its heartbeat
//! ([`Storage::heartbeat`](crate::Storage::heartbeat)), and how stores keep it.
//!
//! A consumer sends a [`Heartbeat`] about once a second: who it is ([`WorkerInfo`]), what it
//! runs now ([`RunningTask`]), the progress its tasks reported since the last beat, and how
//! long to believe it ([`Heartbeat::ttl`]). The store keeps the newest beat of each worker as
//! one [`WorkerStatus`] (encoded with [`WorkerStatus::encode`], so every store writes the same
//! bytes) until it is older than its ttl; the answer to a heartbeat names the running tasks an
//! operator asked to cancel.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Error, Lease, Result, TaskId};

/// Who a consumer is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// Unique for each consumer that ever ran (a new one per start).
    pub id: String,
    /// The machine's host name.
    pub hostname: String,
    /// The process id.
    pub pid: u32,
    /// The queues it consumes, with their weights.
    pub queues: Vec<(String, u32)>,
    /// How many tasks it runs at once at most.
    pub concurrency: u32,
    /// The Skiff version it runs.
    pub version: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
}

impl WorkerInfo {
    /// This process's identity for a consumer of `queues` running `concurrency` tasks at
    /// once, started at `started_at`, with a fresh id.
    ///
    /// # Examples
    ///
    /// ```
    /// let me = queue_core::WorkerInfo::this_process(vec![("emails".into(), 1)], 8, chrono::Utc::now());
    /// assert_eq!(me.pid, std::process::id());
    /// assert_ne!(me.id, queue_core::WorkerInfo::this_process(vec![], 1, me.started_at).id);
    /// ```
    pub fn this_process(
        queues: Vec<(String, u32)>,
        concurrency: u32,
        started_at: DateTime<Utc>,
    ) -> Self {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown".into());
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            hostname,
            pid: std::process::id(),
            queues,
            concurrency,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at,
        }
    }
}

/// A task a worker runs now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningTask {
    /// The task's id.
    pub id: TaskId,
    /// Its task name.
    pub task: String,
    /// Its queue.
    pub queue: String,
    /// When this worker started it.
    pub since: DateTime<Utc>,
}

/// What a consumer reports about once a second ([`Storage::heartbeat`](crate::Storage::heartbeat)).
#[derive(Clone, Debug)]
pub struct Heartbeat {
    /// Who it is.
    pub worker: WorkerInfo,
    /// What it runs now.
    pub running: Vec<RunningTask>,
    /// Progress its running tasks reported since its last heartbeat (the newest value of each),
    /// encoded as msgpack: stored with the task while its lease holds.
    pub progress: Vec<(Lease, Vec<u8>)>,
    /// How long it counts as live without another heartbeat.
    pub ttl: Duration,
    /// Tasks it finished per minute and queue over the last hour (minutes with none left out).
    pub throughput: Vec<MinuteCount>,
    /// The periodic tasks its ticker runs (none when it runs no ticker).
    pub periodic: Vec<PeriodicStatus>,
}

/// Tasks one worker finished in one minute of one queue, as its heartbeat reports them: the
/// store keeps no history, so a dashboard sums the live workers' reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinuteCount {
    /// The queue.
    pub queue: String,
    /// The minute's start (seconds and below zero), on the store's clock.
    pub minute: DateTime<Utc>,
    /// Executions that ended in success.
    pub processed: u64,
    /// Executions that ended in a failure (retried, dead-lettered, dropped: an error, a panic,
    /// a timeout, a cancellation).
    pub failed: u64,
}

/// A periodic task as a worker's ticker sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodicStatus {
    /// The task's name.
    pub task: String,
    /// The queue its fires go to.
    pub queue: String,
    /// The schedule as written (a cron expression, or `every 30s`).
    pub schedule: String,
    /// Its next fire time.
    pub next: Option<DateTime<Utc>>,
    /// The latest fire time this ticker handled since it started (it enqueued the fire, or
    /// found it claimed by another ticker).
    pub last: Option<DateTime<Utc>>,
}

/// A live worker as the store keeps it: its newest heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStatus {
    /// Who it is.
    pub info: WorkerInfo,
    /// What it ran at its last heartbeat.
    pub running: Vec<RunningTask>,
    /// When the store received its last heartbeat.
    pub last_seen: DateTime<Utc>,
    /// Tasks it finished per minute and queue over the last hour (empty from a worker that
    /// predates this field).
    #[serde(default)]
    pub throughput: Vec<MinuteCount>,
    /// The periodic tasks its ticker runs.
    #[serde(default)]
    pub periodic: Vec<PeriodicStatus>,
}

impl WorkerStatus {
    /// What a store keeps of `beat`, received at `now`.
    pub fn of(beat: &Heartbeat, now: DateTime<Utc>) -> Self {
        Self {
            info: beat.worker.clone(),
            running: beat.running.clone(),
            last_seen: now,
            throughput: beat.throughput.clone(),
            periodic: beat.periodic.clone(),
        }
    }

    /// Encodes it for a store (msgpack with field names).
    pub fn encode(&self) -> Result<Vec<u8>> {
        rmp_serde::to_vec_named(self).map_err(|e| Error::encode("worker status", e))
    }

    /// Decodes what [`WorkerStatus::encode`] wrote.
    ///
    /// # Examples
    ///
    /// ```
    /// use queue_core::{WorkerInfo, WorkerStatus};
    /// let now = chrono::Utc::now();
    /// let info = WorkerInfo::this_process(vec![], 4, now);
    /// let status = WorkerStatus { info, running: vec![], last_seen: now, throughput: vec![], periodic: vec![] };
    /// assert_eq!(WorkerStatus::decode(&status.encode()?)?, status);
    /// assert!(WorkerStatus::decode(b"garbage").is_err());
    /// # Ok::<(), queue_core::Error>(())
    /// ```
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        rmp_serde::from_slice(bytes).map_err(|e| Error::decode("worker status", e))
    }
}

/// How long an operator's cancel request for a task is kept: a running task learns of it at
/// its worker's next heartbeat (about a second), so this only bounds what a store keeps for
/// tasks that finished or were never fetched again.
pub const CANCEL_REQUEST_TTL: Duration = Duration::from_secs(600);

#[cfg(test)]
mod tests {
    use super::*;

    /// What a worker from before `throughput` and `periodic` wrote.
    #[derive(Serialize)]
    struct OldStatus {
        info: WorkerInfo,
        running: Vec<RunningTask>,
        last_seen: DateTime<Utc>,
    }

    #[test]
    fn a_status_written_by_an_older_worker_still_decodes() {
        let now = Utc::now();
        let old = OldStatus {
            info: WorkerInfo::this_process(vec![("emails".into(), 1)], 2, now),
            running: vec![],
            last_seen: now,
        };
        let bytes = rmp_serde::to_vec_named(&old).unwrap_or_default();
        let status = WorkerStatus::decode(&bytes).map_err(|e| e.to_string());
        let status = status
            .as_ref()
            .map(|s| (&s.info, s.throughput.len(), s.periodic.len()));
        assert_eq!(status, Ok((&old.info, 0, 0)));
    }

    #[test]
    fn throughput_and_periodic_round_trip() {
        let now = Utc::now();
        let status = WorkerStatus {
            info: WorkerInfo::this_process(vec![], 1, now),
            running: vec![],
            last_seen: now,
            throughput: vec![MinuteCount {
                queue: "q".into(),
                minute: now,
                processed: 5,
                failed: 1,
            }],
            periodic: vec![PeriodicStatus {
                task: "report".into(),
                queue: "default".into(),
                schedule: "0 0 3 * * *".into(),
                next: Some(now),
                last: None,
            }],
        };
        let decoded = status.encode().and_then(|b| WorkerStatus::decode(&b));
        assert_eq!(decoded.ok(), Some(status));
    }
}
