//! Storing new tasks: one `INSERT … SELECT FROM unnest(…)` per batch, with `ON CONFLICT DO
//! NOTHING` unless no row can clash (see below; [`ENQUEUE_ONE`] and [`ENQUEUE_ONE_PLAIN`], the
//! same with one value per column, for a batch of one).
//!
//! A batch travels as one array per column, so a batch of any size is one statement with
//! twelve parameters (no statement text per batch size, no limit on bind parameters). Rows are
//! inserted in batch order (`WITH ORDINALITY … ORDER BY ord`), so the identity column `seq`
//! gives FIFO order within a priority. A row that conflicts — its id is pending, or its unique
//! key is held by a pending or leased task (`tasks_unique_key`, a partial unique index), or it
//! repeats an earlier row of the batch — is skipped. The same statement deletes results left
//! by an earlier run of each inserted id (a new run replaces them; the plain statements below
//! leave them, hidden, instead). Given a channel (an
//! application's transaction, `EnqueueIn`), it also notifies the channel once per queue it
//! added work to (`w<queue>`; delivered when the transaction commits, so never for a
//! rolled-back enqueue); the store's own enqueue passes none and notifies waiting consumers
//! after its commit instead (see the `notify` module).
//!
//! Only when some rows were skipped does a second statement ([`HOLDERS`]) look up which
//! pending tasks hold their ids or keys, to report [`EnqueueOutcome::Duplicate`].
//!
//! The store's own enqueue (not an application's transaction) of tasks that cannot clash
//! — fresh time-ordered ids, no unique key — first runs [`ENQUEUE_PLAIN`] / [`ENQUEUE_ONE_PLAIN`]:
//! a plain `INSERT` without `ON CONFLICT`, whose speculative insertion costs every row an
//! extra WAL record and a quarter of the statement's server time (1,000-row batches: 8.5–12.0
//! against 11.8–14.0 ms, pgbench). Should an id clash after all (the same envelope enqueued
//! again), the statement fails as a whole, nothing is stored (its rows are left dead, as any
//! rolled-back write leaves them), and the `ON CONFLICT` statement runs instead. In an application's transaction a failed statement would abort the
//! transaction, so there only the `ON CONFLICT` statement is used.

use std::collections::{HashMap, HashSet};

use sqlx::postgres::PgArguments;
use sqlx::{Arguments, PgConnection};
use uuid::Uuid;

use queue_core::storage::rows::NewTask;
use queue_core::{EnqueueOutcome, Envelope, Error, Result, TaskId};

use crate::error::{check_text, code, sqlstate, Context};
use crate::sql::{q, Sql};

pub(crate) const ENQUEUE: &str = "\
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int2[], $5::int8[], $6::int4[],
                         $7::int4[], $8::int4[], $9::text[], $10::bytea[]) WITH ORDINALITY
        AS v(id, queue, task, priority, run_at, deliveries, attempts, max_deliveries, unique_key, raw, ord)
), ins AS (
    INSERT INTO {s}.tasks (id, queue, task, priority, state, run_at, wake_at, deliveries, attempts,
                           max_deliveries, unique_key, raw)
    SELECT id, queue, task, priority, CASE WHEN run_at <= $11 THEN 0 ELSE 1 END, run_at, run_at,
           deliveries, attempts, max_deliveries, unique_key, raw
    FROM input ORDER BY ord
    ON CONFLICT DO NOTHING
    RETURNING id, queue
), forget AS (
    DELETE FROM {s}.results r USING ins WHERE r.id = ins.id
)
SELECT (SELECT array_agg(id) FROM ins),
       (SELECT count(pg_notify($12, 'w' || queue)) FROM (SELECT DISTINCT queue FROM ins) q
        WHERE $12::text IS NOT NULL)";

/// [`ENQUEUE`] for a batch of one (the web handler's enqueue), with one parameter per column
/// instead of one array per column: about a quarter less server time than unpacking arrays
/// (46 against 60 µs per call, pg_stat_statements).
pub(crate) const ENQUEUE_ONE: &str = "\
WITH ins AS (
    INSERT INTO {s}.tasks (id, queue, task, priority, state, run_at, wake_at, deliveries, attempts,
                           max_deliveries, unique_key, raw)
    VALUES ($1::uuid, $2::text, $3::text, $4::int2, CASE WHEN $5::int8 <= $11::int8 THEN 0 ELSE 1 END,
            $5, $5, $6::int4, $7::int4, $8::int4, $9::text, $10::bytea)
    ON CONFLICT DO NOTHING
    RETURNING id, queue
), forget AS (
    DELETE FROM {s}.results r USING ins WHERE r.id = ins.id
)
SELECT (SELECT array_agg(id) FROM ins),
       (SELECT count(pg_notify($12, 'w' || queue)) FROM ins WHERE $12::text IS NOT NULL)";

