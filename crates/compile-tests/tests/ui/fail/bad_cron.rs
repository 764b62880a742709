#[skiff::task(periodic = "0 */5 25 * * *")]
async fn bad_hour() {}

#[skiff::task(periodic = "*/5 * * * *")]
async fn no_seconds() {}

#[skiff::task(periodic = "0 0 9 * * FUNDAY")]
async fn bad_day() {}

fn main() {}
