//! Helpers shared by the integration tests.

#![allow(dead_code, unreachable_pub)]

pub mod soak;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The binary of `examples/<name>.rs`, built now (a no-op when it is current).
///
/// `cargo test` builds examples only when it builds every target (`cargo test --test X` does
/// not), so a test that trusted whatever binary lies in `target/` could run one that predates
/// the sources. This runs `cargo build --example <name>` with the workspace's full feature set,
/// as the README's test command uses, so under that command it finds nothing to rebuild.
pub fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> -> target/<profile>/examples/<name>
    let profile_dir = exe.parent().and_then(Path::parent).expect("target dir");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(&manifest)
        .args(["--workspace", "--all-features", "--example", name]);
    if profile_dir.file_name().is_some_and(|dir| dir == "release") {
        cmd.arg("--release");
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("run cargo build --example {name}: {e}"));
    assert!(status.success(), "building the {name} example failed");
    let bin = profile_dir.join("examples").join(name);
    assert!(bin.exists(), "no {name} binary at {}", bin.display());
    bin
}
