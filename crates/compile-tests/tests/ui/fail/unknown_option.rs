#[skiff::task(retires = 3)]
async fn send_email(to: String) -> Result<(), skiff::TaskError> {
    let _ = to;
    Ok(())
}

fn main() {}
