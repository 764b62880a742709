//! [`PostgresStorage::explain`]: the query plans of the hot statements, for tests and doctors.

use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::Postgres;
use uuid::Uuid;

use crate::error::Context;
use crate::PostgresStorage;

/// The plan PostgreSQL chose for one of the store's statements.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueryPlan {
    /// What the statement does (`"claim"`, `"complete"`, …).
    pub name: &'static str,
    /// The statement.
    pub sql: String,
    /// The lines of `EXPLAIN`, in order.
    pub plan: Vec<String>,
}

impl QueryPlan {
    /// Whether any step reads one of the store's tables whole (`Seq Scan on tasks`…) instead
    /// of an index. Scans of a statement's own batch (`unnest`) are fine, and so is the claim's
    /// `EXISTS (SELECT 1 FROM revocations)`, which stops at the first row.
    pub fn scans_a_table(&self) -> bool {
        const TABLES: [&str; 5] = ["tasks", "results", "dead", "locks", "rates"];
        self.plan.iter().any(|line| {
            line.split("Seq Scan on ").skip(1).any(|rest| {
                let table = rest.split_whitespace().next().unwrap_or_default();
                let table = table.rsplit('.').next().unwrap_or(table);
                TABLES.contains(&table)
            })
        })
    }

    /// Whether the plan reads the index `name`.
    pub fn uses_index(&self, name: &str) -> bool {
        let bitmap = format!("Bitmap Index Scan on {name} ");
        let scan = format!(" using {name} ");
        self.plan
            .iter()
            .any(|line| line.contains(&scan) || line.contains(&bitmap))
    }
}

