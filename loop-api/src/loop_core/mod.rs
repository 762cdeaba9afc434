//! The loop itself: scheduling, the run loop, work from other threads,
//! close, handles, timers, tasks, policies. Below it only `sys` and the
//! boundary (`loop-driver`); the operation layer (`op`) and the I/O objects
//! (`io`) are built on it.

pub(crate) mod awaitables;
mod close;
mod embed;
pub(crate) mod error;
mod event_loop;
pub(crate) mod exception;
pub(crate) mod executor;
pub(crate) mod extensions;
pub(crate) mod handle;
pub(crate) mod loom;
pub(crate) mod policy;
#[cfg(loom)]
pub mod remote;
#[cfg(not(loom))]
pub(crate) mod remote;
mod run;
pub(crate) mod task;
pub(crate) mod task_group;
mod threads;
pub(crate) mod timeouts;
pub(crate) mod timers;
pub(crate) mod wait;

pub use embed::{EmbeddedRun, WaitHook};
pub use error::{Error, Result};
pub use event_loop::EventLoop;
pub(crate) use event_loop::{LoopInner, Ready};
pub use run::get_running_loop;
pub use threads::LoopHandle;
