//! Cases: pausing queues, purging a queue, cancel requests, heartbeats of live workers and the
//! progress they carry.

use std::sync::Arc;
use std::time::Duration;

use super::wait::{within, LONG};
use super::{ids, open, secs, success, Backend, LEASE};
use crate::{
    AckStatus, CancelRequest, EnqueueOutcome, Heartbeat, Lease, RunningTask, Storage, TaskId,
    WorkerInfo,
};

/// A paused queue hands out nothing — not its ready tasks, not its expired leases — but still
/// accepts enqueues; other queues go on; resuming hands out everything in order. Pausing twice
/// changes nothing the second time; `flush` forgets paused queues.
pub async fn paused_queue_hands_out_nothing_until_resumed<B: Backend>(b: &B) {
    let fx = open(b).await;
    let (q, other) = ("paused", "running");
    let first = fx.enqueue_new(q, "a").await;
    let lost = fx.fetch_one(q).await; // its worker dies: the lease runs out while paused
    let second = fx.enqueue_new(q, "b").await;
    let elsewhere = fx.enqueue_new(other, "c").await;

    assert!(fx.store.set_paused(q, true).await.unwrap(), "now paused");
    assert!(
        !fx.store.set_paused(q, true).await.unwrap(),
        "already paused"
    );
    assert_eq!(fx.store.paused_queues().await.unwrap(), vec![q.to_owned()]);
    let third = fx.enqueue_new(q, "c").await; // enqueues are accepted
    fx.advance(LEASE + secs(1));
    fx.fetch_none(q, "paused").await;
    assert_eq!(
        fx.fetch_one(other).await.lease.id,
        elsewhere,
        "other queues go on"
    );
    assert_eq!(fx.counts(Some(q)).await.ready, 2, "still pending");

    assert!(fx.store.set_paused(q, false).await.unwrap(), "now resumed");
    assert!(
        !fx.store.set_paused(q, false).await.unwrap(),
        "already resumed"
    );
    assert!(fx.store.paused_queues().await.unwrap().is_empty());
    let got = fx.fetch(q, 10).await;
    let mut got_ids = ids(&got);
    got_ids.sort_unstable();
    let mut want = vec![first, second, third];
    want.sort_unstable();
    assert_eq!(got_ids, want, "everything, the expired lease included");
    assert_eq!(
        fx.complete(lost.lease, success(&())).await,
        AckStatus::Stale,
        "the lost lease stays lost"
    );

    fx.store.set_paused("x", true).await.unwrap();
    fx.store.flush().await.unwrap();
    assert!(fx.store.paused_queues().await.unwrap().is_empty());
}

