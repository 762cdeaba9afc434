//! Running example binaries from integration tests.

#![allow(dead_code)] // each test crate uses its own subset

use std::path::PathBuf;
use std::process::{Command, Output};

/// Where cargo put the example binaries (built by `cargo test` alongside the tests).
pub fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    profile_dir.join("examples").join(name)
}

/// Asserts the example succeeded and named `backend`; returns its stdout.
pub fn check(name: &str, backend: &str, out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name} on {backend} failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("backend: {backend}")), "{stdout}");
    stdout
}

/// Runs an example with `EVLOOP_BACKEND=backend` and returns its stdout.
pub fn run_example(name: &str, backend: &str, args: &[&str]) -> String {
    let path = example_path(name);
    let out = Command::new(&path)
        .args(args)
        .env("EVLOOP_BACKEND", backend)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    check(name, backend, out)
}
