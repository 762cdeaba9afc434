//! `run_in_executor`: blocking work on other threads, awaited on the loop.
//!
//! A job runs on an [`Executor`] (by default the loop's own [`ThreadPool`],
//! created on first use with `min(32, cores + 4)` threads named
//! `evloop-executor-N`). Its result travels back through the loop's
//! thread-safe path ([`LoopHandle::call_soon_threadsafe`]) and is handed to
//! the awaiting [`ExecutorFuture`] on the loop thread, as asyncio's
//! `wrap_future` does.
//!
//! - A panic in the job arrives as [`Error::Panicked`] at the await.
//! - Dropping the future abandons the job: if it has not started it never
//!   runs; if it is running, its late result is discarded.
//! - `shutdown_default_executor()` waits (on a helper thread, never blocking
//!   the loop) for the jobs already submitted; later submissions fail with
//!   [`Error::ExecutorShutdown`].
//! - `close()` shuts the default executor down *without* waiting: running
//!   jobs finish on their threads and their results are dropped there.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::loop_core::error::{panic_message, Error, Result};
use crate::loop_core::extensions::Extension;
use crate::loop_core::{EventLoop, LoopHandle};

/// A unit of work handed to an [`Executor`].
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// Runs jobs on other threads: the default [`ThreadPool`], or anything a
/// user installs with [`EventLoop::set_default_executor`] or passes to
/// [`EventLoop::run_in_executor_with`].
///
/// The loop relies on two things: `execute` never runs the job inline on
/// the calling (loop) thread in a way that blocks it, and a job that was
/// accepted eventually runs (or is dropped, which the awaiter sees as the
/// job being abandoned, never as a hang: dropping a job drops its result
/// channel, which completes the future with [`Error::Cancelled`]).
///
/// ```
/// use evloop::{Executor, Job};
/// use std::sync::Arc;
///
/// /// One new thread per job (a pool is usually better; this shows the trait).
/// #[derive(Debug)]
/// struct ThreadPerJob;
/// impl Executor for ThreadPerJob {
///     fn execute(&self, job: Job) -> evloop::Result<()> {
///         std::thread::spawn(job);
///         Ok(())
///     }
///     fn shutdown(&self, _wait: bool) {}
/// }
///
/// let n = evloop::run(async {
///     let lp = evloop::get_running_loop().unwrap();
///     lp.set_default_executor(Arc::new(ThreadPerJob)).unwrap();
///     lp.run_in_executor(|| 40 + 2).await
/// });
/// assert_eq!(n.unwrap().unwrap(), 42);
/// ```
pub trait Executor: Send + Sync + 'static {
    /// Queues `job`. Fails with [`Error::ExecutorShutdown`] once the executor
    /// no longer accepts work (or with another error it cannot run it).
    fn execute(&self, job: Job) -> Result<()>;

    /// Stops accepting jobs. With `wait`, blocks until every job already
    /// accepted has finished; without, returns at once and lets them finish.
    fn shutdown(&self, wait: bool);
}

/// The default size of a loop's pool: `min(32, cores + 4)`, as Python's
/// `ThreadPoolExecutor`.
pub fn default_pool_size() -> usize {
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    (cores + 4).min(32)
}

/// A bounded pool of threads, created lazily (one more thread only when a
/// job arrives and no thread is idle), which end once the pool is shut down
/// and its queue is empty.
///
/// ```
/// use evloop::ThreadPool;
/// let pool = ThreadPool::with_name_prefix(2, "db");
/// let name = evloop::run(async move {
///     let lp = evloop::get_running_loop().unwrap();
///     lp.run_in_executor_with(&pool, || std::thread::current().name().map(str::to_owned))
///         .await
/// });
/// assert!(name.unwrap().unwrap().unwrap().starts_with("db"));
/// ```
pub struct ThreadPool {
    shared: Arc<PoolShared>,
}

struct PoolShared {
    name_prefix: String,
    max_workers: usize,
    state: Mutex<PoolState>,
    /// Signalled when a job is queued or the pool shuts down.
    work: Condvar,
}

