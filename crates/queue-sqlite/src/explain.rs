//! [`SqliteStorage::explain`]: the query plans of the hot statements, for tests and doctors.

use crate::error::Context;
use crate::{complete, control, enqueue, fetch, wait, SqliteStorage};

/// The plan SQLite chose for one of the store's statements.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueryPlan {
    /// What the statement does (`"claim"`, `"complete"`, …).
    pub name: &'static str,
    /// The statement.
    pub sql: String,
    /// The `detail` lines of `EXPLAIN QUERY PLAN`, in order.
    pub plan: Vec<String>,
}

impl QueryPlan {
    /// Whether any step reads one of the store's tables whole (`SCAN tasks`, `SCAN t` for an
    /// alias of it…) instead of searching an index. Scans of a statement's own `VALUES` list
    /// (the batch) are fine.
    pub fn scans_a_table(&self) -> bool {
        const TABLES: [&str; 8] = [
            "tasks",
            "t",
            "results",
            "dead",
            "locks",
            "rates",
            "revocations",
            "skiff_meta",
        ];
        self.plan.iter().any(|line| {
            let mut words = line.split_whitespace();
            words.next() == Some("SCAN")
                && words.next().is_some_and(|table| TABLES.contains(&table))
                && !line.contains(" INDEX ")
        })
    }
}

impl SqliteStorage {
    /// `EXPLAIN QUERY PLAN` of every statement on the hot path: claim, promote, enqueue,
    /// complete, retry, extend, the wake-up probe, result reads and purges. None of them
    /// should [scan a table](QueryPlan::scans_a_table).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> queue_core::Result<()> {
    /// let store = queue_sqlite::SqliteStorage::connect("sqlite::memory:").await?;
    /// for plan in store.explain().await? {
    ///     assert!(!plan.scans_a_table(), "{plan:?}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn explain(&self) -> queue_core::Result<Vec<QueryPlan>> {
        let statements: [(&'static str, &'static str); 14] = [
            ("claim", fetch::CLAIM),
            ("promote", fetch::PROMOTE),
            ("enqueue", enqueue::INSERT.get(2)),
            ("forget an old result", enqueue::FORGET_RESULT),
            ("complete", complete::FINISH.get(2)),
            ("store results", complete::RESULTS.get(2)),
            ("retry or defer", complete::LATER),
            ("extend", complete::EXTEND.get(2)),
            ("wake-up probe", wait::PROBE),
            ("get result", wait::GET_RESULT),
            ("purge results", control::PURGE_RESULTS),
            ("purge locks", control::PURGE_LOCKS),
            ("purge rate counters", control::PURGE_RATES),
            ("purge revocations", control::PURGE_REVOCATIONS),
        ];
        let mut out = Vec::with_capacity(statements.len());
        let mut conn = self.pool.acquire().await.ctx("explain")?;
        for (name, sql) in statements {
            let text = format!("EXPLAIN QUERY PLAN {sql}");
            let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(text))
                .fetch_all(&mut *conn)
                .await
                .ctx("explain a statement")?;
            out.push(QueryPlan {
                name,
                sql: sql.to_owned(),
                plan: rows.into_iter().map(|r| r.3).collect(),
            });
        }
        Ok(out)
    }
}
