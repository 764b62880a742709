//! The heartbeat: about once a second the consumer tells the store who it is and what it runs
//! ([`Storage::heartbeat`]), with the progress its tasks reported since the last beat, and
//! learns in the answer which of its running tasks an operator asked to cancel; it fires
//! their cancellation tokens (the executor then stops them). So cancellation needs no polling
//! loop of its own, progress costs one write per second at most however often tasks report
//! it, and a consumer that stops beating leaves the list of live workers after its ttl.

use std::sync::Arc;
use std::time::Duration;

use queue_core::{Heartbeat, Storage, WorkerInfo};
use tokio::time::{interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::inflight::{InFlight, Stats};
use crate::periodic::Board;

/// What a heartbeat reads: the leases in flight, the per-minute counts of finished tasks and
/// the periodic ticker's board.
pub(crate) struct Sources {
    pub(crate) inflight: Arc<InFlight>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) board: Arc<Board>,
}

/// Beats every `every` (the first at once) until `stop` is cancelled.
pub(crate) async fn beat(
    storage: Arc<dyn Storage>,
    sources: Sources,
    worker: WorkerInfo,
    every: Duration,
    ttl: Duration,
    stop: CancellationToken,
) {
    let mut tick = interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Sources {
            inflight,
            stats,
            board,
        } = &sources;
        let (running, progress) = inflight.report();
        let beat = Heartbeat {
            worker: worker.clone(),
            running,
            progress,
            ttl,
            throughput: stats.throughput.report(storage.clock().now()),
            periodic: board.get(),
        };
        match storage.heartbeat(&beat).await {
            Ok(cancel) => {
                if std::mem::take(&mut failing) {
                    tracing::info!("heartbeats reach the store again");
                }
                if !cancel.is_empty() {
                    let fired = inflight.cancel(&cancel);
                    if fired > 0 {
                        tracing::info!(tasks = ?cancel, "canceling running tasks, as an operator asked");
                    }
                }
            }
            Err(err) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(error = %err, "could not send a heartbeat; retrying every interval");
                }
                inflight.restore_progress(beat.progress);
            }
        }
    }
}
