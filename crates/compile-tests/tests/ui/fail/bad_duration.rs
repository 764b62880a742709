#[skiff::task(retries = 3, retry_delay = "60 seconds")]
async fn send_email(to: String) {
    let _ = to;
}

#[skiff::task(timeout = 30)]
async fn with_timeout() {}

fn main() {}
