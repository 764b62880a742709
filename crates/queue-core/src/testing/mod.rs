//! The backend conformance suite (feature `testing`).
//!
//! Every [`Storage`] implementation must keep the same delivery contract (see the
//! [`storage`](crate::storage) module docs): order, leases and fencing, poison tasks, atomic
//! completions, results, unique keys, the dead-letter queue, locks (also as periodic claims),
//! rate limits, revocation and introspection. This module checks it, once, for every backend.
//!
//! # Running the suite on a backend
//!
//! 1. Implement [`Backend`]: how to open a fresh, empty, isolated store on a given clock, and how
//!    to put raw bytes into it (to simulate garbage written by a broken or newer producer).
//! 2. Call [`conformance_tests!`](crate::conformance_tests) in an integration test with a
//!    function that returns your backend. It expands to one `#[test]` per case, so a failure
//!    names the broken rule.
//!
//! ```toml
//! [dev-dependencies]
//! queue-core = { workspace = true, features = ["testing"] }
//! async-trait = { workspace = true }
//! ```
//!
//! Each case is also a public `async fn case<B: Backend>(b: &B)`, for running one by hand.
//!
//! # How the cases keep time
//!
//! Every case opens its store on a [`ManualClock`] (started at the current time, rounded to the
//! millisecond, the unit stores keep) and moves it forward instead of sleeping: leases,
//! etas, result TTLs, locks, rate-limit windows and revocations are all checked without real
//! waiting. Only the `wait_*` cases sleep for real, for well under a second each.

// Test-support code: a panic (from `unwrap`, `expect` or `assert!`) is how a case reports that
// the store broke the contract.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::{from_millis, to_millis};
use crate::{
    to_msgpack, AckStatus, Clock, Completion, Counts, Delivery, EnqueueOutcome, Envelope,
    FailureKind, Lease, ManualClock, Outcome, Page, Storage, TaskFailure, TaskId,
};

mod control;
mod control_plane;
mod delivery;
mod dlq;
mod introspection;
mod outcomes;
mod periodic;
mod poison;
mod results;
mod sealing;
mod tls;
mod unique;
mod wait;

pub use control::*;
pub use control_plane::*;
pub use delivery::*;
pub use dlq::*;
pub use introspection::*;
pub use outcomes::*;
pub use periodic::*;
pub use poison::*;
pub use results::*;
pub use sealing::*;
pub use tls::*;
pub use unique::*;
pub use wait::*;

/// Re-exported so a backend's test file can implement [`Backend`] without naming the crate.
pub use async_trait::async_trait;

/// A store under test, as the conformance suite sees it.
///
/// # Examples
///
/// ```
/// # #![allow(dead_code)]
/// use std::sync::Arc;
/// use queue_core::testing::{async_trait, Backend};
/// use queue_core::{Clock, MemoryStorage, TaskId};
///
/// struct Memory;
///
/// #[async_trait]
/// impl Backend for Memory {
///     type Store = MemoryStorage;
///
///     async fn open(&self, clock: Arc<dyn Clock>) -> MemoryStorage {
///         MemoryStorage::with_clock(clock)
///     }
///
///     async fn insert_raw(&self, store: &MemoryStorage, queue: &str, id: TaskId, raw: Vec<u8>) {
///         store.insert_raw(queue, id, raw);
///     }
/// }
///
/// fn memory() -> Memory {
///     Memory
/// }
///
/// queue_core::conformance_tests!(memory);
/// # fn main() {}
/// ```
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The store this backend opens.
    type Store: Storage;

    /// A fresh, empty, isolated store reading time from `clock`.
    ///
    /// Each case opens its own store and may flush it, so stores must not share state (use a
    /// new database file, a new Redis database or key prefix, …).
    async fn open(&self, clock: Arc<dyn Clock>) -> Self::Store;

    /// Stores `raw` verbatim as a ready task (id `id`, queue `queue`, priority 0), bypassing
    /// encoding, to simulate garbage in the store.
    async fn insert_raw(&self, store: &Self::Store, queue: &str, id: TaskId, raw: Vec<u8>);
}