/// A consumer's loop on a paused queue with ready work (wait, then fetch) does not spin: its
/// waits do not return at once, again and again (a store may still return one early, as
/// `wait_for_work` allows, e.g. at its poll interval). A resume by the same store ends the
/// loop with the task.
pub async fn wait_on_a_paused_queue_ends_at_resume<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "paused-wait";
    let id = fx.enqueue_new(q, "a").await;
    fx.store.set_paused(q, true).await.unwrap();
    let store = Arc::new(fx.store);
    let returns = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let consumer = {
        let (store, returns) = (Arc::clone(&store), Arc::clone(&returns));
        tokio::spawn(async move {
            loop {
                store.wait_for_work(q, LONG).await.unwrap();
                returns.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if let Some(d) = store.fetch(q, 10, LEASE).await.unwrap().pop() {
                    return d;
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !consumer.is_finished(),
        "a paused queue handed out its task"
    );
    let spins = returns.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        spins <= 20,
        "waits on a paused queue returned {spins} times in 300 ms: a hot loop"
    );
    store.set_paused(q, false).await.unwrap();
    let got = within("not woken by the resume", consumer).await.unwrap();
    assert_eq!(got.lease.id, id);
}

/// `purge_queue` deletes the ready and scheduled tasks of one queue (freeing their unique
/// keys), not its running tasks, not other queues, not dead letters.
pub async fn purge_queue_removes_pending_but_not_running<B: Backend>(b: &B) {
    let fx = open(b).await;
    let (q, other) = ("purged", "kept");
    let dead = fx.make_dead(q, "d").await;
    let running = fx.enqueue_new(q, "run").await;
    let leased = fx.fetch_one(q).await;
    assert_eq!(leased.lease.id, running);
    fx.enqueue_new(q, "a").await;
    let mut unique = fx.env(q, "u");
    unique.unique_key = Some("only-one".into());
    fx.enqueue(unique).await;
    let mut later = fx.env(q, "later");
    later.eta = Some(fx.now() + secs(3600));
    fx.enqueue(later).await;
    let kept = fx.enqueue_new(other, "k").await;

    assert_eq!(fx.store.purge_queue(q).await.unwrap(), 3);
    let c = fx.counts(Some(q)).await;
    assert_eq!((c.ready, c.scheduled, c.leased, c.dead), (0, 0, 1, 1));
    assert!(fx.store.get_dead(dead).await.unwrap().is_some());
    assert_eq!(fx.counts(Some(other)).await.ready, 1);
    assert_eq!(fx.fetch_one(other).await.lease.id, kept);
    let mut again = fx.env(q, "u");
    again.unique_key = Some("only-one".into());
    let again_id = again.id;
    assert_eq!(
        fx.store.enqueue(vec![again]).await.unwrap(),
        vec![EnqueueOutcome::Enqueued(again_id)],
        "the purged task's unique key is free"
    );
    assert_eq!(
        fx.complete(leased.lease, success(&())).await,
        AckStatus::Acked,
        "the running task completes"
    );
    assert_eq!(fx.store.purge_queue("no-such-queue").await.unwrap(), 0);
}

fn worker(id: &str, started: chrono::DateTime<chrono::Utc>) -> WorkerInfo {
    WorkerInfo {
        id: id.into(),
        hostname: "host".into(),
        pid: 42,
        queues: vec![("default".into(), 1)],
        concurrency: 4,
        version: "test".into(),
        started_at: started,
    }
}

fn running(id: TaskId, since: chrono::DateTime<chrono::Utc>) -> RunningTask {
    RunningTask {
        id,
        task: "t".into(),
        queue: "default".into(),
        since,
    }
}

fn beat(
    worker: &WorkerInfo,
    tasks: Vec<RunningTask>,
    progress: Vec<(Lease, Vec<u8>)>,
) -> Heartbeat {
    Heartbeat {
        worker: worker.clone(),
        running: tasks,
        progress,
        ttl: secs(10),
        throughput: vec![],
        periodic: vec![],
    }
}

/// A cancel request for a running task reaches the heartbeat of the worker running it (and
/// only for that task) until its ttl; a pending task's request is answered `Pending`, an
/// unknown task's `NotFound`.
pub async fn cancel_requests_reach_the_running_workers_heartbeat<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "default";
    let a = fx.enqueue_new(q, "a").await;
    let bb = fx.enqueue_new(q, "b").await;
    let got = fx.fetch(q, 10).await;
    assert_eq!(got.len(), 2);
    let pending = fx.enqueue_new(q, "c").await;
    let now = fx.now();
    let w = worker("w1", now);
    let both = vec![running(a, now), running(bb, now)];
    assert!(fx
        .store
        .heartbeat(&beat(&w, both.clone(), vec![]))
        .await
        .unwrap()
        .is_empty());

    let ttl = secs(60);
    assert_eq!(
        fx.store.request_cancel(a, ttl).await.unwrap(),
        CancelRequest::Running
    );
    assert_eq!(
        fx.store.request_cancel(pending, ttl).await.unwrap(),
        CancelRequest::Pending
    );
    assert_eq!(
        fx.store.request_cancel(TaskId::new(), ttl).await.unwrap(),
        CancelRequest::NotFound
    );
    assert_eq!(
        fx.store
            .heartbeat(&beat(&w, both.clone(), vec![]))
            .await
            .unwrap(),
        vec![a]
    );
    assert_eq!(
        fx.store
            .heartbeat(&beat(&w, both.clone(), vec![]))
            .await
            .unwrap(),
        vec![a],
        "kept until its ttl"
    );
    fx.advance(ttl + secs(1));
    assert!(
        fx.store
            .heartbeat(&beat(&w, both, vec![]))
            .await
            .unwrap()
            .is_empty(),
        "lapsed"
    );
}

/// Heartbeats register workers with what they run; a newer beat replaces the older; a worker
/// that stops beating disappears after its ttl; `remove_worker` removes one at once.
pub async fn heartbeats_list_live_workers_until_their_ttl<B: Backend>(b: &B) {
    let fx = open(b).await;
    let t0 = fx.now();
    let (w1, w2) = (worker("w1", t0), worker("w2", t0 + secs(1)));
    let task = TaskId::new();
    fx.store
        .heartbeat(&beat(&w2, vec![], vec![]))
        .await
        .unwrap();
    fx.store
        .heartbeat(&beat(&w1, vec![], vec![]))
        .await
        .unwrap();
    let live = fx.store.workers().await.unwrap();
    let names: Vec<&str> = live.iter().map(|w| w.info.id.as_str()).collect();
    assert_eq!(names, vec!["w1", "w2"], "oldest first");
    assert_eq!(live[0].info, w1);
    assert_eq!(super::ms(live[0].last_seen), super::ms(t0));

    fx.advance(secs(6));
    let mut latest = beat(&w1, vec![running(task, fx.now())], vec![]);
    latest.throughput = vec![crate::MinuteCount {
        queue: "default".into(),
        minute: fx.now(),
        processed: 7,
        failed: 2,
    }];
    latest.periodic = vec![crate::PeriodicStatus {
        task: "report".into(),
        queue: "default".into(),
        schedule: "0 0 3 * * *".into(),
        next: Some(fx.now() + secs(60)),
        last: None,
    }];
    fx.store.heartbeat(&latest).await.unwrap();
    fx.advance(secs(6)); // w2 last beat 12 s ago (ttl 10 s), w1 6 s ago
    let live = fx.store.workers().await.unwrap();
    assert_eq!(live.len(), 1, "w2 stopped beating: {live:?}");
    assert_eq!(live[0].info.id, "w1");
    assert_eq!(
        live[0].running.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![task]
    );
    assert_eq!(
        (&live[0].throughput, &live[0].periodic),
        (&latest.throughput, &latest.periodic),
        "what the worker reports of its last hour and its periodic tasks is kept"
    );

    assert!(fx.store.remove_worker("w1").await.unwrap());
    assert!(!fx.store.remove_worker("w1").await.unwrap());
    assert!(fx.store.workers().await.unwrap().is_empty());
}

/// Progress in a heartbeat is stored for tasks whose lease is still the current one, replaced
/// by newer progress, readable with `get_progress`, and gone with the task.
pub async fn progress_is_kept_for_the_current_lease_only<B: Backend>(b: &B) {
    let fx = open(b).await;
    let q = "default";
    let id = fx.enqueue_new(q, "a").await;
    let d = fx.fetch_one(q).await;
    let w = worker("w", fx.now());
    assert_eq!(fx.store.get_progress(id).await.unwrap(), None);
    let tasks = vec![running(id, fx.now())];
    fx.store
        .heartbeat(&beat(&w, tasks.clone(), vec![(d.lease, b"half".to_vec())]))
        .await
        .unwrap();
    assert_eq!(
        fx.store.get_progress(id).await.unwrap(),
        Some(b"half".to_vec())
    );
    fx.store
        .heartbeat(&beat(&w, tasks.clone(), vec![(d.lease, b"most".to_vec())]))
        .await
        .unwrap();
    assert_eq!(
        fx.store.get_progress(id).await.unwrap(),
        Some(b"most".to_vec())
    );
    let stale = Lease {
        id,
        token: crate::LeaseToken::random(),
    };
    fx.store
        .heartbeat(&beat(&w, tasks, vec![(stale, b"stale".to_vec())]))
        .await
        .unwrap();
    assert_eq!(
        fx.store.get_progress(id).await.unwrap(),
        Some(b"most".to_vec()),
        "a stale lease's progress is ignored"
    );
    assert_eq!(fx.complete(d.lease, success(&())).await, AckStatus::Acked);
    assert_eq!(
        fx.store.get_progress(id).await.unwrap(),
        None,
        "gone with the task"
    );
}
