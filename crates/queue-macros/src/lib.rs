//! The `#[task]` attribute macro of Skiff. Use it as `skiff::task`.
//!
//! `#[task]` turns a function into a Skiff task: its parameters become the task's stored
//! arguments, its return value the task's result, and the attribute's options its defaults.
//!
//! ```
//! # extern crate queue_core as skiff;
//! # use queue_macros::task;
//! use std::time::Duration;
//! use skiff::{Queue, Registry, TaskError};
//!
//! /// Sends one email.
//! #[task(retries = 3, retry_delay = "60s", priority = 100, queue = "emails")]
//! async fn send_email(to: String, subject: String) -> Result<String, TaskError> {
//!     Ok(format!("sent {subject:?} to {to}"))
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let queue = Queue::immediate();
//! let handle = send_email("a@b.c".into(), "hi".into()).enqueue(&queue).await?;
//! assert_eq!(handle.get(Duration::from_secs(1)).await?, "sent \"hi\" to a@b.c");
//!
//! let mut registry = Registry::new(); // what a consumer's `register(send_email)` fills
//! registry.register_fn(send_email);
//! assert!(registry.get("send_email").is_some());
//! # Ok::<(), skiff::Error>(()) }).unwrap();
//! ```
//!
//! # What it writes
//!
//! For `async fn send_email(to: String, subject: String) -> Result<Sent, TaskError>`:
//!
//! * `struct send_email {}` — the task kind, a braced struct of the same name (it lives in the
//!   type namespace, so it does not clash with the function) implementing `skiff::Task` with
//!   `NAME = "send_email"`, `Args = (String, String)`, `Output = Sent`, `options()` from the
//!   attribute, and `run`, which calls your function kept whole as an inner function (so `?`,
//!   `return` and borrows behave as written);
//! * `fn send_email(to: String, subject: String) -> skiff::TaskCall<send_email>` — what you
//!   call: `send_email(to, subject).delay(..).priority(..).enqueue(&queue)`. Passing the
//!   function itself names the task kind: `consumer.register(send_email)`.
//!
//! A plain (non-`async`) `fn` runs on Tokio's blocking pool (`skiff::run_blocking`).
//!
//! # Return types
//!
//! * `Result<T, E>` (also an alias `Result<T>`, e.g. `std::io::Result<T>`): `Output = T`; the
//!   error becomes a `TaskError` through `From`, which every `std::error::Error` has, so
//!   `Result<T, TaskError>`, `Result<T, std::io::Error>` or your own error type all work.
//!   Return `TaskError::cancel(..)`/`fatal(..)`/`retry_after(..)` to steer retries.
//! * Any other `T`: `Output = T`, always a success. No return type: `Output = ()`.
//!
//! Arguments and output are stored, so they must be owned, `Serialize + DeserializeOwned`,
//! `Send` and `'static`; the task kind is as visible as the function, so a `pub` task's
//! argument and output types must be `pub` too.
//!
//! # Options
//!
//! | option | value | default |
//! |---|---|---|
//! | `name = "…"` | the stored task name | the function's name |
//! | `retries = 3` | retries after a failure | 0 |
//! | `retry_delay = "60s"` | delay before a retry | 0 |
//! | `retry_backoff = 2.0` | multiply the delay by this per retry (≥ 1.0) | fixed delay |
//! | `priority = 100` | `i16`, higher runs first | 0 |
//! | `timeout = "30s"` | time limit of one attempt | none |
//! | `expires = "1h"` | dropped if not started this long after enqueue | never |
//! | `queue = "emails"` | the queue | `"default"` |
//! | `periodic = "0 */5 * * * *"` | cron expression, seconds first: consumers enqueue the task on it, once per fire across the cluster; the task takes no arguments | not periodic |
//! | `lock = "reports"` | a store-wide lock held while the task runs; a task finding it taken runs later | none |
//! | `rate_limit = "100/s"` | at most N runs per second (`/s`), minute (`/m`) or hour (`/h`) across every process; over-limit tasks run later | none |
//! | `context` | flag: the first parameter is a `TaskContext`, not an argument | off |
//! | `crate = "path"` | where Skiff is, for use inside its own workspace | `::skiff` |
//!
//! Durations are strings of a number and a unit — `ms`, `s`, `m`, `h`, `d` — possibly chained
//! (`"1h30m"`), checked when the macro runs, as are cron expressions (a bad one is an error
//! naming the field) and rate limits. Unknown or repeated options, values of the wrong type, a
//! bad duration, cron expression or rate limit, a periodic task with arguments, a `context` flag without a `TaskContext` first parameter, a `self`
//! receiver, generics, and parameters that are patterns rather than names are compile errors
//! that point at the offending tokens.
//!
//! ```
//! # extern crate queue_core as skiff;
//! # use queue_macros::task;
//! use skiff::{Task, TaskContext, TaskError};
//!
//! /// Every five minutes, once across every consumer of the store.
//! #[task(context, periodic = "0 */5 * * * *")]
//! async fn sweep(ctx: TaskContext) -> Result<(), TaskError> {
//!     println!("sweep for the fire at {}", ctx.enqueued_at);
//!     Ok(())
//! }
//!
//! /// One at a time across the cluster, at most 10 a second.
//! #[task(lock = "ledger", rate_limit = "10/s")]
//! async fn post_entry(amount: i64) -> Result<i64, TaskError> {
//!     Ok(amount)
//! }
//!
//! assert_eq!(sweep::options().periodic.as_deref(), Some("0 */5 * * * *"));
//! assert_eq!(post_entry::options().lock.as_deref(), Some("ledger"));
//! assert_eq!(post_entry::options().rate_limit.map(|r| r.limit), Some(10));
//! ```
//!
//! # Attributes on the function
//!
//! Doc comments and `#[deprecated]` go on the call function; `#[cfg]` on everything written;
//! lint levels (`allow`, `warn`, `deny`, `forbid`) on both the call function and your body;
//! any other attribute (such as `#[tracing::instrument]`) on your body.

#![doc(test(attr(deny(warnings))))]

mod expand;
mod options;

use proc_macro::TokenStream;

/// Turns a function into a Skiff task. See the [crate docs](crate) for the options and what
/// it writes.
///
/// ```
/// # extern crate queue_core as skiff;
/// # use queue_macros::task;
/// use skiff::{TaskContext, TaskError};
///
/// #[task(context, retries = 2, retry_backoff = 2.0, retry_delay = "1s", timeout = "30s")]
/// async fn resize(ctx: TaskContext, image: String, width: u32) -> Result<String, TaskError> {
///     Ok(format!("{image}@{width} (attempt {})", ctx.attempt))
/// }
///
/// // A blocking function runs on Tokio's blocking pool.
/// #[task(queue = "cpu", priority = -1)]
/// fn checksum(data: Vec<u8>) -> u64 {
///     data.iter().map(|&b| u64::from(b)).sum()
/// }
///
/// let _call = resize("cat.png".into(), 640);
/// assert_eq!(checksum(vec![1, 2]).args(), &(vec![1, 2],));
/// ```
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    let expanded = options::TaskOptions::parse(attr.into()).and_then(|opts| {
        match syn::parse::<syn::Item>(item)? {
            syn::Item::Fn(item) => expand::expand(opts, item),
            other => Err(syn::Error::new_spanned(
                other,
                "`#[task]` goes on a function (`async fn` or `fn`)",
            )),
        }
    });
    match expanded {
        Ok(tokens) => tokens.into(),
        Err(err) => err.into_compile_error().into(),
    }
}
