#[skiff::task(retries = 1)]
struct SendEmail;

fn main() {}
