//! Writing outcomes: `complete` (acks, retries, deferrals, dead letters, follow-ups) and
//! `extend`, each ONE statement per batch.
//!
//! The batch travels as arrays, one per field ([`COMPLETE`]). Its steps are data-modifying
//! `WITH` queries of one statement, so they commit together or not at all:
//!
//! 1. `v` locks the rows whose lease still holds (`id`, `lease_token` and `state = 2` match),
//!    in id order (`ORDER BY … FOR UPDATE`): two statements of one worker that lock the same
//!    rows (this one and a lease extension) take them in the same order and cannot deadlock.
//!    A stale lease matches no row: nothing is written for it.
//! 2. `later` writes retries and deferrals back (`state` 0 or 1, new `run_at`, attempt or
//!    delivery count adjusted); `gone` deletes the finished rows (success, drop, dead). Finished
//!    tasks leave no row in `tasks`: the hot table holds pending work only.
//! 3. `dead` copies dead-lettered rows to `dead`, `res` stores every finished task's result (its
//!    output or its failure).
//! 4. `fu` inserts the follow-ups (next pipeline stages, chord callbacks, error handlers) of the
//!    completions that were applied, in order; `forget` drops older results of their ids.
//! 5. Given a channel: one `pg_notify` per queue that got work (`w<queue>`) and one for the
//!    results (`r<id>,<id>…`, or `r*` for more than 200), delivered at commit. The store passes
//!    none and notifies only waiting consumers after the commit (see the `notify` module).
//!
//! Plans: every step joins the batch to `tasks` by primary key, so the cost is the batch size,
//! whatever the backlog or the history.

use std::collections::HashSet;

use sqlx::PgConnection;
use uuid::Uuid;

use queue_core::storage::rows::{Ending, Settlement};
use queue_core::{AckStatus, Lease, Result, StoredResult};

use crate::enqueue::Columns;
use crate::error::{code, sqlstate, Context};
use crate::sql::{q, Sql};

pub(crate) const COMPLETE: &str = "\
WITH v AS MATERIALIZED (
    SELECT i.*, t.queue, t.task, t.raw
    FROM unnest($1::uuid[], $2::int8[], $3::int2[], $4::bytea[], $5::int8[], $6::text[],
                $7::int8[], $8::int4[], $9::int4[])
         AS i(id, token, kind, value, expires, fkind, eta, att, dec)
    JOIN {s}.tasks t ON t.id = i.id AND t.lease_token = i.token AND t.state = 2
    ORDER BY i.id
    FOR UPDATE OF t
), later AS (
    UPDATE {s}.tasks t
    SET state = CASE WHEN v.eta <= $21 THEN 0 ELSE 1 END, run_at = v.eta, wake_at = v.eta,
        lease_token = NULL, attempts = t.attempts + v.att,
        deliveries = greatest(t.deliveries - v.dec, 0)
    FROM v WHERE v.kind = 2 AND t.id = v.id AND t.lease_token = v.token AND t.state = 2
    RETURNING t.id, v.token, t.queue
), gone AS (
    DELETE FROM {s}.tasks t USING v
    WHERE v.kind <> 2 AND t.id = v.id AND t.lease_token = v.token AND t.state = 2
    RETURNING t.id, t.lease_token AS token
), unrevoke AS (
    -- A revocation by id goes with its task (revocations by name stay).
    DELETE FROM {s}.revocations
    WHERE kind = 0 AND target IN (SELECT id::text FROM gone)
), done AS (
    SELECT v.* FROM v JOIN gone ON gone.id = v.id
), dead AS (
    INSERT INTO {s}.dead (id, queue, task, kind, failure, failed_at, raw)
    SELECT id, queue, task, fkind, value, $21, raw FROM done WHERE kind = 1
    ON CONFLICT (id) DO UPDATE SET queue = excluded.queue, task = excluded.task,
        kind = excluded.kind, failure = excluded.failure, failed_at = excluded.failed_at,
        raw = excluded.raw
), res AS (
    INSERT INTO {s}.results (id, value, expires_at)
    SELECT id, value, expires FROM done
    ON CONFLICT (id) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
), f AS (
    SELECT * FROM unnest($10::uuid[], $11::uuid[], $12::text[], $13::text[], $14::int2[],
                         $15::int8[], $16::int4[], $17::int4[], $18::int4[], $19::text[],
                         $20::bytea[]) WITH ORDINALITY
        AS f(parent, id, queue, task, priority, run_at, deliveries, attempts, max_deliveries,
             unique_key, raw, ord)
), fu AS (
    INSERT INTO {s}.tasks (id, queue, task, priority, state, run_at, wake_at, deliveries,
                           attempts, max_deliveries, unique_key, raw)
    SELECT f.id, f.queue, f.task, f.priority, CASE WHEN f.run_at <= $21 THEN 0 ELSE 1 END,
           f.run_at, f.run_at, f.deliveries, f.attempts, f.max_deliveries, f.unique_key, f.raw
    FROM f WHERE f.parent IN (SELECT id FROM gone) ORDER BY f.ord
    ON CONFLICT DO NOTHING
    RETURNING id, queue
), forget AS (
    DELETE FROM {s}.results r USING fu WHERE r.id = fu.id
), woken AS (
    SELECT queue FROM later UNION SELECT queue FROM fu
)
SELECT (SELECT array_agg(id) FROM later), (SELECT array_agg(token) FROM later),
       (SELECT array_agg(id) FROM gone), (SELECT array_agg(token) FROM gone),
       (SELECT array_agg(queue) FROM woken),
       (SELECT count(pg_notify($22, m)) FROM (
            SELECT 'w' || queue AS m FROM woken
            UNION ALL
            SELECT CASE WHEN count(*) > 200 THEN 'r*' ELSE 'r' || string_agg(id::text, ',') END
            FROM gone HAVING count(*) > 0) n
        WHERE $22::text IS NOT NULL)";

