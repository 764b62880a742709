//! The core of Skiff, an async-first task queue for Tokio.
//!
//! This crate has no I/O of its own. It defines what every part of Skiff agrees on:
//!
//! * [`Envelope`] — a task as stored: versioned, msgpack-encoded, data only;
//! * [`TaskId`], [`LeaseToken`], [`RetryPolicy`], [`Clock`];
//! * the async [`Storage`] trait every backend implements, and its delivery contract;
//! * typed tasks: [`Task`], [`TaskCall`], [`TaskHandle`], [`TaskError`], [`Registry`];
//! * [`Queue`], the producer's handle, with an immediate mode for tests;
//! * [`MemoryStorage`], the contract in process memory;
//! * [`seal`]: payload signing and encryption with key rotation;
//! * [`cron_expr::parse_cron`], the cron expressions of periodic tasks;
//! * with the `testing` feature, `testing`: the conformance suite every backend runs.
//!
//! Most users depend on the `skiff` crate, which re-exports all of this.

#![doc(test(attr(deny(warnings))))]

pub mod blocking;
mod call;
pub mod clock;
mod control;
mod control_plane;
pub mod cron_expr;
mod envelope;
mod error;
pub mod events;
mod group;
mod handle;
mod id;
pub mod memory;
mod pipeline;
mod queue;
pub mod redact;
mod retry;
mod revocations;
pub mod seal;
pub mod storage;
pub mod task;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trace;
pub mod workers;

pub use call::TaskCall;
pub use clock::{Clock, ManualClock, SystemClock};
pub use control::{LockBuilder, LockGuard};
pub use envelope::{
    chord_args, from_msgpack, msgpack_to_json, to_msgpack, wrap_single_arg, Envelope, FollowUp,
    FollowUpInput, FollowUpWhen, DEFAULT_MAX_PAYLOAD_BYTES, DEFAULT_QUEUE, DELIVERY_MARGIN,
    FORMAT_VERSION,
};
pub use error::{Error, FailureKind, Result, TaskError, TaskErrorKind, TaskFailure};
pub use events::{Event, Events};
pub use group::{Chord, ChordHandle, Group, GroupHandle};
pub use handle::TaskHandle;
pub use id::{LeaseToken, TaskId};
pub use memory::MemoryStorage;
pub use pipeline::{Pipeline, PipelineHandle};
pub use queue::{chord_inputs, panic_message, ChordInputs, Queue};
pub use retry::{Backoff, RetryPolicy};
pub use storage::{
    AckStatus, CancelRequest, Completion, Counts, DeadTask, Delivery, EnqueueOutcome, Lease,
    Outcome, Page, RateDecision, Revocation, RevokeTarget, Storage, StoredResult, TaskRecord,
    TaskState,
};
pub use task::{
    run_blocking, CancellationToken, ErasedTask, Progress, ProgressSlot, Registry, Task,
    TaskContext, TaskFn, TaskOptions,
};
pub use workers::{
    Heartbeat, MinuteCount, PeriodicStatus, RunningTask, WorkerInfo, WorkerStatus,
    CANCEL_REQUEST_TTL,
};

/// Re-exports used by code that `#[task]` generates. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use futures::future::BoxFuture;
}
