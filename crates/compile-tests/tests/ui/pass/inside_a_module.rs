//! A task in a module, used from outside it through its path; the task kind is a type.

mod tasks {
    use skiff::TaskError;

    #[skiff::task(retries = 1)]
    pub async fn double(n: u32) -> Result<u32, TaskError> {
        n.checked_mul(2).ok_or_else(|| TaskError::fatal("overflow"))
    }
}

fn kind_of<T: skiff::Task>(_call: &skiff::TaskCall<T>) -> &'static str {
    T::NAME
}

fn main() {
    let call = tasks::double(2);
    assert_eq!(kind_of(&call), "double");
    assert_eq!(call.args(), &(2,));
    let _: skiff::TaskCall<tasks::double> = call;
}
