//! Waiting on several tasks (asyncio's `wait` and `as_completed`),
//! `shield`, and a free `spawn` on the running loop.
//!
//! A task *raised* (for [`ReturnWhen::FirstException`]) when it panicked:
//! its awaiter gets [`Error::Panicked`]. An `Err` a task returns is a value
//! like any other here, since a `Task<T>` may hold any `T`; a
//! [`TaskGroup`](crate::TaskGroup) is where `Err` counts as a failure.
//! Cancelled tasks are done, not failed, as in asyncio.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::loop_core::awaitables::Sleep;
use crate::loop_core::error::{Error, Result};
use crate::loop_core::get_running_loop;
use crate::loop_core::task::Task;

/// When [`wait`] returns (asyncio's `FIRST_COMPLETED`, `FIRST_EXCEPTION`,
/// `ALL_COMPLETED`). [`wait`]'s example uses `FirstCompleted`; here the
/// other two:
///
/// ```
/// use evloop::{sleep, spawn, wait, Error, ReturnWhen};
/// use std::time::Duration;
///
/// evloop::run(async {
///     // FirstException: back as soon as a task panics, the rest pending.
///     let slow = spawn(async { sleep(Duration::from_secs(60)).await })?;
///     let boom = spawn(async { panic!("boom") })?;
///     let (done, pending) = wait([slow, boom], ReturnWhen::FirstException, None).await?;
///     assert_eq!((done.len(), pending.len()), (1, 1));
///     for task in done {
///         assert!(task.await.unwrap_err().is_panic());
///     }
///     for task in pending {
///         task.cancel(); // wait itself cancels nothing
///     }
///
///     // AllCompleted (with a timeout that is not reached): every task done.
///     let tasks = (1..=3).map(|i| spawn(async move { i * 10 })).collect::<Result<Vec<_>, _>>()?;
///     let (done, pending) =
///         wait(tasks, ReturnWhen::AllCompleted, Some(Duration::from_secs(10))).await?;
///     assert!(pending.is_empty());
///     let mut sum = 0;
///     for task in done {
///         sum += task.await?;
///     }
///     assert_eq!(sum, 60);
///     Ok::<_, Error>(())
/// })??;
/// # Ok::<_, evloop::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReturnWhen {
    /// As soon as any task has ended (completed, panicked or cancelled).
    FirstCompleted,
    /// As soon as any task has panicked, or when all have ended.
    FirstException,
    /// When every task has ended.
    AllCompleted,
}

/// Waits for `tasks` until `return_when` holds or `timeout` (if any)
/// passes, and returns `(done, pending)`: the tasks that have ended (their
/// results still to be awaited, at once) and the others, each list in the
/// order given. Nothing is cancelled, on timeout either (asyncio's `wait`).
///
/// An empty `tasks` is [`Error::InvalidArgument`] (asyncio's `ValueError`);
/// a timeout outside a running loop is [`Error::NoRunningLoop`].
///
/// ```
/// # evloop::run(async {
/// use evloop::{sleep, spawn, wait, ReturnWhen};
/// use std::time::Duration;
///
/// let quick = spawn(async { 1 })?;
/// let slow = spawn(async {
///     sleep(Duration::from_secs(60)).await;
///     2
/// })?;
/// let (done, pending) = wait([quick, slow], ReturnWhen::FirstCompleted, None).await?;
/// assert_eq!((done.len(), pending.len()), (1, 1));
/// for task in done {
///     assert_eq!(task.await?, 1);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap().unwrap();
/// ```
pub fn wait<T, I>(tasks: I, return_when: ReturnWhen, timeout: Option<Duration>) -> Wait<T>
where
    I: IntoIterator<Item = Task<T>>,
{
    Wait {
        tasks: Some(tasks.into_iter().collect()),
        return_when,
        timeout,
        sleep: None,
    }
}

/// The future returned by [`wait`].
pub struct Wait<T> {
    tasks: Option<Vec<Task<T>>>,
    return_when: ReturnWhen,
    timeout: Option<Duration>,
    sleep: Option<Sleep>,
}

impl<T> fmt::Debug for Wait<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wait")
            .field("tasks", &self.tasks.as_ref().map_or(0, Vec::len))
            .field("return_when", &self.return_when)
            .field("timeout", &self.timeout)
            .finish()
    }
}

type Split<T> = (Vec<Task<T>>, Vec<Task<T>>);

impl<T> Future for Wait<T> {
    type Output = Result<Split<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Some(tasks) = this.tasks.as_mut() else {
            return Poll::Ready(Err(Error::InvalidArgument(
                "wait() polled after it returned".to_owned(),
            )));
        };
        if tasks.is_empty() {
            this.tasks = None;
            return Poll::Ready(Err(Error::InvalidArgument(
                "wait() needs at least one task".to_owned(),
            )));
        }
        let (mut any_done, mut any_raised, mut all_done) = (false, false, true);
        for task in tasks.iter_mut() {
            match task.poll_done(cx) {
                Poll::Ready(()) => {
                    any_done = true;
                    any_raised |= matches!(task.kept_output(), Some(Err(Error::Panicked(_))));
                }
                Poll::Pending => all_done = false,
            }
        }
        let finished = match this.return_when {
            ReturnWhen::FirstCompleted => any_done,
            ReturnWhen::FirstException => any_raised || all_done,
            ReturnWhen::AllCompleted => all_done,
        };
        if !finished {
            if let Some(delay) = this.timeout {
                if this.sleep.is_none() {
                    match get_running_loop() {
                        Ok(lp) => this.sleep = Some(lp.sleep(delay)),
                        Err(e) => {
                            this.tasks = None;
                            return Poll::Ready(Err(e));
                        }
                    }
                }
                if let Some(sleep) = this.sleep.as_mut() {
                    if Pin::new(sleep).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
            } else {
                return Poll::Pending;
            }
        }
        this.sleep = None;
        let tasks = this.tasks.take().unwrap_or_default();
        Poll::Ready(Ok(tasks
            .into_iter()
            .partition(|task| task.kept_output().is_some())))
    }
}

