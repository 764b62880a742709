//! Attributes on the function: `cfg` removes the whole task, docs and `deprecated` go on the
//! call function, other attributes on the body.

#![deny(warnings)]

use skiff::{task, Task};

#[cfg(any())]
#[task]
async fn never_compiled(x: NoSuchType) -> u8 {
    x
}

#[cfg(all())]
#[task(queue = "kept")]
async fn kept() -> u8 {
    1
}

/// Old.
#[deprecated(note = "use kept")]
#[task]
async fn old() -> u8 {
    0
}

#[task]
#[allow(unused_variables)]
#[inline]
async fn lint_levels(x: u8) -> u8 {
    let unused = 1;
    0
}

fn main() {
    assert_eq!(<kept as Task>::options().queue, "kept");
    #[allow(deprecated)]
    let _ = old();
    let _ = lint_levels(1);
}
