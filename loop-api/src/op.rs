//! Awaiting one backend operation: [`OpFuture`].
//!
//! The future owns whatever memory the operation points into (`keep`). If it
//! is dropped while the backend still owns the operation, it asks the
//! backend to cancel; when the backend answers [`Cancel::Pending`] (io_uring)
//! the memory moves into the loop's slot table and is freed only when the
//! final completion arrives. An accept that completes after its future was
//! dropped has its new descriptor closed there.

use std::any::Any;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use crate::driver::{Cancel, Op, OpId, OpOutput};
use crate::event_loop::{EventLoop, LoopInner, OpSlot};

/// An in-flight (or not yet submitted) operation, with the memory it uses.
pub struct OpFuture<K: 'static> {
    lp: EventLoop,
    op: Option<Op>,
    id: Option<OpId>,
    keep: Option<K>,
    closes_fd: bool,
}

impl<K: 'static> std::fmt::Debug for OpFuture<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpFuture")
            .field("op", &self.op)
            .field("id", &self.id)
            .finish()
    }
}

impl<K: 'static> Unpin for OpFuture<K> {}

impl<K: 'static> OpFuture<K> {
    /// Prepares `op`, which points only into memory owned by `keep` (or into
    /// no memory at all), for submission on `lp` when first polled.
    ///
    /// # Safety
    /// Every pointer inside `op` must point into heap memory owned by `keep`
    /// that stays valid and in place while `keep` is alive, whether or not
    /// `keep` itself is moved (a `Vec`'s buffer, a `Box`), and nothing else
    /// may access that memory while the operation runs. The descriptor in
    /// `op` must stay open until the future completes or is dropped.
    pub unsafe fn new(lp: &EventLoop, op: Op, keep: K) -> Self {
        let closes_fd = matches!(op, Op::Accept { .. });
        OpFuture {
            lp: lp.clone(),
            op: Some(op),
            id: None,
            keep: Some(keep),
            closes_fd,
        }
    }
}

fn closed_error() -> io::Error {
    io::Error::other(crate::Error::Closed)
}

/// How [`LoopInner::start_op`] left an operation.
pub(crate) enum Started {
    /// It finished at submission (or the loop is closed): its result. The
    /// backend keeps nothing of it.
    Done(io::Result<OpOutput>),
    /// It is in the backend under this id. No waker is registered yet: the
    /// caller records the id (so that dropping it cancels the operation)
    /// and then registers one with [`LoopInner::poll_op`].
    Pending(OpId),
}

/// The loop side of one awaited operation, shared by [`OpFuture`] and the
/// hand-written socket futures (`net::ops`): start it, poll its slot,
/// abandon it when its future is dropped.
impl LoopInner {
    /// Submits `op`; if it does not finish at once, its completion is
    /// collected by [`poll_op`](Self::poll_op), which also registers the
    /// waker. Nothing here can panic between the submission and the slot
    /// being taken (no waker is cloned, the key is reserved), so a caller
    /// that records the returned id before anything else always cancels
    /// the operation when dropped.
    ///
    /// # Safety
    /// As for [`OpFuture::new`]: every pointer in `op` must stay valid (and
    /// a receive buffer untouched by anyone else), and its descriptor open,
    /// until `poll_op` returned `Ready` for the id, or until
    /// [`abandon_op`](Self::abandon_op) released it (taking the memory
    /// into an orphan slot when the backend still owns it).
    pub(crate) unsafe fn start_op(&self, op: Op) -> Started {
        let mut driver = self.driver.borrow_mut();
        let Some(driver) = driver.as_mut() else {
            return Started::Done(Err(closed_error()));
        };
        // The slot is filled only if the operation stays pending: the
        // backend keeps nothing of one that finishes at once. The vacant
        // entry holds the table (the driver cannot reach it) until then.
        let mut ops = self.ops.borrow_mut();
        let slot = ops.vacant_entry();
        let id = slot.key();
        // SAFETY: the caller's contract covers the pointers and the
        // descriptor; `id` is free in the slot table, so no other pending
        // operation uses it.
        match unsafe { driver.submit(id, op) } {
            Poll::Ready(result) => Started::Done(result),
            Poll::Pending => {
                slot.insert(OpSlot::Waiting(None));
                Started::Pending(id)
            }
        }
    }

    /// The result of the pending operation `id` once it arrived (its slot
    /// is then freed), else registers `cx`'s waker. An error if the loop
    /// was closed meanwhile.
    pub(crate) fn poll_op(&self, id: OpId, cx: &Context<'_>) -> Poll<io::Result<OpOutput>> {
        let mut ops = self.ops.borrow_mut();
        match ops.get_mut(id) {
            Some(OpSlot::Waiting(waker)) => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            Some(OpSlot::Done(_)) => {
                let OpSlot::Done(result) = ops.remove(id) else {
                    unreachable!("slot kind checked above")
                };
                Poll::Ready(result)
            }
            // The loop was closed under us: the slot table is gone.
            _ => Poll::Ready(Err(closed_error())),
        }
    }

