//! A store that goes down: outcomes are kept and retried, fetching backs off, nothing is lost.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use queue_core::storage::*;
use queue_core::{
    Clock, Envelope, Error, MemoryStorage, Queue, Result, Task as _, TaskId, TaskOptions,
};
use tokio::sync::Semaphore;

use crate::common::{builder, eventually, WAIT};

/// The memory store, except that the hot path fails while `down` is set. It also records
/// how many tasks each fetch asked for (the `prefetch` tests read them).
#[derive(Default)]
pub(crate) struct Flaky {
    inner: MemoryStorage,
    down: AtomicBool,
    /// Only completions and lease renewals fail while set (the writes of a task already
    /// fetched, as when their table is locked); fetching goes on.
    completes_down: AtomicBool,
    failed_completes: AtomicUsize,
    /// While set, each heartbeat takes this long to reach the store (a slow statement).
    slow_heartbeat_ms: AtomicUsize,
    heartbeats_started: AtomicUsize,
    /// When non-zero, a batch with a result longer than this is refused whole (as Redis
    /// refuses a value over its `proto-max-bulk-len`).
    max_result_bytes: AtomicUsize,
    /// The `max` of every fetch, in order.
    pub(crate) asked: Mutex<Vec<usize>>,
    /// While set, every write fails and reads go on (a read-only replica after a failover, a
    /// store out of memory or disk).
    read_only: AtomicBool,
    /// The next lock release never answers (a statement stuck on a lost connection); it is
    /// taken back, so later releases answer at once.
    pub(crate) stuck_release: AtomicBool,
    /// Tasks whose every outcome (its dead-lettering included) the store refuses, refusing the
    /// batch that holds one (as a store refuses a row it cannot write).
    refuse_outcomes_of: Mutex<Vec<TaskId>>,
}

impl Flaky {
    /// A flaky memory store that reads `clock`.
    pub(crate) fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: MemoryStorage::with_clock(clock),
            ..Self::default()
        }
    }

    fn check(&self) -> Result<()> {
        if self.down.load(Ordering::SeqCst) {
            Err(Error::storage_msg("flaky", "store is down"))
        } else {
            Ok(())
        }
    }

    fn check_write(&self) -> Result<()> {
        if self.read_only.load(Ordering::SeqCst) {
            Err(Error::storage_msg(
                "flaky",
                "READONLY: the store takes no writes",
            ))
        } else {
            self.check()
        }
    }
}

