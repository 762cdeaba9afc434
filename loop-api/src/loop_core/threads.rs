//! What other threads touch: the remote queue behind
//! `call_soon_threadsafe` and `stop` (its wake-up protocol is
//! `remote.rs`), the task scheduler a waker on any thread calls, and
//! [`LoopHandle`].

use std::fmt;
use std::sync::Arc;

use async_task::Runnable;

use super::event_loop::{LoopInner, Ready, LOCAL_LOOPS, RUNNING};
use super::remote::RemoteQueue;
use super::{Error, Result};

/// Work sent from another thread.
pub(crate) enum Remote {
    Callback(Box<dyn FnOnce() + Send>),
    Task(Runnable),
    Stop,
}

/// The part of a loop other threads may touch.
pub(crate) struct CrossThread {
    pub(super) id: u64,
    /// Work from other threads, and the wake-up protocol (see remote.rs).
    pub(super) remote: RemoteQueue<Remote>,
}

impl CrossThread {
    /// The task scheduler: runs on whatever thread wakes the task.
    pub(crate) fn schedule(&self, runnable: Runnable) {
        let mut slot = Some(runnable);
        // The common case first: woken on the thread that is running this
        // very loop (an I/O completion, a task waking another). The running
        // loop is at hand there, with no search of this thread's loops and
        // no reference count to take (measured: ~35 instructions per wake).
        let _ = RUNNING.try_with(|running| {
            if let Ok(running) = running.try_borrow() {
                if let Some(lp) = running.as_ref().filter(|lp| lp.inner.shared.id == self.id) {
                    if let Some(r) = slot.take() {
                        lp.inner.schedule_local(r);
                    }
                }
            }
        });
        if slot.is_none() {
            return;
        }
        if with_local_loop(self.id, |inner| {
            if let Some(r) = slot.take() {
                inner.schedule_local(r)
            }
        })
        .is_some()
        {
            return;
        }
        let Some(runnable) = slot else { return };
        if let Err(Remote::Task(runnable)) = self.remote.push(Remote::Task(runnable)) {
            // The loop is closed and we are not on its thread: dropping the
            // runnable here would drop a `!Send` future on the wrong thread,
            // so the task's memory is leaked instead.
            std::mem::forget(runnable);
        }
    }
}

pub(crate) fn with_local_loop<R>(id: u64, f: impl FnOnce(&LoopInner) -> R) -> Option<R> {
    let inner = LOCAL_LOOPS
        .try_with(|loops| {
            loops
                .borrow()
                .iter()
                .find(|(lid, _)| *lid == id)
                .and_then(|(_, weak)| weak.upgrade())
        })
        .ok()
        .flatten()?;
    Some(f(&inner))
}

/// A `Send + Sync` reference to a loop, for other threads.
#[derive(Clone)]
pub struct LoopHandle {
    pub(super) shared: Arc<CrossThread>,
}

impl fmt::Debug for LoopHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopHandle")
            .field("id", &self.shared.id)
            .finish()
    }
}

impl LoopHandle {
    /// Schedules `f` on the loop from any thread and wakes the loop if it is
    /// blocked. On the loop's own thread it joins the same FIFO as `call_soon`.
    /// Fails with [`Error::Closed`] once the loop is closed.
    ///
    /// From another thread, `f` joins that FIFO when the loop takes it in
    /// (at the start of an iteration). The calls of one thread keep their
    /// order, but nothing orders them against `call_soon` on the loop's
    /// thread: `f` may run after a callback that `call_soon` scheduled
    /// later, even if this call happened before that `call_soon` (say,
    /// through a channel the loop thread waited on). asyncio promises no
    /// more.
    pub fn call_soon_threadsafe<F: FnOnce() + Send + 'static>(&self, f: F) -> Result<()> {
        let mut f = Some(f);
        if let Some(result) = with_local_loop(self.shared.id, |inner| {
            if inner.closed.get() {
                return Err(Error::Closed);
            }
            let f = f.take().expect("closure present");
            inner.ready.borrow_mut().push_back(Ready::Bare(Box::new(f)));
            Ok(())
        }) {
            return result;
        }
        let f = f.take().expect("closure present");
        self.shared
            .remote
            .push(Remote::Callback(Box::new(f)))
            .map_err(|_| Error::Closed)
    }

    /// Stops the loop from any thread, waking it if it is blocked.
    pub fn stop(&self) -> Result<()> {
        self.shared
            .remote
            .push(Remote::Stop)
            .map_err(|_| Error::Closed)
    }

    /// `true` once the loop is closed.
    pub fn is_closed(&self) -> bool {
        self.shared.remote.is_closed()
    }
}
