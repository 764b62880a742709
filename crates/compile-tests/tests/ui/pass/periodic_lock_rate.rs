use skiff::{crontab, Consumer, Queue, Task, TaskContext, TaskError};

#[skiff::task(periodic = "0 */5 * * * *")]
async fn sweep() {}

#[skiff::task(context, periodic = "@hourly", lock = "hourly", rate_limit = "1/m")]
async fn hourly(ctx: TaskContext) -> Result<String, TaskError> {
    Ok(ctx.enqueued_at.to_string())
}

#[skiff::task(lock = "ledger", rate_limit = "100/s")]
fn post(amount: i64) -> i64 {
    amount
}

#[skiff::task]
async fn nightly() {}

fn main() {
    assert_eq!(sweep::options().periodic.as_deref(), Some("0 */5 * * * *"));
    assert_eq!(hourly::options().lock.as_deref(), Some("hourly"));
    assert_eq!(post::options().rate_limit.map(|r| r.limit), Some(100));
    let consumer = Consumer::builder(Queue::memory())
        .register(sweep)
        .register(hourly)
        .register(post)
        .periodic_task(nightly, crontab().minute("0").hour("3").day_of_week("1-5"))
        .build()
        .unwrap();
    assert_eq!(consumer.periodic_tasks().len(), 3);
}
