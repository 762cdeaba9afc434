//! Tasks: futures scheduled on a loop, built on `async-task`.
//!
//! Each task's future is wrapped in a [`Guarded`] future that
//! - turns a cancellation request into `Err(Error::Cancelled)` at the next
//!   poll, dropping the inner future (and so any sleep or I/O it awaits);
//! - catches panics, reports them to the loop's exception handler and hands
//!   the awaiter `Err(Error::Panicked)`;
//! - keeps the loop's registry of live tasks, so `run()` can cancel the
//!   tasks left over when the main future is done.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use slab::Slab;

use crate::error::{panic_message, Error, Result};
use crate::event_loop::{EventLoop, LoopInner};
use crate::exception::ExceptionContext;

static NEXT_TASK_ID: AtomicU64 = AtomicU64::new(1);

/// How a task ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Outcome {
    Pending,
    Completed,
    Cancelled,
    Panicked,
}

pub(crate) struct TaskState {
    id: u64,
    cancel_requested: Cell<bool>,
    outcome: Cell<Outcome>,
    /// The task's own waker, captured at its first poll (an async-task waker
    /// never changes), so `cancel()` can reschedule a sleeping task.
    waker: RefCell<Option<Waker>>,
    /// The task's key in the loop's registry while it is alive.
    key: Cell<Option<usize>>,
}

/// The loop's set of live tasks.
#[derive(Default)]
pub(crate) struct TaskRegistry {
    tasks: RefCell<Slab<Rc<TaskState>>>,
}

impl TaskRegistry {
    fn insert(&self, state: Rc<TaskState>) -> usize {
        self.tasks.borrow_mut().insert(state)
    }

    fn remove(&self, key: usize) {
        let mut tasks = self.tasks.borrow_mut();
        if tasks.contains(key) {
            let state = tasks.remove(key);
            drop(tasks);
            drop(state);
        }
    }

    /// Number of tasks that have not finished.
    pub(crate) fn len(&self) -> usize {
        self.tasks.borrow().len()
    }

    /// Asks every live task to cancel itself; returns how many were asked.
    pub(crate) fn cancel_all(&self) -> usize {
        let states: Vec<Rc<TaskState>> =
            self.tasks.borrow().iter().map(|(_, s)| s.clone()).collect();
        let n = states.len();
        for state in states {
            state.request_cancel();
        }
        n
    }

    /// Wakes every live task once more (used by `close()`): on a closed
    /// loop the wake-up drops the task's step, and with it the future, even
    /// when the future holds its own waker (a cycle no refcount would break).
    pub(crate) fn wake_all_for_close(&self) -> bool {
        let wakers: Vec<Waker> = self
            .tasks
            .borrow()
            .iter()
            .filter_map(|(_, s)| s.waker.borrow_mut().take())
            .collect();
        let any = !wakers.is_empty();
        for waker in wakers {
            waker.wake();
        }
        any
    }
}

impl TaskState {
    fn request_cancel(&self) -> bool {
        if self.outcome.get() != Outcome::Pending || self.cancel_requested.get() {
            return false;
        }
        self.cancel_requested.set(true);
        let waker = self.waker.borrow().clone();
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }
}

pin_project_lite::pin_project! {
    struct Guarded<F> {
        #[pin]
        fut: Option<F>,
        state: Rc<TaskState>,
        lp: Weak<LoopInner>,
    }

    impl<F> PinnedDrop for Guarded<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if this.state.outcome.get() == Outcome::Pending {
                let lp = this.lp.upgrade().map(|inner| EventLoop { inner });
                // Drop the future first: it may cancel timers or operations.
                let dropped = catch_unwind(AssertUnwindSafe(|| this.fut.set(None)));
                if let Some(lp) = lp {
                    if !this.state.cancel_requested.get() {
                        lp.call_exception_handler(ExceptionContext {
                            message: "Task was destroyed but it is pending!".to_owned(),
                            task: Some(this.state.id),
                            payload: dropped.err().map(|p| panic_message(&*p)),
                            ..ExceptionContext::default()
                        });
                    }
                }
                this.state.outcome.set(Outcome::Cancelled);
                finish(this.lp, this.state);
            }
        }
    }
}

/// Unregisters a task that has ended.
fn finish(lp: &Weak<LoopInner>, state: &TaskState) {
    state.waker.borrow_mut().take();
    if let (Some(inner), Some(key)) = (lp.upgrade(), state.key.take()) {
        inner.tasks.remove(key);
    }
}