/// How [`COMPLETE`] stores results: replacing one that exists.
const RESULT_UPSERT: &str =
    "\n    ON CONFLICT (id) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at";

/// [`COMPLETE`] storing results with a plain `INSERT`, for the store's own connection.
///
/// A finished task's id rarely has a result row yet: enqueueing an id deletes its earlier
/// results, and only the statement that deletes a task's row writes its result. The
/// exceptions — a task row written by `insert_raw` (tests, tools), an enqueue of an id that
/// commits while another delivery of the same id stores its result — are handled by the
/// fallback: the plain statement fails as a whole, writes nothing, and [`COMPLETE`] runs
/// instead. So results usually skip `ON CONFLICT`, whose speculative insertion costs each row
/// an extra WAL record. A failed statement leaves dead rows behind like any rolled-back write.
pub(crate) fn complete_plain() -> String {
    COMPLETE.replacen(RESULT_UPSERT, "", 1)
}

pub(crate) const EXTEND: &str = "\
WITH v AS MATERIALIZED (
    SELECT t.id, t.lease_token
    FROM unnest($1::uuid[], $2::int8[]) AS i(id, token)
    JOIN {s}.tasks t ON t.id = i.id AND t.lease_token = i.token AND t.state = 2
    ORDER BY i.id
    FOR UPDATE OF t
)
UPDATE {s}.tasks t SET wake_at = $3 FROM v
WHERE t.id = v.id AND t.lease_token = v.lease_token AND t.state = 2
RETURNING t.id, t.lease_token";

pub(crate) fn token(lease: &Lease) -> i64 {
    i64::try_from(lease.token.0).unwrap_or(-1)
}

/// The answer of [`COMPLETE`]: ids and tokens of the retried/deferred and of the finished
/// tasks, the queues woken, and the notification count.
type Answer = (
    Option<Vec<Uuid>>,
    Option<Vec<i64>>,
    Option<Vec<Uuid>>,
    Option<Vec<i64>>,
    Option<Vec<String>>,
    Option<i64>,
);

/// What a batch of completions did.
#[derive(Debug)]
pub(crate) struct Completed {
    pub(crate) status: Vec<AckStatus>,
    /// Queues that got work (retries, deferrals, follow-ups).
    pub(crate) queues: Vec<String>,
    /// Tasks that got a result.
    pub(crate) results: Vec<Uuid>,
}

