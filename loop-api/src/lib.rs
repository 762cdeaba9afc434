//! # loop-api
//!
//! The backend-independent core of evloop: an event loop with the shape of
//! Python's asyncio (`call_soon`, `call_later`, `create_task`,
//! `run_until_complete`, `run_forever`, `stop`, `close`, ...), the scheduler
//! behind it, over the `loop_driver::Driver` boundary that backends implement.
//!
//! Users normally depend on the `evloop` crate, which re-exports this API and
//! picks a backend. Backend authors implement `loop_driver::Driver` (a
//! completion-style interface) or, for a readiness mechanism, only a
//! `backend_readiness::Selector`, build a loop with
//! [`EventLoop::from_driver`], and run the `conformance-tests` suite.
//!
//! Beyond the core loop, built only on backend operations so they work on
//! every backend:
//! - [`EventLoop::run_in_executor`]: blocking work on a thread pool ([`Executor`]);
//! - [`EventLoop::add_signal_handler`]: Unix signals on the loop thread ([`signal`]);
//! - [`process`]: child processes with async pipes, `wait`, signals, `communicate`;
//! - [`pipe`]: pipes, FIFOs and PTY masters as async streams;
//! - [`net`]: TCP, UDP and Unix sockets, [`EventLoop::create_server`] and
//!   [`EventLoop::create_connection`], `sock_*` operations on the user's own
//!   sockets, and readiness callbacks ([`EventLoop::add_reader`]).

// The layers, bottom up (see ARCHITECTURE.md): `sys` (syscall helpers),
// `loop_core` (the loop, its run loop, remote queue, close, handles, timers,
// tasks, policy), `op` (one operation's life in the backend), `io` (the
// objects users do I/O with). Dependencies point down, and the boundary
// itself is the `loop-driver` crate.
mod io;
mod loop_core;
mod op;
mod sys;
// asyncio's synchronization primitives (h-sync): loop-local, need only wakers.
pub mod sync;

// The boundary lives in its own crate; inside loop-api it is `crate::driver`.
use loop_driver as driver;
// The user's view of owned buffers: the driver's buffer traits, and a
// `BufResult` carrying `crate::Error` (the driver's carries `io::Error`).
pub mod buf;

pub use io::{net, pipe, process, signal};
#[cfg(loom)]
#[doc(hidden)]
pub use loop_core::remote;

pub use io::pipe::{PipeReader, PipeWriter};
pub use loop_core::awaitables::{
    gather, sleep, wait_for, yield_now, Gather, Sleep, WaitFor, YieldNow,
};
pub use loop_core::error::{Error, Result};
pub use loop_core::exception::{default_exception_handler, ExceptionContext, ExceptionHandler};
pub use loop_core::executor::{default_pool_size, Executor, ExecutorFuture, Job, ThreadPool};
pub use loop_core::handle::{Handle, TimerHandle};
pub use loop_core::policy::{
    get_event_loop, get_event_loop_policy, install_default_policy, new_event_loop, run, run_with,
    set_event_loop, set_event_loop_policy, EventLoopPolicy, FactoryPolicy,
};
pub use loop_core::task::Task;
pub use loop_core::{get_running_loop, EmbeddedRun, EventLoop, LoopHandle, WaitHook};
/// For backend authors and their tests: awaiting one raw operation.
pub use op::OpFuture;

// Async files: io_uring operations, or the executor (io/fs/).
pub use io::fs;
// Structured concurrency: task groups, timeout scopes, wait, shield, spawn.
pub use loop_core::task_group::{GroupError, Join, TaskGroup};
pub use loop_core::timeouts::{timeout, timeout_at, Timeout, TimeoutScope};
pub use loop_core::wait::{
    as_completed, shield, spawn, wait, AsCompleted, Next, ReturnWhen, Shield, Wait,
};
