//! Periodic tasks: one run per fire time across consumers, no rerun of a finished fire,
//! missed fires, and schedules from task options.
//!
//! On paused Tokio time: the tickers sleep on Tokio's timers, so every fire happens on time
//! whatever the machine's speed, and a wait such as "1.3 s, longer than a ticker's longest
//! sleep" really lets every ticker look.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use queue_core::{Clock, ManualClock, MemoryStorage, Queue, TaskOptions};
use queue_runtime::{Consumer, MissedTicks, Schedule};

use crate::common::{builder, eventually, queue, queue_on_tokio_time, WAIT};

fn record(runs: &Mutex<Vec<i64>>, at: DateTime<Utc>) {
    runs.lock().unwrap().push(at.timestamp_millis());
}

static FAST: Mutex<Vec<i64>> = Mutex::new(Vec::new());
task!(FastTick, "fast_tick", () -> (), TaskOptions::new(), |ctx| {
    record(&FAST, ctx.enqueued_at);
    Ok(())
});

#[tokio::test(start_paused = true)]
async fn each_fire_runs_once_across_three_consumers() {
    let q = queue_on_tokio_time();
    let every = Duration::from_millis(200);
    let mut running = Vec::new();
    for _ in 0..3 {
        running.push(
            builder(&q)
                .periodic_task_kind::<FastTick>(Schedule::every(every).unwrap())
                .build()
                .unwrap()
                .spawn(),
        );
        // The next one joins mid-period, after a fire has run: its ticker's first look at
        // that fire must find it taken.
        tokio::time::sleep(Duration::from_millis(270)).await;
    }
    eventually("7 fires", || async { FAST.lock().unwrap().len() >= 7 }).await;
    for r in running {
        r.shutdown(WAIT).await.unwrap();
    }
    let mut fires = FAST.lock().unwrap().clone();
    fires.sort_unstable();
    let mut unique = fires.clone();
    unique.dedup();
    assert_eq!(fires, unique, "a fire ran twice");
    assert!(
        fires.iter().all(|t| t % 200 == 0),
        "fires are aligned: {fires:?}"
    );
    assert!(
        fires.windows(2).all(|w| w[1] - w[0] == 200),
        "a fire was skipped: {fires:?}"
    );
}

/// A memory store on a manual clock at a whole minute.
fn manual() -> (Queue, ManualClock) {
    let clock = ManualClock::starting_at(DateTime::from_timestamp(1_700_000_040, 0).unwrap());
    let q = Queue::new(Arc::new(MemoryStorage::with_clock(Arc::new(clock.clone()))));
    (q, clock)
}

static MINUTELY: Mutex<Vec<i64>> = Mutex::new(Vec::new());
task!(Minutely, "minutely", () -> (), TaskOptions::new(), |ctx| {
    record(&MINUTELY, ctx.enqueued_at);
    Ok(())
});

fn minutely(q: &Queue, missed: MissedTicks) -> Consumer {
    builder(q)
        .periodic_task_kind::<Minutely>("0 * * * * *")
        .missed_ticks(missed)
        .build()
        .unwrap()
}

fn runs(of: &Mutex<Vec<i64>>) -> Vec<i64> {
    of.lock().unwrap().clone()
}

#[tokio::test(start_paused = true)]
async fn finished_fires_are_not_rerun_and_only_the_latest_missed_fire_runs() {
    let (q, clock) = manual();
    let minute = |m: i64| (1_700_000_040 + 60 * m) * 1000;

    // A fresh schedule does not fire its past tick at start-up.
    let a = minutely(&q, MissedTicks::RunLatest).spawn();
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert!(runs(&MINUTELY).is_empty(), "{:?}", runs(&MINUTELY));

    clock.advance(Duration::from_secs(61));
    eventually("the first fire", || async {
        runs(&MINUTELY) == [minute(1)]
    })
    .await;

    // A consumer starting later in the same minute sees the fire claimed, though finished.
    let b = minutely(&q, MissedTicks::RunLatest).spawn();
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_eq!(runs(&MINUTELY), [minute(1)]);
    a.shutdown(WAIT).await.unwrap();
    b.shutdown(WAIT).await.unwrap();

    // Every consumer down for three fires; with `Skip`, none of them runs.
    clock.advance(Duration::from_secs(180));
    let c = minutely(&q, MissedTicks::Skip).spawn();
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_eq!(runs(&MINUTELY), [minute(1)]);
    c.shutdown(WAIT).await.unwrap();

    // With `RunLatest`, only the latest missed one runs, once.
    let d = minutely(&q, MissedTicks::RunLatest).spawn();
    let e = minutely(&q, MissedTicks::RunLatest).spawn();
    eventually("the latest missed fire", || async {
        runs(&MINUTELY).len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_eq!(runs(&MINUTELY), [minute(1), minute(4)]);
    d.shutdown(WAIT).await.unwrap();
    e.shutdown(WAIT).await.unwrap();
    assert_eq!(clock.now().timestamp_millis(), minute(4) + 1_000);
}

task!(FromOptions, "from_options", () -> (), TaskOptions::new().periodic("0 */5 * * * *"), |ctx| {
    Ok(())
});
task!(BadOptions, "bad_options", () -> (), TaskOptions::new().periodic("0 */5 25 * * *"), |ctx| {
    Ok(())
});

#[test]
fn schedules_come_from_task_options_and_are_checked_at_build() {
    let q = queue();
    let c = builder(&q)
        .register_task::<FromOptions>()
        .time_zone(queue_runtime::Tz::Europe__Paris)
        .build()
        .unwrap();
    assert_eq!(
        c.periodic_tasks(),
        [("from_options", "0 */5 * * * * (Europe/Paris)".to_owned())]
    );
    let err = builder(&q)
        .register_task::<BadOptions>()
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad_options") && err.contains("hour"), "{err}");
    let err = builder(&q)
        .periodic_task_kind::<FromOptions>(queue_runtime::crontab().day_of_week("8"))
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("day_of_week"), "{err}");
}