/// [`ENQUEUE`] for rows that cannot clash (see the [module docs](self)): no `ON CONFLICT`,
/// so a clash fails the statement; and `results` is not touched. A result left by an earlier
/// run of the same id (an envelope enqueued again after it ended) is hidden from readers while
/// the new run is pending ([`GET_RESULT`](crate::wait::GET_RESULT)), replaced when the new run
/// ends with its outcome, and deleted if the new run is purged
/// ([`PURGE_QUEUE`](crate::plane::PURGE_QUEUE)): a fresh id, which has no result, costs the
/// insert nothing more (the `DELETE` cost a single enqueue 7–12% of its rate).
pub(crate) const ENQUEUE_PLAIN: &str = "\
INSERT INTO {s}.tasks (id, queue, task, priority, state, run_at, wake_at, deliveries, attempts,
                       max_deliveries, unique_key, raw)
SELECT id, queue, task, priority, CASE WHEN run_at <= $11 THEN 0 ELSE 1 END, run_at, run_at,
       deliveries, attempts, max_deliveries, unique_key, raw
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int2[], $5::int8[], $6::int4[],
            $7::int4[], $8::int4[], $9::text[], $10::bytea[]) WITH ORDINALITY
    AS v(id, queue, task, priority, run_at, deliveries, attempts, max_deliveries, unique_key, raw, ord)
ORDER BY ord";

/// [`ENQUEUE_PLAIN`] for a batch of one: a bare `INSERT … VALUES`, the cheapest statement
/// that stores a row (the same wrapped in a `WITH … SELECT 1`, as it was, ran 19,265–21,086
/// against 21,319–22,883 per second from one pgbench client).
pub(crate) const ENQUEUE_ONE_PLAIN: &str = "\
INSERT INTO {s}.tasks (id, queue, task, priority, state, run_at, wake_at, deliveries, attempts,
                       max_deliveries, unique_key, raw)
VALUES ($1::uuid, $2::text, $3::text, $4::int2, CASE WHEN $5::int8 <= $11::int8 THEN 0 ELSE 1 END,
        $5, $5, $6::int4, $7::int4, $8::int4, $9::text, $10::bytea)";

pub(crate) const HOLDERS: &str = "\
SELECT v.ord, coalesce((SELECT t.id FROM {s}.tasks t WHERE t.id = v.id),
                       (SELECT t.id FROM {s}.tasks t WHERE t.unique_key = v.key))
FROM unnest($1::uuid[], $2::text[]) WITH ORDINALITY AS v(id, key, ord)";

/// Validates and encodes a new envelope ([`NewTask::from_envelope`]); PostgreSQL's text
/// columns also refuse NUL bytes, so names and keys holding one are refused here.
pub(crate) fn new_task(env: Envelope) -> Result<NewTask> {
    env.validate()?;
    check_text("queue name", &env.queue)?;
    check_text("task name", &env.task)?;
    if let Some(key) = &env.unique_key {
        check_text("unique key", key)?;
    }
    NewTask::from_stored(env)
}

fn int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// A batch of new tasks as one array per column.
#[derive(Debug, Default)]
pub(crate) struct Columns {
    pub(crate) ids: Vec<Uuid>,
    pub(crate) queues: Vec<String>,
    pub(crate) tasks: Vec<String>,
    pub(crate) priorities: Vec<i16>,
    pub(crate) run_at: Vec<i64>,
    pub(crate) deliveries: Vec<i32>,
    pub(crate) attempts: Vec<i32>,
    pub(crate) limits: Vec<i32>,
    pub(crate) unique_keys: Vec<Option<String>>,
    pub(crate) raws: Vec<Vec<u8>>,
}

impl Columns {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            ids: Vec::with_capacity(n),
            queues: Vec::with_capacity(n),
            tasks: Vec::with_capacity(n),
            priorities: Vec::with_capacity(n),
            run_at: Vec::with_capacity(n),
            deliveries: Vec::with_capacity(n),
            attempts: Vec::with_capacity(n),
            limits: Vec::with_capacity(n),
            unique_keys: Vec::with_capacity(n),
            raws: Vec::with_capacity(n),
        }
    }

    /// Appends a task (moving its envelope bytes) due at its eta, or at `now`.
    pub(crate) fn push(&mut self, t: NewTask, now: i64) {
        self.ids.push(*t.id.as_uuid());
        self.queues.push(t.queue);
        self.tasks.push(t.task);
        self.priorities.push(t.priority);
        self.run_at.push(t.eta.unwrap_or(now));
        self.deliveries.push(int(t.deliveries));
        self.attempts.push(int(t.attempts));
        self.limits.push(int(t.limit));
        self.unique_keys.push(t.unique_key);
        self.raws.push(t.raw);
    }

    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Where [`insert`] runs its statement.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Target<'a> {
    /// The store's own connection, outside any transaction: a failed statement changes
    /// nothing and can be followed by another.
    Store,
    /// A transaction (an application's, or the store's own for `requeue_dead`), where a
    /// failed statement would abort it: always the `ON CONFLICT` statement, which notifies
    /// `channel` (delivered when the transaction commits).
    Transaction {
        /// The store's notification channel.
        channel: &'a str,
    },
}

