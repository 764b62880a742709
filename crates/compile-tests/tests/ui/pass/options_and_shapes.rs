//! Every option, both kinds of function, and the shapes of return type, with warnings denied
//! so the generated code must be warning-free (including `missing_docs` on public items).

#![deny(warnings, missing_docs, unreachable_pub)]

use skiff::{task, TaskContext, TaskError};

/// A documented public task with every option.
#[task(
    name = "mail.send",
    retries = 3,
    retry_delay = "1m30s",
    retry_backoff = 1.5,
    priority = -32768,
    timeout = "30s",
    expires = "1d",
    queue = "mail",
    context
)]
pub async fn send(ctx: skiff::TaskContext, mut to: String) -> Result<String, TaskError> {
    to.push('!');
    Ok(format!("{to} {}", ctx.attempt))
}

/// Blocking, with a std error.
#[task(priority = 32767)]
pub fn parse(text: String) -> Result<i64, std::num::ParseIntError> {
    text.parse()
}

/// Context through a `use`d name, on a blocking fn, no return type.
#[task(context)]
pub fn touch(_ctx: TaskContext, _unused: Vec<u8>) {}

/// Twelve arguments: the most a function can be registered with.
#[task]
#[allow(clippy::too_many_arguments)]
pub async fn many(
    a: u8,
    b: u8,
    c: u8,
    d: u8,
    e: u8,
    f: u8,
    g: u8,
    h: u8,
    i: u8,
    j: u8,
    k: u8,
    l: u8,
) -> u32 {
    [a, b, c, d, e, f, g, h, i, j, k, l]
        .iter()
        .map(|&x| u32::from(x))
        .sum()
}

fn main() {
    let _ = send("a".into()).priority(1);
    let _ = parse("1".into()).delay(std::time::Duration::from_secs(1));
    let _ = touch(vec![]);
    let _ = many(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12);
    let mut registry = skiff::Registry::new();
    registry
        .register_fn(send)
        .register_fn(parse)
        .register_fn(touch)
        .register_fn(many);
    assert_eq!(registry.len(), 4);
    assert!(registry.get("mail.send").is_some());
}