#[async_trait]
impl Storage for Flaky {
    fn backend(&self) -> &'static str {
        "flaky"
    }
    fn clock(&self) -> Arc<dyn Clock> {
        self.inner.clock()
    }
    async fn enqueue(&self, batch: Vec<Envelope>) -> Result<Vec<EnqueueOutcome>> {
        self.inner.enqueue(batch).await
    }
    async fn fetch(&self, queue: &str, max: usize, lease: Duration) -> Result<Vec<Delivery>> {
        self.check_write()?;
        self.asked.lock().unwrap().push(max);
        self.inner.fetch(queue, max, lease).await
    }
    async fn wait_for_work(&self, queue: &str, timeout: Duration) -> Result<()> {
        self.check()?;
        self.inner.wait_for_work(queue, timeout).await
    }
    async fn complete(&self, batch: Vec<Completion>) -> Result<Vec<AckStatus>> {
        let refused = self
            .completes_down
            .load(Ordering::SeqCst)
            .then(|| Err(Error::storage_msg("flaky", "completions fail")));
        if let Err(e) = refused.unwrap_or_else(|| self.check_write()) {
            self.failed_completes.fetch_add(1, Ordering::SeqCst);
            return Err(e);
        }
        let refused = self.refuse_outcomes_of.lock().unwrap().clone();
        if batch.iter().any(|c| refused.contains(&c.lease.id)) {
            self.failed_completes.fetch_add(1, Ordering::SeqCst);
            return Err(Error::storage_msg("flaky", "this row cannot be written"));
        }
        let max = self.max_result_bytes.load(Ordering::SeqCst);
        let too_big = |c: &Completion| matches!(&c.outcome, Outcome::Success { result } if result.len() > max);
        if max > 0 && batch.iter().any(too_big) {
            self.failed_completes.fetch_add(1, Ordering::SeqCst);
            return Err(Error::storage_msg("flaky", "invalid bulk length"));
        }
        self.inner.complete(batch).await
    }
    async fn extend(&self, leases: &[Lease], lease: Duration) -> Result<Vec<AckStatus>> {
        self.check_write()?;
        if self.completes_down.load(Ordering::SeqCst) {
            return Err(Error::storage_msg("flaky", "renewals fail"));
        }
        self.inner.extend(leases, lease).await
    }
    async fn requeue_expired(&self, queue: &str, max: usize) -> Result<u64> {
        self.check_write()?;
        self.inner.requeue_expired(queue, max).await
    }
    async fn get_result(&self, id: TaskId) -> Result<Option<StoredResult>> {
        self.inner.get_result(id).await
    }
    async fn wait_result(&self, id: TaskId, timeout: Duration) -> Result<Option<StoredResult>> {
        self.inner.wait_result(id, timeout).await
    }
    async fn delete_result(&self, id: TaskId) -> Result<bool> {
        self.inner.delete_result(id).await
    }
    async fn purge_expired(&self, max: usize) -> Result<u64> {
        self.inner.purge_expired(max).await
    }
    async fn reschedule(&self, id: TaskId, eta: DateTime<Utc>) -> Result<bool> {
        self.inner.reschedule(id, eta).await
    }
    async fn revoke(&self, revocation: Revocation) -> Result<()> {
        self.inner.revoke(revocation).await
    }
    async fn restore(&self, target: &RevokeTarget) -> Result<bool> {
        self.inner.restore(target).await
    }
    async fn check_revoked(&self, tasks: &[(TaskId, &str)]) -> Result<Vec<bool>> {
        self.check()?;
        self.inner.check_revoked(tasks).await
    }
    async fn acquire_lock(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
        self.check_write()?;
        self.inner.acquire_lock(name, owner, ttl).await
    }
    async fn release_lock(&self, name: &str, owner: &str) -> Result<bool> {
        if self.stuck_release.swap(false, Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.inner.release_lock(name, owner).await
    }
    async fn flush_locks(&self) -> Result<u64> {
        self.inner.flush_locks().await
    }
    async fn rate_limit(&self, key: &str, limit: u32, window: Duration) -> Result<RateDecision> {
        self.inner.rate_limit(key, limit, window).await
    }
    async fn list_dead(&self, queue: Option<&str>, page: Page) -> Result<Vec<DeadTask>> {
        self.inner.list_dead(queue, page).await
    }
    async fn get_dead(&self, id: TaskId) -> Result<Option<DeadTask>> {
        self.inner.get_dead(id).await
    }
    async fn requeue_dead(&self, ids: &[TaskId]) -> Result<u64> {
        self.inner.requeue_dead(ids).await
    }
    async fn requeue_all_dead(&self, queue: Option<&str>) -> Result<u64> {
        self.inner.requeue_all_dead(queue).await
    }
    async fn purge_dead(&self, queue: Option<&str>) -> Result<u64> {
        self.inner.purge_dead(queue).await
    }
    async fn discard_dead(&self, ids: &[TaskId]) -> Result<u64> {
        self.inner.discard_dead(ids).await
    }
    async fn counts(&self, queue: Option<&str>) -> Result<Counts> {
        self.inner.counts(queue).await
    }
    async fn list(
        &self,
        state: TaskState,
        queue: Option<&str>,
        page: Page,
    ) -> Result<Vec<TaskRecord>> {
        self.inner.list(state, queue, page).await
    }
    async fn get_task(&self, id: TaskId) -> Result<Option<TaskRecord>> {
        self.inner.get_task(id).await
    }
    async fn queues(&self) -> Result<Vec<String>> {
        self.inner.queues().await
    }
    async fn flush(&self) -> Result<()> {
        self.inner.flush().await
    }
    async fn set_paused(&self, queue: &str, paused: bool) -> Result<bool> {
        self.inner.set_paused(queue, paused).await
    }
    async fn paused_queues(&self) -> Result<Vec<String>> {
        self.inner.paused_queues().await
    }
    async fn purge_queue(&self, queue: &str) -> Result<u64> {
        self.inner.purge_queue(queue).await
    }
    async fn request_cancel(&self, id: TaskId, ttl: Duration) -> Result<CancelRequest> {
        self.inner.request_cancel(id, ttl).await
    }
    async fn heartbeat(&self, beat: &queue_core::Heartbeat) -> Result<Vec<TaskId>> {
        self.check_write()?;
        self.heartbeats_started.fetch_add(1, Ordering::SeqCst);
        let slow = self.slow_heartbeat_ms.load(Ordering::SeqCst);
        if slow > 0 {
            // A statement already sent: the server applies it even if the caller stops
            // waiting, so this sleep cannot be cut short by dropping the future.
            std::thread::sleep(Duration::from_millis(slow as u64));
        }
        self.inner.heartbeat(beat).await
    }
    async fn remove_worker(&self, worker_id: &str) -> Result<bool> {
        self.inner.remove_worker(worker_id).await
    }
    async fn workers(&self) -> Result<Vec<queue_core::WorkerStatus>> {
        self.inner.workers().await
    }
    async fn get_progress(&self, id: TaskId) -> Result<Option<Vec<u8>>> {
        self.inner.get_progress(id).await
    }
}

