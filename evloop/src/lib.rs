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
//!
//! ## Where to start
//!
//! - Running: [`run`], [`EventLoop`] (`call_soon`, `call_later`,
//!   `create_task`, `run_until_complete`, `run_forever`, `stop`, `close`),
//!   [`Task`], [`LoopHandle`] for other threads.
//! - A loop per core: [`LoopGroup`], [`run_per_core`].
//! - Awaiting: [`sleep`], [`wait_for`], [`gather`], [`timeout`],
//!   [`TaskGroup`], [`wait`], [`as_completed`], [`shield`].
//! - I/O: [`net`], [`fs`], [`pipe`], [`process`], [`signal`]; blocking
//!   work with [`EventLoop::run_in_executor`]; [`sync`] for queues and locks.
//! - Coming from tokio or asyncio: [`guide::coming_from`].
//! - Writing a backend: [`backend`] (nothing there is needed to use evloop).
//!
//! ## Cargo features
//!
//! Each feature compiles in one backend; all three are on by default. The
//! loop API is the same whatever is compiled in; only the names accepted by
//! [`new_event_loop_for`] and `EVLOOP_BACKEND` change (a backend that is not
//! compiled in is [`Error::BackendUnavailable`], "not compiled in").
//!
//! | feature | default | backend name | what it pulls in |
//! |---|---|---|---|
//! | `backend-mio` | yes | `mio` | the `backend-mio` crate: [mio](https://docs.rs/mio) (edge-triggered epoll) and `backend-readiness` (completion emulated on readiness) |
//! | `backend-polling` | yes | `polling` | the `backend-polling` crate: [polling](https://docs.rs/polling) (level-triggered epoll) and `backend-readiness` |
//! | `backend-uring` | yes | `uring` | the `backend-uring` crate: [io-uring](https://docs.rs/io-uring) (the kernel interface in Rust, no liburing), `libc`, `socket2` |
//!
//! [`DEFAULT_BACKEND`] (`uring`) falls back to [`FALLBACK_BACKEND`] (`mio`)
//! where io_uring cannot run, and also when `backend-uring` is not compiled
//! in. To build with one backend only:
//!
//! ```toml
//! [dependencies]
//! evloop = { version = "0.1", default-features = false, features = ["backend-mio"] }
//! ```
//!
//! With no backend feature at all the crate still builds, but every loop
//! the default policy makes is [`Error::BackendUnavailable`]; install a
//! policy of your own ([`set_event_loop_policy`]) over a backend from
//! another crate.

use std::future::Future;
use std::sync::Arc;

// The user API, re-exported item by item: the backend boundary
// (`loop_driver`) and the pieces backend authors use (`OpFuture`,
// `EventLoop::from_driver`) are in `backend`, out of the root.
pub use loop_api::{buf, net, pipe, process, signal};
pub mod backend;
pub mod guide;
pub mod sync;
pub use loop_api::{
    default_exception_handler, default_pool_size, gather, get_event_loop, run_with, set_event_loop,
    set_event_loop_policy, sleep, wait_for, yield_now, Error, EventLoopPolicy, ExceptionContext,
    ExceptionHandler, Executor, ExecutorFuture, FactoryPolicy, Gather, Handle, Job, PipeReader,
    PipeWriter, Result, Sleep, Task, ThreadPool, TimerHandle, WaitFor, YieldNow,
};

/// The loop, driven by hand as in asyncio (most programs only need
/// [`run`]):
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
///
/// let lp = evloop::new_event_loop()?; // the policy's backend
/// let log = Rc::new(RefCell::new(Vec::new()));
/// let l = log.clone();
/// lp.call_soon(move || l.borrow_mut().push("callback"))?;
/// let l = log.clone();
/// let task = lp.create_task(async move {
///     l.borrow_mut().push("task");
///     6 * 7
/// })?;
/// // Runs callbacks and tasks until the task is done; the outer Result
/// // is the loop's, the inner one the task's.
/// assert_eq!(lp.run_until_complete(task)??, 42);
/// assert_eq!(*log.borrow(), ["callback", "task"]); // FIFO, like asyncio
/// lp.close()?;
/// # Ok::<_, evloop::Error>(())
/// ```
#[doc(inline)]
pub use loop_api::EventLoop;