/// Applies `batch` in one statement (notifying `channel` in it if given).
pub(crate) async fn complete(
    conn: &mut PgConnection,
    sql: &Sql,
    channel: Option<&str>,
    batch: Vec<Settlement>,
    now: i64,
) -> Result<Completed> {
    let n = batch.len();
    let mut status = vec![AckStatus::Stale; n];
    // A lease completed twice in one batch: the first counts, the second is stale (as if they
    // had been sent one after the other).
    let mut seen: HashSet<(Uuid, i64)> = HashSet::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    let mut tokens = Vec::with_capacity(n);
    let mut kinds: Vec<i16> = Vec::with_capacity(n);
    let mut values: Vec<Option<Vec<u8>>> = Vec::with_capacity(n);
    let mut expires: Vec<Option<i64>> = Vec::with_capacity(n);
    let mut fkinds: Vec<Option<String>> = Vec::with_capacity(n);
    let mut etas: Vec<Option<i64>> = Vec::with_capacity(n);
    let mut att: Vec<i32> = Vec::with_capacity(n);
    let mut dec: Vec<i32> = Vec::with_capacity(n);
    let mut parents: Vec<Uuid> = Vec::new();
    let mut follow = Columns::default();
    let mut sent: Vec<(usize, (Uuid, i64))> = Vec::with_capacity(n);
    for (i, p) in batch.into_iter().enumerate() {
        let id = *p.lease.id.as_uuid();
        if !seen.insert((id, token(&p.lease))) {
            continue;
        }
        sent.push((i, (id, token(&p.lease))));
        ids.push(id);
        tokens.push(token(&p.lease));
        expires.push(p.result_expires(now));
        match p.ending {
            Ending::Finish { result } => {
                kinds.push(0);
                values.push(Some(result));
                fkinds.push(None);
                etas.push(None);
                att.push(0);
                dec.push(0);
            }
            Ending::Dead { failure } => {
                kinds.push(1);
                fkinds.push(Some(failure.kind.to_string()));
                values.push(Some(StoredResult::Failure(failure).encode()?));
                etas.push(None);
                att.push(0);
                dec.push(0);
            }
            Ending::Later { eta, retry } => {
                kinds.push(2);
                values.push(None);
                fkinds.push(None);
                etas.push(Some(eta));
                att.push(i32::from(retry));
                dec.push(i32::from(!retry));
            }
        }
        for f in p.follow_ups {
            parents.push(id);
            follow.push(f, now);
        }
    }
    let send = async |conn: &mut PgConnection, statement| -> sqlx::Result<Answer> {
        sqlx::query_as(q(statement))
            .bind(&ids)
            .bind(&tokens)
            .bind(&kinds)
            .bind(&values)
            .bind(&expires)
            .bind(&fkinds)
            .bind(&etas)
            .bind(&att)
            .bind(&dec)
            .bind(&parents)
            .bind(&follow.ids)
            .bind(&follow.queues)
            .bind(&follow.tasks)
            .bind(&follow.priorities)
            .bind(&follow.run_at)
            .bind(&follow.deliveries)
            .bind(&follow.attempts)
            .bind(&follow.limits)
            .bind(&follow.unique_keys)
            .bind(&follow.raws)
            .bind(now)
            .bind(channel)
            .fetch_one(conn)
            .await
    };
    // The store's own connection runs outside any transaction: a result row that exists after
    // all fails the plain statement as a whole, and the upserting one runs instead.
    let row = match channel {
        None => match send(&mut *conn, &sql.complete_plain).await {
            Err(err) if sqlstate(&err).as_deref() == Some(code::UNIQUE_VIOLATION) => {
                send(&mut *conn, &sql.complete).await
            }
            done => done,
        },
        Some(_) => send(&mut *conn, &sql.complete).await,
    }
    .ctx("complete tasks")?;
    let (later, later_tokens, gone, gone_tokens, queues, _) = row;
    let gone = gone.unwrap_or_default();
    let acked: HashSet<(Uuid, i64)> = later
        .unwrap_or_default()
        .into_iter()
        .zip(later_tokens.unwrap_or_default())
        .chain(gone.iter().copied().zip(gone_tokens.unwrap_or_default()))
        .collect();
    for (i, lease) in sent {
        if acked.contains(&lease) {
            status[i] = AckStatus::Acked;
        }
    }
    Ok(Completed {
        status,
        queues: queues.unwrap_or_default(),
        results: gone,
    })
}

/// Extends `leases` to `expires` in one statement; one status per lease.
pub(crate) async fn extend(
    conn: &mut PgConnection,
    sql: &Sql,
    leases: &[Lease],
    expires: i64,
) -> Result<Vec<AckStatus>> {
    let ids: Vec<Uuid> = leases.iter().map(|l| *l.id.as_uuid()).collect();
    let tokens: Vec<i64> = leases.iter().map(token).collect();
    let held: HashSet<(Uuid, i64)> = sqlx::query_as::<_, (Uuid, i64)>(q(&sql.extend))
        .bind(&ids)
        .bind(&tokens)
        .bind(expires)
        .fetch_all(&mut *conn)
        .await
        .ctx("extend leases")?
        .into_iter()
        .collect();
    Ok(leases
        .iter()
        .map(|l| {
            if held.contains(&(*l.id.as_uuid(), token(l))) {
                AckStatus::Acked
            } else {
                AckStatus::Stale
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_statement_only_drops_the_result_upsert() {
        let plain = complete_plain();
        assert!(!plain.contains("DO UPDATE SET value"), "{plain}");
        assert_eq!(plain.len() + RESULT_UPSERT.len(), COMPLETE.len());
        assert!(
            plain.contains("ON CONFLICT DO NOTHING"),
            "follow-ups keep theirs"
        );
    }
}
