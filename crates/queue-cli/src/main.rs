//! `skiff`: the admin command for any Skiff store (SQLite or Redis), without the task code.
//!
//! ```text
//! skiff --url sqlite://skiff.db stats
//! SKIFF_URL=redis://127.0.0.1/0 skiff pending --limit 50
//! skiff --url postgres://app@db.internal/app?schema=jobs dead list
//! skiff --json dead list
//! skiff dead requeue --all --yes
//! skiff dead discard 0190a1b2-… 0190a1b3-… --yes
//! ```
//!
//! Every command prints an aligned table, or with `--json` one JSON document (an array for
//! listings). Errors are one line on stderr and exit code 1 (2 for a usage error, or a
//! command that changes many things at once or deletes dead tasks — `flush`, `purge`, `dead
//! purge`, `dead requeue --all`, `dead discard` — run without `--yes` and not confirmed on a
//! terminal); passwords in URLs are never printed.

mod cli;
mod commands;
mod control;
mod output;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::cli::Cli;
use crate::output::CliError;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let url = cli.url.clone().unwrap_or_default();
    // Asked before anything connects: a refusal changes nothing.
    if let Some(what) = cli.unconfirmed(&skiff::redact(&url)) {
        if let Err(err) = output::confirm(&what) {
            return fail(&url, &err);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return fail(&url, &CliError::new(format!("cannot start: {err}"))),
    };
    // `--timeout inf` (or 1e300) waits as long as any wait may; at least 1 s (0, negative
    // and NaN included), so that no store can be expected to answer quicker than a busy machine.
    let timeout = Duration::try_from_secs_f64(cli.timeout.max(1.0))
        .map_or(skiff::clock::MAX_WAIT, |t| t.min(skiff::clock::MAX_WAIT));
    let json = cli.json;
    let result = runtime.block_on(async {
        match tokio::time::timeout(timeout, commands::execute(cli)).await {
            Ok(result) => result,
            Err(_) => Err(CliError::new(format!(
                "the store did not answer within {timeout:?} (is it reachable? raise --timeout for big stores)"
            ))),
        }
    });
    // Close pools and background tasks without waiting for idle connections.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(report) => {
            let text = if json {
                report.json_text()
            } else {
                report.human_text()
            };
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(err) => fail(&url, &err),
    }
}

/// Prints `skiff: error: …` as one line, with the URL's password hidden, and returns the
/// error's exit code.
fn fail(url: &str, err: &CliError) -> ExitCode {
    eprintln!("skiff: error: {}", output::scrub(url, &err.to_string()));
    ExitCode::from(err.code)
}
