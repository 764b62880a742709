#[skiff::task(retries = "3")]
async fn send_email(to: String) {
    let _ = to;
}

#[skiff::task(retries = 2.5)]
async fn fractional() {}

#[skiff::task(priority = 100000)]
async fn too_high() {}

fn main() {}