/// Runs every conformance case against a backend, one `#[test]` per case.
///
/// The argument is a function `fn() -> B` where `B:` [`Backend`]; it is called once per case,
/// inside the case's runtime (so it may spawn). The macro expands to a private module
/// `conformance` that does `use super::*;`, so pass a name in scope at the call site or an
/// absolute path (`crate::…`). To run the suite twice in one file (say, on a file and an
/// in-memory database), call it inside two modules of your own.
///
/// Each test runs its case on a multi-threaded Tokio runtime with 2 worker threads (what
/// `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]` builds, without requiring the
/// calling crate to enable Tokio's `macros` feature), and fails if the case takes longer than
/// two minutes, so a store that never answers fails instead of hanging the run.
///
/// A case a backend cannot pass yet can be marked `#[ignore]` with a reason; a misspelled case
/// name is a compile error:
///
/// ```text
/// queue_core::conformance_tests!(make_backend, ignore {
///     requeue_expired_respects_max: "requeue_expired ignores `max` (issue #12)",
/// });
/// ```
///
/// # Examples
///
/// In `crates/queue-sqlite/tests/conformance.rs`:
///
/// ```ignore
/// use std::sync::Arc;
/// use queue_core::testing::{async_trait, Backend};
/// use queue_core::{Clock, TaskId};
///
/// struct Sqlite;
///
/// #[async_trait]
/// impl Backend for Sqlite {
///     type Store = queue_sqlite::SqliteStorage;
///     async fn open(&self, clock: Arc<dyn Clock>) -> Self::Store { /* a new temp database */ }
///     async fn insert_raw(&self, store: &Self::Store, queue: &str, id: TaskId, raw: Vec<u8>) {
///         /* INSERT the bytes as a ready task */
///     }
/// }
///
/// fn sqlite() -> Sqlite {
///     Sqlite
/// }
///
/// queue_core::conformance_tests!(sqlite);
/// ```
///
/// A complete, compiled example is on [`Backend`].
#[macro_export]
macro_rules! conformance_tests {
    ($make:path $(, ignore { $($ignored:ident : $reason:literal),* $(,)? })? $(,)?) => {
        $crate::__conformance_tests! { ($) $make; [$($($ignored : $reason),*)?] }
    };
}

