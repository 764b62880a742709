//! The periodic (cron) ticker: enqueues each periodic task once per fire time, across every
//! consumer of the store.
//!
//! Register periodic tasks with
//! [`ConsumerBuilder::periodic_task`](crate::ConsumerBuilder::periodic_task), or give a task
//! `#[task(periodic = "0 */5 * * * *")]` and register it as usual. Every consumer built with
//! [`periodic(true)`](crate::ConsumerBuilder::periodic) (the default) runs a ticker; any number
//! of them may run at once.
//!
//! # The ticker
//!
//! One Tokio task per consumer. It computes each task's next fire time from its [`Schedule`]
//! (never "last fire + period", so it does not drift), sleeps until the earliest one (at most
//! one second at a time, so a wall-clock jump is noticed; never a busy loop), and then handles
//! the *latest* fire time at or before now of each task it has not handled yet. The fire
//! time `T` of a periodic task is its `enqueued_at` (so the task sees it as
//! [`TaskContext::enqueued_at`](queue_core::TaskContext)).
//!
//! # Once per tick across the cluster
//!
//! Firing `T` for task `name` takes three store calls:
//!
//! 1. **claim**: `acquire_lock("periodic:{name}:{T_ms}", owner = this ticker, ttl = 60 s)`.
//!    Only one ticker gets it; the others stop here.
//! 2. **enqueue** the envelope with the deterministic id `TaskId::derived("{name}@{T_ms}")`;
//!    a second enqueue of it is a no-op (`Duplicate`) while the fire is pending or running.
//! 3. **confirm**: renew the claim for the gap to the next fire plus 10 minutes, so that no
//!    ticker can claim `T` again while it could still consider `T` due — including after the
//!    task has finished, which the fixed id alone cannot prevent.
//!
//! Tickers that lost the claim look once more, 61 s later, if `T` is still the latest fire:
//! if the claimer died between claim and enqueue, its 60 s claim has lapsed and they take over.
//! **Failure windows:** a claimer that dies after enqueueing but before confirming leaves a
//! 60 s claim; a ticker taking over enqueues again, which is a no-op while the first copy is
//! pending or running, and a second run only if it already finished within that minute. A
//! claimer that dies between claim and enqueue delays the fire by about a minute (or loses
//! it, when the next fire comes first: the latest fire supersedes it). Clocks of consumers
//! that disagree by more than the 10-minute margin could fire a tick twice.
//!
//! # Missed ticks
//!
//! When every consumer was down over one or more fire times, the first ticker to start runs
//! the latest missed fire once, not all of them ([`MissedTicks::RunLatest`], the default), or
//! none ([`MissedTicks::Skip`]). The store remembers that a task's schedule has fired before
//! (a marker lock `periodic:{name}:active`, renewed at each fire, kept 31 days or two
//! periods), so a brand-new deployment does not fire every periodic task at start-up.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use queue_core::clock::{to_delta, to_millis};
use queue_core::{
    to_msgpack, Clock, EnqueueOutcome, Envelope, ErasedTask, PeriodicStatus, Result, Storage,
    TaskId,
};
use tokio_util::sync::CancellationToken;

use crate::{Crontab, Schedule};
use queue_core::{Event, Events};

/// How long a claim lasts before it is confirmed.
const CLAIM_PENDING: Duration = Duration::from_secs(60);
/// How long a confirmed claim outlives the next fire.
const CLAIM_MARGIN: Duration = Duration::from_secs(600);
/// The longest single sleep of the ticker.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// How long the "this schedule has fired" marker lasts at least.
const ACTIVE_TTL: Duration = Duration::from_secs(31 * 24 * 3600);
const ACTIVE_OWNER: &str = "skiff-periodic";
const PROBE_OWNER: &str = "skiff-periodic-probe";

/// What a ticker does at start-up about fire times missed while no consumer ran.
///
/// # Examples
///
/// ```
/// # use futures::future::BoxFuture;
/// # use queue_core::{Task, TaskContext, TaskError};
/// # struct Report;
/// # impl Task for Report {
/// #     const NAME: &'static str = "report";
/// #     type Args = ();
/// #     type Output = ();
/// #     fn run(_: TaskContext, _: ()) -> BoxFuture<'static, Result<(), TaskError>> {
/// #         Box::pin(async { Ok(()) })
/// #     }
/// # }
/// use queue_core::Queue;
/// use queue_runtime::{crontab, Consumer, MissedTicks};
///
/// let consumer = Consumer::builder(Queue::memory())
///     .periodic_task_kind::<Report>(crontab().minute("0").hour("3"))
///     .missed_ticks(MissedTicks::Skip)
///     .build()?;
/// # drop(consumer);
/// # Ok::<(), queue_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum MissedTicks {
    /// Run the latest missed fire once (if the schedule had fired before).
    #[default]
    RunLatest,
    /// Run nothing until the next fire time.
    Skip,
}

