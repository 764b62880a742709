//! Periodic tasks on SQLite: one from a cron expression on the task, one from a Huey-style
//! `crontab()`, one every 3 seconds aligned to the epoch. Two consumers run the ticker on the
//! same store for about five seconds, yet each fire runs once.
//!
//! ```text
//! cargo run --example periodic
//! ```

use std::time::Duration;

use skiff::prelude::*;
use skiff::{crontab, Schedule};

/// Every two seconds (cron with a seconds field), checked at compile time.
#[skiff::task(context, periodic = "*/2 * * * * *")]
async fn every_two_seconds(ctx: TaskContext) -> Result<(), TaskError> {
    println!(
        "every_two_seconds fired for {}",
        ctx.enqueued_at.format("%H:%M:%S")
    );
    Ok(())
}

/// Scheduled below with `crontab()`: every second of every minute, Monday to Sunday.
#[skiff::task(context)]
async fn heartbeat(ctx: TaskContext) -> Result<(), TaskError> {
    println!(
        "heartbeat         fired for {}",
        ctx.enqueued_at.format("%H:%M:%S")
    );
    Ok(())
}

/// Scheduled below every 3 seconds since the Unix epoch (3 divides 60, but 7 or 90 would work
/// too, which a cron expression cannot say).
#[skiff::task(context)]
async fn every_three(ctx: TaskContext) -> Result<(), TaskError> {
    println!(
        "every_three       fired for {}",
        ctx.enqueued_at.format("%H:%M:%S")
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::temp_dir().join("skiff-periodic.db");
    let queue = Queue::connect(&format!("sqlite://{}", path.display())).await?;
    queue.storage().flush().await?; // start from an empty store on every run

    let consumers = (0..2).map(|_| {
        Consumer::builder(queue.clone())
            .workers(4)
            .register(every_two_seconds) // periodic by its own options
            .periodic_task(heartbeat, crontab().second("*").day_of_week("0-6"))
            .periodic_task(every_three, Schedule::every(Duration::from_secs(3))?)
            .build()
    });
    let mut running = Vec::new();
    for consumer in consumers {
        let consumer = consumer?;
        if running.is_empty() {
            println!("periodic tasks: {:?}", consumer.periodic_tasks());
        }
        running.push(consumer.spawn());
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    for r in running {
        r.shutdown(Duration::from_secs(5)).await?;
    }
    println!("store now: {:?}", queue.counts().await?);
    Ok(())
}
