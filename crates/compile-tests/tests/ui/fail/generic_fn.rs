#[skiff::task]
async fn echo<T: serde::Serialize>(value: T) -> T {
    value
}

#[skiff::task]
async fn shout(text: impl Into<String>) -> String {
    text.into().to_uppercase()
}

fn main() {}
