//! `Condition` (asyncio's `asyncio.Condition`).

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::lock::{Lock, LockAcquire, LockGuard};
use super::waiters::{abandon, poll_node, wake, wake_all, Node, WaitList};
use super::SyncError;

/// A condition variable (`asyncio.Condition`): tasks holding its [`Lock`]
/// wait to be notified by other tasks holding it.
///
/// `wait()` releases the lock, waits for `notify(n)`/`notify_all()`, and
/// takes the lock again before it returns. `wait()`, `notify()` and
/// `notify_all()` without the lock held are [`SyncError::NotLocked`].
/// Waiters are notified in arrival order. A waiter dropped after it was
/// notified but before it returned passes the notification to the next
/// waiter, so no wake-up is swallowed.
///
/// Cancellation is drop, and a dropped future cannot await: a `wait()`
/// dropped while it waits (to be notified, or for the lock again) leaves
/// the lock *released* (asyncio re-acquires it before raising
/// `CancelledError`). So a task whose `wait()` may be dropped should not
/// also hold a [`LockGuard`] whose drop would release a lock it no longer
/// holds; hold the lock with `acquire()`/`release()` there (a `release()`
/// then answers `NotLocked` instead of freeing another task's lock, unless
/// that task took it meanwhile).
///
/// ```
/// use evloop::sync::{Condition, SyncError};
/// let cond = Condition::new();
/// assert_eq!(cond.notify(1), Err(SyncError::NotLocked));
/// assert!(cond.try_acquire());
/// assert_eq!(cond.notify_all(), Ok(()));
/// cond.release().unwrap();
/// ```
#[derive(Clone)]
pub struct Condition {
    lock: Lock,
    waiters: Rc<RefCell<WaitList<()>>>,
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("locked", &self.lock.locked())
            .field("waiters", &self.waiters.borrow().len())
            .finish()
    }
}

impl Default for Condition {
    fn default() -> Self {
        Condition::new()
    }
}

impl Condition {
    /// A condition with a lock of its own.
    pub fn new() -> Condition {
        Condition::with_lock(Lock::new())
    }

    /// A condition over `lock` (asyncio's `Condition(lock)`): several
    /// conditions may share one lock.
    pub fn with_lock(lock: Lock) -> Condition {
        Condition {
            lock,
            waiters: Rc::default(),
        }
    }

    /// The underlying lock.
    pub fn get_lock(&self) -> &Lock {
        &self.lock
    }

    /// `true` if the lock is held.
    pub fn locked(&self) -> bool {
        self.lock.locked()
    }

    /// Takes the lock if it is free and nobody waits for it.
    pub fn try_acquire(&self) -> bool {
        self.lock.try_acquire()
    }

    /// Takes the lock, waiting in line.
    pub async fn acquire(&self) {
        self.lock.acquire().await
    }

    /// Takes the lock as a guard (see the type's note on dropped waits).
    pub fn lock(&self) -> LockAcquire {
        self.lock.lock()
    }

    /// Releases the lock; [`SyncError::NotLocked`] if it is not held.
    pub fn release(&self) -> Result<(), SyncError> {
        self.lock.release()
    }

    /// Releases the lock, waits to be notified, takes the lock again.
    /// [`SyncError::NotLocked`] at once if the lock is not held.
    pub fn wait(&self) -> ConditionWait {
        ConditionWait {
            cond: self.clone(),
            state: WaitState::Start,
        }
    }

    /// Waits until `predicate()` is true (asyncio's `wait_for`): checked
    /// first, then after each wake-up, always with the lock held.
    pub async fn wait_for(&self, mut predicate: impl FnMut() -> bool) -> Result<(), SyncError> {
        while !predicate() {
            self.wait().await?;
        }
        Ok(())
    }

    /// Wakes up to `n` waiters, oldest first; [`SyncError::NotLocked`] if
    /// the lock is not held.
    pub fn notify(&self, n: usize) -> Result<(), SyncError> {
        if !self.lock.locked() {
            return Err(SyncError::NotLocked);
        }
        self.wake(n);
        Ok(())
    }

    /// Wakes every waiter; [`SyncError::NotLocked`] if the lock is not held.
    pub fn notify_all(&self) -> Result<(), SyncError> {
        self.notify(usize::MAX)
    }

    fn wake(&self, n: usize) {
        let mut wakers = Vec::new();
        let mut list = self.waiters.borrow_mut();
        for _ in 0..n {
            match list.grant_next(()) {
                Ok(w) => wakers.extend(w),
                Err(()) => break,
            }
        }
        drop(list);
        wake_all(wakers);
    }

    /// Whether `guard` holds this condition's lock.
    pub fn holds(&self, guard: &LockGuard) -> bool {
        guard.lock().is_some_and(|l| l.same(&self.lock))
    }
}

enum WaitState {
    Start,
    Notify(Node<()>),
    Relock(LockAcquire),
    Done,
}

/// The future of [`Condition::wait`].
#[must_use = "futures do nothing unless awaited"]
pub struct ConditionWait {
    cond: Condition,
    state: WaitState,
}

impl fmt::Debug for ConditionWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            WaitState::Start => "start",
            WaitState::Notify(_) => "waiting for a notification",
            WaitState::Relock(_) => "waiting for the lock",
            WaitState::Done => "done",
        };
        f.debug_struct("ConditionWait")
            .field("state", &state)
            .finish()
    }
}

impl Future for ConditionWait {
    type Output = Result<(), SyncError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                WaitState::Start => {
                    if !this.cond.lock.locked() {
                        this.state = WaitState::Done;
                        return Poll::Ready(Err(SyncError::NotLocked));
                    }
                    let node = this.cond.waiters.borrow_mut().push(cx);
                    this.state = WaitState::Notify(node);
                    // Checked above: the lock is held.
                    let _ = this.cond.lock.release();
                    return Poll::Pending;
                }
                WaitState::Notify(node) => match poll_node(node, cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(()) => this.state = WaitState::Relock(this.cond.lock.lock()),
                },
                WaitState::Relock(acquire) => match Pin::new(acquire).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(guard) => {
                        guard.forget();
                        this.state = WaitState::Done;
                        return Poll::Ready(Ok(()));
                    }
                },
                WaitState::Done => return Poll::Pending,
            }
        }
    }
}

impl Drop for ConditionWait {
    fn drop(&mut self) {
        if let WaitState::Notify(node) = std::mem::replace(&mut self.state, WaitState::Done) {
            match abandon(&node) {
                (true, _) => self.cond.waiters.borrow_mut().remove(&node),
                // Notified, never returned: the notification goes to the next waiter.
                (false, Some(())) => {
                    let w = self.cond.waiters.borrow_mut().grant_next(()).ok().flatten();
                    wake(w);
                }
                _ => {}
            }
        }
    }
}
