//! The event loop: [`EventLoop`] and the state behind it ([`LoopInner`]:
//! the ready queue, the timers, the backend, the operation table), and the
//! scheduling API (`call_soon`, `call_later`, `call_at`, `create_task`,
//! exception handler). Running it is `run.rs`, closing it `close.rs`, what
//! other threads touch `threads.rs`.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_task::Runnable;

use super::embed::WaitHook;
use super::threads::{CrossThread, LoopHandle, Remote};
use crate::driver::{Completion, Driver};
use crate::loop_core::error::{panic_message, Error, Result};
use crate::loop_core::exception::{default_exception_handler, ExceptionContext, ExceptionHandler};
use crate::loop_core::extensions::Extensions;
use crate::loop_core::handle::{Callback, CallbackCell, Handle, TimerCell, TimerHandle};
use crate::loop_core::remote::RemoteQueue;
use crate::loop_core::task::{Task, TaskRegistry};
use crate::loop_core::timers::Timers;
use crate::op::lifecycle::OpTable;

/// How far in the future a "huge" delay lands (deadlines that overflow `Instant`).
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

static NEXT_LOOP_ID: AtomicU64 = AtomicU64::new(1);

/// One unit of ready work.
pub(crate) enum Ready {
    /// A `call_soon`/`call_later` callback.
    Callback(Rc<dyn Callback>),
    /// A callback with no `Handle`: `call_soon_threadsafe`'s, from this
    /// thread or another.
    Bare(Box<dyn FnOnce()>),
    /// A task step.
    Task(Runnable),
}

thread_local! {
    /// Every loop created on this thread, so a task woken on the loop's own
    /// thread goes straight to the ready queue.
    pub(crate) static LOCAL_LOOPS: RefCell<Vec<(u64, Weak<LoopInner>)>> = const { RefCell::new(Vec::new()) };
    /// The loop running on this thread, if any.
    pub(crate) static RUNNING: RefCell<Option<EventLoop>> = const { RefCell::new(None) };
}

pub(crate) struct LoopInner {
    pub(crate) shared: Arc<CrossThread>,
    pub(crate) ready: RefCell<VecDeque<Ready>>,
    pub(crate) timers: RefCell<Timers>,
    /// The backend; `None` once the loop is closed.
    pub(crate) driver: RefCell<Option<Box<dyn Driver>>>,
    pub(crate) backend: &'static str,
    /// The operations in the backend (see [`crate::op::lifecycle`]).
    pub(crate) ops: RefCell<OpTable>,
    /// This loop, for callbacks that must find it again.
    pub(crate) me: Weak<LoopInner>,
    pub(crate) completions: RefCell<Vec<Completion>>,
    pub(crate) tasks: TaskRegistry,
    pub(crate) running: Cell<bool>,
    pub(crate) stopping: Cell<bool>,
    /// Busy iterations since the poll schedule was last looked at (see `run_once`).
    pub(crate) polls_skipped: Cell<u32>,
    /// When the backend was last polled because of that schedule (`None`:
    /// not since the loop was last idle or stopping).
    pub(crate) last_busy_poll: Cell<Option<Instant>>,
    pub(crate) closed: Cell<bool>,
    /// Embedders: not in `LOCAL_LOOPS` between runs (see `embed.rs`).
    pub(crate) detached: Cell<bool>,
    /// Embedders: set by `abandon_batch`, read after each ready item.
    pub(crate) abandon: Cell<bool>,
    /// Embedders: wraps the blocking backend wait (see `embed.rs`).
    pub(crate) wait_hook: RefCell<Option<WaitHook>>,
    pub(crate) exception_handler: RefCell<Option<ExceptionHandler>>,
    /// Optional subsystems (executor, signals, child watcher). Declared
    /// last so that, when a loop is dropped without `close()`, the backend
    /// is gone before their `Drop` closes descriptors it may have watched.
    pub(crate) extensions: Extensions,
}

impl LoopInner {
    pub(super) fn schedule_local(&self, runnable: Runnable) {
        if self.closed.get() {
            drop(runnable);
        } else {
            self.ready.borrow_mut().push_back(Ready::Task(runnable));
        }
    }

    pub(super) fn drain_remote(&self) -> bool {
        if self.shared.remote.is_empty() {
            return false;
        }
        let mut stop = false;
        let mut ready = self.ready.borrow_mut();
        while let Some(item) = self.shared.remote.pop() {
            match item {
                Remote::Callback(f) => ready.push_back(Ready::Bare(f)),
                Remote::Task(r) => ready.push_back(Ready::Task(r)),
                Remote::Stop => stop = true,
            }
        }
        stop
    }
}

impl Drop for LoopInner {
    fn drop(&mut self) {
        let _ = LOCAL_LOOPS.try_with(|loops| {
            if let Ok(mut loops) = loops.try_borrow_mut() {
                loops.retain(|(id, _)| *id != self.shared.id);
            }
        });
    }
}

/// An asyncio-style event loop running on one thread.
///
/// `EventLoop` is a cheap, clonable reference (`Rc`): it is not `Send`, like
/// the futures it runs. Other threads use [`EventLoop::handle`].
#[derive(Clone)]
pub struct EventLoop {
    pub(crate) inner: Rc<LoopInner>,
}

