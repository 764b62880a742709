//! Helpers shared by the integration tests.

#![allow(dead_code, unreachable_pub)]

pub mod proxy;
pub mod soak;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The binary of `examples/<name>.rs`, built now (a no-op when it is current).
///
/// `cargo test` builds examples only when it builds every target (`cargo test --test X` does
/// not), so a test that trusted whatever binary lies in `target/` could run one that predates
/// the sources. This runs `cargo build --example <name>` with the workspace's full feature set,
/// as the README's test command uses, so under that command it finds nothing to rebuild.
///
/// The variables Cargo sets for a running test (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, …) are
/// removed first: some build scripts (ring's) rerun when one of them changes, and with them
/// set, this build and the test command's own would rebuild TLS and sqlx for each other.
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
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let set_for_tests = [
            "CARGO_MANIFEST_DIR",
            "CARGO_MANIFEST_PATH",
            "CARGO_CRATE_NAME",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
            "CARGO_RUSTC_CURRENT_DIR",
        ]
        .contains(&&*key)
            || key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BIN_");
        if set_for_tests {
            cmd.env_remove(&*key);
        }
    }
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
