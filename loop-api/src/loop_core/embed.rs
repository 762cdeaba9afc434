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
        f.debug_struct("EmbeddedRun")
            .field("loop", &self.lp)
            .finish()
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

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::io;
    use std::os::fd::RawFd;
    use std::rc::Rc;
    use std::sync::Arc;
    use std::task::Poll;
    use std::time::Duration;

    use super::*;
    use crate::driver::{Cancel, Completion, Driver, Notify, Op, OpId, OpOutput};

    struct NoNotify;
    impl Notify for NoNotify {
        fn notify(&self) {}
    }

    /// Completes nothing; records each wait's timeout and sleeps it (capped).
    struct Sleeper(Rc<RefCell<Vec<Option<Duration>>>>);

    impl Driver for Sleeper {
        fn name(&self) -> &'static str {
            "sleeper"
        }
        unsafe fn submit(&mut self, _id: OpId, _op: Op) -> Poll<io::Result<OpOutput>> {
            Poll::Pending
        }
        fn cancel(&mut self, _id: OpId) -> Cancel {
            Cancel::Forgotten
        }
        fn release_fd(&mut self, _fd: RawFd) {}
        fn wait(&mut self, timeout: Option<Duration>, _: &mut Vec<Completion>) -> io::Result<()> {
            self.0.borrow_mut().push(timeout);
            std::thread::sleep(
                timeout
                    .unwrap_or(Duration::ZERO)
                    .min(Duration::from_millis(50)),
            );
            Ok(())
        }
        fn notifier(&self) -> Arc<dyn Notify> {
            Arc::new(NoNotify)
        }
    }

    fn new_loop() -> (EventLoop, Rc<RefCell<Vec<Option<Duration>>>>) {
        let waits = Rc::new(RefCell::new(Vec::new()));
        (
            EventLoop::from_driver(Box::new(Sleeper(waits.clone()))),
            waits,
        )
    }

    fn on_local_list(lp: &EventLoop) -> bool {
        let id = lp.inner.shared.id;
        LOCAL_LOOPS.with(|l| l.borrow().iter().any(|(lid, _)| *lid == id))
    }

    #[test]
    fn wait_hook_wraps_only_blocking_waits() {
        let (lp, waits) = new_loop();
        let hooked = Rc::new(Cell::new(0));
        let h = hooked.clone();
        lp.set_wait_hook(Some(Rc::new(move |wait: &mut dyn FnMut()| {
            h.set(h.get() + 1);
            wait();
        })));
        let run = lp.enter_embedded().unwrap();
        // Ready work: the poll does not block, the hook is not called.
        lp.call_soon(|| {}).unwrap();
        run.run_once(false).unwrap();
        // No block requested: the same.
        lp.call_later(Duration::from_millis(20), || {}).unwrap();
        run.run_once(true).unwrap();
        assert_eq!(hooked.get(), 0);
        // Idle until a timer: the hook wraps the wait, which still happens.
        run.run_once(false).unwrap();
        assert_eq!(hooked.get(), 1);
        let last = *waits.borrow().last().unwrap();
        assert!(last.is_some_and(|t| t > Duration::ZERO));
        drop(run);
        lp.close().unwrap();
    }

    #[test]
    fn abandoned_batch_keeps_the_rest_queued() {
        let (lp, _) = new_loop();
        let out = Rc::new(RefCell::new(Vec::new()));
        for i in 0..3 {
            let (o, l) = (out.clone(), lp.clone());
            lp.call_soon(move || {
                o.borrow_mut().push(i);
                if i == 1 {
                    l.abandon_batch();
                }
            })
            .unwrap();
        }
        let run = lp.enter_embedded().unwrap();
        run.run_once(true).unwrap();
        assert_eq!(*out.borrow(), [0, 1]);
        run.run_once(true).unwrap();
        assert_eq!(*out.borrow(), [0, 1, 2]);
        drop(run);
        lp.close().unwrap();
    }

    #[test]
    fn detached_loop_is_on_the_thread_list_only_while_entered() {
        let (lp, _) = new_loop();
        assert!(on_local_list(&lp));
        lp.detach();
        assert!(!on_local_list(&lp));
        let run = lp.enter_embedded().unwrap();
        assert!(on_local_list(&lp) && lp.is_running());
        assert!(lp.enter_embedded().is_err());
        drop(run);
        assert!(!on_local_list(&lp) && !lp.is_running());
        // Work from "another thread" (the remote queue) still arrives.
        lp.handle().call_soon_threadsafe(|| {}).unwrap();
        let hit = Rc::new(Cell::new(false));
        let h = hit.clone();
        lp.call_soon(move || h.set(true)).unwrap();
        lp.enter_embedded().unwrap().run_once(true).unwrap();
        assert!(hit.get());
        lp.close().unwrap();
    }
}
