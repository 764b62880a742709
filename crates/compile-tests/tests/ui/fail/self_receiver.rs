struct Mailer;

impl Mailer {
    #[skiff::task]
    async fn send(&self, to: String) {
        let _ = to;
    }
}

fn main() {
    let _ = Mailer;
}
