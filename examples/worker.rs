//! A stand-alone Skiff worker: the tasks are compiled in, `skiff::worker::main` does the rest
//! (Huey's consumer flags, logging, SIGTERM/SIGINT for a graceful stop).
//!
//! ```text
//! cargo run --example worker -- --url sqlite://skiff-web.db -w 16
//! SKIFF_URL=redis://127.0.0.1:6379/0 cargo run --features redis --example worker -- -v
//! SKIFF_URL=postgres://app@localhost/app cargo run --features postgres --example worker
//! cargo run --example worker -- --help
//! ```
//!
//! It runs the tasks of `examples/web.rs`, so a web process can enqueue and any number of these
//! workers can run them.

#[path = "shared/tasks.rs"]
mod tasks;

fn main() -> std::process::ExitCode {
    skiff::worker::main(tasks::registry())
}
