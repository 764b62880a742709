//! Small writes: requeueing expired leases, rescheduling, revocations, locks, rate limits,
//! purges. Each is one statement; the ones that can give waiters work notify the channel in
//! the same statement.
//!
//! Index use: locks, rate counters and revocations are looked up by primary key; purges walk
//! the `*_expiry` indexes and stop after `max` rows, then delete those rows by key
//! (`= ANY (ARRAY (…))`, never a join the planner could turn into a scan); `requeue_expired`
//! walks `tasks_timer` up to the first lease that still holds.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use queue_core::storage::RateWindow;
use queue_core::{RateDecision, Result, RevokeTarget, TaskId};

use crate::error::Context;
use crate::sql::{q, Sql};

pub(crate) const REQUEUE_EXPIRED: &str = "\
WITH e AS MATERIALIZED (
    SELECT id FROM {s}.tasks
    WHERE queue = $1 AND state <> 0 AND state = 2 AND wake_at <= $2
    ORDER BY wake_at LIMIT $3
    FOR UPDATE SKIP LOCKED
), u AS (
    UPDATE {s}.tasks t SET state = 0, lease_token = NULL FROM e WHERE t.id = e.id RETURNING t.id
)
SELECT (SELECT count(*) FROM u),
       (SELECT count(pg_notify($4, 'w' || $1)) FROM (SELECT 1 FROM u LIMIT 1) x)";

pub(crate) const RESCHEDULE: &str = "\
WITH u AS (
    UPDATE {s}.tasks SET state = CASE WHEN $1 <= $2 THEN 0 ELSE 1 END, run_at = $1, wake_at = $1
    WHERE id = $3 AND state <> 2
    RETURNING queue
)
SELECT (SELECT count(*) FROM u), (SELECT count(pg_notify($4, 'w' || queue)) FROM u)";

pub(crate) const REVOKE: &str = "\
INSERT INTO {s}.revocations (kind, target, until, once) VALUES ($1, $2, $3, $4)
ON CONFLICT (kind, target) DO UPDATE SET until = excluded.until, once = excluded.once";

pub(crate) const RESTORE: &str = "DELETE FROM {s}.revocations WHERE kind = $1 AND target = $2";

/// Every revocation that matches one of a batch of tasks, with the task's position.
pub(crate) const REVOCATIONS_FOR: &str = "\
SELECT v.ord, r.until, r.once
FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS v(id, name, ord)
JOIN {s}.revocations r ON (r.kind = 0 AND r.target = v.id) OR (r.kind = 1 AND r.target = v.name)";

/// Whether the revocation of `($1, $2)` applies at `$3`. A `once` revocation is used up by
/// the DELETE, and only the statement whose DELETE removed it gets `true` (so two workers
/// checking at once cannot both be stopped by it); a lapsed one is removed and does not apply.
pub(crate) const CHECK_REVOCATION: &str = "\
WITH d AS (
    DELETE FROM {s}.revocations
    WHERE kind = $1 AND target = $2 AND (once OR until <= $3)
    RETURNING until
)
SELECT EXISTS (SELECT 1 FROM d WHERE until IS NULL OR until > $3)
    OR EXISTS (SELECT 1 FROM {s}.revocations
               WHERE kind = $1 AND target = $2 AND NOT once AND (until IS NULL OR until > $3))";

pub(crate) const ANY_REVOCATION: &str = "SELECT EXISTS (SELECT 1 FROM {s}.revocations)";

pub(crate) const ACQUIRE_LOCK: &str = "\
INSERT INTO {s}.locks AS l (name, owner, expires_at) VALUES ($1, $2, $3)
ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
WHERE l.owner = excluded.owner OR l.expires_at <= $4";

pub(crate) const RELEASE_LOCK: &str =
    "DELETE FROM {s}.locks WHERE name = $1 AND owner = $2 AND expires_at > $3";

pub(crate) const FLUSH_LOCKS: &str = "DELETE FROM {s}.locks";

pub(crate) const RATE_LIMIT: &str = "\
INSERT INTO {s}.rates AS r (key, window_start, hits, expires_at) VALUES ($1, $2, 1, $3)
ON CONFLICT (key) DO UPDATE SET
    hits = CASE WHEN r.window_start = excluded.window_start THEN r.hits + 1 ELSE 1 END,
    window_start = excluded.window_start,
    expires_at = excluded.expires_at
WHERE excluded.window_start > r.window_start
    OR (excluded.window_start = r.window_start AND r.hits < $4)";

