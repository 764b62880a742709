//! Criterion micro-benchmarks (being built).

fn main() {}
