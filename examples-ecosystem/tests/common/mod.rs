//! Helpers shared by the ecosystem crates' integration tests
//! (examples-hyper includes this file by path).
#![allow(dead_code)] // each test crate uses its own subset

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Command;
use std::task::{Context, Poll};

/// Where cargo put the example binaries (built by `cargo test` alongside the tests).
pub fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    profile_dir.join("examples").join(name)
}

/// Runs an example with `EVLOOP_BACKEND=backend`; checks that it succeeded
/// and printed `backend: <backend>` first; returns its stdout.
pub fn run_example(name: &str, backend: &str, args: &[&str]) -> String {
    let path = example_path(name);
    let out = Command::new(&path)
        .args(args)
        .env("EVLOOP_BACKEND", backend)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name} on {backend} failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().next(),
        Some(format!("backend: {backend}").as_str()),
        "{name} must print its backend first:\n{stdout}"
    );
    stdout
}

/// Runs `check` on the output of `name` on every backend.
pub fn on_every_backend(name: &str, args: &[&str], check: impl Fn(&str, &str)) {
    let backends = evloop::available_backends();
    assert!(!backends.is_empty());
    for backend in backends {
        let out = run_example(name, backend, args);
        check(backend, &out);
    }
}

/// The lines of `out` that start with `prefix`.
pub fn lines_with<'a>(out: &'a str, prefix: &str) -> Vec<&'a str> {
    out.lines().filter(|l| l.starts_with(prefix)).collect()
}

/// Runs `f` on a fresh loop of every compiled-in backend.
pub fn on_every_loop<F, Fut>(f: F)
where
    F: Fn(evloop::EventLoop) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    for backend in evloop::available_backends() {
        let lp = evloop::new_event_loop_for(backend).unwrap();
        lp.run_until_complete(f(lp.clone())).unwrap();
        lp.close().unwrap();
    }
}

/// Polls `fut` once and reports whether it was ready.
pub async fn poll_once<F: Future + Unpin>(fut: &mut F) -> bool {
    std::future::poll_fn(|cx: &mut Context<'_>| {
        Poll::Ready(Pin::new(&mut *fut).poll(cx).is_ready())
    })
    .await
}
