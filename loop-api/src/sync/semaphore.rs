//! `Semaphore`, `BoundedSemaphore` (asyncio's `asyncio.locks`), and the
//! permit counter `Lock` shares with them.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::waiters::{abandon, poll_node, wake, Node, WaitList};
use super::SyncError;

/// Free permits and the tasks waiting for one. A released permit goes
/// straight to the oldest waiter (the count does not change); a newcomer
/// takes a free permit only when nobody waits.
pub(crate) struct Permits {
    pub(crate) value: usize,
    waiters: WaitList<()>,
}

pub(crate) type Shared = Rc<RefCell<Permits>>;

pub(crate) fn new_permits(value: usize) -> Shared {
    Rc::new(RefCell::new(Permits {
        value,
        waiters: WaitList::default(),
    }))
}

/// Gives one permit back: to the oldest waiter, else to the count.
pub(crate) fn release(p: &Shared) {
    let mut s = p.borrow_mut();
    let w = match s.waiters.grant_next(()) {
        Ok(w) => w,
        Err(()) => {
            s.value += 1;
            None
        }
    };
    drop(s);
    wake(w);
}

/// Takes a permit if one is free and nobody waits.
pub(crate) fn try_take(p: &Shared) -> bool {
    let mut s = p.borrow_mut();
    if s.value > 0 && s.waiters.is_empty() {
        s.value -= 1;
        true
    } else {
        false
    }
}

/// Waits for one permit; a permit granted to it and never collected is released again on drop.
pub(crate) struct AcquirePermit {
    permits: Shared,
    node: Option<Node<()>>,
}

impl AcquirePermit {
    pub(crate) fn new(permits: Shared) -> Self {
        AcquirePermit {
            permits,
            node: None,
        }
    }

    pub(crate) fn waiting(&self) -> bool {
        self.node.is_some()
    }

    pub(crate) fn poll_acquire(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(node) = &self.node {
            let r = poll_node(node, cx);
            if r.is_ready() {
                self.node = None;
            }
            return r;
        }
        if try_take(&self.permits) {
            return Poll::Ready(());
        }
        self.node = Some(self.permits.borrow_mut().waiters.push(cx));
        Poll::Pending
    }
}

impl Drop for AcquirePermit {
    fn drop(&mut self) {
        let Some(node) = self.node.take() else {
            return;
        };
        match abandon(&node) {
            (true, _) => self.permits.borrow_mut().waiters.remove(&node),
            // Granted a permit it never returned: pass it on.
            (false, Some(())) => release(&self.permits),
            _ => {}
        }
    }
}

/// A counter of permits tasks acquire and release (`asyncio.Semaphore`).
///
/// `acquire()` takes a permit, waiting while none is free; `release()`
/// gives one back (it may raise the count above the initial value, as in
/// asyncio; [`BoundedSemaphore`] refuses that). `permit()` gives a
/// [`SemaphorePermit`] that releases on drop (asyncio's `async with`).
/// Waiters get permits in arrival order, and a waiter dropped after it was
/// granted a permit passes it on. A handle: clones share the semaphore.
///
/// ```
/// use evloop::sync::{Semaphore, SyncError};
/// let sem = Semaphore::new(1).unwrap();
/// assert!(!sem.locked());
/// assert!(sem.try_acquire());
/// assert!(sem.locked());
/// sem.release();
/// assert!(matches!(Semaphore::new(-1), Err(SyncError::InvalidArgument(_))));
/// ```
#[derive(Clone)]
pub struct Semaphore {
    permits: Shared,
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.permits.borrow();
        f.debug_struct("Semaphore")
            .field("value", &p.value)
            .field("waiters", &p.waiters.len())
            .finish()
    }
}

fn checked_value(value: i64) -> Result<usize, SyncError> {
    usize::try_from(value)
        .map_err(|_| SyncError::InvalidArgument("semaphore initial value must be >= 0"))
}

impl Semaphore {
    /// A semaphore with `value` free permits; [`SyncError::InvalidArgument`]
    /// if `value` is negative (asyncio's `ValueError`).
    pub fn new(value: i64) -> Result<Semaphore, SyncError> {
        Ok(Semaphore {
            permits: new_permits(checked_value(value)?),
        })
    }

    /// `true` if `acquire()` would wait (no free permit, or tasks wait already).
    pub fn locked(&self) -> bool {
        let p = self.permits.borrow();
        p.value == 0 || !p.waiters.is_empty()
    }

    /// The number of free permits.
    pub fn value(&self) -> usize {
        self.permits.borrow().value
    }

    /// Takes a permit if one is free and no task waits; never waits.
    pub fn try_acquire(&self) -> bool {
        try_take(&self.permits)
    }

