#[skiff::task(priority = 1, retries = 2, priority = 3)]
async fn send_email(to: String) {
    let _ = to;
}

fn main() {}
