//! # evloop
//!
//! An event loop with the shape of Python's asyncio and interchangeable
//! backends. This crate re-exports the loop API ([`loop_api`]) and holds the
//! default policy, so `evloop::run(async { ... })` works with no setup.
//!
//! The backend is chosen, in this order, by:
//! 1. a policy installed with [`set_event_loop_policy`], or a factory given to [`run_with`];
//! 2. the `EVLOOP_BACKEND` environment variable (`mio`, `polling`, `uring`);
//! 3. the built-in default ([`DEFAULT_BACKEND`], io_uring), falling back to
//!    [`FALLBACK_BACKEND`] (epoll through mio) where io_uring cannot run.
//!
//! ```
//! let answer = evloop::run(async {
//!     evloop::sleep(std::time::Duration::from_millis(1)).await;
//!     42
//! })
//! .unwrap();
//! assert_eq!(answer, 42);
//! ```

use std::future::Future;
use std::sync::Arc;

// The user API, re-exported item by item: the backend boundary
// (`loop_driver`) and the pieces backend authors use (`OpFuture`) stay in
// their own crates, out of this crate's docs.
pub use loop_api::{buf, net, pipe, process, signal};
pub mod sync;
pub use loop_api::{
    default_exception_handler, default_pool_size, gather, get_event_loop, get_running_loop,
    run_with, set_event_loop, set_event_loop_policy, sleep, wait_for, yield_now, Error, EventLoop,
    EventLoopPolicy, ExceptionContext, ExceptionHandler, Executor, ExecutorFuture, FactoryPolicy,
    Gather, Handle, Job, LoopHandle, PipeReader, PipeWriter, Result, Sleep, Task, ThreadPool,
    TimerHandle, WaitFor, YieldNow,
};
// Structured concurrency.
pub use loop_api::{
    as_completed, shield, spawn, timeout, timeout_at, wait, AsCompleted, GroupError, Join, Next,
    ReturnWhen, Shield, TaskGroup, Timeout, TimeoutScope, Wait,
};

// Async files and the standard streams (redirected to files too).
pub use loop_api::fs;
pub use loop_api::fs::{stderr, stdin, stdout};

mod default_policy;

pub use default_policy::{
    available_backends, new_event_loop_for, DefaultPolicy, DEFAULT_BACKEND, FALLBACK_BACKEND,
};

/// The environment variable that picks the backend without code changes.
pub const BACKEND_ENV: &str = "EVLOOP_BACKEND";

fn ensure_default_policy() {
    loop_api::install_default_policy(Arc::new(DefaultPolicy));
}

/// The policy in force (the default one unless [`set_event_loop_policy`] installed another).
pub fn get_event_loop_policy() -> Arc<dyn EventLoopPolicy> {
    ensure_default_policy();
    loop_api::get_event_loop_policy()
}

/// A new loop from the policy in force.
pub fn new_event_loop() -> Result<EventLoop> {
    ensure_default_policy();
    loop_api::new_event_loop()
}

/// Runs `fut` on a new loop from the policy in force, cancels leftover
/// tasks, closes the loop, and returns the future's output.
pub fn run<F>(fut: F) -> Result<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    ensure_default_policy();
    loop_api::run(fut)
}
