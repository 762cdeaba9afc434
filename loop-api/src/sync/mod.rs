//! asyncio's synchronization primitives, loop-local: [`Queue`] (with
//! [`LifoQueue`] and [`PriorityQueue`]), [`Event`], [`Lock`], [`Semaphore`]
//! and [`BoundedSemaphore`], [`Condition`], [`Barrier`].
//!
//! They follow CPython's `asyncio.queues` and `asyncio.locks` (3.13) in names
//! and semantics. What differs, and why:
//!
//! - **Loop-local.** Every type is a cheap `Clone` handle (`Rc` inside,
//!   clones share one primitive) and is `!Send`: they are for the tasks of
//!   one loop (futures need not be `Send`), hold no loop reference and use
//!   no atomics or locks, only wakers. They work inside any executor of one
//!   thread, in practice inside any task of the loop.
//! - **Strict FIFO by hand-over.** An item, permit or wake-up that becomes
//!   available while tasks wait is handed directly to the oldest waiter;
//!   a newcomer never takes it first (asyncio lets a newcomer's `*_nowait`
//!   take an item a woken getter was woken for).
//! - **Cancellation is drop** (see the README). A waiter dropped while it
//!   waits leaves the line. A waiter dropped after it was handed something
//!   but before it returned passes it on: the item goes to the next getter
//!   or back to the front of the queue, the permit or lock to the next
//!   waiter, the notification to the next `Condition` waiter. Nothing is lost,
//!   whatever drops the future (`Task::cancel()`, `wait_for`, `select!`).
//! - **Errors.** Bad input and misuse are typed errors ([`SyncError`];
//!   [`PutError`] gives the item back), never panics: a negative semaphore
//!   value, a barrier of no party, releasing an unlocked `Lock`, releasing
//!   a `BoundedSemaphore` too often, `task_done` too often, waiting on a
//!   `Condition` whose lock is not held.
//! - **`Lock` and `Semaphore` have guards too.** Besides asyncio's
//!   `acquire()`/`release()`, `lock()`/`permit()` give a guard that
//!   releases on drop (asyncio's `async with`).

mod barrier;
mod condition;
mod event;
mod lock;
mod queue;
mod semaphore;
mod waiters;

use std::fmt;

pub use barrier::{Barrier, BarrierWait};
pub use condition::{Condition, ConditionWait};
pub use event::{Event, EventWait};
pub use lock::{Lock, LockAcquire, LockGuard};
pub use queue::{Get, Join, LifoQueue, PriorityQueue, Put, PutError, Queue, QueueKind};
pub use semaphore::{BoundedSemaphore, Semaphore, SemaphoreAcquire, SemaphorePermit};

/// Why a synchronization primitive refused (asyncio's exceptions of
/// `asyncio.queues` and `asyncio.locks`, and its `ValueError`/`RuntimeError`
/// for misuse).
///
/// Every refusal is a value to match, never a panic (it implements
/// `std::error::Error`, so `?` into `Box<dyn Error>` works).
///
/// ```
/// use evloop::sync::{Lock, Queue, SyncError};
///
/// evloop::run(async {
///     let queue = Queue::<u32>::new(0);
///     assert_eq!(queue.get_nowait(), Err(SyncError::QueueEmpty));
///     assert_eq!(queue.task_done(), Err(SyncError::TaskDoneTooManyTimes));
///     queue.shutdown(false);
///     assert_eq!(queue.get().await, Err(SyncError::QueueShutDown));
///     assert_eq!(Lock::new().release(), Err(SyncError::NotLocked));
///     Ok::<_, evloop::Error>(())
/// })??;
/// # Ok::<_, evloop::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncError {
    /// `get_nowait` on an empty queue (`asyncio.QueueEmpty`).
    QueueEmpty,
    /// The queue was shut down and, for a get, holds nothing more
    /// (`asyncio.QueueShutDown`).
    QueueShutDown,
    /// `task_done` was called more times than items were put (asyncio's `ValueError`).
    TaskDoneTooManyTimes,
    /// `release` of a `Lock` that is not locked, or a `Condition` used
    /// without its lock (asyncio's `RuntimeError`).
    NotLocked,
    /// A `BoundedSemaphore` released more times than acquired (asyncio's `ValueError`).
    ReleasedTooManyTimes,
    /// The barrier was aborted or reset while this task waited, or is
    /// broken (`asyncio.BrokenBarrierError`).
    BrokenBarrier,
    /// A constructor argument out of range (asyncio's `ValueError`): a
    /// negative semaphore value, a barrier of no party.
    InvalidArgument(&'static str),
}

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncError::QueueEmpty => f.write_str("the queue is empty"),
            SyncError::QueueShutDown => f.write_str("the queue is shut down"),
            SyncError::TaskDoneTooManyTimes => f.write_str("task_done() called too many times"),
            SyncError::NotLocked => f.write_str("the lock is not acquired"),
            SyncError::ReleasedTooManyTimes => {
                f.write_str("BoundedSemaphore released too many times")
            }
            SyncError::BrokenBarrier => f.write_str("the barrier is broken"),
            SyncError::InvalidArgument(msg) => write!(f, "invalid argument: {msg}"),
        }
    }
}

impl std::error::Error for SyncError {}