/// Something a periodic schedule can be built from: a [`Schedule`], a [`Crontab`], or a cron
/// expression string.
pub trait IntoSchedule {
    /// The schedule, or why it is not valid.
    fn into_schedule(self) -> Result<Schedule>;
}

impl IntoSchedule for Schedule {
    fn into_schedule(self) -> Result<Schedule> {
        Ok(self)
    }
}

impl IntoSchedule for Crontab {
    fn into_schedule(self) -> Result<Schedule> {
        self.build()
    }
}

impl IntoSchedule for &str {
    fn into_schedule(self) -> Result<Schedule> {
        Schedule::cron(self)
    }
}

impl IntoSchedule for String {
    fn into_schedule(self) -> Result<Schedule> {
        Schedule::cron(&self)
    }
}

/// One periodic task and its schedule.
#[derive(Clone)]
pub(crate) struct Periodic {
    pub(crate) task: Arc<dyn ErasedTask>,
    pub(crate) schedule: Schedule,
}

/// What the ticker tells the heartbeat about its periodic tasks (schedule, next and last
/// fire), so operators see them among the live workers.
#[derive(Debug, Default)]
pub(crate) struct Board(std::sync::Mutex<Vec<PeriodicStatus>>);

impl Board {
    fn set(&self, statuses: Vec<PeriodicStatus>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = statuses;
    }

    /// What the ticker published last (nothing before it started).
    pub(crate) fn get(&self) -> Vec<PeriodicStatus> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// What the ticker knows about one periodic task.
#[derive(Debug, Default)]
struct State {
    /// The latest fire time handled (fired, or seen claimed by another ticker).
    handled: Option<DateTime<Utc>>,
    /// The latest fire time this ticker handled since it started (not one skipped at start).
    last: Option<DateTime<Utc>>,
    /// Look at this fire time again at this time (claim lost, or a store error); how many
    /// looks so far.
    again: Option<(DateTime<Utc>, DateTime<Utc>, u32)>,
}

/// The ticker of one consumer. See the [module docs](self).
pub(crate) struct Ticker {
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) entries: Vec<Periodic>,
    pub(crate) missed: MissedTicks,
    pub(crate) events: Events,
    pub(crate) stop: CancellationToken,
    pub(crate) board: Arc<Board>,
}

