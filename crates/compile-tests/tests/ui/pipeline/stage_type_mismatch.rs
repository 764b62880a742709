use skiff::TaskError;

#[skiff::task]
async fn download(url: String) -> Result<Vec<u8>, TaskError> {
    Ok(url.into_bytes())
}

// Takes a String, but download produces Vec<u8>.
#[skiff::task]
async fn shout(text: String) -> Result<String, TaskError> {
    Ok(text.to_uppercase())
}

fn main() {
    let _ = download("a".into()).then(shout);
}
