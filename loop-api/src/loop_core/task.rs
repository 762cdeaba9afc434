//! Tasks: futures scheduled on a loop, built on `async-task`.
//!
//! Each task's future lives in a [`TaskCell`] beside the task's state, and
//! async-task runs a [`Guarded`] future that polls it and
//! - drops the future as soon as cancellation is requested: at once when
//!   the task is not running (so whatever it awaits, a sleep or an I/O
//!   operation, is cancelled right then, as asyncio cancels the future a
//!   task waits on), else when its current step returns; the awaiter then
//!   gets `Err(Error::Cancelled)`;
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

use crate::loop_core::error::{panic_message, Error, Result};
use crate::loop_core::exception::ExceptionContext;
use crate::loop_core::{EventLoop, LoopInner};

static NEXT_TASK_ID: AtomicU64 = AtomicU64::new(1);

/// How a task ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Outcome {
    Pending,
    Completed,
    Cancelled,
    Panicked,
}

/// A task's future and its state, in one allocation shared by the task's
/// handle, the loop's registry and the [`Guarded`] future async-task runs.
/// The future is pinned here: it never moves, and is dropped in place.
struct TaskCell<F> {
    state: TaskState,
    fut: RefCell<Option<F>>,
}

/// What the handle and the registry need of a task whose future type they
/// do not know.
trait TaskControl {
    fn state(&self) -> &TaskState;
    /// Drops the future in place unless it is being polled right now
    /// (then the running step ends it). `Err` carries a panic of its
    /// destructors.
    fn drop_future(&self) -> std::result::Result<(), Box<dyn std::any::Any + Send>>;
}

impl<F> TaskControl for TaskCell<F> {
    fn state(&self) -> &TaskState {
        &self.state
    }

    fn drop_future(&self) -> std::result::Result<(), Box<dyn std::any::Any + Send>> {
        // Borrowed only while a step polls the future (or while it is being
        // dropped already): then the flag ends it at the step's end.
        let Ok(mut fut) = self.fut.try_borrow_mut() else {
            return Ok(());
        };
        // Dropped in place (never moved: it is pinned), with the borrow
        // held, so a destructor that cancels this task again finds it busy.
        catch_unwind(AssertUnwindSafe(|| *fut = None))
    }
}

pub(crate) struct TaskState {
    id: u64,
    cancel_requested: Cell<bool>,
    /// A panic raised by the future's destructors when `cancel()` dropped
    /// it; reported by the task's next step.
    cancel_panic: RefCell<Option<Box<dyn std::any::Any + Send>>>,
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
    tasks: RefCell<Slab<Rc<dyn TaskControl>>>,
}

