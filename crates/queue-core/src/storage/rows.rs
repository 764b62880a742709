//! For stores that keep tasks as rows of tables (SQLite, PostgreSQL): the halves of their
//! reads and writes that do not depend on the database, so each store keeps only its SQL and
//! the binding of its columns.
//!
//! * Writing: [`NewTask`] (an envelope checked and encoded into the columns a store indexes)
//!   and [`Settlement`] (a [`Completion`](crate::Completion) turned into what to write: the
//!   row finishes, goes to the dead-letter queue or comes back later, with its follow-ups).
//! * Reading: [`ClaimedRow`] (a row a fetch just leased, checked into a
//!   [`Delivery`](crate::Delivery) or [`Rejected`] for the dead-letter queue), [`TaskRow`] and
//!   [`DeadRow`] (listings: [`TaskRecord`](crate::TaskRecord), [`DeadTask`](crate::DeadTask)),
//!   [`page_bounds`] and [`sql_limit`] for `LIMIT … OFFSET …`, [`counts_of`] for
//!   `SELECT count(*) …`.
//!
//! Times are milliseconds since the Unix epoch, as the stores keep them
//! ([`to_millis`](crate::clock::to_millis)). A store reads its columns into these types
//! (integers of any width widen to `i64` without loss) and reports a column it cannot read as
//! its own error; nothing here panics on what a row holds.

mod claimed;
mod listing;
mod new_task;
mod settlement;

pub use claimed::{ClaimedRow, Rejected};
pub use listing::{DeadRow, TaskRow};
pub use new_task::NewTask;
pub use settlement::{Ending, Settlement};

use crate::storage::{Counts, Page};

/// `page` as the `(limit, offset)` of an SQL `LIMIT ? OFFSET ?` (an offset past `i64::MAX`
/// becomes `i64::MAX`: an empty page).
///
/// # Examples
///
/// ```
/// use queue_core::storage::rows::page_bounds;
/// use queue_core::Page;
///
/// assert_eq!(page_bounds(Page { offset: 20, limit: 10 }), (10, 20));
/// assert_eq!(page_bounds(Page { offset: u64::MAX, limit: 1 }), (1, i64::MAX));
/// ```
pub fn page_bounds(page: Page) -> (i64, i64) {
    (
        i64::from(page.limit),
        i64::try_from(page.offset).unwrap_or(i64::MAX),
    )
}

/// `n` (a `max` of the [`Storage`](crate::Storage) trait) as an SQL `LIMIT`; more than
/// `i64::MAX` reads as `i64::MAX`.
///
/// # Examples
///
/// ```
/// use queue_core::storage::rows::sql_limit;
///
/// assert_eq!(sql_limit(100), 100);
/// assert_eq!(sql_limit(usize::MAX), i64::MAX);
/// ```
pub fn sql_limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The [`Counts`] of SQL `count(*)`s, in the order of its fields (a negative count, which SQL
/// never returns, reads as 0).
///
/// # Examples
///
/// ```
/// use queue_core::storage::rows::counts_of;
///
/// let counts = counts_of(3, 2, 1, 0, 7);
/// assert_eq!((counts.ready, counts.scheduled, counts.leased), (3, 2, 1));
/// assert_eq!((counts.dead, counts.results), (0, 7));
/// ```
pub fn counts_of(ready: i64, scheduled: i64, leased: i64, dead: i64, results: i64) -> Counts {
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    Counts {
        ready: n(ready),
        scheduled: n(scheduled),
        leased: n(leased),
        dead: n(dead),
        results: n(results),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_bounds_and_counts_never_overflow() {
        let page = Page {
            offset: u64::MAX,
            limit: u32::MAX,
        };
        assert_eq!(page_bounds(page), (i64::from(u32::MAX), i64::MAX));
        let counts = counts_of(-1, 0, 1, i64::MAX, 2);
        assert_eq!(
            (
                counts.ready,
                counts.scheduled,
                counts.leased,
                counts.dead,
                counts.results
            ),
            (0, 0, 1, i64::MAX.unsigned_abs(), 2)
        );
    }
}
