//! A pipeline stage whose input is not the previous stage's output does not compile, and
//! neither does an error handler that does not take the failure.

#[test]
fn mismatched_stages_do_not_compile() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui-pipeline/*.rs");
}
