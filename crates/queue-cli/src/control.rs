//! The control-plane commands: pause, resume and purge a queue, cancel a task, list the live
//! workers, show one task's whole record.

use std::sync::Arc;

use serde_json::{json, Value};
use skiff::{CancelRequest, Queue, Storage, TaskId, WorkerStatus};

use crate::commands::record_json;
use crate::output::{fields, table, time, CliError, Report};

type Result<T, E = CliError> = std::result::Result<T, E>;

pub(crate) async fn pause(queue: &Queue, name: &str, paused: bool) -> Result<Report> {
    let changed = if paused {
        queue.pause(name).await?
    } else {
        queue.resume(name).await?
    };
    let (verb, already) = if paused {
        ("paused", "was already paused")
    } else {
        ("resumed", "was not paused")
    };
    let human = if changed {
        format!("{verb} queue {name}")
    } else {
        format!("queue {name} {already}")
    };
    Ok(Report::new(
        json!({ "queue": name, "paused": paused, "changed": changed }),
        human,
    ))
}

/// Confirmed before it runs (`Cli::unconfirmed`).
pub(crate) async fn purge(queue: &Queue, name: &str) -> Result<Report> {
    let purged = queue.purge(name).await?;
    Ok(Report::new(
        json!({ "queue": name, "purged": purged }),
        format!("deleted {purged} waiting tasks of queue {name} (running tasks finish)"),
    ))
}

pub(crate) async fn cancel(queue: &Queue, id: TaskId) -> Result<Report> {
    let (state, human) = match queue.cancel(id).await? {
        CancelRequest::Running => (
            "running",
            format!("task {id} is running: its worker stops it within about a second"),
        ),
        CancelRequest::Pending => (
            "pending",
            format!("task {id} had not started: it is revoked and will not run"),
        ),
        CancelRequest::NotFound => {
            return Err(CliError::new(format!(
                "no pending or running task with id {id}"
            )))
        }
    };
    Ok(Report::new(
        json!({ "canceled": id.to_string(), "state": state }),
        human,
    ))
}

fn worker_json(w: &WorkerStatus) -> Value {
    json!({
        "id": w.info.id,
        "hostname": w.info.hostname,
        "pid": w.info.pid,
        "queues": w.info.queues.iter().map(|(q, weight)| json!({ "queue": q, "weight": weight })).collect::<Vec<_>>(),
        "concurrency": w.info.concurrency,
        "version": w.info.version,
        "started_at": time(w.info.started_at),
        "last_seen": time(w.last_seen),
        "running": w.running.iter().map(|r| json!({
            "id": r.id.to_string(),
            "task": r.task,
            "queue": r.queue,
            "since": time(r.since),
        })).collect::<Vec<_>>(),
        "last_hour": last_hour(w),
        "throughput": w.throughput.iter().map(|c| json!({
            "queue": c.queue,
            "minute": time(c.minute),
            "processed": c.processed,
            "failed": c.failed,
        })).collect::<Vec<_>>(),
        "periodic": w.periodic.iter().map(|p| json!({
            "task": p.task,
            "queue": p.queue,
            "schedule": p.schedule,
            "next": p.next.map(time),
            "last": p.last.map(time),
        })).collect::<Vec<_>>(),
    })
}

/// What a worker finished over the last hour it reports: `{"processed", "failed"}`.
fn last_hour(w: &WorkerStatus) -> Value {
    let (processed, failed) = w
        .throughput
        .iter()
        .fold((0u64, 0u64), |(p, f), c| (p + c.processed, f + c.failed));
    json!({ "processed": processed, "failed": failed })
}

pub(crate) async fn workers(queue: &Queue) -> Result<Report> {
    let live = queue.workers().await?;
    let json: Vec<Value> = live.iter().map(worker_json).collect();
    let human = if live.is_empty() {
        "no live workers".to_owned()
    } else {
        let rows = live
            .iter()
            .map(|w| {
                let queues: Vec<String> = w
                    .info
                    .queues
                    .iter()
                    .map(|(q, weight)| format!("{q}:{weight}"))
                    .collect();
                let running: Vec<String> = w
                    .running
                    .iter()
                    .map(|r| format!("{} {}", r.task, r.id))
                    .collect();
                let hour = last_hour(w);
                vec![
                    format!("{}@{}", w.info.pid, w.info.hostname),
                    queues.join(","),
                    format!("{}/{}", w.running.len(), w.info.concurrency),
                    format!("{}/{}", hour["processed"], hour["failed"]),
                    time(w.info.started_at),
                    time(w.last_seen),
                    running.join(", "),
                ]
            })
            .collect();
        table(
            &[
                "worker",
                "queues",
                "busy",
                "done/failed (1h)",
                "started",
                "last seen",
                "running",
            ],
            rows,
            &[],
        )
    };
    Ok(Report::new(Value::Array(json), human))
}

/// One task's whole record: state, decoded envelope, attempts, the worker holding it,
/// progress, and its result once finished.
pub(crate) async fn task(
    queue: &Queue,
    storage: &Arc<dyn Storage>,
    results: &crate::commands::Results,
    id: TaskId,
) -> Result<Report> {
    let record = storage.get_task(id).await?;
    let result = results.get(id).await?;
    if record.is_none() && result.is_none() {
        return Err(CliError::new(format!(
            "no task with id {id} (finished tasks are known by their result until it expires)"
        )));
    }
    let progress = storage
        .get_progress(id)
        .await?
        .map(|bytes| skiff::msgpack_to_json(&bytes));
    let holder = queue
        .workers()
        .await?
        .into_iter()
        .find(|w| w.running.iter().any(|r| r.id == id));
    let result_json = result.as_ref().map(|r| match r {
        skiff::StoredResult::Success(bytes) => {
            json!({ "status": "success", "value": skiff::msgpack_to_json(bytes) })
        }
        skiff::StoredResult::Failure(f) => json!({
            "status": "failure",
            "failure": { "kind": f.kind.to_string(), "message": f.message, "attempts": f.attempts },
        }),
    });
    let mut value = record.as_ref().map_or_else(
        || json!({ "id": id.to_string(), "state": "finished" }),
        record_json,
    );
    if let Some(obj) = value.as_object_mut() {
        obj.insert("progress".into(), progress.clone().unwrap_or(Value::Null));
        obj.insert(
            "worker".into(),
            holder.as_ref().map_or(
                Value::Null,
                |w| json!({ "id": w.info.id, "hostname": w.info.hostname, "pid": w.info.pid }),
            ),
        );
        obj.insert("result".into(), result_json.unwrap_or(Value::Null));
    }
    let mut rows = vec![("id", id.to_string())];
    for key in [
        "state",
        "queue",
        "task",
        "attempt",
        "deliveries",
        "run_at",
        "lease_expires_at",
        "args",
    ] {
        if let Some(v) = value.get(key).filter(|v| !v.is_null()) {
            let shown = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            rows.push((key, shown));
        }
    }
    if let Some(w) = &holder {
        rows.push((
            "worker",
            format!("{}@{} ({})", w.info.pid, w.info.hostname, w.info.id),
        ));
    }
    if let Some(p) = &progress {
        rows.push(("progress", p.to_string()));
    }
    if let Some(r) = value.get("result").filter(|v| !v.is_null()) {
        rows.push(("result", r.to_string()));
    }
    Ok(Report::new(value, fields(rows)))
}
