//! Throughput harness (being built).

fn main() {}