    /// The future awaiting the pending operation `id` is gone: cancels the
    /// operation. If the backend still owns it, `keep()` (its memory and
    /// whatever keeps its descriptor open) moves into the slot, freed with
    /// the final completion. A completed accept's new descriptor is closed
    /// when `closes_fd`.
    pub(crate) fn abandon_op(
        &self,
        id: OpId,
        closes_fd: bool,
        keep: impl FnOnce() -> Option<Box<dyn Any>>,
    ) {
        let outcome = match self.driver.borrow_mut().as_mut() {
            Some(driver) => driver.cancel(id),
            // The driver is gone: its Drop waited for the kernel to let go.
            None => Cancel::Done,
        };
        let mut ops = self.ops.borrow_mut();
        match (outcome, ops.get(id)) {
            (_, Some(OpSlot::Done(_))) => {
                // Completed but never collected: release what it produced.
                // (an accepted descriptor is closed with its output)
                let _ = closes_fd;
                drop(ops.remove(id));
            }
            (Cancel::Done, Some(_)) => {
                ops.remove(id);
            }
            (Cancel::Pending, Some(_)) => {
                ops[id] = OpSlot::Orphan {
                    keepalive: keep(),
                    closes_fd,
                };
            }
            (_, None) => {}
        }
    }
}

impl<K: 'static> Future for OpFuture<K> {
    type Output = (io::Result<OpOutput>, K);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let inner = &this.lp.inner;
        let result = if let Some(op) = this.op.take() {
            // SAFETY: `OpFuture::new`'s contract makes every pointer in `op`
            // refer to memory owned by `self.keep`; that memory is freed only
            // after the result was collected here, or by `abandon_op` (see
            // Drop), which keeps it in an orphan slot while the backend
            // still owns the operation.
            match unsafe { inner.start_op(op) } {
                Started::Done(result) => result,
                Started::Pending(id) => {
                    this.id = Some(id);
                    // Registers the waker (the result cannot be there yet).
                    let result = ready!(inner.poll_op(id, cx));
                    this.id = None;
                    result
                }
            }
        } else if let Some(id) = this.id {
            let result = ready!(inner.poll_op(id, cx));
            this.id = None;
            result
        } else {
            Err(closed_error())
        };
        Poll::Ready((result, this.keep.take().expect("kept")))
    }
}

impl<K: 'static> Drop for OpFuture<K> {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        let keep = &mut self.keep;
        self.lp.inner.abandon_op(id, self.closes_fd, || {
            keep.take().map(|k| Box::new(k) as Box<dyn Any>)
        });
    }
}

/// A callback-driven operation started with [`EventLoop::submit_with_callback`].
#[derive(Debug)]
pub enum CallbackOp {
    /// Still in the backend.
    Pending(OpId),
    /// Finished at submission; its callback is queued to run.
    Queued(crate::Handle),
}

impl EventLoop {
    /// Starts `op` and arranges for `callback` to receive its result on a
    /// later iteration (never inline). Used for readiness watchers and the
    /// loop's internal readers; [`EventLoop::cancel_op`] undoes it.
    ///
    /// # Safety
    /// `op` must not point into any memory (readiness polls and closes only),
    /// and its descriptor must stay open until the callback ran or
    /// `cancel_op` returned.
    pub unsafe fn submit_with_callback(
        &self,
        op: Op,
        callback: Box<dyn FnOnce(io::Result<OpOutput>)>,
    ) -> crate::Result<CallbackOp> {
        let inner = &self.inner;
        let mut guard = inner.driver.borrow_mut();
        let driver = guard.as_mut().ok_or(crate::Error::Closed)?;
        let id = inner.ops.borrow_mut().insert(OpSlot::Waiting(None));
        // SAFETY: the caller guarantees `op` holds no pointers and its
        // descriptor stays open; `id` is fresh.
        let submitted = unsafe { driver.submit(id, op) };
        drop(guard);
        match submitted {
            Poll::Ready(result) => {
                inner.ops.borrow_mut().remove(id);
                let handle = self.call_soon(move || callback(result))?;
                Ok(CallbackOp::Queued(handle))
            }
            Poll::Pending => {
                inner.ops.borrow_mut()[id] = OpSlot::Callback(callback);
                Ok(CallbackOp::Pending(id))
            }
        }
    }

    /// Cancels an operation started with [`submit_with_callback`](Self::submit_with_callback);
    /// its callback will not run. Returns `true` if it had not run yet.
    pub fn cancel_op(&self, op: &CallbackOp) -> bool {
        let id = match op {
            CallbackOp::Queued(handle) => {
                let pending = !handle.cancelled() && !handle.has_run();
                handle.cancel();
                return pending;
            }
            CallbackOp::Pending(id) => *id,
        };
        let inner = &self.inner;
        if !matches!(inner.ops.borrow().get(id), Some(OpSlot::Callback(_))) {
            return false;
        }
        let outcome = match inner.driver.borrow_mut().as_mut() {
            Some(driver) => driver.cancel(id),
            None => Cancel::Done,
        };
        let slot = if outcome == Cancel::Pending {
            // Keep the id reserved until the kernel reports the final completion.
            let orphan = OpSlot::Orphan {
                keepalive: None,
                closes_fd: false,
            };
            std::mem::replace(&mut inner.ops.borrow_mut()[id], orphan)
        } else {
            inner.ops.borrow_mut().remove(id)
        };
        drop(slot);
        true
    }
}