pub(crate) const PURGE_EXPIRED: &str = "\
WITH r AS (
    DELETE FROM {s}.results WHERE id = ANY (ARRAY (
        SELECT id FROM {s}.results WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2))
    RETURNING 1
), l AS (
    DELETE FROM {s}.locks WHERE name = ANY (ARRAY (
        SELECT name FROM {s}.locks WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2))
    RETURNING 1
), c AS (
    DELETE FROM {s}.rates WHERE key = ANY (ARRAY (
        SELECT key FROM {s}.rates WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2))
), v AS (
    DELETE FROM {s}.revocations WHERE ctid = ANY (ARRAY (
        SELECT ctid FROM {s}.revocations WHERE until IS NOT NULL AND until <= $1
        ORDER BY until LIMIT $2))
)
SELECT (SELECT count(*) FROM r) + (SELECT count(*) FROM l)";

/// `(count, ignored)` rows of statements that also notify.
type Counted = (i64, Option<i64>);

/// Returns up to `max` expired leases of `queue` to ready; how many.
pub(crate) async fn requeue_expired(
    pool: &PgPool,
    sql: &Sql,
    channel: &str,
    queue: &str,
    max: i64,
    now: i64,
) -> std::result::Result<u64, sqlx::Error> {
    let (n, _): Counted = sqlx::query_as(q(&sql.requeue_expired))
        .bind(queue)
        .bind(now)
        .bind(max)
        .bind(channel)
        .fetch_one(pool)
        .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Moves a pending (not leased) task to `eta`; whether it was found.
pub(crate) async fn reschedule(
    pool: &PgPool,
    sql: &Sql,
    channel: &str,
    id: TaskId,
    eta: i64,
    now: i64,
) -> std::result::Result<bool, sqlx::Error> {
    let (n, _): Counted = sqlx::query_as(q(&sql.reschedule))
        .bind(eta)
        .bind(now)
        .bind(id.as_uuid())
        .bind(channel)
        .fetch_one(pool)
        .await?;
    Ok(n > 0)
}

/// The revocation table's key of a target.
pub(crate) fn revoke_key(target: &RevokeTarget) -> (i16, String) {
    match target {
        RevokeTarget::Id(id) => (0, id.to_string()),
        RevokeTarget::Task(name) => (1, name.clone()),
    }
}

/// `check_revoked` once some revocation exists: one statement for the batch; only when a
/// matching revocation is `once` or has lapsed, each task is checked in turn (by id, then by
/// name), so that a `once` revocation stops exactly one task.
pub(crate) async fn check_revoked(
    conn: &mut PgConnection,
    sql: &Sql,
    tasks: &[(TaskId, &str)],
    now: i64,
) -> Result<Vec<bool>> {
    let ids: Vec<String> = tasks.iter().map(|(id, _)| id.to_string()).collect();
    let names: Vec<&str> = tasks.iter().map(|(_, name)| *name).collect();
    let matches: Vec<(i64, Option<i64>, bool)> = sqlx::query_as(q(&sql.revocations_for))
        .bind(&ids)
        .bind(&names)
        .fetch_all(&mut *conn)
        .await
        .ctx("read revocations")?;
    let mut out = vec![false; tasks.len()];
    let simple = matches
        .iter()
        .all(|(_, until, once)| !*once && until.is_none_or(|u| u > now));
    if simple {
        for (ord, _, _) in matches {
            if let Some(hit) = usize::try_from(ord - 1).ok().and_then(|i| out.get_mut(i)) {
                *hit = true;
            }
        }
        return Ok(out);
    }
    for (hit, (id, name)) in out.iter_mut().zip(tasks) {
        for (kind, target) in [(0_i16, id.to_string()), (1, (*name).to_owned())] {
            let applies: bool = sqlx::query_scalar(q(&sql.check_revocation))
                .bind(kind)
                .bind(&target)
                .bind(now)
                .fetch_one(&mut *conn)
                .await
                .ctx("check a revocation")?;
            if applies {
                *hit = true;
                break;
            }
        }
    }
    Ok(out)
}

/// `rate_limit(key, limit, window)`: fixed windows aligned to the epoch.
pub(crate) async fn rate_limit(
    pool: &PgPool,
    sql: &Sql,
    key: &str,
    limit: u32,
    window: Duration,
    now: i64,
) -> std::result::Result<RateDecision, sqlx::Error> {
    let window = RateWindow::at(now, window);
    let counted = if limit == 0 {
        0
    } else {
        sqlx::query(q(&sql.rate_limit))
            .bind(key)
            .bind(window.start)
            .bind(window.end)
            .bind(i32::try_from(limit).unwrap_or(i32::MAX))
            .execute(pool)
            .await?
            .rows_affected()
    };
    Ok(window.decision(counted > 0, now))
}

/// Ids as uuids, for array parameters.
pub(crate) fn uuids(ids: &[TaskId]) -> Vec<Uuid> {
    ids.iter().map(|id| *id.as_uuid()).collect()
}
