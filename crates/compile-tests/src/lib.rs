//! Skiff's compile-time tests: what `#[skiff::task]` and typed pipelines accept, and the errors
//! they give for what they refuse. The cases are in `tests/ui` (`pass`, `fail`, `pipeline`), the
//! runner in `tests/compile.rs`; this library is empty.