#[derive(Default)]
struct PoolState {
    queue: VecDeque<Job>,
    threads: usize,
    idle: usize,
    spawned: usize,
    shutdown: bool,
    handles: Vec<JoinHandle<()>>,
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("ThreadPool")
            .field("name_prefix", &self.shared.name_prefix)
            .field("max_workers", &self.shared.max_workers)
            .field("threads", &state.threads)
            .field("queued", &state.queue.len())
            .field("shutdown", &state.shutdown)
            .finish()
    }
}

impl PoolShared {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // A job never runs under the lock, so poisoning cannot leave the
        // state half-updated.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn worker(self: Arc<Self>) {
        loop {
            let job = {
                let mut state = self.lock();
                loop {
                    if let Some(job) = state.queue.pop_front() {
                        break Some(job);
                    }
                    if state.shutdown {
                        break None;
                    }
                    state.idle += 1;
                    state = self.work.wait(state).unwrap_or_else(|e| e.into_inner());
                    state.idle -= 1;
                }
            };
            match job {
                // Jobs built by `run_in_executor` catch their own panics;
                // this keeps the thread alive for foreign ones.
                Some(job) => drop(catch_unwind(AssertUnwindSafe(job))),
                None => {
                    self.lock().threads -= 1;
                    return;
                }
            }
        }
    }
}

impl ThreadPool {
    /// A pool of at most `max_workers` threads (at least one) named
    /// `evloop-executor-N`.
    pub fn new(max_workers: usize) -> ThreadPool {
        ThreadPool::with_name_prefix(max_workers, "evloop-executor")
    }

    /// A pool whose threads are named `{prefix}-N`.
    pub fn with_name_prefix(max_workers: usize, prefix: &str) -> ThreadPool {
        ThreadPool {
            shared: Arc::new(PoolShared {
                name_prefix: prefix.to_owned(),
                max_workers: max_workers.max(1),
                state: Mutex::new(PoolState::default()),
                work: Condvar::new(),
            }),
        }
    }

    /// The most threads this pool runs at once.
    pub fn max_workers(&self) -> usize {
        self.shared.max_workers
    }

    /// Threads currently alive.
    pub fn thread_count(&self) -> usize {
        self.shared.lock().threads
    }
}

impl Executor for ThreadPool {
    fn execute(&self, job: Job) -> Result<()> {
        let mut state = self.shared.lock();
        if state.shutdown {
            return Err(Error::ExecutorShutdown);
        }
        let need_thread = state.idle == 0 && state.threads < self.shared.max_workers;
        if need_thread {
            let name = format!("{}-{}", self.shared.name_prefix, state.spawned);
            let shared = self.shared.clone();
            match thread::Builder::new()
                .name(name)
                .spawn(move || shared.worker())
            {
                Ok(handle) => {
                    state.threads += 1;
                    state.spawned += 1;
                    state.handles.retain(|h| !h.is_finished());
                    state.handles.push(handle);
                }
                // Another thread will pick the job up; with none, fail now.
                Err(e) if state.threads == 0 => return Err(Error::from(e)),
                Err(_) => {}
            }
        }
        state.queue.push_back(job);
        drop(state);
        self.shared.work.notify_one();
        Ok(())
    }

    fn shutdown(&self, wait: bool) {
        let handles = {
            let mut state = self.shared.lock();
            state.shutdown = true;
            if wait {
                std::mem::take(&mut state.handles)
            } else {
                Vec::new()
            }
        };
        self.shared.work.notify_all();
        let me = thread::current().id();
        for handle in handles {
            // A job that shuts its own pool down cannot wait for itself.
            if handle.thread().id() != me {
                let _ = handle.join();
            }
        }
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shutdown(false);
    }
}

/// A one-shot slot filled on the loop thread and read by one future.
struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
    /// The future was dropped: skip the job if it has not started, and
    /// drop a late value.
    abandoned: bool,
    /// The sender was dropped without a value (the job was dropped).
    sender_gone: bool,
}

type SharedSlot<T> = Arc<Mutex<Slot<T>>>;

fn lock_slot<T>(slot: &Mutex<Slot<T>>) -> MutexGuard<'_, Slot<T>> {
    slot.lock().unwrap_or_else(|e| e.into_inner())
}