impl<F: Future> Future for Guarded<F> {
    type Output = Result<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if this.state.outcome.get() != Outcome::Pending {
            return Poll::Ready(Err(Error::Cancelled));
        }
        if this.state.cancel_requested.get() {
            let dropped = catch_unwind(AssertUnwindSafe(|| this.fut.set(None)));
            this.state.outcome.set(Outcome::Cancelled);
            finish(this.lp, this.state);
            if let Err(payload) = dropped {
                report(
                    this.lp,
                    this.state.id,
                    "Exception while cancelling task",
                    &*payload,
                );
            }
            return Poll::Ready(Err(Error::Cancelled));
        }
        {
            let mut waker = this.state.waker.borrow_mut();
            if waker.is_none() {
                *waker = Some(cx.waker().clone());
            }
        }
        let Some(fut) = this.fut.as_mut().as_pin_mut() else {
            return Poll::Ready(Err(Error::Cancelled));
        };
        match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => {
                this.state.outcome.set(Outcome::Completed);
                let _ = catch_unwind(AssertUnwindSafe(|| this.fut.set(None)));
                finish(this.lp, this.state);
                Poll::Ready(Ok(value))
            }
            Err(payload) => {
                this.state.outcome.set(Outcome::Panicked);
                let _ = catch_unwind(AssertUnwindSafe(|| this.fut.set(None)));
                finish(this.lp, this.state);
                let message = panic_message(&*payload);
                report(this.lp, this.state.id, "Exception in task", &*payload);
                Poll::Ready(Err(Error::Panicked(message)))
            }
        }
    }
}

fn report(lp: &Weak<LoopInner>, task: u64, message: &str, payload: &(dyn std::any::Any + Send)) {
    if let Some(inner) = lp.upgrade() {
        EventLoop { inner }.call_exception_handler(ExceptionContext {
            message: message.to_owned(),
            payload: Some(panic_message(payload)),
            task: Some(task),
            ..ExceptionContext::default()
        });
    }
}

/// Schedules `fut` on `lp` (the caller checked that the loop is open).
pub(crate) fn spawn<F>(lp: &EventLoop, fut: F) -> Task<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let state = Rc::new(TaskState {
        id: NEXT_TASK_ID.fetch_add(1, Ordering::Relaxed),
        cancel_requested: Cell::new(false),
        outcome: Cell::new(Outcome::Pending),
        waker: RefCell::new(None),
        key: Cell::new(None),
    });
    state.key.set(Some(lp.inner.tasks.insert(state.clone())));
    let guarded = Guarded {
        fut: Some(fut),
        state: state.clone(),
        lp: lp.downgrade(),
    };
    let shared = lp.inner.shared.clone();
    let (runnable, task) = async_task::spawn_local(guarded, move |r| shared.schedule(r));
    runnable.schedule();
    Task {
        inner: Some(task.fallible()),
        state,
    }
}

/// A future running on a loop, created by `create_task`.
///
/// Awaiting it gives the future's output, [`Error::Cancelled`] if it was
/// cancelled, or [`Error::Panicked`] if it panicked. Dropping it detaches
/// the task (it keeps running), as in asyncio and tokio.
pub struct Task<T> {
    inner: Option<async_task::FallibleTask<Result<T>>>,
    state: Rc<TaskState>,
}

impl<T> Task<T> {
    /// Requests cancellation: at its next step the task drops its future
    /// (cancelling whatever it awaits) and ends with [`Error::Cancelled`].
    /// Returns `false` if the task had already finished or been cancelled.
    pub fn cancel(&self) -> bool {
        self.state.request_cancel()
    }

    /// `true` once the task ended by cancellation.
    pub fn cancelled(&self) -> bool {
        self.state.outcome.get() == Outcome::Cancelled
    }

    /// `true` once the task has ended (completed, cancelled or panicked).
    pub fn is_finished(&self) -> bool {
        self.state.outcome.get() != Outcome::Pending
            || self.inner.as_ref().is_none_or(|t| t.is_finished())
    }

    /// A number identifying the task in exception-handler reports.
    pub fn id(&self) -> u64 {
        self.state.id
    }

    /// Lets the task run to completion on its own; its output is discarded.
    pub fn detach(mut self) {
        if let Some(task) = self.inner.take() {
            task.detach();
        }
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        if let Some(task) = self.inner.take() {
            task.detach();
        }
    }
}

impl<T> Future for Task<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(task) = self.inner.as_mut() else {
            return Poll::Ready(Err(Error::Cancelled));
        };
        match Pin::new(task).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(result)) => Poll::Ready(result),
            Poll::Ready(None) => Poll::Ready(Err(Error::Cancelled)),
        }
    }
}

impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.state.id)
            .field("outcome", &self.state.outcome.get())
            .finish()
    }
}