/// What [`insert`] did: one outcome per row, and the queues that got new work.
#[derive(Debug)]
pub(crate) struct Inserted {
    pub(crate) outcomes: Vec<EnqueueOutcome>,
    pub(crate) queues: Vec<String>,
}

/// Whether no row of `rows` can clash with a pending task: every id is a fresh time-ordered
/// one ([`TaskId::new`]; ids derived from a name, as periodic fires use, are meant to clash)
/// and no row has a unique key.
fn cannot_clash(rows: &Columns) -> bool {
    rows.ids.iter().all(|id| id.get_version_num() == 7)
        && rows.unique_keys.iter().all(Option::is_none)
}

/// The parameters of [`ENQUEUE_ONE_PLAIN`] (`channel: None`) or [`ENQUEUE_ONE`]
/// (`Some(channel)`) for the first row of `rows`, in buffers sized once: binding them one by
/// one grows them nine times per call.
fn one_row(rows: &Columns, now: i64, channel: Option<Option<&str>>) -> Result<PgArguments> {
    let mut args = PgArguments::default();
    let text = rows.queues[0].len() + rows.tasks[0].len();
    let key = rows.unique_keys[0].as_ref().map_or(0, String::len);
    // Each value: a 4-byte length, then its bytes (at most 16 for the fixed-size ones).
    args.reserve(12, 12 * 20 + text + key + rows.raws[0].len());
    let mut add = || -> std::result::Result<(), sqlx::error::BoxDynError> {
        args.add(rows.ids[0])?;
        args.add(&rows.queues[0])?;
        args.add(&rows.tasks[0])?;
        args.add(rows.priorities[0])?;
        args.add(rows.run_at[0])?;
        args.add(rows.deliveries[0])?;
        args.add(rows.attempts[0])?;
        args.add(rows.limits[0])?;
        args.add(&rows.unique_keys[0])?;
        args.add(&rows.raws[0])?;
        args.add(now)?;
        if let Some(channel) = channel {
            args.add(channel)?;
        }
        Ok(())
    };
    add().map_err(|e| Error::encode("task columns", e))?;
    Ok(args)
}

/// Runs [`ENQUEUE_PLAIN`] or [`ENQUEUE_ONE_PLAIN`]: `Ok(true)` when every row was stored,
/// `Ok(false)` when an id clashed (nothing was stored).
async fn insert_plain(
    conn: &mut PgConnection,
    sql: &Sql,
    rows: &Columns,
    now: i64,
) -> Result<bool> {
    let done = if rows.len() == 1 {
        let args = one_row(rows, now, None)?;
        sqlx::query_with(q(&sql.enqueue_one_plain), args)
            .execute(&mut *conn)
            .await
    } else {
        sqlx::query(q(&sql.enqueue_plain))
            .bind(&rows.ids)
            .bind(&rows.queues)
            .bind(&rows.tasks)
            .bind(&rows.priorities)
            .bind(&rows.run_at)
            .bind(&rows.deliveries)
            .bind(&rows.attempts)
            .bind(&rows.limits)
            .bind(&rows.unique_keys)
            .bind(&rows.raws)
            .bind(now)
            .execute(&mut *conn)
            .await
    };
    match done {
        Ok(_) => Ok(true),
        Err(err) if sqlstate(&err).as_deref() == Some(code::UNIQUE_VIOLATION) => Ok(false),
        Err(err) => Err(err).ctx("insert tasks"),
    }
}

