//! Typed pipelines: `download(url).then(process).then(cleanup)`.
//!
//! Each stage receives the previous stage's output as its only argument; a stage whose input
//! type is not the previous output type does not compile. The pipeline is stored as one
//! envelope whose follow-ups hold the next stages, so the next stage is enqueued in the same
//! atomic store operation that records the previous stage's success: it cannot be lost between
//! the two. `.on_error(handler)` runs `handler(failure)` if any stage fails for good.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use crate::call::task_envelope;
use crate::task::erase;
use crate::{
    Envelope, ErasedTask, FollowUp, FollowUpInput, FollowUpWhen, Queue, Result, Task, TaskCall,
    TaskFailure, TaskFn, TaskHandle, TaskId,
};

type StageFn = fn(DateTime<Utc>) -> Envelope;

fn stage_envelope<T: Task>(now: DateTime<Utc>) -> Envelope {
    task_envelope::<T>(Vec::new(), now)
}

/// A chain of tasks, each fed the previous one's output. Build one with [`TaskCall::then`].
///
/// # Examples
///
/// ```
/// # use futures::future::BoxFuture;
/// # use queue_core::{Task, TaskContext, TaskError};
/// # struct Download; struct Count;
/// # impl Task for Download {
/// #     const NAME: &'static str = "download";
/// #     type Args = (String,);
/// #     type Output = String;
/// #     fn run(_: TaskContext, (url,): (String,)) -> BoxFuture<'static, Result<String, TaskError>> {
/// #         Box::pin(async move { Ok(format!("<html>{url}</html>")) })
/// #     }
/// # }
/// # impl Task for Count {
/// #     const NAME: &'static str = "count";
/// #     type Args = (String,);
/// #     type Output = usize;
/// #     fn run(_: TaskContext, (page,): (String,)) -> BoxFuture<'static, Result<usize, TaskError>> {
/// #         Box::pin(async move { Ok(page.len()) })
/// #     }
/// # }
/// # fn count(page: String) -> queue_core::TaskCall<Count> { queue_core::TaskCall::new((page,)) }
/// use std::time::Duration;
/// use queue_core::Queue;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let queue = Queue::immediate();
/// let handle = Download::call(("a.io".into(),)).then(count).enqueue(&queue).await?;
/// assert_eq!(handle.get(Duration::from_secs(1)).await?, "<html>a.io</html>".len());
/// # Ok::<(), queue_core::Error>(()) }).unwrap();
/// ```
#[must_use = "a pipeline does nothing until it is enqueued"]
pub struct Pipeline<Out> {
    head: Box<dyn FnOnce(DateTime<Utc>) -> Result<Envelope> + Send>,
    stages: Vec<StageFn>,
    on_error: Vec<StageFn>,
    tasks: HashMap<&'static str, Arc<dyn ErasedTask>>,
    _out: PhantomData<fn() -> Out>,
}

impl<T: Task> TaskCall<T> {
    /// Runs `next` with this task's output once it succeeds.
    pub fn then<M, F>(self, next: F) -> Pipeline<<F::Task as Task>::Output>
    where
        F: TaskFn<M>,
        F::Task: Task<Args = (T::Output,)>,
    {
        Pipeline::<T::Output>::start(self).then(next)
    }

    /// Runs `handler` with the failure if this task fails for good.
    pub fn on_error<M, F>(self, handler: F) -> Pipeline<T::Output>
    where
        F: TaskFn<M>,
        F::Task: Task<Args = (TaskFailure,)>,
    {
        Pipeline::<T::Output>::start(self).on_error(handler)
    }
}

