//! What each command does against the store.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Value};
use skiff::{
    msgpack_to_json, Counts, DeadTask, Page, RevokeTarget, Storage, StoredResult, TaskId,
    TaskRecord, TaskState,
};

use crate::cli::{Cli, Command, DeadCommand, ListArgs};
use crate::control;
use crate::output::{fields, short, table, time, truncate, CliError, Report};

type Result<T, E = CliError> = std::result::Result<T, E>;

/// Opens the store and runs the command.
pub(crate) async fn execute(cli: Cli) -> Result<Report> {
    let url = cli
        .url
        .as_deref()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| {
            CliError::new(
                "no store given: pass --url URL or set SKIFF_URL (e.g. sqlite://skiff.db)",
            )
        })?;
    check_sqlite_file(url)?;
    // With SKIFF_ENCRYPTION_KEYS the listings show encrypted arguments and results opened;
    // without, as `<encrypted with key …>`.
    // An admin command reports an unreachable store at once rather than waiting for it.
    let plain = skiff::connect_within(url, std::time::Duration::ZERO).await?;
    let queue = plain.with_sealing(skiff::seal::Sealing::from_env()?);
    let storage = queue.storage().clone();
    // Results are read as stored and opened where the keys allow (`Results`), so a result
    // this CLI cannot open is shown as encrypted instead of failing the command.
    let results = Results {
        store: plain.storage().clone(),
        sealing: queue.sealing().cloned(),
    };
    match cli.command {
        Command::Stats { queue } => stats(&storage, queue.as_deref()).await,
        Command::Queues => queues(&storage).await,
        Command::Pending(args) => list(&storage, TaskState::Ready, &args).await,
        Command::Scheduled(args) => list(&storage, TaskState::Scheduled, &args).await,
        Command::Leased(args) => list(&storage, TaskState::Leased, &args).await,
        Command::Dead(DeadCommand::List(args)) => dead_list(&storage, &args).await,
        Command::Dead(DeadCommand::Show { id }) => dead_show(&storage, parse_id(&id)?).await,
        Command::Dead(DeadCommand::Requeue { id, all, queue, .. }) => match id {
            Some(id) if !all => dead_requeue(&storage, parse_id(&id)?).await,
            _ => dead_requeue_all(&storage, queue.as_deref()).await,
        },
        Command::Dead(DeadCommand::Discard { ids, .. }) => {
            let ids = ids
                .iter()
                .map(|id| parse_id(id))
                .collect::<Result<Vec<_>>>()?;
            dead_discard(&storage, &ids).await
        }
        Command::Dead(DeadCommand::Purge { queue, .. }) => {
            dead_purge(&storage, queue.as_deref()).await
        }
        Command::Result { id } => result(&storage, &results, parse_id(&id)?).await,
        Command::Revoke { id, force } => revoke(&storage, parse_id(&id)?, force).await,
        Command::Restore { id } => restore(&storage, parse_id(&id)?).await,
        Command::Pause { queue: name } => control::pause(&queue, &name, true).await,
        Command::Resume { queue: name } => control::pause(&queue, &name, false).await,
        Command::Purge { queue: name, .. } => control::purge(&queue, &name).await,
        Command::Cancel { id } => control::cancel(&queue, parse_id(&id)?).await,
        Command::Workers => control::workers(&queue).await,
        Command::Task { id } => control::task(&queue, &storage, &results, parse_id(&id)?).await,
        Command::Flush { .. } => flush(&storage, url).await,
    }
}

/// An admin command must not create an empty SQLite store where the user mistyped a path.
fn check_sqlite_file(url: &str) -> Result<()> {
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return Ok(());
    };
    let target = rest.split('?').next().unwrap_or_default();
    let target = target.strip_prefix("//").unwrap_or(target);
    if target.is_empty() || target == ":memory:" || Path::new(target).exists() {
        return Ok(());
    }
    Err(CliError::new(format!(
        "no SQLite store at `{target}`: the file does not exist (check --url / SKIFF_URL)"
    )))
}

fn parse_id(id: &str) -> Result<TaskId> {
    id.trim().parse::<TaskId>().map_err(CliError::from)
}

fn counts_json(counts: &Counts) -> Value {
    json!({
        "ready": counts.ready,
        "scheduled": counts.scheduled,
        "leased": counts.leased,
        "dead": counts.dead,
        "results": counts.results,
    })
}

