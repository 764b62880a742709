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
//!   and [`page_bounds`] for `LIMIT … OFFSET …`.
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

use crate::storage::Page;

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
