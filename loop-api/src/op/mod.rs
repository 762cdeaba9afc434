//! Awaiting one backend operation: [`OpFuture`], and the loop-side steps
//! every operation future is built from (`start_op`, `poll_op`,
//! `abandon_op`).
//!
//! The future owns whatever memory the operation points into (`keep`). If it
//! is dropped while the backend still owns the operation, it asks the
//! backend to cancel; when the backend answers [`Cancel::Pending`] (io_uring)
//! the memory moves into the loop's table ([`lifecycle`]) and is freed only
//! when the final completion arrives. What a cancelled receive took is kept
//! for the next receive ([`salvage`]).

pub(crate) mod buf_op;
pub(crate) mod lifecycle;
pub(crate) mod salvage;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll, Waker};

use crate::driver::{Cancel, Completion, Op, OpOutput};
use crate::loop_core::handle::{Callback, CallbackCell, Handle};
use crate::loop_core::Ready;
use crate::loop_core::{EventLoop, LoopInner};
use lifecycle::{Abandon, Delivered, OpKey, OpState};
use salvage::{Abandoned, Kept};

/// An in-flight (or not yet submitted) operation, with the memory it uses.
///
/// Its result is plain: an abandoned `OpFuture` keeps nothing of what its
/// operation produced (the socket futures that receive are
/// `op::buf_op::BufOp`s, which do).
pub struct OpFuture<K: 'static> {
    lp: EventLoop,
    op: Option<Op>,
    key: Option<OpKey>,
    keep: Option<K>,
}

impl<K: 'static> std::fmt::Debug for OpFuture<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpFuture")
            .field("op", &self.op)
            .field("key", &self.key)
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
        OpFuture {
            lp: lp.clone(),
            op: Some(op),
            key: None,
            keep: Some(keep),
        }
    }
}

pub(crate) fn closed_error() -> io::Error {
    io::Error::other(crate::Error::Closed)
}

/// How [`LoopInner::start_op`] left an operation.
pub(crate) enum Started {
    /// It finished at submission (or the loop is closed): its result. The
    /// backend keeps nothing of it.
    Finished(io::Result<OpOutput>),
    /// It is in the backend under this key. The caller records the key (so
    /// that dropping it cancels the operation); unless it gave a waker to
    /// [`LoopInner::start_op_waking`], it then registers one with
    /// [`LoopInner::poll_op`].
    Pending(OpKey),
}

/// Completions from the backend reach their operations here.
impl LoopInner {
    /// Hands the backend's `completion` to its operation (see
    /// [`lifecycle::OpTable::complete`]): wakes the future that awaits it,
    /// gives it to the leftovers of a dropped future, or queues its callback.
    pub(crate) fn deliver(&self, completion: Completion) {
        let delivered = self
            .ops
            .borrow_mut()
            .complete(completion.id, completion.result);
        // Outside the table's borrow: wakers and leftovers run arbitrary code.
        match delivered {
            Delivered::Nothing => {}
            Delivered::Wake(waker) => waker.wake(),
            Delivered::Salvage(leftovers, result) => leftovers.complete(result),
            Delivered::Call(key, callback, result) => {
                if self.closed.get() {
                    self.ops.borrow_mut().fire(key, None);
                    drop(callback);
                    return;
                }
                let me = self.me.clone();
                let cell: Rc<dyn Callback> = Rc::new(CallbackCell::new(move || {
                    if let Some(inner) = me.upgrade() {
                        inner.ops.borrow_mut().fired_runs(key);
                    }
                    callback(result)
                }));
                self.ready
                    .borrow_mut()
                    .push_back(Ready::Callback(cell.clone()));
                self.ops.borrow_mut().fire(key, Some(Handle(cell)));
            }
        }
    }
}

/// The loop side of one awaited operation, shared by [`OpFuture`] and the
/// hand-written socket futures (`op::buf_op`): start it, poll its slot,
/// abandon it when its future is dropped.
impl LoopInner {
    /// Submits `op`; if it does not finish at once, its completion is
    /// collected by [`poll_op`](Self::poll_op), which also registers the
    /// waker. Nothing here can panic between the submission and the slot
    /// being taken (no waker is cloned, the key is chosen first), so a
    /// caller that records the returned key before anything else always
    /// cancels the operation when dropped.
    ///
    /// # Safety
    /// As for [`OpFuture::new`]: every pointer in `op` must stay valid (and
    /// a receive buffer untouched by anyone else), and its descriptor open,
    /// until `poll_op` returned `Ready` for the key, or until
    /// [`abandon_op`](Self::abandon_op) released it (taking the memory
    /// into an orphan slot when the backend still owns it).
    pub(crate) unsafe fn start_op(&self, op: Op) -> Started {
        // SAFETY: the caller's contract is this function's.
        unsafe { self.start_op_waking(op, None) }
    }

    /// [`start_op`](Self::start_op), registering `waker` with the pending
    /// operation at once (`Started::Pending` then needs no `poll_op` before
    /// the caller returns `Pending`): one lookup of the operation's slot
    /// fewer per operation that waits. The waker is cloned before the
    /// submission, so nothing can panic between the submission and the
    /// slot being taken; an operation that finishes at once drops the
    /// clone.
    ///
    /// # Safety
    /// As for [`start_op`](Self::start_op).
    pub(crate) unsafe fn start_op_waking(&self, op: Op, waker: Option<&Waker>) -> Started {
        let waker = waker.cloned();
        let mut driver = self.driver.borrow_mut();
        let Some(driver) = driver.as_mut() else {
            return Started::Finished(Err(closed_error()));
        };
        // The slot is taken only if the operation stays pending: the
        // backend keeps nothing of one that finishes at once. The table
        // stays borrowed (the driver cannot reach it) until then.
        let mut ops = self.ops.borrow_mut();
        let key = ops.next_key();
        // SAFETY: the caller's contract covers the pointers and the
        // descriptor; the key's slot is vacant, so no other pending
        // operation uses its id.
        match unsafe { driver.submit(key.id(), op) } {
            Poll::Ready(result) => Started::Finished(result),
            Poll::Pending => {
                ops.insert(key, OpState::Waiting(waker));
                Started::Pending(key)
            }
        }
    }

