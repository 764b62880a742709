use skiff::TaskError;

#[skiff::task]
async fn download(url: String) -> Result<Vec<u8>, TaskError> {
    Ok(url.into_bytes())
}

// An error handler must take the TaskFailure.
#[skiff::task]
async fn alert(message: String) -> Result<(), TaskError> {
    let _ = message;
    Ok(())
}

fn main() {
    let _ = download("a".into()).on_error(alert);
}