async fn stats(storage: &Arc<dyn Storage>, queue: Option<&str>) -> Result<Report> {
    let counts = storage.counts(queue).await?;
    let rows = [
        ("ready", counts.ready),
        ("scheduled", counts.scheduled),
        ("leased", counts.leased),
        ("dead", counts.dead),
        ("results", counts.results),
    ]
    .into_iter()
    .map(|(state, n)| vec![state.to_owned(), n.to_string()])
    .collect();
    Ok(Report::new(
        counts_json(&counts),
        table(&["state", "tasks"], rows, &[1]),
    ))
}

async fn queues(storage: &Arc<dyn Storage>) -> Result<Report> {
    let mut json = Vec::new();
    let mut rows = Vec::new();
    let paused = storage.paused_queues().await?;
    // A paused queue is listed even while it has no tasks.
    let mut names = storage.queues().await?;
    names.extend(paused.iter().cloned());
    names.sort();
    names.dedup();
    for name in names {
        let c = storage.counts(Some(&name)).await?;
        let is_paused = paused.contains(&name);
        let mut entry = counts_json(&c);
        if let Some(obj) = entry.as_object_mut() {
            obj.insert("queue".into(), json!(name));
            obj.insert("paused".into(), json!(is_paused));
        }
        json.push(entry);
        rows.push(vec![
            name,
            if is_paused { "paused" } else { "running" }.to_owned(),
            c.ready.to_string(),
            c.scheduled.to_string(),
            c.leased.to_string(),
            c.dead.to_string(),
        ]);
    }
    let human = if rows.is_empty() {
        "no queues with pending or dead tasks".to_owned()
    } else {
        table(
            &["queue", "state", "ready", "scheduled", "leased", "dead"],
            rows,
            &[2, 3, 4, 5],
        )
    };
    Ok(Report::new(Value::Array(json), human))
}

fn page(args: &ListArgs) -> Page {
    Page {
        offset: args.offset,
        limit: args.limit,
    }
}

fn state_name(state: TaskState) -> &'static str {
    match state {
        TaskState::Ready => "ready",
        TaskState::Scheduled => "scheduled",
        TaskState::Leased => "leased",
    }
}

pub(crate) fn record_json(r: &TaskRecord) -> Value {
    let mut value = json!({
        "id": r.id.to_string(),
        "queue": r.queue,
        "state": state_name(r.state),
        "run_at": time(r.run_at),
        "lease_expires_at": r.lease_expires_at.map(time),
    });
    let extra = match &r.envelope {
        Ok(env) => json!({
            "task": env.task,
            "priority": env.priority,
            "attempt": env.attempt,
            "deliveries": env.deliveries,
            "args": msgpack_to_json(&env.args),
            "error": null,
        }),
        Err(reason) => json!({
            "task": "?",
            "priority": null,
            "attempt": null,
            "deliveries": null,
            "args": null,
            "error": reason,
        }),
    };
    if let (Some(obj), Value::Object(more)) = (value.as_object_mut(), extra) {
        obj.extend(more);
    }
    value
}

/// A footer telling how to see the next page, when this one is full.
fn more_hint(shown: usize, args: &ListArgs) -> String {
    if shown > 0 && shown as u64 >= u64::from(args.limit) {
        format!(
            "\n(showing {}–{}; next page: --offset {})",
            args.offset + 1,
            args.offset + shown as u64,
            args.offset + shown as u64
        )
    } else {
        String::new()
    }
}

async fn list(storage: &Arc<dyn Storage>, state: TaskState, args: &ListArgs) -> Result<Report> {
    let records = storage
        .list(state, args.queue.as_deref(), page(args))
        .await?;
    let json: Vec<Value> = records.iter().map(record_json).collect();
    let human = if records.is_empty() {
        format!("no {} tasks", state_name(state))
    } else {
        let when = if state == TaskState::Leased {
            "lease expires"
        } else {
            "run at"
        };
        let rows = records
            .iter()
            .zip(&json)
            .map(|(r, j)| {
                let when = match (state, r.lease_expires_at) {
                    (TaskState::Leased, Some(t)) => time(t),
                    _ => time(r.run_at),
                };
                vec![
                    r.id.to_string(),
                    r.queue.clone(),
                    short(&j["task"], 40),
                    j["priority"].to_string(),
                    j["attempt"].to_string(),
                    when,
                    match &r.envelope {
                        Ok(_) => short(&j["args"], 60),
                        Err(reason) => truncate(&format!("<undecodable: {reason}>"), 60),
                    },
                ]
            })
            .collect();
        table(
            &["id", "queue", "task", "priority", "attempt", when, "args"],
            rows,
            &[3, 4],
        ) + &more_hint(records.len(), args)
    };
    Ok(Report::new(Value::Array(json), human))
}

