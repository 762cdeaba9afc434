//! Hooks for embedders: code that drives the loop one iteration at a time
//! from another runtime's own run loop (the Python package `evloop` runs
//! asyncio's `run_forever` over it). Rust programs do not need any of this:
//! `run_forever` and `run_until_complete` are the ways to run a loop.
//!
//! - [`EventLoop::detach`]: the loop keeps nothing in this thread's
//!   thread-locals between runs, so it may be created on one thread and run
//!   on another;
//! - [`EventLoop::enter_embedded`] and [`EmbeddedRun::run_once`]: mark the
//!   loop running on this thread, then run single iterations, each with a
//!   "do not block" flag (asyncio's `_stopping`);
//! - [`EventLoop::set_wait_hook`]: wraps the backend wait when it may block
//!   (a timeout other than zero), and only then (Python releases its global
//!   lock there and nowhere else);
//! - [`EventLoop::abandon_batch`]: a callback ends the current batch after
//!   itself (Python's `KeyboardInterrupt` stops the loop at once; the rest of
//!   the batch stays queued for the next iteration).

use std::fmt;
use std::rc::Rc;

use super::event_loop::LOCAL_LOOPS;
use super::run::RunningGuard;
use super::{EventLoop, Result};

/// Wraps one blocking backend wait: the hook must call its argument exactly
/// once (not calling it skips the wait, as a wake-up would). The argument
/// touches only the backend, never the loop's other state, so the hook may
/// let other threads run meanwhile; it must not call into the loop itself.
pub type WaitHook = Rc<dyn Fn(&mut dyn FnMut())>;

impl EventLoop {
    /// Embedders: takes the loop off this thread's list of loops. From now
    /// on it is on a thread's list only while an [`enter_embedded`]
    /// (or `run_*`) run is in progress on that thread; in between, wakers
    /// and `call_soon_threadsafe` reach it through its remote queue, from
    /// any thread. The caller stays responsible for the loop's `!Send`
    /// state: it must make sure that only one thread at a time touches the
    /// loop (Python's global lock, for the Python package).
    ///
    /// [`enter_embedded`]: EventLoop::enter_embedded
    pub fn detach(&self) {
        if !self.inner.detached.replace(true) {
            self.unregister_local();
        }
    }

    /// Embedders: marks the loop running on this thread until the returned
    /// guard is dropped; [`EmbeddedRun::run_once`] then runs iterations.
    /// Errors as `run_forever`: closed, already running, or another loop
    /// running on this thread.
    pub fn enter_embedded(&self) -> Result<EmbeddedRun> {
        let guard = self.enter()?;
        Ok(EmbeddedRun {
            lp: self.clone(),
            _guard: guard,
        })
    }

    /// Embedders: installs (or with `None` removes) the hook that wraps each
    /// backend wait that may block. See [`WaitHook`].
    pub fn set_wait_hook(&self, hook: Option<WaitHook>) {
        *self.inner.wait_hook.borrow_mut() = hook;
    }

    /// Embedders: called from a callback, ends the current batch of ready
    /// callbacks once that callback returns; the callbacks not yet run stay
    /// queued, first in line for the next iteration. Outside a batch it has
    /// no effect.
    pub fn abandon_batch(&self) {
        self.inner.abandon.set(true);
    }

    pub(super) fn register_local(&self) {
        let id = self.inner.shared.id;
        let weak = self.downgrade();
        let _ = LOCAL_LOOPS.try_with(|loops| {
            let mut loops = loops.borrow_mut();
            if !loops.iter().any(|(lid, _)| *lid == id) {
                loops.push((id, weak));
            }
        });
    }

    pub(super) fn unregister_local(&self) {
        let id = self.inner.shared.id;
        let _ = LOCAL_LOOPS.try_with(|loops| {
            if let Ok(mut loops) = loops.try_borrow_mut() {
                loops.retain(|(lid, _)| *lid != id);
            }
        });
    }
}

/// A run of the loop driven from outside, one iteration at a time (see
/// [`EventLoop::enter_embedded`]). Dropping it ends the run: the loop is no
/// longer running, nor on this thread's list if it is detached.
pub struct EmbeddedRun {
    lp: EventLoop,
    _guard: RunningGuard,
}

impl fmt::Debug for EmbeddedRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedRun").field("loop", &self.lp).finish()
    }
}

impl EmbeddedRun {
    /// Runs one iteration (see `run.rs`): take in remote work, poll the
    /// backend (without waiting if `no_block`, if work is ready or a stop is
    /// pending; else until the earliest timer, through the wait hook), move
    /// due timers, run the batch of ready callbacks.
    pub fn run_once(&self, no_block: bool) -> Result<()> {
        self.lp.run_once_with(no_block)
    }

    /// The loop being run.
    pub fn event_loop(&self) -> &EventLoop {
        &self.lp
    }
}