/// Yields the results of `tasks` as they finish (asyncio's
/// `as_completed`): each [`next`](AsCompleted::next) gives the result of a
/// task that has ended, until none is left.
///
/// Tasks that ended while nobody awaited `next` (or in the same loop
/// iteration) come in the order given. For a deadline over the whole
/// iteration, wrap the calls in one [`timeout`](crate::timeout) scope.
///
/// ```
/// # evloop::run(async {
/// use evloop::{as_completed, sleep, spawn};
/// use std::time::Duration;
///
/// let tasks = [30u64, 10, 20].map(|ms| {
///     spawn(async move {
///         sleep(Duration::from_millis(ms)).await;
///         ms
///     })
/// });
/// let mut results = as_completed(tasks.into_iter().collect::<evloop::Result<Vec<_>>>()?);
/// while let Some(result) = results.next().await {
///     println!("{}", result?); // 10, 20, 30
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap().unwrap();
/// ```
pub fn as_completed<T, I>(tasks: I) -> AsCompleted<T>
where
    I: IntoIterator<Item = Task<T>>,
{
    AsCompleted {
        tasks: tasks.into_iter().collect(),
    }
}

/// The iterator of results returned by [`as_completed`]. Dropping it
/// detaches the tasks it still holds (they keep running).
pub struct AsCompleted<T> {
    tasks: Vec<Task<T>>,
}

impl<T> AsCompleted<T> {
    /// The result of the next task to end; `None` once every result was
    /// given.
    // An async `next`, as a stream's (`StreamExt::next`), not an iterator's.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Next<'_, T> {
        Next { set: self }
    }

    /// Number of results still to come.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// `true` once every result was given.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}

impl<T> fmt::Debug for AsCompleted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted")
            .field("remaining", &self.tasks.len())
            .finish()
    }
}

/// The future returned by [`AsCompleted::next`].
pub struct Next<'a, T> {
    set: &'a mut AsCompleted<T>,
}

impl<T> fmt::Debug for Next<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Next")
            .field("remaining", &self.set.tasks.len())
            .finish()
    }
}

impl<T> Future for Next<'_, T> {
    type Output = Option<Result<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let tasks = &mut self.get_mut().set.tasks;
        if tasks.is_empty() {
            return Poll::Ready(None);
        }
        for i in 0..tasks.len() {
            if let Poll::Ready(result) = Pin::new(&mut tasks[i]).poll(cx) {
                tasks.remove(i);
                return Poll::Ready(Some(result));
            }
        }
        Poll::Pending
    }
}

/// Runs `fut` as a task on the running loop and awaits it in a way that
/// dropping the awaiting future does not stop it (asyncio's `shield`).
///
/// In Rust, cancelling is dropping: a [`Shield`] dropped by a
/// [`timeout`](crate::timeout), a `select!` or a cancelled task leaves the
/// inner task running to completion. To still get its result after such a
/// drop, await the shield by reference (`(&mut shield).await`, or
/// `timeout(d, &mut shield)`) and await `shield` itself later.
///
/// [`Error::NoRunningLoop`] outside a running loop.
///
/// ```
/// # evloop::run(async {
/// use evloop::{shield, sleep, timeout, Error};
/// use std::time::Duration;
///
/// let mut work = shield(async {
///     sleep(Duration::from_millis(50)).await;
///     "saved"
/// })?;
/// // The timeout drops its future (a reference); the work goes on.
/// let early = timeout(Duration::from_millis(1), &mut work).await;
/// assert!(matches!(early, Err(Error::TimedOut)));
/// assert_eq!(work.await?, "saved");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap().unwrap();
/// ```
pub fn shield<F>(fut: F) -> Result<Shield<F::Output>>
where
    F: Future + 'static,
    F::Output: 'static,
{
    Ok(Shield { task: spawn(fut)? })
}

/// The future returned by [`shield`]: the inner task's result. Dropping it
/// detaches the task, which runs on.
#[derive(Debug)]
pub struct Shield<T> {
    task: Task<T>,
}

impl<T> Shield<T> {
    /// `true` once the inner task has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// The inner task.
    pub fn into_task(self) -> Task<T> {
        self.task
    }
}

impl<T> Future for Shield<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.task).poll(cx)
    }
}

/// Runs `fut` as a task on the running loop (asyncio's `create_task`, as a
/// free function; tokio's `spawn`). [`Error::NoRunningLoop`] outside a
/// running loop, [`Error::Closed`] if it is closed.
///
/// ```
/// # evloop::run(async {
/// let task = evloop::spawn(async { 6 * 7 })?;
/// assert_eq!(task.await?, 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap().unwrap();
/// ```
pub fn spawn<F>(fut: F) -> Result<Task<F::Output>>
where
    F: Future + 'static,
    F::Output: 'static,
{
    get_running_loop()?.create_task(fut)
}
