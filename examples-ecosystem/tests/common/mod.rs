//! Helpers shared by the ecosystem crates' integration tests
//! (examples-hyper includes this file by path).
#![allow(dead_code)] // each test crate uses its own subset

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Locating and running example binaries: one helper for every crate's tests.
#[path = "../../../evloop/tests/common/mod.rs"]
mod runner;

/// Runs an example with `EVLOOP_BACKEND=backend`; checks that it succeeded
/// and printed `backend: <backend>` first; returns its stdout.
pub fn run_example(name: &str, backend: &str, args: &[&str]) -> String {
    let stdout = runner::run_example(name, backend, args);
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
