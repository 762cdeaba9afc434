//! `Lock` (asyncio's `asyncio.Lock`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::semaphore::{new_permits, release, try_take, AcquirePermit, Shared};
use super::SyncError;

/// A mutual-exclusion lock for the tasks of one loop (`asyncio.Lock`).
///
/// `lock()` waits for the lock and gives a [`LockGuard`] that releases it
/// on drop (asyncio's `async with lock`); `acquire()`/`release()` are
/// asyncio's manual pair. Like asyncio's, the lock has no owner: any task
/// may release it, and `release()` of an unlocked lock is
/// [`SyncError::NotLocked`]. Waiters get the lock in arrival order (it is
/// handed to the oldest, a newcomer never takes it first), and a waiter
/// dropped after it was handed the lock hands it on. It guards no data:
/// use a `RefCell` beside it. A handle: clones share the lock.
///
/// ```
/// use evloop::sync::{Lock, SyncError};
/// let lock = Lock::new();
/// assert_eq!(lock.release(), Err(SyncError::NotLocked));
/// assert!(lock.try_acquire());
/// assert!(lock.locked());
/// assert_eq!(lock.release(), Ok(()));
/// assert!(!lock.locked());
/// ```
#[derive(Clone)]
pub struct Lock {
    permits: Shared,
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("locked", &self.locked())
            .finish()
    }
}

impl Default for Lock {
    fn default() -> Self {
        Lock::new()
    }
}

impl Lock {
    /// A new, unlocked lock.
    pub fn new() -> Lock {
        Lock {
            permits: new_permits(1),
        }
    }

    /// `true` if some task holds the lock.
    pub fn locked(&self) -> bool {
        self.permits.borrow().value == 0
    }

    /// Takes the lock if it is free and nobody waits; never waits.
    pub fn try_acquire(&self) -> bool {
        try_take(&self.permits)
    }

    /// Takes the lock, waiting in line; give it back with [`release`](Self::release).
    pub async fn acquire(&self) {
        self.lock().await.forget();
    }

    /// Takes the lock as a guard that releases it on drop.
    pub fn lock(&self) -> LockAcquire {
        LockAcquire {
            lock: self.clone(),
            inner: AcquirePermit::new(self.permits.clone()),
        }
    }

    /// Releases the lock (to the oldest waiter, if any);
    /// [`SyncError::NotLocked`] if it is not locked.
    pub fn release(&self) -> Result<(), SyncError> {
        if !self.locked() {
            return Err(SyncError::NotLocked);
        }
        release(&self.permits);
        Ok(())
    }

    pub(crate) fn same(&self, other: &Lock) -> bool {
        std::rc::Rc::ptr_eq(&self.permits, &other.permits)
    }
}

/// The future of [`Lock::lock`].
#[must_use = "futures do nothing unless awaited"]
pub struct LockAcquire {
    lock: Lock,
    inner: AcquirePermit,
}

impl fmt::Debug for LockAcquire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockAcquire")
            .field("waiting", &self.inner.waiting())
            .finish()
    }
}

impl Future for LockAcquire {
    type Output = LockGuard;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<LockGuard> {
        let this = self.get_mut();
        this.inner.poll_acquire(cx).map(|()| LockGuard {
            lock: Some(this.lock.clone()),
        })
    }
}

/// A held [`Lock`], released on drop.
#[must_use = "dropping the guard releases the lock at once"]
pub struct LockGuard {
    lock: Option<Lock>,
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard").finish_non_exhaustive()
    }
}

impl LockGuard {
    /// Keeps the lock held without a guard: a later [`Lock::release`] frees it.
    pub fn forget(mut self) {
        self.lock = None;
    }

    pub(crate) fn lock(&self) -> Option<&Lock> {
        self.lock.as_ref()
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(lock) = self.lock.take() {
            // Released by hand meanwhile: nothing to do.
            let _ = lock.release();
        }
    }
}