impl fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLoop")
            .field("backend", &self.inner.backend)
            .field("running", &self.is_running())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl EventLoop {
    /// Builds a loop on top of a backend. Backends call this from their own
    /// `new_event_loop()`; users normally go through a policy. Hidden from
    /// the user's docs: backend authors find it as `evloop::backend::from_driver`.
    #[doc(hidden)]
    pub fn from_driver(driver: Box<dyn Driver>) -> EventLoop {
        let backend = driver.name();
        let shared = Arc::new(CrossThread {
            id: NEXT_LOOP_ID.fetch_add(1, Ordering::Relaxed),
            remote: RemoteQueue::new(driver.notifier()),
        });
        let inner = Rc::new_cyclic(|me| LoopInner {
            shared,
            ready: RefCell::new(VecDeque::with_capacity(64)),
            timers: RefCell::new(Timers::new()),
            driver: RefCell::new(Some(driver)),
            backend,
            ops: RefCell::new(OpTable::default()),
            me: me.clone(),
            completions: RefCell::new(Vec::new()),
            tasks: TaskRegistry::default(),
            running: Cell::new(false),
            stopping: Cell::new(false),
            polls_skipped: Cell::new(0),
            last_busy_poll: Cell::new(None),
            closed: Cell::new(false),
            detached: Cell::new(false),
            abandon: Cell::new(false),
            wait_hook: RefCell::new(None),
            exception_handler: RefCell::new(None),
            extensions: Extensions::default(),
        });
        LOCAL_LOOPS.with(|loops| {
            loops
                .borrow_mut()
                .push((inner.shared.id, Rc::downgrade(&inner)))
        });
        EventLoop { inner }
    }

    /// The backend's name (`"mio"`, `"polling"`, `"uring"`, ...).
    pub fn backend_name(&self) -> &'static str {
        self.inner.backend
    }

    /// The loop's monotonic clock. Deadlines for [`call_at`](Self::call_at) use it.
    pub fn time(&self) -> Instant {
        Instant::now()
    }

    /// [`Error::Closed`] once the loop is closed.
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.inner.closed.get() {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    /// Schedules `f` to run on the next iteration, after everything already
    /// scheduled (FIFO).
    #[inline]
    pub fn call_soon<F: FnOnce() + 'static>(&self, f: F) -> Result<Handle> {
        self.check_open()?;
        let cb: Rc<dyn Callback> = Rc::new(CallbackCell::new(f));
        self.inner
            .ready
            .borrow_mut()
            .push_back(Ready::Callback(cb.clone()));
        Ok(Handle(cb))
    }

    /// asyncio's `call_soon_threadsafe` called on the loop's own thread: the
    /// same FIFO as [`call_soon`](Self::call_soon). From other threads use
    /// [`LoopHandle::call_soon_threadsafe`].
    pub fn call_soon_threadsafe<F: FnOnce() + Send + 'static>(&self, f: F) -> Result<Handle> {
        self.call_soon(f)
    }

    /// Schedules `f` to run once `delay` has elapsed on [`time`](Self::time).
    /// It never runs early; a delay too large for the clock lands a century away.
    #[inline]
    pub fn call_later<F: FnOnce() + 'static>(&self, delay: Duration, f: F) -> Result<TimerHandle> {
        let now = Instant::now();
        let when = now
            .checked_add(delay)
            .or_else(|| now.checked_add(FAR_FUTURE))
            .unwrap_or(now);
        self.call_at(when, f)
    }

    /// Schedules `f` to run at `when` (a deadline in the past runs next
    /// iteration). Timers with equal deadlines run in scheduling order.
    #[inline]
    pub fn call_at<F: FnOnce() + 'static>(&self, when: Instant, f: F) -> Result<TimerHandle> {
        self.check_open()?;
        let mut timers = self.inner.timers.borrow_mut();
        let cb: Rc<dyn Callback> = Rc::new(TimerCell::new(f, timers.cancel_counter()));
        timers.push(when, cb.clone());
        Ok(TimerHandle { cb, when })
    }

    /// Wraps `fut` in a task scheduled on this loop. The future's first step
    /// runs on a later iteration, never inside this call. Dropping the
    /// returned [`Task`] detaches it; it keeps running.
    pub fn create_task<F>(&self, fut: F) -> Result<Task<F::Output>>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.check_open()?;
        Ok(crate::loop_core::task::spawn(self, fut))
    }

    /// `true` while `run_forever` or `run_until_complete` is running.
    pub fn is_running(&self) -> bool {
        self.inner.running.get()
    }

    /// `true` once [`close`](Self::close) has been called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.get()
    }

    /// A `Send + Sync` handle for other threads.
    pub fn handle(&self) -> LoopHandle {
        LoopHandle {
            shared: self.inner.shared.clone(),
        }
    }

    /// Installs `handler` as the exception handler (`None` restores the default).
    pub fn set_exception_handler(&self, handler: Option<ExceptionHandler>) {
        *self.inner.exception_handler.borrow_mut() = handler;
    }

    /// The custom exception handler, if one is installed.
    pub fn get_exception_handler(&self) -> Option<ExceptionHandler> {
        self.inner.exception_handler.borrow().clone()
    }

    /// Reports `context` to the exception handler. If a custom handler
    /// panics, the default handler reports that, with the original context.
    pub fn call_exception_handler(&self, context: ExceptionContext) {
        let handler = self.inner.exception_handler.borrow().clone();
        match handler {
            None => default_exception_handler(&context),
            Some(handler) => {
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| handler(self, &context))) {
                    default_exception_handler(&ExceptionContext {
                        message: "Unhandled error in exception handler".to_owned(),
                        payload: Some(panic_message(&*payload)),
                        context: Some(Box::new(context)),
                        ..ExceptionContext::default()
                    });
                }
            }
        }
    }

    /// Number of timers in the heap, cancelled ones included (for diagnostics and tests).
    pub fn timer_count(&self) -> usize {
        self.inner.timers.borrow().len()
    }

    pub(crate) fn downgrade(&self) -> Weak<LoopInner> {
        Rc::downgrade(&self.inner)
    }
}