/// The sending half: delivers at most once; dropped without a value, it
/// completes the receiver with [`Error::Cancelled`].
struct Sender<T> {
    slot: Option<SharedSlot<Result<T>>>,
}

impl<T> Sender<T> {
    fn abandoned(&self) -> bool {
        self.slot.as_ref().is_none_or(|s| lock_slot(s).abandoned)
    }

    fn send(mut self, value: Result<T>) {
        let Some(slot) = self.slot.take() else { return };
        let mut guard = lock_slot(&slot);
        if guard.abandoned {
            drop(guard);
            // A late result nobody waits for: released here, on the loop thread.
            drop(value);
            return;
        }
        guard.value = Some(value);
        let waker = guard.waker.take();
        drop(guard);
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            let mut guard = lock_slot(&slot);
            guard.sender_gone = true;
            let waker = guard.waker.take();
            drop(guard);
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}

fn channel<T>() -> (Sender<T>, SharedSlot<Result<T>>) {
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        waker: None,
        abandoned: false,
        sender_gone: false,
    }));
    (
        Sender {
            slot: Some(slot.clone()),
        },
        slot,
    )
}

/// The awaitable returned by [`EventLoop::run_in_executor`]: resolves to the
/// job's return value, [`Error::Panicked`] if it panicked, or the error that
/// prevented it from being submitted ([`Error::Closed`],
/// [`Error::ExecutorShutdown`], ...). Dropping it abandons the job.
#[must_use = "the job's result is discarded unless the future is awaited"]
pub struct ExecutorFuture<T> {
    state: FutState<T>,
}

enum FutState<T> {
    Failed(Option<Error>),
    Waiting(SharedSlot<Result<T>>),
}

impl<T> fmt::Debug for ExecutorFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            FutState::Failed(_) => "failed",
            FutState::Waiting(_) => "waiting",
        };
        f.debug_struct("ExecutorFuture")
            .field("state", &state)
            .finish()
    }
}

impl<T> ExecutorFuture<T> {
    fn failed(e: Error) -> Self {
        ExecutorFuture {
            state: FutState::Failed(Some(e)),
        }
    }
}

impl<T> Unpin for ExecutorFuture<T> {}

impl<T> Future for ExecutorFuture<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        match &mut self.state {
            FutState::Failed(e) => Poll::Ready(Err(e.take().unwrap_or(Error::Cancelled))),
            FutState::Waiting(slot) => {
                let mut guard = lock_slot(slot);
                if let Some(value) = guard.value.take() {
                    // Nothing more will come; make Drop a no-op.
                    guard.abandoned = true;
                    return Poll::Ready(value);
                }
                if guard.sender_gone {
                    return Poll::Ready(Err(Error::Cancelled));
                }
                match &guard.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => guard.waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

impl<T> Drop for ExecutorFuture<T> {
    fn drop(&mut self) {
        if let FutState::Waiting(slot) = &self.state {
            let mut guard = lock_slot(slot);
            guard.abandoned = true;
            guard.waker = None;
            let late = guard.value.take();
            drop(guard);
            drop(late);
        }
    }
}

/// The loop's executor state.
#[derive(Default)]
pub(crate) struct ExecutorState {
    default: RefCell<Option<Arc<dyn Executor>>>,
    shutdown_called: Cell<bool>,
}

impl ExecutorState {
    fn shutdown_now(&self) {
        if let Some(executor) = self.default.borrow_mut().take() {
            executor.shutdown(false);
        }
    }
}

impl Extension for ExecutorState {
    fn on_close(&self, _lp: &EventLoop) {
        self.shutdown_called.set(true);
        self.shutdown_now();
    }
}

impl Drop for ExecutorState {
    fn drop(&mut self) {
        self.shutdown_now();
    }
}

/// Wraps `f` into a job that reports to `handle` through `tx`.
fn make_job<F, T>(handle: LoopHandle, tx: Sender<T>, f: F) -> Job
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Box::new(move || {
        if tx.abandoned() {
            // Cancelled before it started: do not run it at all.
            return;
        }
        let result =
            catch_unwind(AssertUnwindSafe(f)).map_err(|p| Error::Panicked(panic_message(&*p)));
        // If the loop is closed the closure (and the result) is dropped here.
        let _ = handle.call_soon_threadsafe(move || tx.send(result));
    })
}

impl EventLoop {
    fn executor_state(&self) -> std::rc::Rc<ExecutorState> {
        self.inner
            .extensions
            .get_or_insert_with(ExecutorState::default)
    }