    /// The result of the pending operation `key` once it arrived (its slot
    /// is then freed), else registers `cx`'s waker.
    #[inline]
    pub(crate) fn poll_op(&self, key: OpKey, cx: &Context<'_>) -> Poll<io::Result<OpOutput>> {
        self.ops.borrow_mut().poll(key, cx)
    }

    /// The future awaiting the pending operation `key` is gone: cancels the
    /// operation. `leftovers()` (its memory, whatever keeps its descriptor
    /// open, and what takes a late result) either takes the result at once
    /// (it had arrived), is freed (the backend forgot the operation), or
    /// moves into the slot until the final completion (the backend still
    /// owns it).
    pub(crate) fn abandon_op(&self, key: OpKey, leftovers: impl FnOnce() -> Box<dyn Abandoned>) {
        let arrived = !matches!(self.ops.borrow().state(key), OpState::Waiting(_));
        let outcome = if arrived {
            None
        } else {
            Some(match self.driver.borrow_mut().as_mut() {
                Some(driver) => driver.cancel(key.id()),
                // Unreachable while the table holds a Waiting slot: close()
                // settles every one before it drops the driver.
                None => Cancel::Pending,
            })
        };
        let step = self.ops.borrow_mut().abandon(key, outcome, leftovers());
        // Outside the borrow: leftovers may run arbitrary destructors.
        match step {
            Abandon::Nothing => {}
            Abandon::Free(leftovers) => drop(leftovers),
            Abandon::Salvage(leftovers, result) => leftovers.complete(result),
        }
    }
}

impl<K: 'static> Future for OpFuture<K> {
    type Output = crate::driver::buf::DriverBufResult<OpOutput, K>;

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
                Started::Finished(result) => result,
                Started::Pending(key) => {
                    this.key = Some(key);
                    // Registers the waker (the result cannot be there yet).
                    let result = ready!(inner.poll_op(key, cx));
                    this.key = None;
                    result
                }
            }
        } else if let Some(key) = this.key {
            let result = ready!(inner.poll_op(key, cx));
            this.key = None;
            result
        } else {
            Err(closed_error())
        };
        Poll::Ready((result, this.keep.take().expect("kept")))
    }
}

impl<K: 'static> Drop for OpFuture<K> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let keep = self.keep.take();
        self.lp
            .inner
            .abandon_op(key, move || Box::new(Kept(keep)) as Box<dyn Abandoned>);
    }
}

/// A callback-driven operation started with
/// [`EventLoop::submit_with_callback`]; [`EventLoop::cancel_op`] undoes it.
#[derive(Debug)]
pub(crate) struct CallbackOp(CallbackState);

#[derive(Debug)]
enum CallbackState {
    /// In the backend, or its callback queued (the table knows which).
    InLoop(OpKey),
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
    pub(crate) unsafe fn submit_with_callback(
        &self,
        op: Op,
        callback: Box<dyn FnOnce(io::Result<OpOutput>)>,
    ) -> crate::Result<CallbackOp> {
        let inner = &self.inner;
        let mut guard = inner.driver.borrow_mut();
        let driver = guard.as_mut().ok_or(crate::Error::Closed)?;
        let mut ops = inner.ops.borrow_mut();
        let key = ops.next_key();
        // SAFETY: the caller guarantees `op` holds no pointers and its
        // descriptor stays open; the key's slot is vacant.
        match unsafe { driver.submit(key.id(), op) } {
            Poll::Ready(result) => {
                drop(ops);
                drop(guard);
                // Delivered with the next poll's completions (see `LoopInner::early`).
                self.check_open()?;
                let cell: Rc<dyn Callback> = Rc::new(CallbackCell::new(move || callback(result)));
                inner.early.borrow_mut().push(cell.clone());
                Ok(CallbackOp(CallbackState::Queued(Handle(cell))))
            }
            Poll::Pending => {
                ops.insert(key, OpState::Callback(callback));
                Ok(CallbackOp(CallbackState::InLoop(key)))
            }
        }
    }

    /// Cancels an operation started with [`submit_with_callback`](Self::submit_with_callback);
    /// its callback will not run. Returns `true` if it had not run yet.
    pub(crate) fn cancel_op(&self, op: &CallbackOp) -> bool {
        let key = match &op.0 {
            CallbackState::Queued(handle) => {
                let pending = !handle.cancelled() && !handle.has_run();
                handle.cancel();
                return pending;
            }
            CallbackState::InLoop(key) => *key,
        };
        let inner = &self.inner;
        let outcome = match inner.ops.borrow().state(key) {
            OpState::Callback(_) => Some(match inner.driver.borrow_mut().as_mut() {
                Some(driver) => driver.cancel(key.id()),
                None => Cancel::Forgotten,
            }),
            OpState::Fired(_) => None,
            // Its callback ran (or the loop closed and dropped it).
            _ => return false,
        };
        let left = inner.ops.borrow_mut().cancel_callback(key, outcome);
        // Outside the borrow: dropping a callback runs its destructors.
        match left {
            Some(OpState::Fired(handle)) => {
                if let Some(handle) = handle {
                    handle.cancel();
                }
                true
            }
            Some(state) => {
                drop(state);
                true
            }
            None => false,
        }
    }
}