impl Ticker {
    /// Ticks until `stop` is cancelled.
    pub(crate) async fn run(self) {
        let owner = format!("ticker:{}", TaskId::new());
        let start = self.clock.now();
        let mut states = Vec::with_capacity(self.entries.len());
        for p in &self.entries {
            states.push(self.initial(p, start).await);
        }
        tracing::info!(tasks = self.entries.len(), "periodic ticker started");
        loop {
            let now = self.clock.now();
            let mut wake = now + to_delta(MAX_SLEEP);
            for (p, st) in self.entries.iter().zip(states.iter_mut()) {
                if let Some(t) = p.schedule.latest_at_or_before(now) {
                    if st.handled.is_none_or(|h| t > h) {
                        st.handled = Some(t);
                        st.last = Some(t);
                        st.again = self.fire(p, t, &owner, 0).await;
                    } else if let Some((at_t, at, looks)) = st.again {
                        if at_t != t {
                            st.again = None; // superseded by a later fire
                        } else if self.clock.now() >= at {
                            st.again = self.fire(p, t, &owner, looks).await;
                        }
                    }
                }
                if let Some(next) = p.schedule.next_after(now) {
                    wake = wake.min(next);
                }
                if let Some((_, at, _)) = st.again {
                    wake = wake.min(at);
                }
            }
            self.publish(&states, now);
            let sleep = (wake - self.clock.now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .max(Duration::from_millis(1));
            tokio::select! {
                () = self.stop.cancelled() => return,
                () = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// Tells the heartbeat each task's schedule, next fire and last handled fire.
    fn publish(&self, states: &[State], now: DateTime<Utc>) {
        let statuses = self
            .entries
            .iter()
            .zip(states)
            .map(|(p, st)| PeriodicStatus {
                task: p.task.name().to_owned(),
                queue: p.task.options().queue.clone(),
                schedule: p.schedule.to_string(),
                next: p.schedule.next_after(now),
                last: st.last,
            })
            .collect();
        self.board.set(statuses);
    }

    /// The state at start-up: which fire time counts as already handled.
    async fn initial(&self, p: &Periodic, start: DateTime<Utc>) -> State {
        let latest = p.schedule.latest_at_or_before(start);
        let skip = match self.missed {
            MissedTicks::Skip => true,
            MissedTicks::RunLatest => latest.is_some() && !self.has_fired(p.task.name()).await,
        };
        State {
            handled: if skip { latest } else { None },
            last: None,
            again: None,
        }
    }

    /// Whether the schedule of `task` has fired before (its marker lock is held).
    async fn has_fired(&self, task: &str) -> bool {
        let marker = format!("periodic:{task}:active");
        match self
            .storage
            .acquire_lock(&marker, PROBE_OWNER, Duration::from_secs(1))
            .await
        {
            Ok(true) => {
                let _ = self.storage.release_lock(&marker, PROBE_OWNER).await;
                false
            }
            Ok(false) => true,
            Err(err) => {
                tracing::warn!(%task, error = %err,
                    "could not read whether a periodic task fired before; catching up its latest fire");
                true
            }
        }
    }

    /// Fires `t` for `p` (claim, enqueue, confirm). Returns when to look at `t` again, if
    /// ever. `looks` counts earlier looks at `t`.
    async fn fire(
        &self,
        p: &Periodic,
        t: DateTime<Utc>,
        owner: &str,
        looks: u32,
    ) -> Option<(DateTime<Utc>, DateTime<Utc>, u32)> {
        let name = p.task.name();
        let claim = format!("periodic:{name}:{}", to_millis(t));
        let retry_soon = || Some((t, self.clock.now() + to_delta(MAX_SLEEP), looks + 1));
        match self
            .storage
            .acquire_lock(&claim, owner, CLAIM_PENDING)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                // Another ticker has it. Look once more after its claim could have lapsed.
                let later = self.clock.now() + to_delta(CLAIM_PENDING + Duration::from_secs(1));
                return (looks == 0).then_some((t, later, 1));
            }
            Err(err) => {
                tracing::warn!(task = %name, fire = %t, error = %err, "could not claim a periodic fire; retrying");
                return retry_soon();
            }
        }
        let enqueued = match fire_envelope(p.task.as_ref(), t, self.clock.now()) {
            Ok(env) => self.storage.enqueue(vec![env]).await,
            Err(err) => Err(err),
        };
        match enqueued.as_deref() {
            Ok([EnqueueOutcome::Enqueued(id)]) => {
                tracing::info!(task = %name, fire = %t, %id, "periodic task enqueued");
                self.events.emit(Event::Enqueued {
                    id: *id,
                    task: name.to_owned(),
                });
            }
            Ok(_) => tracing::debug!(task = %name, fire = %t, "periodic fire already pending"),
            Err(err) => {
                tracing::warn!(task = %name, fire = %t, error = %err, "could not enqueue a periodic fire; retrying");
                let _ = self.storage.release_lock(&claim, owner).await;
                return retry_soon();
            }
        }
        let gap = p
            .schedule
            .next_after(t)
            .and_then(|n| (n - t).to_std().ok())
            .unwrap_or(ACTIVE_TTL);
        let confirm = self
            .storage
            .acquire_lock(&claim, owner, gap.saturating_add(CLAIM_MARGIN))
            .await;
        if !matches!(confirm, Ok(true)) {
            tracing::warn!(task = %name, fire = %t, ?confirm,
                "could not confirm a periodic fire; it may be enqueued again within a minute \
                 (a no-op while it is pending)");
        }
        let marker = format!("periodic:{name}:active");
        let keep = ACTIVE_TTL.max(gap.saturating_mul(2).saturating_add(CLAIM_MARGIN));
        if let Err(err) = self.storage.acquire_lock(&marker, ACTIVE_OWNER, keep).await {
            tracing::debug!(task = %name, error = %err, "could not renew a periodic marker");
        }
        None
    }
}

/// The envelope of the fire at `t` of an argument-less task: its id is derived from the task
/// name and `t`, and its `enqueued_at` is `t`.
pub(crate) fn fire_envelope(
    task: &dyn ErasedTask,
    t: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Envelope> {
    let opts = task.options();
    let mut env = Envelope::new(opts.queue.clone(), task.name(), to_msgpack(&())?, t);
    env.id = TaskId::derived(&format!("{}@{}", task.name(), to_millis(t)));
    env.priority = opts.priority;
    env.expires_at = opts.expires.map(|d| queue_core::clock::after(now, d));
    env.retry = opts.retry_policy();
    env.timeout = opts.timeout;
    env.validate()?;
    Ok(env)
}