type Bind = fn(Query<'_, Postgres, PgArguments>, i64) -> Query<'_, Postgres, PgArguments>;

impl PostgresStorage {
    /// `EXPLAIN` of every statement on the hot path — claim, enqueue and complete (each with
    /// and without `ON CONFLICT`), extend, the wake-up probe, result reads, requeues of
    /// expired leases and purges — with typical parameters (a batch of one, queue `default`).
    /// Not one of them should [scan a table](QueryPlan::scans_a_table) once the planner has
    /// statistics of a table of any size (`ANALYZE`; autovacuum takes them on its own).
    ///
    /// The claim's read of ready tasks runs inside the schema's function `claim_ready` (planned
    /// with sorting off, see the crate docs): its plan shows as `Function Scan on
    /// claim_ready`, not as a read of `tasks_ready`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #![allow(dead_code)]
    /// # async fn demo(store: queue_postgres::PostgresStorage) -> queue_core::Result<()> {
    /// let plans = store.explain().await?;
    /// let complete = plans.iter().find(|p| p.name == "complete").unwrap();
    /// assert!(complete.uses_index("tasks_pkey"), "{:#?}", complete.plan);
    /// assert!(plans.iter().all(|p| !p.scans_a_table()));
    /// # Ok(()) }
    /// ```
    pub async fn explain(&self) -> queue_core::Result<Vec<QueryPlan>> {
        let statements: [(&'static str, &str, Bind); 10] = [
            ("claim", self.sql.claim.as_ref(), |q, now| {
                q.bind("default")
                    .bind(64_i64)
                    .bind(now)
                    .bind(now + 30_000)
                    .bind(1_i64 << 61)
                    .bind(crate::fetch::PROMOTE_LIMIT)
            }),
            ("enqueue", self.sql.enqueue.as_ref(), |q, now| {
                q.bind(vec![Uuid::now_v7()])
                    .bind(vec!["default"])
                    .bind(vec!["t"])
                    .bind(vec![0_i16])
                    .bind(vec![now])
                    .bind(vec![0_i32])
                    .bind(vec![0_i32])
                    .bind(vec![4_i32])
                    .bind(vec![None::<String>])
                    .bind(vec![vec![0xc0_u8]])
                    .bind(now)
                    .bind("explain")
            }),
            ("complete", self.sql.complete.as_ref(), |q, now| {
                q.bind(vec![Uuid::now_v7()])
                    .bind(vec![1_i64])
                    .bind(vec![0_i16])
                    .bind(vec![Some(vec![0xc0_u8])])
                    .bind(vec![None::<i64>])
                    .bind(vec![None::<String>])
                    .bind(vec![None::<i64>])
                    .bind(vec![0_i32])
                    .bind(vec![0_i32])
                    .bind(Vec::<Uuid>::new())
                    .bind(Vec::<Uuid>::new())
                    .bind(Vec::<String>::new())
                    .bind(Vec::<String>::new())
                    .bind(Vec::<i16>::new())
                    .bind(Vec::<i64>::new())
                    .bind(Vec::<i32>::new())
                    .bind(Vec::<i32>::new())
                    .bind(Vec::<i32>::new())
                    .bind(Vec::<Option<String>>::new())
                    .bind(Vec::<Vec<u8>>::new())
                    .bind(now)
                    .bind("explain")
            }),
            (
                "enqueue (plain)",
                self.sql.enqueue_plain.as_ref(),
                |q, now| {
                    q.bind(vec![Uuid::now_v7()])
                        .bind(vec!["default"])
                        .bind(vec!["t"])
                        .bind(vec![0_i16])
                        .bind(vec![now])
                        .bind(vec![0_i32])
                        .bind(vec![0_i32])
                        .bind(vec![4_i32])
                        .bind(vec![None::<String>])
                        .bind(vec![vec![0xc0_u8]])
                        .bind(now)
                },
            ),
            (
                "complete (plain)",
                self.sql.complete_plain.as_ref(),
                |q, now| {
                    q.bind(vec![Uuid::now_v7()])
                        .bind(vec![1_i64])
                        .bind(vec![0_i16])
                        .bind(vec![Some(vec![0xc0_u8])])
                        .bind(vec![None::<i64>])
                        .bind(vec![None::<String>])
                        .bind(vec![None::<i64>])
                        .bind(vec![0_i32])
                        .bind(vec![0_i32])
                        .bind(Vec::<Uuid>::new())
                        .bind(Vec::<Uuid>::new())
                        .bind(Vec::<String>::new())
                        .bind(Vec::<String>::new())
                        .bind(Vec::<i16>::new())
                        .bind(Vec::<i64>::new())
                        .bind(Vec::<i32>::new())
                        .bind(Vec::<i32>::new())
                        .bind(Vec::<i32>::new())
                        .bind(Vec::<Option<String>>::new())
                        .bind(Vec::<Vec<u8>>::new())
                        .bind(now)
                        .bind(None::<String>)
                },
            ),
            ("extend", self.sql.extend.as_ref(), |q, now| {
                q.bind(vec![Uuid::now_v7()]).bind(vec![1_i64]).bind(now)
            }),
            ("wake-up probe", self.sql.probe.as_ref(), |q, _| {
                q.bind("default")
            }),
            ("get result", self.sql.get_result.as_ref(), |q, now| {
                q.bind(Uuid::now_v7()).bind(now)
            }),
            (
                "requeue expired leases",
                self.sql.requeue_expired.as_ref(),
                |q, now| q.bind("default").bind(now).bind(100_i64).bind("explain"),
            ),
            (
                "purge expired",
                self.sql.purge_expired.as_ref(),
                |q, now| q.bind(now).bind(100_i64),
            ),
        ];
        let now = self.now();
        let mut conn = self.pool.acquire().await.map_err(self.fail("explain"))?;
        let mut out = Vec::with_capacity(statements.len());
        for (name, sql, bind) in statements {
            let text = format!("EXPLAIN {sql}");
            let query = bind(sqlx::query(sqlx::AssertSqlSafe(text)), now);
            let rows: Vec<String> = {
                use sqlx::Row;
                query
                    .fetch_all(&mut *conn)
                    .await
                    .ctx("explain a statement")?
                    .iter()
                    .map(|r| r.try_get::<String, _>(0))
                    .collect::<Result<_, _>>()
                    .ctx("read a plan")?
            };
            out.push(QueryPlan {
                name,
                sql: sql.to_owned(),
                plan: rows,
            });
        }
        Ok(out)
    }
}