/// Implementation detail of [`conformance_tests!`]: `$d` is a `$` token, so the expansion can
/// define a local macro that picks the `#[ignore]` attribute per case.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    (($d:tt) $make:path; [$($ignored:ident : $reason:literal),*]) => {
        #[allow(unused_imports)]
        mod conformance {
            use super::*;

            // A misspelled case name in `ignore { … }` does not resolve.
            $( use $crate::testing::$ignored as _; )*

            macro_rules! __case {
                $( ($ignored) => { $crate::__conformance_case! { $make; $ignored; #[ignore = $reason] } }; )*
                ($d name:ident) => { $crate::__conformance_case! { $make; $d name; } };
            }

            // Keep in sync with the public cases of `queue_core::testing`.
            // delivery
            __case!(fifo_within_priority);
            __case!(priority_order);
            __case!(eta_respected);
            __case!(fetch_caps_at_max);
            __case!(delivery_carries_envelope_and_lease);
            __case!(concurrent_fetchers_never_share_a_task);
            __case!(expired_lease_is_redelivered);
            __case!(stale_token_is_refused);
            __case!(extend_moves_the_expiry);
            __case!(requeue_expired_respects_max);
            // outcomes
            __case!(follow_ups_commit_with_the_outcome);
            __case!(invalid_follow_up_changes_nothing);
            __case!(retry_writes_back_later);
            __case!(defer_counts_nothing);
            __case!(dead_goes_to_the_dead_letter_queue);
            __case!(drop_is_not_dead);
            // results
            __case!(results_are_kept_until_deleted);
            __case!(wait_result_is_woken_by_completion);
            __case!(wait_result_times_out);
            __case!(result_ttl_expires);
            __case!(purge_expired_keeps_live_results);
            // unique keys
            __case!(unique_key_while_pending_and_leased);
            __case!(fixed_id_is_unique);
            __case!(an_earlier_result_stays_gone_while_its_id_runs_again);
            __case!(duplicates_within_a_batch);
            // introspection
            __case!(counts_through_lifecycle);
            __case!(list_and_get_task_with_paging);
            __case!(due_tasks_count_and_list_as_ready);
            __case!(queues_lists_pending_and_dead);
            __case!(flush_empties_everything);
            // poison and garbage
            __case!(poison_task_is_dead_lettered);
            __case!(default_delivery_limit);
            __case!(undecodable_is_dead_lettered);
            __case!(newer_format_is_dead_lettered);
            // dead-letter queue
            __case!(requeue_dead_restores_fresh_counts);
            __case!(requeue_all_and_purge_dead_by_queue);
            __case!(requeue_dead_never_loses_a_task);
            __case!(list_dead_oldest_first_with_paging);
            __case!(discard_dead_removes_only_the_chosen_tasks);
            __case!(discarded_dead_tasks_cannot_be_requeued);
            __case!(purged_dead_tasks_take_their_failure_results);
            __case!(results_of_tasks_dead_lettered_at_fetch_expire);
            __case!(a_fixed_id_that_dies_twice_keeps_its_latest_record);
            __case!(discard_dead_spares_a_pending_task_of_the_same_id);
            // control
            __case!(reschedule_moves_pending_tasks);
            __case!(revoke_by_id_and_name);
            __case!(a_revocation_by_id_goes_with_its_task);
            __case!(revoke_once_and_until);
            __case!(locks_have_owners_and_ttls);
            __case!(rate_limit_fixed_window);
            __case!(rate_window_never_moves_back);
            // periodic claims and task locks
            __case!(tick_claim_is_exclusive_until_its_ttl);
            __case!(shared_owner_probes_a_lock);
            __case!(derived_id_is_free_again_after_completion);
            // waiting
            __case!(wait_for_work_wakes_on_enqueue);
            __case!(wait_for_work_returns_when_work_is_ready);
            __case!(wait_for_work_times_out);
            // control plane
            __case!(paused_queue_hands_out_nothing_until_resumed);
            __case!(wait_on_a_paused_queue_ends_at_resume);
            __case!(purge_queue_removes_pending_but_not_running);
            __case!(cancel_requests_reach_the_running_workers_heartbeat);
            __case!(heartbeats_list_live_workers_until_their_ttl);
            __case!(progress_is_kept_for_the_current_lease_only);
            // signing and encryption
            __case!(sealed_tasks_are_unreadable_at_rest);
            __case!(forged_and_tampered_tasks_are_dead_lettered);
            __case!(rotated_keys_open_old_tasks_and_unknown_keys_are_refused);
            __case!(per_queue_checks_and_signed_results);
        }
    };
}

/// Implementation detail of [`conformance_tests!`]: one test.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_case {
    ($make:path; $name:ident; $(#[$attr:meta])*) => {
        #[test]
        $(#[$attr])*
        fn $name() {
            $crate::testing::__run_case(stringify!($name), async {
                let backend = $make();
                $crate::testing::$name(&backend).await;
            });
        }
    };
}

/// How long one case may run before it counts as hung.
const CASE_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs one case on a 2-worker multi-threaded runtime, failing it after [`CASE_TIMEOUT`]. Used
/// by [`conformance_tests!`]; not a public API.
#[doc(hidden)]
pub fn __run_case<F: Future<Output = ()>>(name: &str, case: F) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build a Tokio runtime for the conformance case");
    runtime.block_on(async {
        if tokio::time::timeout(CASE_TIMEOUT, case).await.is_err() {
            panic!("conformance case `{name}` did not finish within {CASE_TIMEOUT:?}");
        }
    });
}

// ----- fixtures shared by the cases -----

/// The lease every case fetches with unless it says otherwise.
pub(crate) const LEASE: Duration = Duration::from_secs(30);

/// Seconds as a `Duration`.
pub(crate) const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A store under test and the clock it reads.
pub(crate) struct Fx<S> {
    pub(crate) store: S,
    pub(crate) clock: ManualClock,
}

/// Opens a fresh store on a manual clock set to now, rounded to the millisecond.
pub(crate) async fn open<B: Backend>(b: &B) -> Fx<B::Store> {
    let clock = ManualClock::starting_at(from_millis(to_millis(Utc::now())));
    let store = b.open(Arc::new(clock.clone())).await;
    Fx { store, clock }
}

impl<S: Storage> Fx<S> {
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub(crate) fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// A new envelope (empty-tuple args) enqueued at the clock's now.
    pub(crate) fn env(&self, queue: &str, task: &str) -> Envelope {
        Envelope::new(queue, task, to_msgpack(&()).unwrap(), self.now())
    }

    /// Enqueues one envelope and checks it was stored under its own id.
    pub(crate) async fn enqueue(&self, env: Envelope) -> TaskId {
        let id = env.id;
        let out = self.store.enqueue(vec![env]).await.expect("enqueue");
        assert_eq!(
            out,
            vec![EnqueueOutcome::Enqueued(id)],
            "enqueue of a new task"
        );
        id
    }

    /// Enqueues a new task `task` on `queue`.
    pub(crate) async fn enqueue_new(&self, queue: &str, task: &str) -> TaskId {
        self.enqueue(self.env(queue, task)).await
    }

    /// Fetches up to `max` under [`LEASE`].
    pub(crate) async fn fetch(&self, queue: &str, max: usize) -> Vec<Delivery> {
        self.store.fetch(queue, max, LEASE).await.expect("fetch")
    }

    /// Fetches and checks exactly one task came back.
    pub(crate) async fn fetch_one(&self, queue: &str) -> Delivery {
        let mut got = self.fetch(queue, 10).await;
        assert_eq!(
            got.len(),
            1,
            "expected exactly one delivery from `{queue}`, got {:?}",
            ids(&got)
        );
        got.remove(0)
    }

    /// Fetches and checks nothing came back.
    pub(crate) async fn fetch_none(&self, queue: &str, why: &str) {
        let got = self.fetch(queue, 10).await;
        assert!(
            got.is_empty(),
            "{why}: expected no delivery from `{queue}`, got {:?}",
            ids(&got)
        );
    }

    /// Completes one lease with `outcome`, no follow-ups, results kept forever.
    pub(crate) async fn complete(&self, lease: Lease, outcome: Outcome) -> AckStatus {
        self.complete_with(Completion::new(lease, outcome, None))
            .await
    }

    /// Completes one completion.
    pub(crate) async fn complete_with(&self, completion: Completion) -> AckStatus {
        let out = self
            .store
            .complete(vec![completion])
            .await
            .expect("complete");
        assert_eq!(out.len(), 1, "one status per completion");
        out[0]
    }

    /// Checks that the dead-letter queue is empty.
    pub(crate) async fn no_dead_letters(&self, why: &str) {
        let dead = self
            .store
            .list_dead(None, Page::first(10))
            .await
            .expect("list_dead");
        let ids: Vec<TaskId> = dead.iter().map(|d| d.id).collect();
        assert!(ids.is_empty(), "{why}: expected no dead task, got {ids:?}");
    }

    pub(crate) async fn counts(&self, queue: Option<&str>) -> Counts {
        self.store.counts(queue).await.expect("counts")
    }

    /// Moves the clock past [`LEASE`] and returns expired leases of `queue` to ready.
    pub(crate) async fn expire_leases(&self, queue: &str) {
        self.advance(LEASE + secs(1));
        self.store
            .requeue_expired(queue, 1000)
            .await
            .expect("requeue_expired");
    }

    /// Enqueues a task, fetches it and completes it as dead; returns its id.
    pub(crate) async fn make_dead(&self, queue: &str, task: &str) -> TaskId {
        let id = self.enqueue_new(queue, task).await;
        let d = self.fetch_one(queue).await;
        assert_eq!(d.lease.id, id);
        let status = self
            .complete(
                d.lease,
                Outcome::Dead {
                    failure: failure(FailureKind::Error, "boom"),
                },
            )
            .await;
        assert_eq!(status, AckStatus::Acked);
        id
    }
}

/// The ids of deliveries, in order.
pub(crate) fn ids(deliveries: &[Delivery]) -> Vec<TaskId> {
    deliveries.iter().map(|d| d.lease.id).collect()
}

/// Completions of `deliveries` as successes with a nil result (msgpack `0xc0`), the result
/// kept for `result_ttl`: what a store test or a benchmark writes when only the delivery
/// matters.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> queue_core::Result<()> {
/// use std::time::Duration;
/// use queue_core::{to_msgpack, Envelope, MemoryStorage, Storage};
///
/// let store = MemoryStorage::new();
/// let env = Envelope::new("q", "t", to_msgpack(&())?, store.clock().now());
/// store.enqueue(vec![env]).await?;
/// let got = store.fetch("q", 10, Duration::from_secs(30)).await?;
/// store.complete(queue_core::testing::successes(&got, None)).await?;
/// assert_eq!(store.counts(None).await?.results, 1);
/// # Ok(()) }
/// ```
pub fn successes(deliveries: &[Delivery], result_ttl: Option<Duration>) -> Vec<Completion> {
    deliveries
        .iter()
        .map(|d| {
            let outcome = Outcome::Success { result: vec![0xc0] };
            Completion::new(d.lease, outcome, result_ttl)
        })
        .collect()
}

/// A success outcome with `value` (msgpack-encoded) as its result.
pub(crate) fn success<T: serde::Serialize>(value: &T) -> Outcome {
    Outcome::Success {
        result: to_msgpack(value).unwrap(),
    }
}

/// A failure record of one attempt.
pub(crate) fn failure(kind: FailureKind, message: &str) -> TaskFailure {
    TaskFailure::new(kind, message, 1)
}

/// Milliseconds since the epoch, the precision every store keeps.
pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    to_millis(t)
}
