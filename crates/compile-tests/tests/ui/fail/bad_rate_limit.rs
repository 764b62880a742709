#[skiff::task(rate_limit = "100")]
async fn no_unit() {}

#[skiff::task(rate_limit = "10/d")]
async fn per_day() {}

#[skiff::task(rate_limit = 100)]
async fn not_a_string() {}

fn main() {}
