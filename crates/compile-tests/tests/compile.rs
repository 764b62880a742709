//! Every trybuild case in one `TestCases`, so the dependency tree is built once per run:
//!
//! * `ui/pass`: `#[skiff::task]` on every shape and option it accepts, warnings denied;
//! * `ui/fail`: what it refuses, with the message and span of each error;
//! * `ui/pipeline`: a pipeline stage whose input is not the previous stage's output, and an
//!   error handler that does not take the failure, do not compile.
//!
//! After a change of the messages: `TRYBUILD=overwrite cargo test -p compile-tests`, then read
//! the diff of the `.stderr` files.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
    t.compile_fail("tests/ui/pipeline/*.rs");
}
