//! What happens to tasks: the [`Event`] stream of a [`Queue`](crate::Queue).
//!
//! Subscribe with [`Queue::events`](crate::Queue::events): it carries what producers on that
//! queue handle report ([`Event::Enqueued`], [`Event::Scheduled`]) and what every consumer built
//! from it reports (the rest; consumers also offer their own `events()`). The stream is a Tokio
//! [`broadcast`] channel: a subscriber that falls behind misses events (its next `recv` returns
//! [`RecvError::Lagged`](broadcast::error::RecvError::Lagged)) but never slows execution down.
//!
//! # When each event is sent
//!
//! * [`Event::Executing`] when a task starts running.
//! * [`Event::Error`] when an attempt fails (the task returned an error, panicked, or ran past its
//!   timeout; [`TaskFailure::kind`] says which). It is followed by the outcome:
//!   [`Event::Retrying`], [`Event::DeadLettered`] or [`Event::Canceled`].
//! * Outcome events ([`Event::Complete`], [`Event::Retrying`], [`Event::DeadLettered`],
//!   [`Event::Canceled`], [`Event::Revoked`], [`Event::Expired`], [`Event::UnknownTask`],
//!   [`Event::Released`]) are sent once the outcome is written to the store, so a result is
//!   readable when `Complete` arrives.
//! * [`Event::Timeout`] with the [`Event::Error`] of an attempt that ran past its limit.
//! * [`Event::Interrupted`] when a graceful shutdown stops a task and hands it back.
//! * [`Event::Locked`] and [`Event::RateLimited`] when a task is put back without running
//!   because its lock is held or its rate limit is reached (once that is written).
//! * [`Event::Enqueued`] when a task is stored due now (by a producer, or by a consumer's
//!   periodic ticker), [`Event::Scheduled`] when it is stored (or rescheduled) for a later eta.
//! * [`Event::Stale`] when the store refuses a lease renewal or a completion because the lease
//!   ran out (the task may have been delivered to another worker, which now owns it).

use std::time::Duration;

use crate::{TaskFailure, TaskId};
use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

/// How many events a subscriber may fall behind before it starts missing some.
pub const EVENT_CAPACITY: usize = 1024;

/// Something that happened to a task in a consumer. Every variant names the task (`id`) and its
/// kind (`task`). More variants may be added.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A task started running.
    Executing {
        /// The task.
        id: TaskId,
        /// Its registered name.
        task: String,
        /// This attempt, from 1.
        attempt: u32,
    },
    /// A task succeeded and its result is stored.
    Complete {
        /// The task.
        id: TaskId,
        /// Its registered name.
        task: String,
        /// How long the attempt ran.
        duration: Duration,
    },
    /// An attempt failed (error, panic or timeout: see `failure.kind`).
    Error {
        /// The task.
        id: TaskId,
        /// Its registered name.
        task: String,
        /// What went wrong.
        failure: TaskFailure,
    },
    /// A failed task was written back to run again at `eta`.
    Retrying {
        /// The task.
        id: TaskId,
        /// Its registered name.
        task: String,
        /// When it runs again.
        eta: DateTime<Utc>,
    },
    /// A task went to the dead-letter queue (retries exhausted, fatal error, undecodable
    /// arguments).
    DeadLettered {
        /// The task.
        id: TaskId,
        /// Its registered name.
        task: String,
        /// Why.
        failure: TaskFailure,
    },
    /// A task asked not to be retried ([`TaskError::cancel`](crate::TaskError::cancel))
    /// and was dropped.
    Canceled {
        /// The task.
        id: TaskId,
        /// Its registered name.
        task: String,
        /// The task's message.
        failure: TaskFailure,
    },
    /// A revoked task was dropped without running.
    Revoked {
        /// The task.
        id: TaskId,
        /// Its registered name.
        task: String,
    },
    /// A task past its expiry was dropped without running.
    Expired {
        /// The task.
        id: TaskId,
        /// Its registered name.
        task: String,
    },
    /// A task names no registered task kind; it went to the dead-letter queue.
    UnknownTask {
        /// The task.
        id: TaskId,
        /// The unknown name.
        task: String,
    },
    /// A task was handed back to the queue without running (the revocation check failed, or
    /// a chord callback waits for its members).
    Released {
        /// The task.
        id: TaskId,
        /// Its registered name.
        task: String,
    },
    /// The store refused a renewal or completion: this worker's lease ran out, and the task
    /// may have been delivered again elsewhere.
    Stale {
        /// The task.
        id: TaskId,
        /// Its registered name.
        task: String,
    },
    /// An attempt ran past its time limit (sent with the [`Event::Error`] of the attempt).
    Timeout {
        /// The task.
        id: TaskId,
        /// Its registered name.
        task: String,
        /// The limit it ran past.
        timeout: Duration,
    },
    /// A task still running when a graceful shutdown's timeout ran out was stopped and handed
    /// back to the queue for another worker.
    Interrupted {
        /// The task.
        id: TaskId,
        /// Its registered name.
        task: String,
    },
    /// The consumer enqueued a task by itself (a periodic fire).
    Enqueued {
        /// The task.
        id: TaskId,
        /// Its registered name.
        task: String,
    },
    /// A task was stored (or rescheduled) to run at a later time.
    Scheduled {
        /// The task.
        id: TaskId,
        /// Its registered name.
        task: String,
        /// When it becomes due.
        eta: DateTime<Utc>,
    },
    /// A task found its lock (`#[task(lock = "...")]`) held by another task and was put back
    /// to run at `eta`, without counting an attempt.
    Locked {
        /// The task.
        id: TaskId,
        /// Its registered name.
        task: String,
        /// The lock's name.
        lock: String,
        /// When it is tried again.
        eta: DateTime<Utc>,
    },
    /// A task was over its rate limit (`#[task(rate_limit = "...")]`) and was put back to run
    /// at `eta`, when the window has room, without counting an attempt.
    RateLimited {
        /// The task.
        id: TaskId,
        /// Its registered name.
        task: String,
        /// When it is tried again.
        eta: DateTime<Utc>,
    },
}

