//! Every statement of the store, rendered once per store for its schema.
//!
//! Statements are written as templates in the module that runs them, with `{s}` where the
//! quoted schema name goes (`{s}.tasks`). [`Sql::new`] renders them all when the store opens;
//! a call then passes an `Arc<str>` clone to sqlx, which prepares each text once per connection
//! and keeps it in its statement cache. Nothing a caller passes is ever spliced into SQL: the
//! schema name is checked ([`check_schema`](crate::options::check_schema)) and quoted, and
//! every value is a bind parameter.

use std::sync::Arc;

use sqlx::AssertSqlSafe;

/// `"name"`, with any `"` doubled (schema names are checked to be plain identifiers anyway).
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A statement ready to run: hand it to `sqlx::query*`.
pub(crate) fn q(sql: &Arc<str>) -> AssertSqlSafe<Arc<str>> {
    AssertSqlSafe(Arc::clone(sql))
}

fn render(template: &str, schema: &str) -> Arc<str> {
    Arc::from(template.replace("{s}", schema))
}

macro_rules! statements {
    ($($(#[$doc:meta])* $name:ident = $template:expr;)*) => {
        /// The store's statements, rendered for its schema.
        #[derive(Debug)]
        pub(crate) struct Sql {
            $($(#[$doc])* pub(crate) $name: Arc<str>,)*
        }

        impl Sql {
            /// Renders every statement for `schema` (unquoted).
            pub(crate) fn new(schema: &str) -> Self {
                let quoted = quote_ident(schema);
                Self { $($name: render($template, &quoted),)* }
            }

            /// Every statement with its name, for plan checks.
            #[allow(dead_code)]
            pub(crate) fn all(&self) -> Vec<(&'static str, &Arc<str>)> {
                vec![$((stringify!($name), &self.$name),)*]
            }
        }
    };
}

statements! {
    /// Removes the dead rows and index entries of the task table (see `vacuum`).
    vacuum_tasks = "VACUUM (SKIP_LOCKED) {s}.tasks";
    /// Stores a batch of envelopes (see `enqueue`).
    enqueue = crate::enqueue::ENQUEUE;
    /// Stores one envelope (see `enqueue`).
    enqueue_one = crate::enqueue::ENQUEUE_ONE;
    /// Stores a batch of envelopes that cannot clash (see `enqueue`).
    enqueue_plain = crate::enqueue::ENQUEUE_PLAIN;
    /// Stores one envelope that cannot clash (see `enqueue`).
    enqueue_one_plain = crate::enqueue::ENQUEUE_ONE_PLAIN;
    /// Finds the holders of duplicate ids and unique keys.
    holders = crate::enqueue::HOLDERS;
    /// Claims a batch of due tasks (see `fetch`).
    claim = crate::fetch::CLAIM;
    /// Applies a batch of completions (see `complete`).
    complete = crate::complete::COMPLETE;
    /// The same, storing results without `ON CONFLICT` (see `complete_plain`).
    complete_plain = &crate::complete::complete_plain();
    /// Extends leases.
    extend = crate::complete::EXTEND;
    /// Returns expired leases to ready.
    requeue_expired = crate::control::REQUEUE_EXPIRED;
    /// Moves a pending task to a new eta.
    reschedule = crate::control::RESCHEDULE;
    /// Stores a revocation.
    revoke = crate::control::REVOKE;
    /// Removes a revocation.
    restore = crate::control::RESTORE;
    /// Revocations matching a batch of tasks.
    revocations_for = crate::control::REVOCATIONS_FOR;
    /// Checks (and uses up) the revocation of one target.
    check_revocation = crate::control::CHECK_REVOCATION;
    /// Whether any revocation exists.
    any_revocation = crate::control::ANY_REVOCATION;
    /// Takes or renews a lock.
    acquire_lock = crate::control::ACQUIRE_LOCK;
    /// Releases a lock.
    release_lock = crate::control::RELEASE_LOCK;
    /// Releases every lock.
    flush_locks = crate::control::FLUSH_LOCKS;
    /// Counts one rate-limit hit.
    rate_limit = crate::control::RATE_LIMIT;
    /// Removes expired results, locks, counters and revocations.
    purge_expired = crate::control::PURGE_EXPIRED;
    /// Reads a result.
    get_result = crate::wait::GET_RESULT;
    /// Deletes a result.
    delete_result = crate::wait::DELETE_RESULT;
    /// Is work ready, and when is the next timer?
    probe = crate::wait::PROBE;
    /// Registers a wait for work on a queue.
    register_work_wait = crate::wait::REGISTER_WORK_WAIT;
    /// Registers a wait for a result.
    register_result_wait = crate::wait::REGISTER_RESULT_WAIT;
    /// After a commit: notifies the queues and task ids someone waits for.
    notify_waiting = crate::notify::NOTIFY_WAITING;
    /// The queues some store waits on (the listener's first read).
    watched_queues = crate::notify::WATCHED_QUEUES;
    /// Counts by state, every queue.
    counts = crate::admin::COUNTS;
    /// Counts by state, one queue.
    counts_in_queue = crate::admin::COUNTS_IN_QUEUE;
    /// Lists ready tasks of every queue.
    list_ready = crate::admin::LIST_READY;
    /// Lists ready tasks of one queue.
    list_ready_in_queue = crate::admin::LIST_READY_IN_QUEUE;
    /// Lists scheduled tasks of every queue.
    list_scheduled = crate::admin::LIST_SCHEDULED;
    /// Lists scheduled tasks of one queue.
    list_scheduled_in_queue = crate::admin::LIST_SCHEDULED_IN_QUEUE;
    /// Lists leased tasks of every queue.
    list_leased = crate::admin::LIST_LEASED;
    /// Lists leased tasks of one queue.
    list_leased_in_queue = crate::admin::LIST_LEASED_IN_QUEUE;
    /// One pending task.
    get_task = crate::admin::GET_TASK;
    /// The queues with pending or dead tasks.
    queues = crate::admin::QUEUES;
    /// Lists dead tasks of every queue.
    list_dead = crate::admin::LIST_DEAD;
    /// Lists dead tasks of one queue.
    list_dead_in_queue = crate::admin::LIST_DEAD_IN_QUEUE;
    /// One dead task.
    get_dead = crate::admin::GET_DEAD;
    /// Dead tasks to requeue, locked.
    take_dead = crate::admin::TAKE_DEAD;
    /// Removes requeued tasks from the dead-letter queue.
    unbury = crate::admin::UNBURY;
    /// Deletes dead tasks.
    purge_dead = crate::admin::PURGE_DEAD;
    /// Deletes chosen dead tasks.
    discard_dead = crate::admin::DISCARD_DEAD;
    /// Deletes everything.
    flush = crate::admin::FLUSH;
    /// Stores a raw row (tests of garbage in the store).
    insert_raw = crate::admin::INSERT_RAW;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_statement_names_the_schema_and_nothing_is_left_unrendered() {
        let sql = Sql::new("jobs");
        for (name, text) in sql.all() {
            assert!(!text.contains("{s}"), "{name}");
            assert!(
                text.contains("\"jobs\"."),
                "{name} does not name the schema"
            );
        }
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