static STARTED: AtomicUsize = AtomicUsize::new(0);
static GATE: Semaphore = Semaphore::const_new(0);

task!(Held, "held", (n: u32) -> u32, TaskOptions::new(), |ctx| {
    STARTED.fetch_add(1, Ordering::SeqCst);
    GATE.acquire().await.unwrap().forget();
    Ok(n)
});

#[tokio::test(flavor = "multi_thread")]
async fn outcomes_survive_a_store_outage() {
    let store = Arc::new(Flaky::default());
    let q = Queue::new(store.clone());
    let handles = q
        .enqueue_many((0..3).map(|n| Held::call((n,))))
        .await
        .unwrap();
    let running = builder(&q)
        .workers(3)
        .register_task::<Held>()
        .build()
        .unwrap()
        .spawn();
    eventually("3 tasks running", || async {
        STARTED.load(Ordering::SeqCst) == 3
    })
    .await;

    store.down.store(true, Ordering::SeqCst);
    GATE.add_permits(3);
    eventually("repeated failed completions", || async {
        store.failed_completes.load(Ordering::SeqCst) >= 3
    })
    .await;
    for h in &handles {
        assert!(
            h.try_get().await.unwrap().is_none(),
            "not written while down"
        );
    }

    store.down.store(false, Ordering::SeqCst);
    for (n, h) in handles.iter().enumerate() {
        assert_eq!(
            h.get(WAIT).await.unwrap(),
            n as u32,
            "kept and written once back"
        );
    }
    // Fetching recovered too.
    GATE.add_permits(1);
    let later = Held::call((9,)).enqueue(&q).await.unwrap();
    assert_eq!(later.get(WAIT).await.unwrap(), 9);
    let report = running.shutdown(WAIT).await.unwrap();
    assert_eq!(report.unacked, 0);
    let counts = q.counts().await.unwrap();
    assert_eq!((counts.ready, counts.leased, counts.dead), (0, 0, 0));
}

task!(Immediate, "immediate", (n: u32) -> u32, TaskOptions::new(), |ctx| {
    Ok(n)
});