impl Event {
    /// The task the event is about.
    pub fn id(&self) -> TaskId {
        match self {
            Self::Executing { id, .. }
            | Self::Complete { id, .. }
            | Self::Error { id, .. }
            | Self::Retrying { id, .. }
            | Self::DeadLettered { id, .. }
            | Self::Canceled { id, .. }
            | Self::Revoked { id, .. }
            | Self::Expired { id, .. }
            | Self::UnknownTask { id, .. }
            | Self::Released { id, .. }
            | Self::Stale { id, .. }
            | Self::Timeout { id, .. }
            | Self::Interrupted { id, .. }
            | Self::Enqueued { id, .. }
            | Self::Scheduled { id, .. }
            | Self::Locked { id, .. }
            | Self::RateLimited { id, .. } => *id,
        }
    }

    /// The task's name.
    pub fn task(&self) -> &str {
        match self {
            Self::Executing { task, .. }
            | Self::Complete { task, .. }
            | Self::Error { task, .. }
            | Self::Retrying { task, .. }
            | Self::DeadLettered { task, .. }
            | Self::Canceled { task, .. }
            | Self::Revoked { task, .. }
            | Self::Expired { task, .. }
            | Self::UnknownTask { task, .. }
            | Self::Released { task, .. }
            | Self::Stale { task, .. }
            | Self::Timeout { task, .. }
            | Self::Interrupted { task, .. }
            | Self::Enqueued { task, .. }
            | Self::Scheduled { task, .. }
            | Self::Locked { task, .. }
            | Self::RateLimited { task, .. } => task,
        }
    }

    /// A short name of the variant (`"executing"`, `"complete"`, …), for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Executing { .. } => "executing",
            Self::Complete { .. } => "complete",
            Self::Error { .. } => "error",
            Self::Retrying { .. } => "retrying",
            Self::DeadLettered { .. } => "dead_lettered",
            Self::Canceled { .. } => "canceled",
            Self::Revoked { .. } => "revoked",
            Self::Expired { .. } => "expired",
            Self::UnknownTask { .. } => "unknown_task",
            Self::Released { .. } => "released",
            Self::Stale { .. } => "stale",
            Self::Timeout { .. } => "timeout",
            Self::Interrupted { .. } => "interrupted",
            Self::Enqueued { .. } => "enqueued",
            Self::Scheduled { .. } => "scheduled",
            Self::Locked { .. } => "locked",
            Self::RateLimited { .. } => "rate_limited",
        }
    }
}

/// The sending side of an event stream: a queue's, shared by its producers and consumers.
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct Events {
    tx: broadcast::Sender<Event>,
}

impl Default for Events {
    fn default() -> Self {
        Self::new()
    }
}

impl Events {
    /// A new stream with room for [`EVENT_CAPACITY`] unread events per subscriber.
    pub fn new() -> Self {
        Self {
            tx: broadcast::channel(EVENT_CAPACITY).0,
        }
    }

    /// Sends an event; nobody listening is fine.
    pub fn emit(&self, event: Event) {
        let _ = self.tx.send(event);
    }

    /// Whether anyone listens (so a sender can skip building events nobody reads).
    pub fn has_subscribers(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// A new subscriber, seeing events sent from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors_name_the_task() {
        let id = TaskId::new();
        let e = Event::Revoked {
            id,
            task: "t".into(),
        };
        assert_eq!(e.id(), id);
        assert_eq!(e.task(), "t");
        assert_eq!(e.kind(), "revoked");
    }

    #[test]
    fn emitting_without_subscribers_is_fine() {
        let events = Events::new();
        events.emit(Event::Expired {
            id: TaskId::new(),
            task: "t".into(),
        });
        let mut rx = events.subscribe();
        events.emit(Event::Expired {
            id: TaskId::new(),
            task: "u".into(),
        });
        assert_eq!(
            rx.try_recv().map(|e| e.task().to_owned()).ok().as_deref(),
            Some("u")
        );
    }
}
