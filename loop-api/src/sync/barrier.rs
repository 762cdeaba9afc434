//! `Barrier` (asyncio's `asyncio.Barrier`, 3.11).

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::waiters::{abandon, poll_node, wake_all, Node, WaitList};
use super::SyncError;

struct Inner {
    parties: usize,
    broken: bool,
    waiters: WaitList<Result<usize, SyncError>>,
}

/// Makes `parties` tasks wait for each other (`asyncio.Barrier`).
///
/// `wait()` waits until `parties` tasks wait, then all of them return at
/// once, each with a different index from 0 to `parties - 1` (arrival
/// order: the task whose arrival filled the barrier gets `parties - 1`),
/// and the barrier is ready for the next round at once (asyncio's
/// "draining" phase is invisible: the round is over when it fills). A
/// waiter dropped before the barrier filled withdraws its arrival.
/// `abort()` breaks the barrier: waiters and later `wait()`s fail with
/// [`SyncError::BrokenBarrier`] until `reset()`, which fails the current
/// waiters and starts afresh. A handle: clones share the barrier.
///
/// ```
/// use evloop::sync::{Barrier, SyncError};
/// assert!(matches!(Barrier::new(0), Err(SyncError::InvalidArgument(_))));
/// let b = Barrier::new(3).unwrap();
/// assert_eq!((b.parties(), b.n_waiting(), b.broken()), (3, 0, false));
/// b.abort();
/// assert!(b.broken());
/// b.reset();
/// assert!(!b.broken());
/// ```
#[derive(Clone)]
pub struct Barrier {
    inner: Rc<RefCell<Inner>>,
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = self.inner.borrow();
        f.debug_struct("Barrier")
            .field("parties", &i.parties)
            .field("waiting", &i.waiters.len())
            .field("broken", &i.broken)
            .finish()
    }
}

impl Barrier {
    /// A barrier for `parties` tasks; [`SyncError::InvalidArgument`] if
    /// `parties` is 0 (asyncio's `ValueError`).
    pub fn new(parties: usize) -> Result<Barrier, SyncError> {
        if parties == 0 {
            return Err(SyncError::InvalidArgument(
                "a barrier needs at least one party",
            ));
        }
        Ok(Barrier {
            inner: Rc::new(RefCell::new(Inner {
                parties,
                broken: false,
                waiters: WaitList::default(),
            })),
        })
    }

    /// The number of tasks that pass the barrier together.
    pub fn parties(&self) -> usize {
        self.inner.borrow().parties
    }

    /// How many tasks wait now.
    pub fn n_waiting(&self) -> usize {
        self.inner.borrow().waiters.len()
    }

    /// `true` after `abort()` (until `reset()`).
    pub fn broken(&self) -> bool {
        self.inner.borrow().broken
    }

    /// Waits until `parties` tasks wait; returns this task's index.
    pub fn wait(&self) -> BarrierWait {
        BarrierWait {
            barrier: self.clone(),
            node: None,
            done: false,
        }
    }

    /// Breaks the barrier: every waiter, and every later `wait()` until
    /// `reset()`, fails with [`SyncError::BrokenBarrier`].
    pub fn abort(&self) {
        let mut i = self.inner.borrow_mut();
        i.broken = true;
        let w = i.waiters.grant_all(|_| Err(SyncError::BrokenBarrier));
        drop(i);
        wake_all(w);
    }

    /// Back to the empty state: current waiters fail with
    /// [`SyncError::BrokenBarrier`], a broken barrier works again.
    pub fn reset(&self) {
        let mut i = self.inner.borrow_mut();
        i.broken = false;
        let w = i.waiters.grant_all(|_| Err(SyncError::BrokenBarrier));
        drop(i);
        wake_all(w);
    }
}

/// The future of [`Barrier::wait`].
#[must_use = "futures do nothing unless awaited"]
pub struct BarrierWait {
    barrier: Barrier,
    node: Option<Node<Result<usize, SyncError>>>,
    done: bool,
}

impl fmt::Debug for BarrierWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BarrierWait")
            .field("waiting", &self.node.is_some())
            .finish()
    }
}

impl Future for BarrierWait {
    type Output = Result<usize, SyncError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(node) = &this.node {
            let r = poll_node(node, cx);
            if r.is_ready() {
                this.node = None;
                this.done = true;
            }
            return r;
        }
        if this.done {
            return Poll::Pending;
        }
        let mut i = this.barrier.inner.borrow_mut();
        if i.broken {
            this.done = true;
            return Poll::Ready(Err(SyncError::BrokenBarrier));
        }
        if i.waiters.len() + 1 >= i.parties {
            let last = i.parties - 1;
            let w = i.waiters.grant_all(Ok);
            drop(i);
            wake_all(w);
            this.done = true;
            return Poll::Ready(Ok(last));
        }
        this.node = Some(i.waiters.push(cx));
        Poll::Pending
    }
}

impl Drop for BarrierWait {
    fn drop(&mut self) {
        if let Some(node) = self.node.take() {
            // Still waiting: withdraw the arrival. Passed already: nothing to give back.
            if abandon(&node).0 {
                self.barrier.inner.borrow_mut().waiters.remove(&node);
            }
        }
    }
}