/// ```
/// use std::sync::mpsc;
/// let lp = evloop::new_event_loop().unwrap();
/// let handle = lp.handle(); // Send + Sync: give it to other threads
/// let (tx, rx) = mpsc::channel();
/// let worker = std::thread::spawn(move || {
///     // Runs `f` on the loop thread (asyncio's call_soon_threadsafe) ...
///     handle
///         .call_soon_threadsafe(move || tx.send(std::thread::current().id()).unwrap())
///         .unwrap();
///     handle.stop().unwrap(); // ... and stops the loop once the queue is done.
/// });
/// lp.run_forever().unwrap();
/// worker.join().unwrap();
/// assert_eq!(rx.recv().unwrap(), std::thread::current().id());
/// lp.close().unwrap();
/// ```
#[doc(inline)]
pub use loop_api::LoopHandle;

/// ```
/// // Inside a task, the loop that runs it (asyncio.get_running_loop()):
/// let name = evloop::run(async {
///     let lp = evloop::get_running_loop().unwrap();
///     lp.backend_name()
/// })
/// .unwrap();
/// assert!(evloop::available_backends().contains(&name));
/// // Outside one, a typed error:
/// assert!(matches!(evloop::get_running_loop(), Err(evloop::Error::NoRunningLoop)));
/// ```
#[doc(inline)]
pub use loop_api::get_running_loop;
// Structured concurrency.
pub use loop_api::{
    as_completed, shield, spawn, timeout, timeout_at, wait, AsCompleted, GroupError, Join, Next,
    ReturnWhen, Shield, TaskGroup, Timeout, TimeoutScope, Wait,
};

// Async files and the standard streams (redirected to files too).
pub use loop_api::fs;
pub use loop_api::fs::{stderr, stdin, stdout};

mod default_policy;
mod group;

pub use group::{
    run_per_core, LoopGroup, LoopGroupBuilder, LoopGroupError, RemoteTask, SHUTDOWN_TIMEOUT,
};

pub use default_policy::{
    available_backends, new_event_loop_for, DefaultPolicy, DEFAULT_BACKEND, FALLBACK_BACKEND,
};

/// The environment variable that picks the backend without code changes.
pub const BACKEND_ENV: &str = "EVLOOP_BACKEND";

fn ensure_default_policy() {
    loop_api::install_default_policy(Arc::new(DefaultPolicy));
}

/// The policy in force (the default one unless [`set_event_loop_policy`] installed another).
///
/// ```
/// // With EVLOOP_BACKEND unset, the default policy names the default backend.
/// let name = evloop::get_event_loop_policy().name();
/// assert!(name.starts_with("default("), "{name}");
/// ```
pub fn get_event_loop_policy() -> Arc<dyn EventLoopPolicy> {
    ensure_default_policy();
    loop_api::get_event_loop_policy()
}

/// A new loop from the policy in force (asyncio's `new_event_loop`): you
/// run it, and close it when done.
///
/// ```
/// let lp = evloop::new_event_loop().unwrap();
/// let task = lp.create_task(async { 6 * 7 }).unwrap();
/// assert_eq!(lp.run_until_complete(task).unwrap().unwrap(), 42);
/// lp.close().unwrap();
/// ```
pub fn new_event_loop() -> Result<EventLoop> {
    ensure_default_policy();
    loop_api::new_event_loop()
}

/// Runs `fut` on a new loop from the policy in force, cancels leftover
/// tasks, closes the loop, and returns the future's output (asyncio's
/// `asyncio.run(main())`, tokio's `block_on`).
///
/// The outer `Result` is the loop's ([`Error::Closed`],
/// [`Error::AnotherLoopRunning`] when called from inside a running loop,
/// [`Error::BackendUnavailable`]); the future's own output comes inside it.
///
/// ```
/// async fn main_task() -> std::io::Result<u32> {
///     evloop::sleep(std::time::Duration::from_millis(1)).await;
///     Ok(7)
/// }
/// let out: std::io::Result<u32> = evloop::run(main_task()).unwrap();
/// assert_eq!(out.unwrap(), 7);
/// ```
pub fn run<F>(fut: F) -> Result<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    ensure_default_policy();
    loop_api::run(fut)
}
