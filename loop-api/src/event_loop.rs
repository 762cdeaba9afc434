//! The event loop: ready queue, timers, the run/stop/close lifecycle, and the
//! bridge to the backend's [`Driver`].
//!
//! One iteration (`run_once`) follows asyncio's `_run_once`:
//! 1. take in work sent from other threads;
//! 2. poll the backend: with timeout 0 if work is ready or a stop is
//!    pending, else until the earliest live timer (capped at 24 h), else
//!    without limit. While ready work keeps the loop busy, this poll is
//!    made only every `POLL_EVERY` iterations and no sooner than
//!    `POLL_INTERVAL` after the previous one, so a `call_soon` chain costs
//!    no syscall per callback (I/O still gets a turn within that bound);
//! 3. move due timers to the ready queue;
//! 4. run exactly as many ready items as the queue held at that moment:
//!    work scheduled by this batch runs in the next one.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use async_task::Runnable;

use crate::driver::{Cancel, Completion, Driver};
use crate::error::{panic_message, Error, Result};
use crate::exception::{default_exception_handler, ExceptionContext, ExceptionHandler};
use crate::extensions::Extensions;
use crate::handle::{Callback, CallbackCell, Handle, TimerCell, TimerHandle};
use crate::op::closed_error;
use crate::op::lifecycle::{Delivered, OpState, OpTable};
use crate::remote::RemoteQueue;
use crate::task::{Task, TaskRegistry};
use crate::timers::Timers;

/// The longest a single wait may block (asyncio's `MAXIMUM_SELECT_TIMEOUT`).
const MAX_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

/// How long `close` waits for a completion backend to return orphaned operations.
const ORPHAN_DRAIN: Duration = Duration::from_secs(2);

/// How far in the future a "huge" delay lands (deadlines that overflow `Instant`).
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// While ready work keeps coming, consider polling the backend every this
/// many iterations (tokio polls I/O every 61 scheduler ticks for the same
/// reason).
const POLL_EVERY: u32 = 61;

/// ... but poll no more often than this while busy. A non-blocking epoll
/// poll cost 0.4 µs on our 2-vCPU VM (one `epoll_wait`; polling's `wait`
/// makes five syscalls, 1.8 µs) against some 35 ns for a `call_soon` step,
/// so a poll every 61 steps took 15 % (mio) to 40 % (polling) off a
/// chain's speed. I/O waits at most this long plus `POLL_EVERY` iterations
/// behind a busy ready queue.
const POLL_INTERVAL: Duration = Duration::from_micros(50);

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

/// Work sent from another thread.
enum Remote {
    Callback(Box<dyn FnOnce() + Send>),
    Task(Runnable),
    Stop,
}

/// The part of a loop other threads may touch.
pub(crate) struct CrossThread {
    id: u64,
    /// Work from other threads, and the wake-up protocol (see remote.rs).
    remote: RemoteQueue<Remote>,
}