    /// Takes a permit, waiting in line while none is free. The permit is
    /// given back with [`release`](Self::release).
    pub async fn acquire(&self) {
        self.permit().await.forget();
    }

    /// Takes a permit as a guard that releases it on drop.
    pub fn permit(&self) -> SemaphoreAcquire {
        SemaphoreAcquire {
            permits: self.permits.clone(),
            bound: None,
            inner: AcquirePermit::new(self.permits.clone()),
        }
    }

    /// Gives a permit back, waking the oldest waiter if any.
    pub fn release(&self) {
        release(&self.permits);
    }
}

/// A [`Semaphore`] that refuses to be released above its initial value
/// (`asyncio.BoundedSemaphore`): such a release is
/// [`SyncError::ReleasedTooManyTimes`].
///
/// ```
/// use evloop::sync::{BoundedSemaphore, SyncError};
/// let sem = BoundedSemaphore::new(1).unwrap();
/// assert_eq!(sem.release(), Err(SyncError::ReleasedTooManyTimes));
/// assert!(sem.try_acquire());
/// assert_eq!(sem.release(), Ok(()));
/// ```
#[derive(Clone)]
pub struct BoundedSemaphore {
    permits: Shared,
    bound: usize,
}

impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.permits.borrow();
        f.debug_struct("BoundedSemaphore")
            .field("value", &p.value)
            .field("bound", &self.bound)
            .field("waiters", &p.waiters.len())
            .finish()
    }
}

impl BoundedSemaphore {
    /// A bounded semaphore with `value` free permits, at most `value` ever;
    /// [`SyncError::InvalidArgument`] if `value` is negative.
    pub fn new(value: i64) -> Result<BoundedSemaphore, SyncError> {
        let bound = checked_value(value)?;
        Ok(BoundedSemaphore {
            permits: new_permits(bound),
            bound,
        })
    }

    /// `true` if `acquire()` would wait.
    pub fn locked(&self) -> bool {
        let p = self.permits.borrow();
        p.value == 0 || !p.waiters.is_empty()
    }

    /// The number of free permits.
    pub fn value(&self) -> usize {
        self.permits.borrow().value
    }

    /// Takes a permit if one is free and no task waits; never waits.
    pub fn try_acquire(&self) -> bool {
        try_take(&self.permits)
    }

    /// Takes a permit, waiting in line while none is free.
    pub async fn acquire(&self) {
        self.permit().await.forget();
    }

    /// Takes a permit as a guard that releases it on drop.
    pub fn permit(&self) -> SemaphoreAcquire {
        SemaphoreAcquire {
            permits: self.permits.clone(),
            bound: Some(self.bound),
            inner: AcquirePermit::new(self.permits.clone()),
        }
    }

    /// Gives a permit back; [`SyncError::ReleasedTooManyTimes`] if that
    /// would make more permits free than the initial value.
    pub fn release(&self) -> Result<(), SyncError> {
        bounded_release(&self.permits, self.bound)
    }
}

fn bounded_release(permits: &Shared, bound: usize) -> Result<(), SyncError> {
    if permits.borrow().value >= bound {
        return Err(SyncError::ReleasedTooManyTimes);
    }
    release(permits);
    Ok(())
}

/// The future of [`Semaphore::permit`] and [`BoundedSemaphore::permit`].
#[must_use = "futures do nothing unless awaited"]
pub struct SemaphoreAcquire {
    permits: Shared,
    bound: Option<usize>,
    inner: AcquirePermit,
}

impl fmt::Debug for SemaphoreAcquire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreAcquire")
            .field("waiting", &self.inner.waiting())
            .finish()
    }
}

impl Future for SemaphoreAcquire {
    type Output = SemaphorePermit;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<SemaphorePermit> {
        let this = self.get_mut();
        this.inner.poll_acquire(cx).map(|()| SemaphorePermit {
            permits: Some(this.permits.clone()),
            bound: this.bound,
        })
    }
}

/// A permit of a [`Semaphore`] or [`BoundedSemaphore`], released on drop.
#[must_use = "dropping the permit releases it at once"]
pub struct SemaphorePermit {
    permits: Option<Shared>,
    bound: Option<usize>,
}

impl fmt::Debug for SemaphorePermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit").finish_non_exhaustive()
    }
}

impl SemaphorePermit {
    /// Keeps the permit taken without a guard: it is given back by a later `release()`.
    pub fn forget(mut self) {
        self.permits = None;
    }
}

impl Drop for SemaphorePermit {
    fn drop(&mut self) {
        if let Some(p) = self.permits.take() {
            match self.bound {
                // A bounded semaphore released meanwhile by hand: nothing to give back.
                Some(bound) => {
                    let _ = bounded_release(&p, bound);
                }
                None => release(&p),
            }
        }
    }
}
