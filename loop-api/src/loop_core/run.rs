//! Running the loop: `run_forever`, `run_until_complete`, one iteration
//! (`run_once`) and the backend poll in it, and `get_running_loop`.
//!
//! One iteration follows asyncio's `_run_once`:
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
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::event_loop::{Ready, RUNNING};
use super::{Error, EventLoop, Result};
use crate::loop_core::error::panic_message;
use crate::loop_core::exception::ExceptionContext;
use crate::loop_core::handle::Handle;

/// The longest a single wait may block (asyncio's `MAXIMUM_SELECT_TIMEOUT`).
const MAX_WAIT: Duration = Duration::from_secs(24 * 60 * 60);
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

impl EventLoop {
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
    pub(super) fn enter(&self) -> Result<RunningGuard> {
        self.check_open()?;
        self.check_can_run()?;
        self.inner.running.set(true);
        RUNNING.with(|r| *r.borrow_mut() = Some(self.clone()));
        if self.inner.detached.get() {
            self.register_local();
        }
        Ok(RunningGuard { lp: self.clone() })
    }
    fn run_once(&self) -> Result<()> {
        self.run_once_with(false)
    }
    /// One iteration; `no_block` polls the backend without waiting, as a
    /// pending stop does (an embedder's own stop flag).
    pub(super) fn run_once_with(&self, no_block: bool) -> Result<()> {
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
        if busy && !inner.stopping.get() && !no_block {
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
            self.poll_backend(busy || no_block)?;
        }

        if inner.timers.borrow().len() > 0 {
            let now = Instant::now();
            let mut timers = inner.timers.borrow_mut();
            let mut ready = inner.ready.borrow_mut();
            timers.pop_due(now, &mut |cb| ready.push_back(Ready::Callback(cb)));
        }

        let batch = inner.ready.borrow().len();
        inner.abandon.set(false);
        for _ in 0..batch {
            // An embedder's callback asked to end the batch here (see
            // `EventLoop::abandon_batch`); the rest stays queued.
            if inner.abandon.replace(false) {
                break;
            }
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
        let hook = match timeout {
            Some(Duration::ZERO) => None,
            _ => inner.wait_hook.borrow().clone(),
        };
        let waited = match inner.driver.borrow_mut().as_mut() {
            Some(driver) => match hook {
                // The embedder's hook wraps only a wait that may block.
                Some(hook) => {
                    let mut waited = None;
                    hook(&mut || waited = Some(driver.wait(timeout, &mut completions)));
                    waited.unwrap_or(Ok(()))
                }
                None => driver.wait(timeout, &mut completions),
            },
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

pub(super) struct RunningGuard {
    lp: EventLoop,
}
impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.lp.inner.running.set(false);
        self.lp.inner.stopping.set(false);
        let _ = RUNNING.try_with(|r| r.borrow_mut().take());
        if self.lp.inner.detached.get() {
            self.lp.unregister_local();
        }
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