    /// Runs the blocking closure `f` on the loop's default executor (a
    /// [`ThreadPool`] of `min(32, cores + 4)` threads named
    /// `evloop-executor-N`, created on first use) and returns an awaitable
    /// of its result.
    ///
    /// ```
    /// let total = evloop::run(async {
    ///     let lp = evloop::get_running_loop().unwrap();
    ///     // Blocking work (a C library, std::fs, a checksum) off the loop thread:
    ///     lp.run_in_executor(|| (1..=100u64).sum::<u64>()).await
    /// });
    /// assert_eq!(total.unwrap().unwrap(), 5050);
    /// ```
    ///
    /// The job is submitted at once, not when the future is first polled.
    /// Errors (loop closed, executor shut down) are reported by the future.
    pub fn run_in_executor<F, T>(&self, f: F) -> ExecutorFuture<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if self.is_closed() {
            return ExecutorFuture::failed(Error::Closed);
        }
        let state = self.executor_state();
        if state.shutdown_called.get() {
            return ExecutorFuture::failed(Error::ExecutorShutdown);
        }
        let executor = state
            .default
            .borrow_mut()
            .get_or_insert_with(|| Arc::new(ThreadPool::new(default_pool_size())))
            .clone();
        self.run_in_executor_with(&*executor, f)
    }

    /// Like [`run_in_executor`](Self::run_in_executor), on `executor`
    /// instead of the default one.
    pub fn run_in_executor_with<F, T>(&self, executor: &dyn Executor, f: F) -> ExecutorFuture<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if self.is_closed() {
            return ExecutorFuture::failed(Error::Closed);
        }
        let (tx, slot) = channel();
        match executor.execute(make_job(self.handle(), tx, f)) {
            Ok(()) => ExecutorFuture {
                state: FutState::Waiting(slot),
            },
            Err(e) => ExecutorFuture::failed(e),
        }
    }

    /// Makes `executor` the default for [`run_in_executor`](Self::run_in_executor).
    /// A previous default is not shut down. `close()` shuts the default
    /// executor down (without waiting), whoever created it.
    pub fn set_default_executor(&self, executor: Arc<dyn Executor>) -> Result<()> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        *self.executor_state().default.borrow_mut() = Some(executor);
        Ok(())
    }

    /// Shuts the default executor down and waits until the jobs it has
    /// accepted have finished (on a helper thread: the loop keeps running).
    /// Afterwards `run_in_executor` fails with [`Error::ExecutorShutdown`].
    pub async fn shutdown_default_executor(&self) -> Result<()> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let state = self.executor_state();
        state.shutdown_called.set(true);
        let Some(executor) = state.default.borrow_mut().take() else {
            return Ok(());
        };
        let (tx, slot) = channel::<()>();
        let handle = self.handle();
        let spawned = thread::Builder::new()
            .name("evloop-executor-shutdown".to_owned())
            .spawn(move || {
                executor.shutdown(true);
                let _ = handle.call_soon_threadsafe(move || tx.send(Ok(())));
            });
        if let Err(e) = spawned {
            return Err(Error::from(e));
        }
        ExecutorFuture {
            state: FutState::Waiting(slot),
        }
        .await
    }

    /// [`shutdown_default_executor`](Self::shutdown_default_executor) with a
    /// time limit: after `timeout` it returns [`Error::TimedOut`], leaving
    /// the remaining jobs to finish on their threads (new jobs are refused
    /// either way).
    pub async fn shutdown_default_executor_timeout(&self, timeout: Duration) -> Result<()> {
        crate::loop_core::awaitables::wait_for(self.shutdown_default_executor(), timeout).await?
    }
}