fn dead_json(d: &DeadTask) -> Value {
    json!({
        "id": d.id.to_string(),
        "queue": d.queue,
        "task": d.task,
        "kind": d.failure.kind.to_string(),
        "error": d.failure.message,
        "attempts": d.failure.attempts,
        "failed_at": time(d.failed_at),
        "args": d.envelope.as_ref().map(|e| msgpack_to_json(&e.args)).unwrap_or(Value::Null),
    })
}

async fn dead_list(storage: &Arc<dyn Storage>, args: &ListArgs) -> Result<Report> {
    let dead = storage.list_dead(args.queue.as_deref(), page(args)).await?;
    let json: Vec<Value> = dead.iter().map(dead_json).collect();
    let human = if dead.is_empty() {
        "no dead tasks".to_owned()
    } else {
        let rows = dead
            .iter()
            .map(|d| {
                vec![
                    d.id.to_string(),
                    d.queue.clone(),
                    truncate(&d.task, 40),
                    d.failure.kind.to_string(),
                    d.failure.attempts.to_string(),
                    time(d.failed_at),
                    truncate(&d.failure.message, 60),
                ]
            })
            .collect();
        table(
            &[
                "id",
                "queue",
                "task",
                "kind",
                "attempts",
                "failed at",
                "error",
            ],
            rows,
            &[4],
        ) + &more_hint(dead.len(), args)
    };
    Ok(Report::new(Value::Array(json), human))
}

fn no_dead(id: TaskId) -> CliError {
    CliError::new(format!("no dead task with id {id}"))
}

async fn dead_show(storage: &Arc<dyn Storage>, id: TaskId) -> Result<Report> {
    let dead = storage.get_dead(id).await?.ok_or_else(|| no_dead(id))?;
    let mut json = dead_json(&dead);
    let mut rows = vec![
        ("id", dead.id.to_string()),
        ("queue", dead.queue.clone()),
        ("task", dead.task.clone()),
        ("kind", dead.failure.kind.to_string()),
        ("error", dead.failure.message.clone()),
        ("attempts", dead.failure.attempts.to_string()),
        ("failed at", time(dead.failed_at)),
    ];
    match &dead.envelope {
        Ok(env) => {
            json["envelope"] = env.to_json();
            rows.push(("args", msgpack_to_json(&env.args).to_string()));
            rows.push(("priority", env.priority.to_string()));
            rows.push(("enqueued at", time(env.enqueued_at)));
            rows.push(("deliveries", env.deliveries.to_string()));
        }
        Err(reason) => {
            json["envelope"] = Value::Null;
            json["envelope_error"] = json!(reason);
            rows.push(("envelope", format!("<undecodable: {reason}>")));
        }
    }
    Ok(Report::new(json, fields(rows)))
}

async fn dead_requeue(storage: &Arc<dyn Storage>, id: TaskId) -> Result<Report> {
    let dead = storage.get_dead(id).await?.ok_or_else(|| no_dead(id))?;
    let requeued = storage.requeue_dead(&[id]).await?;
    if requeued == 0 {
        let why = match &dead.envelope {
            Err(reason) => format!("its envelope does not decode ({reason})"),
            Ok(_) => "a pending task has the same id or unique key".to_owned(),
        };
        return Err(CliError::new(format!(
            "dead task {id} was not requeued: {why}"
        )));
    }
    Ok(Report::new(
        json!({ "requeued": requeued, "ids": [id.to_string()] }),
        format!(
            "requeued dead task {id} ({}) on queue {}",
            dead.task, dead.queue
        ),
    ))
}

async fn dead_requeue_all(storage: &Arc<dyn Storage>, queue: Option<&str>) -> Result<Report> {
    let requeued = storage.requeue_all_dead(queue).await?;
    Ok(Report::new(
        json!({ "requeued": requeued }),
        format!(
            "requeued {requeued} dead task{}",
            if requeued == 1 { "" } else { "s" }
        ),
    ))
}