/// Inserts `rows` in order on `conn`: the store's own connection, or an application's
/// transaction (see [`Target`]).
pub(crate) async fn insert(
    conn: &mut PgConnection,
    sql: &Sql,
    target: Target<'_>,
    rows: &Columns,
    now: i64,
) -> Result<Inserted> {
    if rows.is_empty() {
        return Ok(Inserted {
            outcomes: Vec::new(),
            queues: Vec::new(),
        });
    }
    if matches!(target, Target::Store)
        && cannot_clash(rows)
        && insert_plain(conn, sql, rows, now).await?
    {
        let mut queues: Vec<String> = Vec::new();
        for queue in &rows.queues {
            if !queues.contains(queue) {
                queues.push(queue.clone());
            }
        }
        let outcomes = rows
            .ids
            .iter()
            .map(|id| EnqueueOutcome::Enqueued(TaskId::from_uuid(*id)))
            .collect();
        return Ok(Inserted { outcomes, queues });
    }
    let channel = match target {
        Target::Store => None,
        Target::Transaction { channel } => Some(channel),
    };
    let (ids, _): (Option<Vec<Uuid>>, Option<i64>) = if rows.len() == 1 {
        let args = one_row(rows, now, Some(channel))?;
        sqlx::query_as_with(q(&sql.enqueue_one), args)
            .fetch_one(&mut *conn)
            .await
    } else {
        sqlx::query_as(q(&sql.enqueue))
            .bind(&rows.ids)
            .bind(&rows.queues)
            .bind(&rows.tasks)
            .bind(&rows.priorities)
            .bind(&rows.run_at)
            .bind(&rows.deliveries)
            .bind(&rows.attempts)
            .bind(&rows.limits)
            .bind(&rows.unique_keys)
            .bind(&rows.raws)
            .bind(now)
            .bind(channel)
            .fetch_one(&mut *conn)
            .await
    }
    .ctx("insert tasks")?;
    // Boxed: the look-up of holders keeps many locals across its await, and would make the
    // future of every insert (and so of every enqueue) that much larger.
    Box::pin(outcomes(conn, sql, rows, ids.unwrap_or_default())).await
}

/// The outcome of each row of `rows` after the `ON CONFLICT` statement stored those in
/// `inserted`; rows it skipped are looked up ([`HOLDERS`]) to report who holds their id or key.
async fn outcomes(
    conn: &mut PgConnection,
    sql: &Sql,
    rows: &Columns,
    inserted: Vec<Uuid>,
) -> Result<Inserted> {
    let mut inserted: HashSet<Uuid> = inserted.into_iter().collect();
    let mut queues: Vec<String> = Vec::new();
    let mut outcomes: Vec<Option<EnqueueOutcome>> = Vec::with_capacity(rows.len());
    // Holders within the batch: the first inserted row of each id and key.
    let mut key_holder: HashMap<&str, Uuid> = HashMap::new();
    let mut first: HashSet<Uuid> = HashSet::new();
    let mut unresolved = Vec::new();
    for (i, id) in rows.ids.iter().enumerate() {
        let key = rows.unique_keys[i].as_deref();
        if inserted.remove(id) {
            first.insert(*id);
            if let Some(key) = key {
                key_holder.insert(key, *id);
            }
            if !queues.contains(&rows.queues[i]) {
                queues.push(rows.queues[i].clone());
            }
            outcomes.push(Some(EnqueueOutcome::Enqueued(TaskId::from_uuid(*id))));
        } else if first.contains(id) {
            outcomes.push(Some(EnqueueOutcome::Duplicate(TaskId::from_uuid(*id))));
        } else if let Some(holder) = key.and_then(|k| key_holder.get(k)) {
            outcomes.push(Some(EnqueueOutcome::Duplicate(TaskId::from_uuid(*holder))));
        } else {
            outcomes.push(None);
            unresolved.push(i);
        }
    }
    if !unresolved.is_empty() {
        let ids: Vec<Uuid> = unresolved.iter().map(|&i| rows.ids[i]).collect();
        let keys: Vec<Option<&str>> = unresolved
            .iter()
            .map(|&i| rows.unique_keys[i].as_deref())
            .collect();
        let found: Vec<(i64, Option<Uuid>)> = sqlx::query_as(q(&sql.holders))
            .bind(&ids)
            .bind(&keys)
            .fetch_all(&mut *conn)
            .await
            .ctx("look up duplicate tasks")?;
        for (ord, holder) in found {
            let Some(&i) = usize::try_from(ord - 1)
                .ok()
                .and_then(|o| unresolved.get(o))
            else {
                continue;
            };
            // A holder that finished in the meantime: report the envelope's own id.
            let holder = holder.unwrap_or(rows.ids[i]);
            outcomes[i] = Some(EnqueueOutcome::Duplicate(TaskId::from_uuid(holder)));
        }
    }
    let outcomes = outcomes
        .into_iter()
        .zip(&rows.ids)
        .map(|(o, id)| o.unwrap_or(EnqueueOutcome::Duplicate(TaskId::from_uuid(*id))))
        .collect();
    Ok(Inserted { outcomes, queues })
}

/// Encodes envelopes into columns (validating each).
pub(crate) fn columns(batch: Vec<Envelope>, now: i64) -> Result<Columns> {
    let mut rows = Columns::with_capacity(batch.len());
    for env in batch {
        rows.push(new_task(env)?, now);
    }
    Ok(rows)
}