impl CrossThread {
    /// The task scheduler: runs on whatever thread wakes the task.
    pub(crate) fn schedule(&self, runnable: Runnable) {
        let mut slot = Some(runnable);
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

thread_local! {
    /// Every loop created on this thread, so a task woken on the loop's own
    /// thread goes straight to the ready queue.
    static LOCAL_LOOPS: RefCell<Vec<(u64, Weak<LoopInner>)>> = const { RefCell::new(Vec::new()) };
    /// The loop running on this thread, if any.
    static RUNNING: RefCell<Option<EventLoop>> = const { RefCell::new(None) };
}

fn with_local_loop<R>(id: u64, f: impl FnOnce(&LoopInner) -> R) -> Option<R> {
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

pub(crate) struct LoopInner {
    pub(crate) shared: Arc<CrossThread>,
    ready: RefCell<VecDeque<Ready>>,
    timers: RefCell<Timers>,
    /// The backend; `None` once the loop is closed.
    pub(crate) driver: RefCell<Option<Box<dyn Driver>>>,
    backend: &'static str,
    /// The operations in the backend (see [`crate::op::lifecycle`]).
    pub(crate) ops: RefCell<OpTable>,
    /// This loop, for callbacks that must find it again.
    me: Weak<LoopInner>,
    completions: RefCell<Vec<Completion>>,
    pub(crate) tasks: TaskRegistry,
    running: Cell<bool>,
    stopping: Cell<bool>,
    /// Busy iterations since the poll schedule was last looked at (see `run_once`).
    polls_skipped: Cell<u32>,
    /// When the backend was last polled because of that schedule (`None`:
    /// not since the loop was last idle or stopping).
    last_busy_poll: Cell<Option<Instant>>,
    closed: Cell<bool>,
    exception_handler: RefCell<Option<ExceptionHandler>>,
    /// Optional subsystems (executor, signals, child watcher). Declared
    /// last so that, when a loop is dropped without `close()`, the backend
    /// is gone before their `Drop` closes descriptors it may have watched.
    pub(crate) extensions: Extensions,
}

impl LoopInner {
    fn schedule_local(&self, runnable: Runnable) {
        if self.closed.get() {
            drop(runnable);
        } else {
            self.ready.borrow_mut().push_back(Ready::Task(runnable));
        }
    }

    fn drain_remote(&self) -> bool {
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

    fn deliver(&self, completion: Completion) {
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
    /// `new_event_loop()`; users normally go through a policy.
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

    fn check_open(&self) -> Result<()> {
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
        Ok(crate::task::spawn(self, fut))
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

    /// Stops the loop after the current batch of callbacks. Called before
    /// `run_forever`, it makes that run do exactly one iteration.
    pub fn stop(&self) {
        self.inner.stopping.set(true);
    }

    /// Runs until [`stop`](Self::stop) is called.
    pub fn run_forever(&self) -> Result<()> {
        let _running = self.enter()?;
        loop {
            self.run_once()?;
            if self.inner.stopping.get() {
                return Ok(());
            }
        }
    }

    /// Runs `fut` as a task until it completes and returns its output.
    ///
    /// If the loop is stopped first, returns [`Error::StoppedBeforeComplete`];
    /// the task stays scheduled and a later run continues it. A panic in the
    /// future is reported to the exception handler and returned as
    /// [`Error::Panicked`].
    pub fn run_until_complete<F>(&self, fut: F) -> Result<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.check_open()?;
        self.check_can_run()?;
        let mut task = self.create_task(fut)?;
        let _running = self.enter()?;
        loop {
            self.run_once()?;
            if task.is_finished() {
                let waker = Waker::noop();
                let mut cx = Context::from_waker(waker);
                return match Pin::new(&mut task).poll(&mut cx) {
                    Poll::Ready(result) => result,
                    Poll::Pending => Err(Error::Cancelled),
                };
            }
            if self.inner.stopping.get() {
                return Err(Error::StoppedBeforeComplete);
            }
        }
    }

    fn check_can_run(&self) -> Result<()> {
        if self.inner.running.get() {
            return Err(Error::AlreadyRunning);
        }
        if RUNNING.with(|r| r.borrow().is_some()) {
            return Err(Error::AnotherLoopRunning);
        }
        Ok(())
    }

    /// Marks the loop running on this thread until the guard drops.
    fn enter(&self) -> Result<RunningGuard> {
        self.check_open()?;
        self.check_can_run()?;
        self.inner.running.set(true);
        RUNNING.with(|r| *r.borrow_mut() = Some(self.clone()));
        Ok(RunningGuard { lp: self.clone() })
    }

    fn run_once(&self) -> Result<()> {
        let inner = &*self.inner;
        if inner.drain_remote() {
            inner.stopping.set(true);
        }

        // While ready work keeps the loop busy, the backend is still polled
        // (without blocking) every POLL_EVERY iterations once POLL_INTERVAL
        // has passed since the last such poll, so I/O is never starved; in
        // between, iterations cost no syscall and the clock is read once
        // per POLL_EVERY iterations. An iteration that could block, or that
        // ends a run, always polls.
        let busy = !inner.ready.borrow().is_empty();
        if busy && !inner.stopping.get() {
            let skips = inner.polls_skipped.get() + 1;
            if skips < POLL_EVERY {
                inner.polls_skipped.set(skips);
            } else {
                inner.polls_skipped.set(0);
                let now = Instant::now();
                let due = inner
                    .last_busy_poll
                    .get()
                    .is_none_or(|last| now.saturating_duration_since(last) >= POLL_INTERVAL);
                if due {
                    inner.last_busy_poll.set(Some(now));
                    self.poll_backend(true)?;
                }
            }
        } else {
            inner.polls_skipped.set(0);
            inner.last_busy_poll.set(None);
            self.poll_backend(busy)?;
        }

        if inner.timers.borrow().len() > 0 {
            let now = Instant::now();
            let mut timers = inner.timers.borrow_mut();
            let mut ready = inner.ready.borrow_mut();
            timers.pop_due(now, &mut |cb| ready.push_back(Ready::Callback(cb)));
        }

        let batch = inner.ready.borrow().len();
        for _ in 0..batch {
            let item = inner.ready.borrow_mut().pop_front();
            match item {
                Some(Ready::Task(runnable)) => {
                    // Panics inside the task's future are caught by the task wrapper.
                    runnable.run();
                }
                Some(Ready::Callback(cb)) => {
                    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| cb.run())) {
                        self.report_panic("Exception in callback", payload, Some(Handle(cb)));
                    }
                }
                Some(Ready::Bare(f)) => {
                    if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
                        self.report_panic("Exception in callback", payload, None);
                    }
                }
                None => break,
            }
        }
        Ok(())
    }

    /// Waits in the backend (not at all if `busy` or stopping, else until
    /// the earliest timer) and takes in its completions and remote work.
    fn poll_backend(&self, busy: bool) -> Result<()> {
        let inner = &*self.inner;
        let mut timeout = if busy || inner.stopping.get() {
            Some(Duration::ZERO)
        } else {
            inner
                .timers
                .borrow_mut()
                .next_deadline()
                .map(|when| when.saturating_duration_since(Instant::now()).min(MAX_WAIT))
        };

        // Announce that we may block; a remote push after this line notifies.
        if inner.shared.remote.announce_sleep() {
            timeout = Some(Duration::ZERO);
        }

        let mut completions = std::mem::take(&mut *inner.completions.borrow_mut());
        let waited = match inner.driver.borrow_mut().as_mut() {
            Some(driver) => driver.wait(timeout, &mut completions),
            None => return Err(Error::Closed),
        };
        inner.shared.remote.awake();

        if inner.drain_remote() {
            inner.stopping.set(true);
        }
        // Completions gathered before a wait error are still delivered:
        // their operations are over, and their futures must learn it.
        for completion in completions.drain(..) {
            inner.deliver(completion);
        }
        *inner.completions.borrow_mut() = completions;
        waited?;
        Ok(())
    }

    fn report_panic(&self, message: &str, payload: Box<dyn Any + Send>, handle: Option<Handle>) {
        self.call_exception_handler(ExceptionContext {
            message: message.to_owned(),
            payload: Some(panic_message(&*payload)),
            handle,
            ..ExceptionContext::default()
        });
    }

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
                && timers.is_empty()
                && remote.is_empty()
                && wakers.is_empty()
                && callbacks.is_empty();
            drop(ready);
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

struct RunningGuard {
    lp: EventLoop,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.lp.inner.running.set(false);
        self.lp.inner.stopping.set(false);
        let _ = RUNNING.try_with(|r| r.borrow_mut().take());
    }
}

/// The loop running on this thread, or [`Error::NoRunningLoop`].
pub fn get_running_loop() -> Result<EventLoop> {
    RUNNING
        .try_with(|r| r.borrow().clone())
        .ok()
        .flatten()
        .ok_or(Error::NoRunningLoop)
}

/// A `Send + Sync` reference to a loop, for other threads.
#[derive(Clone)]
pub struct LoopHandle {
    shared: Arc<CrossThread>,
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

impl EventLoop {
    /// Number of tasks on this loop that have not finished.
    pub fn task_count(&self) -> usize {
        self.inner.tasks.len()
    }

    /// Requests cancellation of every unfinished task; returns how many.
    pub fn cancel_all_tasks(&self) -> usize {
        self.inner.tasks.cancel_all()
    }

    /// Cancels every unfinished task and runs the loop until they have all
    /// ended (what `run()` does before closing the loop).
    pub fn shutdown_tasks(&self) -> Result<()> {
        if self.is_closed() || self.inner.tasks.len() == 0 {
            return Ok(());
        }
        self.cancel_all_tasks();
        let _running = self.enter()?;
        while self.inner.tasks.len() > 0 {
            self.run_once()?;
            // Tasks spawned while shutting down are cancelled too.
            self.cancel_all_tasks();
        }
        Ok(())
    }
}