/// Confirmed before it runs (`Cli::unconfirmed`). Fails when none of the ids was dead, as
/// `dead requeue` fails for an id that is not.
async fn dead_discard(storage: &Arc<dyn Storage>, ids: &[TaskId]) -> Result<Report> {
    let mut seen = HashSet::new();
    let ids: Vec<TaskId> = ids.iter().copied().filter(|id| seen.insert(*id)).collect();
    let discarded = storage.discard_dead(&ids).await?;
    if discarded == 0 {
        return Err(match &ids[..] {
            [id] => no_dead(*id),
            _ => CliError::new(format!(
                "none of the {} ids given is a dead task",
                ids.len()
            )),
        });
    }
    let not_dead = u64::try_from(ids.len())
        .unwrap_or(u64::MAX)
        .saturating_sub(discarded);
    let mut human = format!(
        "deleted {discarded} dead task{}",
        if discarded == 1 { "" } else { "s" }
    );
    if not_dead > 0 {
        human.push_str(&format!(
            " ({not_dead} of the ids given {} not a dead task)",
            if not_dead == 1 { "was" } else { "were" }
        ));
    }
    Ok(Report::new(
        json!({ "discarded": discarded, "not_dead": not_dead }),
        human,
    ))
}

async fn dead_purge(storage: &Arc<dyn Storage>, queue: Option<&str>) -> Result<Report> {
    let purged = storage.purge_dead(queue).await?;
    Ok(Report::new(
        json!({ "purged": purged }),
        format!(
            "deleted {purged} dead task{}",
            if purged == 1 { "" } else { "s" }
        ),
    ))
}

/// Reads results as stored, opened where the keys allow.
pub(crate) struct Results {
    store: Arc<dyn Storage>,
    sealing: Option<skiff::seal::Sealing>,
}

impl Results {
    pub(crate) async fn get(&self, id: TaskId) -> skiff::Result<Option<StoredResult>> {
        Ok(match self.store.get_result(id).await? {
            Some(StoredResult::Success(bytes)) => {
                Some(StoredResult::Success(match &self.sealing {
                    Some(sealing) => sealing.reveal_result(id, bytes),
                    None => bytes,
                }))
            }
            other => other,
        })
    }
}

async fn result(storage: &Arc<dyn Storage>, results: &Results, id: TaskId) -> Result<Report> {
    let (status, state, value, failure) = match results.get(id).await? {
        Some(StoredResult::Success(bytes)) => ("success", None, msgpack_to_json(&bytes), None),
        Some(StoredResult::Failure(f)) => ("failure", None, Value::Null, Some(f)),
        None => match storage.get_task(id).await? {
            Some(record) => ("pending", Some(record.state), Value::Null, None),
            None => {
                return Err(CliError::new(format!(
                    "no task or result with id {id} (results expire after their TTL)"
                )))
            }
        },
    };
    let failure_json = failure.as_ref().map(
        |f| json!({ "kind": f.kind.to_string(), "message": f.message, "attempts": f.attempts }),
    );
    let json = json!({
        "id": id.to_string(),
        "status": status,
        "state": state.map(state_name),
        "result": value,
        "failure": failure_json,
    });
    let mut rows = vec![("id", id.to_string()), ("status", status.to_owned())];
    if let Some(state) = state {
        rows.push(("state", state_name(state).to_owned()));
    }
    match &failure {
        Some(f) => {
            rows.push(("kind", f.kind.to_string()));
            rows.push(("error", f.message.clone()));
            rows.push(("attempts", f.attempts.to_string()));
        }
        None if status == "success" => rows.push(("result", value.to_string())),
        None => {}
    }
    Ok(Report::new(json, fields(rows)))
}

async fn revoke(storage: &Arc<dyn Storage>, id: TaskId, force: bool) -> Result<Report> {
    if !force && storage.get_task(id).await?.is_none() {
        let why = if storage.get_result(id).await.ok().flatten().is_some() {
            "it has finished already"
        } else {
            "no such task is pending (pass --force to revoke it anyway)"
        };
        return Err(CliError::new(format!("cannot revoke task {id}: {why}")));
    }
    storage
        .revoke(skiff::Revocation {
            target: RevokeTarget::Id(id),
            until: None,
            once: false,
        })
        .await?;
    Ok(Report::new(
        json!({ "revoked": id.to_string() }),
        format!("revoked task {id}: workers drop it instead of running it"),
    ))
}

async fn restore(storage: &Arc<dyn Storage>, id: TaskId) -> Result<Report> {
    if !storage.restore(&RevokeTarget::Id(id)).await? {
        return Err(CliError::new(format!("task {id} is not revoked")));
    }
    Ok(Report::new(
        json!({ "restored": id.to_string() }),
        format!("restored task {id}"),
    ))
}

/// Confirmed before it runs (`Cli::unconfirmed`).
async fn flush(storage: &Arc<dyn Storage>, url: &str) -> Result<Report> {
    storage.flush().await?;
    Ok(Report::new(
        json!({ "flushed": true }),
        format!("flushed {}", skiff::redact(url)),
    ))
}