impl TaskRegistry {
    fn insert(&self, task: Rc<dyn TaskControl>) -> usize {
        self.tasks.borrow_mut().insert(task)
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
        let tasks: Vec<Rc<dyn TaskControl>> =
            self.tasks.borrow().iter().map(|(_, t)| t.clone()).collect();
        let n = tasks.len();
        for task in tasks {
            request_cancel(&*task);
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
            .filter_map(|(_, t)| t.state().waker.borrow_mut().take())
            .collect();
        let any = !wakers.is_empty();
        for waker in wakers {
            waker.wake();
        }
        any
    }
}

/// Asks `task` to cancel itself: drops its future at once unless it is
/// running, then wakes it so that it ends with `Cancelled`. `false` if it
/// had ended or was asked before.
fn request_cancel(task: &dyn TaskControl) -> bool {
    let state = task.state();
    if state.outcome.get() != Outcome::Pending || state.cancel_requested.get() {
        return false;
    }
    state.cancel_requested.set(true);
    if let Err(payload) = task.drop_future() {
        state.cancel_panic.replace(Some(payload));
    }
    let waker = state.waker.borrow().clone();
    if let Some(waker) = waker {
        waker.wake();
    }
    true
}

/// The future async-task runs: polls the task's future in its cell.
struct Guarded<F> {
    cell: Rc<TaskCell<F>>,
    lp: Weak<LoopInner>,
}

impl<F> Drop for Guarded<F> {
    fn drop(&mut self) {
        let state = &self.cell.state;
        if state.outcome.get() == Outcome::Pending {
            let lp = self.lp.upgrade().map(|inner| EventLoop { inner });
            // Drop the future first: it may cancel timers or operations.
            let dropped = self.cell.drop_future();
            if let Some(lp) = lp {
                if !state.cancel_requested.get() {
                    lp.call_exception_handler(ExceptionContext {
                        message: "Task was destroyed but it is pending!".to_owned(),
                        task: Some(state.id),
                        payload: dropped.err().map(|p| panic_message(&*p)),
                        ..ExceptionContext::default()
                    });
                }
            }
            state.outcome.set(Outcome::Cancelled);
            finish(&self.lp, state);
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
        let this = self.get_mut();
        let state = &this.cell.state;
        if state.outcome.get() != Outcome::Pending {
            return Poll::Ready(Err(Error::Cancelled));
        }
        if state.cancel_requested.get() {
            let dropped = this.cell.drop_future();
            let payload = state.cancel_panic.take().or(dropped.err());
            state.outcome.set(Outcome::Cancelled);
            finish(&this.lp, state);
            if let Some(payload) = payload {
                report(
                    &this.lp,
                    state.id,
                    "Exception while cancelling task",
                    &*payload,
                );
            }
            return Poll::Ready(Err(Error::Cancelled));
        }
        {
            let mut waker = state.waker.borrow_mut();
            if waker.is_none() {
                *waker = Some(cx.waker().clone());
            }
        }
        let polled = {
            let mut slot = this.cell.fut.borrow_mut();
            let Some(fut) = slot.as_mut() else {
                return Poll::Ready(Err(Error::Cancelled));
            };
            // SAFETY: the future lives in the cell's `Rc` allocation, which
            // never moves, and is only ever dropped in place there
            // (`drop_future`), never moved out: it stays pinned.
            let fut = unsafe { Pin::new_unchecked(fut) };
            catch_unwind(AssertUnwindSafe(|| fut.poll(cx)))
        };
        match polled {
            Ok(Poll::Pending) => {
                if state.cancel_requested.get() {
                    // Cancelled by its own step: end it now.
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
            Ok(Poll::Ready(value)) => {
                state.outcome.set(Outcome::Completed);
                let _ = this.cell.drop_future();
                finish(&this.lp, state);
                Poll::Ready(Ok(value))
            }
            Err(payload) => {
                state.outcome.set(Outcome::Panicked);
                let _ = this.cell.drop_future();
                finish(&this.lp, state);
                let message = panic_message(&*payload);
                report(&this.lp, state.id, "Exception in task", &*payload);
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
    let cell = Rc::new(TaskCell {
        state: TaskState {
            id: NEXT_TASK_ID.fetch_add(1, Ordering::Relaxed),
            cancel_requested: Cell::new(false),
            cancel_panic: RefCell::new(None),
            outcome: Cell::new(Outcome::Pending),
            waker: RefCell::new(None),
            key: Cell::new(None),
        },
        fut: RefCell::new(Some(fut)),
    });
    let state: Rc<dyn TaskControl> = cell.clone();
    cell.state
        .key
        .set(Some(lp.inner.tasks.insert(state.clone())));
    let guarded = Guarded {
        cell,
        lp: lp.downgrade(),
    };
    let shared = lp.inner.shared.clone();
    let (runnable, task) = async_task::spawn_local(guarded, move |r| shared.schedule(r));
    runnable.schedule();
    Task {
        inner: Some(task.fallible()),
        state,
        output: None,
    }
}

/// A type-erased reference to a task, enough to cancel it (task groups).
#[derive(Clone)]
pub(crate) struct TaskRef(Rc<dyn TaskControl>);

impl TaskRef {
    /// As [`Task::cancel`].
    pub(crate) fn cancel(&self) -> bool {
        request_cancel(&*self.0)
    }
}

/// A future running on a loop, created by `create_task`.
///
/// Awaiting it gives the future's output, [`Error::Cancelled`] if it was
/// cancelled, or [`Error::Panicked`] if it panicked. Dropping it detaches
/// the task (it keeps running), as in asyncio and tokio.
///
/// ```
/// use evloop::{sleep, Error};
/// use std::time::Duration;
/// evloop::run(async {
///     let lp = evloop::get_running_loop().unwrap();
///     let answer = lp.create_task(async { 6 * 7 }).unwrap();
///     let stuck = lp.create_task(sleep(Duration::from_secs(60))).unwrap();
///     assert_eq!(answer.await.unwrap(), 42);
///     assert!(stuck.cancel()); // drops its sleep at once
///     assert!(matches!(stuck.await, Err(Error::Cancelled)));
///     // Fire and forget: a detached task runs on, its output dropped.
///     lp.create_task(async { println!("in the background") }).unwrap().detach();
/// })
/// .unwrap();
/// ```
pub struct Task<T> {
    inner: Option<async_task::FallibleTask<Result<T>>>,
    state: Rc<dyn TaskControl>,
    /// The result, once `wait` has seen the task end without consuming it.
    output: Option<Result<T>>,
}

impl<T> Task<T> {
    /// Requests cancellation: the task's future is dropped right away
    /// (cancelling whatever it awaits: a sleep, an I/O operation, whose
    /// received data stays for the next reader), or at the end of its
    /// current step if the task is the one running; its awaiter then gets
    /// [`Error::Cancelled`]. Returns `false` if the task had already
    /// finished or been cancelled.
    pub fn cancel(&self) -> bool {
        request_cancel(&*self.state)
    }

    /// `true` once the task ended by cancellation.
    pub fn cancelled(&self) -> bool {
        self.state.state().outcome.get() == Outcome::Cancelled
    }

    /// `true` once the task has ended (completed, cancelled or panicked).
    pub fn is_finished(&self) -> bool {
        self.output.is_some()
            || self.state.state().outcome.get() != Outcome::Pending
            || self.inner.as_ref().is_none_or(|t| t.is_finished())
    }

    /// A number identifying the task in exception-handler reports.
    pub fn id(&self) -> u64 {
        self.state.state().id
    }

    /// A reference that can cancel the task (for task groups).
    pub(crate) fn task_ref(&self) -> TaskRef {
        TaskRef(self.state.clone())
    }

    /// `Ready` once the task has ended; its result is kept for the next
    /// await (for `wait`, which hands finished tasks back).
    pub(crate) fn poll_done(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.output.is_none() {
            match self.poll_inner(cx) {
                Poll::Ready(result) => self.output = Some(result),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(())
    }

    /// The kept result, once [`poll_done`](Self::poll_done) saw the task end.
    pub(crate) fn kept_output(&self) -> Option<&Result<T>> {
        self.output.as_ref()
    }

    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<T>> {
        if let Some(result) = self.output.take() {
            return Poll::Ready(result);
        }
        let Some(task) = self.inner.as_mut() else {
            return Poll::Ready(Err(Error::Cancelled));
        };
        match Pin::new(task).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(result)) => Poll::Ready(result),
            Poll::Ready(None) => Poll::Ready(Err(Error::Cancelled)),
        }
    }

    /// Lets the task run to completion on its own; its output is discarded.
    pub fn detach(mut self) {
        if let Some(task) = self.inner.take() {
            task.detach();
        }
    }
}

// The kept output is only ever moved, never pinned: a `Task` is `Unpin`
// whatever `T` is, as it was before it could keep one.
impl<T> Unpin for Task<T> {}

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
        self.poll_inner(cx)
    }
}

impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.state.state().id)
            .field("outcome", &self.state.state().outcome.get())
            .finish()
    }
}
