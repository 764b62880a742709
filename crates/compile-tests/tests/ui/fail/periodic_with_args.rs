use skiff::TaskContext;

#[skiff::task(periodic = "0 * * * * *")]
async fn report(day: String) {
    let _ = day;
}

#[skiff::task(context, periodic = "0 * * * * *")]
async fn with_context(ctx: TaskContext, n: u32) {
    let _ = (ctx, n);
}

fn main() {}