impl<Out: DeserializeOwned + Send + 'static> Pipeline<Out> {
    fn start<T: Task<Output = Out>>(call: TaskCall<T>) -> Self {
        let mut tasks = HashMap::new();
        tasks.insert(T::NAME, erase::<T>());
        Self {
            head: Box::new(move |now| call.into_envelope(now)),
            stages: Vec::new(),
            on_error: Vec::new(),
            tasks,
            _out: PhantomData,
        }
    }

    /// Runs `next` with the last stage's output once it succeeds.
    pub fn then<M, F>(mut self, _next: F) -> Pipeline<<F::Task as Task>::Output>
    where
        F: TaskFn<M>,
        F::Task: Task<Args = (Out,)>,
    {
        self.stages.push(stage_envelope::<F::Task>);
        self.tasks.insert(F::Task::NAME, erase::<F::Task>());
        Pipeline {
            head: self.head,
            stages: self.stages,
            on_error: self.on_error,
            tasks: self.tasks,
            _out: PhantomData,
        }
    }

    /// Runs `handler` with the [`TaskFailure`] if any stage fails for good (its retries are
    /// exhausted, it is canceled, expired or revoked). Later stages then do not run.
    pub fn on_error<M, F>(mut self, _handler: F) -> Self
    where
        F: TaskFn<M>,
        F::Task: Task<Args = (TaskFailure,)>,
    {
        self.on_error.push(stage_envelope::<F::Task>);
        self.tasks.insert(F::Task::NAME, erase::<F::Task>());
        self
    }

    /// The head envelope (holding every later stage as a follow-up) and the stage ids, in order.
    pub fn into_envelope(self, now: DateTime<Utc>) -> Result<(Envelope, Vec<TaskId>)> {
        let head = (self.head)(now)?;
        let mut chain: Vec<Envelope> = std::iter::once(head)
            .chain(self.stages.iter().map(|make| make(now)))
            .collect();
        let ids = chain.iter().map(|e| e.id).collect();
        for env in &mut chain {
            for make in &self.on_error {
                env.follow_ups.push(FollowUp {
                    when: FollowUpWhen::Failure,
                    input: FollowUpInput::Failure,
                    envelope: make(now),
                });
            }
        }
        let mut next: Option<Envelope> = None;
        while let Some(mut env) = chain.pop() {
            if let Some(after) = next.take() {
                env.follow_ups.push(FollowUp {
                    when: FollowUpWhen::Success,
                    input: FollowUpInput::Output,
                    envelope: after,
                });
            }
            next = Some(env);
        }
        let head = next.ok_or_else(|| crate::Error::InvalidInput("empty pipeline".into()))?;
        head.validate()?;
        Ok((head, ids))
    }

    /// Stores the pipeline (its first stage, carrying the rest) and returns a handle to every
    /// stage's result. On an immediate-mode queue every stage runs before this returns.
    pub async fn enqueue(self, queue: &Queue) -> Result<PipelineHandle<Out>> {
        let tasks = self.tasks.clone();
        let (head, ids) = self.into_envelope(queue.clock().now())?;
        if queue.is_immediate() {
            queue.run_inline(head, &tasks).await?;
        } else {
            queue.enqueue_envelope(head).await?;
        }
        Ok(PipelineHandle {
            ids,
            queue: queue.clone(),
            _out: PhantomData,
        })
    }
}

/// The results of a pipeline's stages.
#[derive(Debug, Clone)]
pub struct PipelineHandle<Out> {
    ids: Vec<TaskId>,
    queue: Queue,
    _out: PhantomData<fn() -> Out>,
}

impl<Out: DeserializeOwned> PipelineHandle<Out> {
    /// The ids of the stages, in order.
    pub fn ids(&self) -> &[TaskId] {
        &self.ids
    }

    /// A handle to stage `index`'s result, read as `T` (the caller names that stage's output
    /// type).
    pub fn stage<T: DeserializeOwned>(&self, index: usize) -> Option<TaskHandle<T>> {
        self.ids.get(index).map(|id| self.queue.handle(*id))
    }

    /// Waits up to `timeout` (in total) for every stage and returns the last one's output, or
    /// the first failure ([`crate::Error::TaskFailed`] names the failed stage's id).
    pub async fn get(&self, timeout: Duration) -> Result<Out> {
        let deadline = crate::clock::deadline(timeout);
        let (last, earlier) = self
            .ids
            .split_last()
            .ok_or_else(|| crate::Error::InvalidInput("empty pipeline".into()))?;
        for id in earlier {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            self.queue
                .handle::<serde::de::IgnoredAny>(*id)
                .get(left)
                .await?;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        self.queue.handle::<Out>(*last).get(left).await
    }
}