#[tokio::test(flavor = "multi_thread")]
async fn unwritten_outcomes_bound_what_a_consumer_leases() {
    let store = Arc::new(Flaky::default());
    let q = Queue::new(store.clone());
    let handles = q
        .enqueue_many((0..300).map(|n| Immediate::call((n,))))
        .await
        .unwrap();
    // Tasks end at once but no outcome can be written: the consumer must stop leasing at
    // workers + prefetch + 4 batches instead of taking the whole queue.
    store.completes_down.store(true, Ordering::SeqCst);
    let running = builder(&q)
        .workers(2)
        .prefetch(2)
        .ack_batch(4, Duration::from_millis(1))
        .register_task::<Immediate>()
        .build()
        .unwrap()
        .spawn();
    let bound = 2 + 2 + 4 * 4;
    eventually("outcomes waiting to be written", || async {
        store.failed_completes.load(Ordering::SeqCst) >= 3
    })
    .await;
    // Given every chance to lease more, it holds no more than the bound plus one fetch.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let counts = q.counts().await.unwrap();
    assert!(
        counts.leased <= bound + 4 && counts.ready >= 300 - (bound + 4),
        "{counts:?}"
    );
    store.completes_down.store(false, Ordering::SeqCst);
    for (n, h) in handles.iter().enumerate() {
        assert_eq!(h.get(WAIT).await.unwrap(), n as u32);
    }
    let report = running.shutdown(WAIT).await.unwrap();
    assert_eq!(report.unacked, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_heartbeat_in_flight_at_shutdown_does_not_bring_the_worker_back() {
    let store = Arc::new(Flaky::default());
    let q = Queue::new(store.clone());
    let running = builder(&q)
        .heartbeat_interval(Duration::from_millis(20))
        .register_task::<Immediate>()
        .build()
        .unwrap()
        .spawn();
    eventually("the worker is listed", || async {
        !q.workers().await.unwrap().is_empty()
    })
    .await;
    // The next heartbeat is slow; shut down while it is on its way.
    store.slow_heartbeat_ms.store(300, Ordering::SeqCst);
    let started = store.heartbeats_started.load(Ordering::SeqCst);
    eventually("a slow heartbeat under way", || async {
        store.heartbeats_started.load(Ordering::SeqCst) > started
    })
    .await;
    running.shutdown(WAIT).await.unwrap();
    // Give a late heartbeat every chance to land.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        q.workers().await.unwrap().is_empty(),
        "a worker that shut down is listed again"
    );
}

task!(Sized, "sized", (n: u32) -> String, TaskOptions::new(), |ctx| {
    Ok("x".repeat(n as usize))
});

#[tokio::test(flavor = "multi_thread")]
async fn one_outcome_the_store_refuses_holds_back_no_other() {
    let store = Arc::new(Flaky::default());
    store.max_result_bytes.store(100, Ordering::SeqCst);
    let q = Queue::new(store.clone());
    // One task's result is too big for the store; twenty others are small. They share
    // outcome batches.
    let big = Sized::call((1000,)).enqueue(&q).await.unwrap();
    let small = q
        .enqueue_many((0..20).map(|n| Sized::call((n,))))
        .await
        .unwrap();
    let running = builder(&q)
        .workers(4)
        .ack_batch(32, Duration::from_millis(50))
        .register_task::<Sized>()
        .build()
        .unwrap()
        .spawn();
    for (n, h) in small.iter().enumerate() {
        assert_eq!(
            h.get(WAIT).await.unwrap().len(),
            n,
            "a small outcome is written"
        );
    }
    match big.get(WAIT).await {
        Err(Error::TaskFailed { failure, .. }) => {
            assert!(failure.message.contains("the store refused"), "{failure:?}");
        }
        other => panic!("the refused outcome must end as a clear failure, got {other:?}"),
    }
    let dead = q
        .storage()
        .get_dead(big.id())
        .await
        .unwrap()
        .expect("dead-lettered with the reason");
    assert!(
        dead.failure.message.contains("invalid bulk length"),
        "{:?}",
        dead.failure
    );
    let report = running.shutdown(WAIT).await.unwrap();
    assert_eq!(report.unacked, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_result_over_the_limit_fails_its_task_with_a_clear_message() {
    let q = Queue::memory();
    let big = Sized::call((1000,)).enqueue(&q).await.unwrap();
    let small = Sized::call((10,)).enqueue(&q).await.unwrap();
    let running = builder(&q)
        .max_result_bytes(100)
        .register_task::<Sized>()
        .build()
        .unwrap()
        .spawn();
    assert_eq!(small.get(WAIT).await.unwrap().len(), 10);
    match big.get(WAIT).await {
        Err(Error::TaskFailed { failure, .. }) => {
            assert!(
                failure.message.contains("over the limit of 100"),
                "{failure:?}"
            );
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(q.storage().get_dead(big.id()).await.unwrap().is_some());
    running.shutdown(WAIT).await.unwrap();
}

static WRITES_STARTED: AtomicUsize = AtomicUsize::new(0);
static WRITES_GATE: Semaphore = Semaphore::const_new(0);

task!(Writes, "writes", (n: u32) -> u32, TaskOptions::new(), |ctx| {
    WRITES_STARTED.fetch_add(1, Ordering::SeqCst);
    WRITES_GATE.acquire().await.unwrap().forget();
    Ok(n)
});

/// A store that answers reads but takes no writes for a while (a read-only replica after a
/// failover, a store out of memory) is an outage: the outcome of a task that succeeded waits
/// and is written once writes work again, instead of being dead-lettered as an outcome the
/// store refuses.
#[tokio::test(start_paused = true)]
async fn a_write_outage_does_not_dead_letter_a_finished_task() {
    let store = Arc::new(Flaky::with_clock(crate::common::tokio_clock()));
    let q = Queue::new(store.clone());
    let handle = Writes::call((7,)).enqueue(&q).await.unwrap();
    let running = builder(&q)
        .register_task::<Writes>()
        .build()
        .unwrap()
        .spawn();
    eventually("the task running", || async {
        WRITES_STARTED.load(Ordering::SeqCst) == 1
    })
    .await;

    store.read_only.store(true, Ordering::SeqCst);
    WRITES_GATE.add_permits(1);
    // Well past the refusals after which a completion the store refuses on its own is
    // dead-lettered (a few seconds, far less than the lease).
    eventually("many refused completions", || async {
        store.failed_completes.load(Ordering::SeqCst) >= 8
    })
    .await;
    store.read_only.store(false, Ordering::SeqCst);

    assert_eq!(
        handle.get(WAIT).await.unwrap(),
        7,
        "the success is written once the store takes writes again"
    );
    assert!(q.storage().get_dead(handle.id()).await.unwrap().is_none());
    let report = running.shutdown(WAIT).await.unwrap();
    assert_eq!(report.unacked, 0);
}

/// A completion the store refuses while it takes writes is dead-lettered with the reason even
/// when it is alone in its batch (the store's renewal of its lease shows it takes writes).
#[tokio::test(start_paused = true)]
async fn a_lone_outcome_the_store_refuses_is_dead_lettered() {
    let store = Arc::new(Flaky::with_clock(crate::common::tokio_clock()));
    store.max_result_bytes.store(100, Ordering::SeqCst);
    let q = Queue::new(store.clone());
    let big = Sized::call((1000,)).enqueue(&q).await.unwrap();
    let running = builder(&q)
        .register_task::<Sized>()
        .build()
        .unwrap()
        .spawn();
    match big.get(WAIT).await {
        Err(Error::TaskFailed { failure, .. }) => {
            assert!(
                failure.message.contains("invalid bulk length"),
                "{failure:?}"
            );
        }
        other => panic!("the refused outcome must end as a clear failure, got {other:?}"),
    }
    let report = running.shutdown(WAIT).await.unwrap();
    assert_eq!(report.unacked, 0);
}

static RENEWED_STARTED: AtomicUsize = AtomicUsize::new(0);

task!(Lengthy, "lengthy", () -> u32, TaskOptions::new(), |ctx| {
    RENEWED_STARTED.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(10)).await;
    Ok(ctx.deliveries)
});

/// An outage shorter than the lease that spans two renewals does not let the lease of a
/// running task run out: the renewal is tried again as soon as the store is back, not only
/// at the next regular renewal (which falls when the lease ends, when another worker may
/// already have taken the task).
#[tokio::test(start_paused = true)]
async fn a_lease_is_renewed_as_soon_as_the_store_is_back() {
    let store = Arc::new(Flaky::with_clock(crate::common::tokio_clock()));
    let q = Queue::new(store.clone());
    let handle = Lengthy::call(()).enqueue(&q).await.unwrap();
    // Renewed every second.
    let running = builder(&q)
        .lease(Duration::from_secs(3))
        .register_task::<Lengthy>()
        .build()
        .unwrap()
        .spawn();
    eventually("the task running", || async {
        RENEWED_STARTED.load(Ordering::SeqCst) == 1
    })
    .await;
    let expiry = || async {
        let task = q.storage().get_task(handle.id()).await.unwrap().unwrap();
        task.lease_expires_at.unwrap()
    };
    let first = expiry().await;

    // Down across the renewals at 1 s and 2 s; back well before the lease ends at 3 s.
    store.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2300)).await;
    store.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        expiry().await > first,
        "the lease was renewed once the store was back, before it ran out"
    );

    assert_eq!(handle.get(WAIT).await.unwrap(), 1, "delivered once");
    running.shutdown(WAIT).await.unwrap();
}

task!(Nightly, "nightly", () -> (), TaskOptions::new().lock("nightly"), |ctx| { Ok(()) });

#[tokio::test(flavor = "multi_thread")]
async fn a_lock_release_cut_off_by_shutdown_is_sent_again() {
    let store = Arc::new(Flaky::default());
    store.stuck_release.store(true, Ordering::SeqCst);
    let q = Queue::new(store.clone());
    // The lock's TTL is the lease: 10 minutes, far past this test.
    let running = builder(&q)
        .lease(Duration::from_secs(600))
        .register_task::<Nightly>()
        .build()
        .unwrap()
        .spawn();
    Nightly::call(()).enqueue(&q).await.unwrap();
    // The task ran and its lock's release is on its way, and stuck.
    eventually("the lock's release under way", || async {
        !store.stuck_release.load(Ordering::SeqCst)
    })
    .await;
    running.shutdown(Duration::from_millis(200)).await.unwrap();
    // The execution was aborted in its release at the end of the grace period; the lock is
    // released all the same, not kept for its TTL.
    let freed = tokio::time::timeout(Duration::from_secs(5), async {
        while !store
            .acquire_lock("nightly", "next-holder", Duration::from_secs(60))
            .await
            .unwrap()
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        freed.is_ok(),
        "the lock stayed held after its release was cut off"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outcome_refused_even_as_a_dead_letter_holds_back_no_later_one() {
    let store = Arc::new(Flaky::default());
    let q = Queue::new(store.clone());
    // A task whose outcome the store refuses whatever it is, while it takes every other write.
    let cursed = Sized::call((1,)).enqueue(&q).await.unwrap();
    store.refuse_outcomes_of.lock().unwrap().push(cursed.id());
    let running = builder(&q)
        .workers(4)
        .register_task::<Sized>()
        .build()
        .unwrap()
        .spawn();
    eventually("its outcome refused", || async {
        store.failed_completes.load(Ordering::SeqCst) > 0
    })
    .await;
    // Tasks enqueued after it finish while its outcome is being refused.
    let later = q
        .enqueue_many((0..20).map(|n| Sized::call((n,))))
        .await
        .unwrap();
    for (n, h) in later.iter().enumerate() {
        assert_eq!(
            h.get(WAIT).await.unwrap().len(),
            n,
            "a later outcome is written"
        );
    }
    // Left to come back when its lease runs out: still in the store, with no outcome.
    assert!(cursed.try_get().await.unwrap().is_none());
    assert!(q.storage().get_dead(cursed.id()).await.unwrap().is_none());
    let counts = q.counts().await.unwrap();
    assert_eq!(counts.ready + counts.leased, 1, "{counts:?}");
    running.shutdown(WAIT).await.unwrap();
}
