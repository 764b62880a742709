//! Groups, maps and chords: run tasks in parallel, collect their results in order, and run a
//! callback once with all of them.
//!
//! A chord's callback is stored when the chord is enqueued, in the same batch as its members,
//! as ONE task that names its members. The consumer defers it until every member has a result
//! and then runs it, so it runs once however many consumers finish members.

use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::call::task_envelope;
use crate::{EnqueueOutcome, Error, Queue, Result, Task, TaskCall, TaskFn, TaskHandle, TaskId};

/// Calls of one task kind that run in parallel.
///
/// # Examples
///
/// ```
/// # use futures::future::BoxFuture;
/// # use queue_core::{Task, TaskContext, TaskError};
/// # struct Square;
/// # impl Task for Square {
/// #     const NAME: &'static str = "square";
/// #     type Args = (u64,);
/// #     type Output = u64;
/// #     fn run(_: TaskContext, (n,): (u64,)) -> BoxFuture<'static, Result<u64, TaskError>> {
/// #         Box::pin(async move { Ok(n * n) })
/// #     }
/// # }
/// use std::time::Duration;
/// use queue_core::{Group, Queue};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let queue = Queue::immediate();
/// let handle = Group::<Square>::map((1..=4).map(|n| (n,))).enqueue(&queue).await?;
/// assert_eq!(handle.get(Duration::from_secs(1)).await?, vec![1, 4, 9, 16]);
/// # Ok::<(), queue_core::Error>(()) }).unwrap();
/// ```
#[must_use = "a group does nothing until it is enqueued"]
pub struct Group<T: Task> {
    calls: Vec<TaskCall<T>>,
}

impl<T: Task> Group<T> {
    /// A group of these calls.
    pub fn new(calls: impl IntoIterator<Item = TaskCall<T>>) -> Self {
        Self {
            calls: calls.into_iter().collect(),
        }
    }

    /// One call of `T` per argument tuple (Huey's `task.map`).
    pub fn map(args: impl IntoIterator<Item = T::Args>) -> Self {
        Self::new(args.into_iter().map(TaskCall::new))
    }

    /// Enqueues every member in one store operation (one transaction on SQLite and
    /// PostgreSQL; on Redis, one atomic script call per 256 envelopes, pipelined).
    pub async fn enqueue(self, queue: &Queue) -> Result<GroupHandle<T::Output>> {
        let handles = queue.enqueue_many(self.calls).await?;
        Ok(GroupHandle {
            ids: handles.iter().map(TaskHandle::id).collect(),
            queue: queue.clone(),
            _out: PhantomData,
        })
    }

    /// Runs `callback` once with every member's output, in order, after all have succeeded.
    pub fn then<M, F>(self, _callback: F) -> Chord<T, F::Task>
    where
        F: TaskFn<M>,
        F::Task: Task<Args = (Vec<T::Output>,)>,
    {
        Chord {
            group: self,
            _callback: PhantomData,
        }
    }
}

/// A group plus a callback that receives all of the group's outputs.
#[must_use = "a chord does nothing until it is enqueued"]
pub struct Chord<T: Task, C: Task> {
    group: Group<T>,
    _callback: PhantomData<fn() -> C>,
}

impl<T: Task, C: Task> Chord<T, C> {
    /// Enqueues the members and the callback in one store operation (one transaction on
    /// SQLite and PostgreSQL; on Redis, one script call per 256 envelopes, pipelined on one
    /// connection: each call is atomic, a larger chord as a whole is not, and its callback
    /// goes in the last call). The handle is the callback's.
    ///
    /// Members must be fresh tasks: a member with a fixed id ([`TaskCall::id`]) or a unique
    /// key ([`TaskCall::unique_key`]) is refused with [`Error::InvalidInput`] before anything
    /// is stored, since enqueueing it could point at another task. A member whose result is
    /// gone before the callback reads it (its TTL ran out, it was deleted, or a partly
    /// stored chord on Redis never stored it) fails the callback into the dead-letter queue
    /// with that reason instead of leaving it waiting.
    pub async fn enqueue(self, queue: &Queue) -> Result<ChordHandle<T::Output, C::Output>> {
        if !self.group.calls.iter().all(TaskCall::is_fresh) {
            return Err(Error::InvalidInput(
                "a chord member has a fixed id or a unique key; chord members must be fresh \
                 tasks (their results are the callback's input)"
                    .into(),
            ));
        }
        let now = queue.clock().now();
        let mut batch = self
            .group
            .calls
            .into_iter()
            .map(|c| c.into_envelope(now))
            .collect::<Result<Vec<_>>>()?;
        let members: Vec<TaskId> = batch.iter().map(|e| e.id).collect();
        let mut callback = task_envelope::<C>(Vec::new(), now);
        callback.chord_members.clone_from(&members);
        let callback_id = callback.id;
        batch.push(callback);
        if queue.is_immediate() {
            let mut tasks = std::collections::HashMap::new();
            tasks.insert(T::NAME, crate::task::erase::<T>());
            tasks.insert(C::NAME, crate::task::erase::<C>());
            for env in batch {
                queue.run_inline(env, &tasks).await?;
            }
        } else {
            let outcomes = queue.enqueue_envelopes(batch).await?;
            if outcomes
                .iter()
                .any(|o| matches!(o, EnqueueOutcome::Duplicate(_)))
            {
                return Err(Error::InvalidInput(
                    "a chord member duplicates a pending task (unique key or fixed id); chords need fresh members".into(),
                ));
            }
        }
        Ok(ChordHandle {
            members: GroupHandle {
                ids: members,
                queue: queue.clone(),
                _out: PhantomData,
            },
            callback: queue.handle(callback_id),
        })
    }
}

/// The results of a group, in the order of its members.
#[derive(Debug, Clone)]
pub struct GroupHandle<Out> {
    ids: Vec<TaskId>,
    queue: Queue,
    _out: PhantomData<fn() -> Out>,
}

impl<Out: DeserializeOwned> GroupHandle<Out> {
    /// The members' ids, in order.
    pub fn ids(&self) -> &[TaskId] {
        &self.ids
    }

    /// Waits up to `timeout` (in total) for every member; their outputs in order, or the first
    /// failure.
    pub async fn get(&self, timeout: Duration) -> Result<Vec<Out>> {
        let deadline = crate::clock::deadline(timeout);
        let mut out = Vec::with_capacity(self.ids.len());
        for id in &self.ids {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            out.push(self.queue.handle::<Out>(*id).get(left).await?);
        }
        Ok(out)
    }
}

/// The members' and the callback's results of a chord.
#[derive(Debug, Clone)]
pub struct ChordHandle<Out, CbOut> {
    /// The members.
    pub members: GroupHandle<Out>,
    /// The callback.
    pub callback: TaskHandle<CbOut>,
}

impl<Out: DeserializeOwned, CbOut: DeserializeOwned> ChordHandle<Out, CbOut> {
    /// Waits up to `timeout` for the callback's output.
    pub async fn get(&self, timeout: Duration) -> Result<CbOut> {
        self.callback.get(timeout).await
    }
}
