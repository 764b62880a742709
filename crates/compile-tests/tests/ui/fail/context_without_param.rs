#[skiff::task(context)]
async fn wrong_first(to: String, ctx: skiff::TaskContext) {
    let _ = (to, ctx);
}

#[skiff::task(retries = 1, context)]
async fn no_params() {}

#[skiff::task]
async fn flag_missing(ctx: skiff::TaskContext) {
    let _ = ctx;
}

fn main() {}
