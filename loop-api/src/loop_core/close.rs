//! Closing a loop: its subsystems first, then pending callbacks, timers
//! and tasks, then the operations still in the backend (see
//! `crate::op::lifecycle`), then the backend, then the waker.

use std::time::{Duration, Instant};

use super::{Error, EventLoop, Result};
use crate::driver::Cancel;
use crate::op::closed_error;
use crate::op::lifecycle::OpState;

/// How long `close` waits for a completion backend to return orphaned operations.
const ORPHAN_DRAIN: Duration = Duration::from_secs(2);

impl EventLoop {
    /// Closes the loop: drops pending callbacks, timers and tasks without
    /// running them, and releases the backend (its descriptors are closed).
    /// Idempotent; an error on a running loop.
    pub fn close(&self) -> Result<()> {
        if self.inner.running.get() {
            return Err(Error::CloseWhileRunning);
        }
        if self.inner.closed.replace(true) {
            return Ok(());
        }
        let inner = &*self.inner;
        // Kept until the backend is gone: see the end.
        let notifier = inner.shared.remote.close();
        // Subsystems first, while the backend is alive: the default executor
        // is shut down without waiting, signal handlers are removed and
        // their dispositions restored, internal watchers are cancelled.
        inner.extensions.close_all(self);
        // Dropping callbacks and task steps can wake more tasks (whose
        // runnables are then dropped at once, the loop being closed) and
        // cancel operations; keep going until nothing is left. No RefCell is
        // borrowed while anything is dropped.
        loop {
            let ready = std::mem::take(&mut *inner.ready.borrow_mut());
            let early = std::mem::take(&mut *inner.early.borrow_mut());
            let timers = inner.timers.borrow_mut().take_all();
            let mut remote = Vec::new();
            while let Some(item) = inner.shared.remote.pop() {
                remote.push(item);
            }
            let wakers = inner.ops.borrow_mut().take_wakers();
            // Callback operations (watchers, internal readers) will never
            // run: cancel them in the backend (a pending cancel keeps the
            // slot until the final completion).
            let callbacks = self.cancel_in_backend(|state| matches!(state, OpState::Callback(_)));
            let released_wakers = inner.tasks.wake_all_for_close();
            let empty = !released_wakers
                && ready.is_empty()
                && early.is_empty()
                && timers.is_empty()
                && remote.is_empty()
                && wakers.is_empty()
                && callbacks.is_empty();
            drop(ready);
            drop(early);
            drop(timers);
            drop(remote);
            drop(wakers);
            drop(callbacks);
            if empty {
                break;
            }
        }
        // Operations still awaited by futures that outlive this call: ask
        // the backend to drop them; those it forgot end with `Closed`.
        let awaited = inner
            .ops
            .borrow()
            .keys_where(|state| matches!(state, OpState::Waiting(_)));
        for key in awaited {
            let outcome = match inner.driver.borrow_mut().as_mut() {
                Some(driver) => driver.cancel(key.id()),
                None => Cancel::Pending,
            };
            if outcome == Cancel::Forgotten {
                let waker = inner
                    .ops
                    .borrow_mut()
                    .finish_waiting(key, Err(closed_error()));
                drop(waker);
            }
        }
        // A completion backend (io_uring) may still own the memory of
        // orphaned operations and of those just cancelled: let their final
        // completions arrive (bounded), so their results are kept (an
        // orphan's bytes, a connection) and their memory freed.
        let drained = self.drain_backend(ORPHAN_DRAIN);
        // Drop order matters: the driver goes first, because its Drop waits
        // until the kernel no longer references any in-flight operation;
        // only then is the memory kept for orphaned operations freed.
        let driver = inner.driver.borrow_mut().take();
        drop(driver);
        drop(notifier);
        // What is left: if the kernel kept some operation past the bound, we
        // cannot know whether it still writes into its memory, so orphans
        // are leaked, and awaited operations become `Stuck` (their futures
        // never complete and leak their buffers when dropped).
        let (left, _wakers) = inner.ops.borrow_mut().close(drained, closed_error);
        for state in left {
            match state {
                OpState::Orphan(leftovers) if !drained => std::mem::forget(leftovers),
                other => drop(other),
            }
        }
        Ok(())
    }
    /// Asks the backend to cancel every operation whose state satisfies
    /// `which`, and settles its slot; returns what was taken out, for the
    /// caller to drop with no borrow held.
    fn cancel_in_backend(&self, which: impl Fn(&OpState) -> bool) -> Vec<OpState> {
        let inner = &*self.inner;
        let keys = inner.ops.borrow().keys_where(which);
        let mut taken = Vec::new();
        for key in keys {
            let outcome = match inner.driver.borrow_mut().as_mut() {
                Some(driver) => driver.cancel(key.id()),
                None => Cancel::Forgotten,
            };
            taken.extend(inner.ops.borrow_mut().cancel_callback(key, Some(outcome)));
        }
        taken
    }
    /// Runs the driver until the kernel holds no operation of the table
    /// (orphans, awaited operations) or `bound` passes; `true` if none is
    /// left. Readiness backends never leave any (their `cancel` answers
    /// `Forgotten`), so this returns at once there.
    fn drain_backend(&self, bound: Duration) -> bool {
        let inner = &*self.inner;
        let holds = || inner.ops.borrow().kernel_holds_any();
        let deadline = Instant::now() + bound;
        let mut completions = Vec::new();
        while holds() {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let waited = match inner.driver.borrow_mut().as_mut() {
                Some(driver) => driver.wait(Some(deadline - now), &mut completions),
                None => return false,
            };
            for completion in completions.drain(..) {
                inner.deliver(completion);
            }
            if waited.is_err() {
                return !holds();
            }
        }
        true
    }
}
