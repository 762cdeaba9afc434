//! The FIFO list of parked waiters every primitive of this module uses.
//!
//! A waiter is a node shared between the primitive (in its list) and the
//! waiting future. Whatever the waiter waits for (an item, a permit, a
//! wake-up) is *handed over* into the node by the primitive ([`Slot::Granted`])
//! and the node leaves the list at that moment, so a grant always goes to the
//! oldest waiter and nobody can take it from under it. A future dropped while
//! its node is still waiting just leaves the list; one dropped after its
//! grant gives the grant back to the primitive, which passes it on.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Where a waiter is.
pub(crate) enum Slot<G> {
    /// In the list, with the waker of its last poll.
    Waiting(Option<Waker>),
    /// Out of the list, holding what it was given.
    Granted(G),
    /// The grant was collected by the future (or the future is gone).
    Taken,
}

/// A waiter, shared by the list and the waiting future.
pub(crate) type Node<G> = Rc<RefCell<Slot<G>>>;

/// Waiters in arrival order.
pub(crate) struct WaitList<G> {
    queue: VecDeque<Node<G>>,
}

impl<G> Default for WaitList<G> {
    fn default() -> Self {
        WaitList {
            queue: VecDeque::new(),
        }
    }
}

impl<G> WaitList<G> {
    /// Appends a new waiter, woken through `cx` once granted.
    pub(crate) fn push(&mut self, cx: &Context<'_>) -> Node<G> {
        let node = Rc::new(RefCell::new(Slot::Waiting(Some(cx.waker().clone()))));
        self.queue.push_back(node.clone());
        node
    }

    /// `true` if nobody waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// How many wait.
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Hands `grant` to the oldest waiter, which leaves the list; returns its
    /// waker (to be woken once the caller released its borrows), or the grant
    /// back if nobody waits.
    pub(crate) fn grant_next(&mut self, grant: G) -> Result<Option<Waker>, G> {
        match self.queue.pop_front() {
            Some(node) => Ok(set_granted(&node, grant)),
            None => Err(grant),
        }
    }

    /// Removes `node` from the list (its future was dropped while waiting).
    pub(crate) fn remove(&mut self, node: &Node<G>) {
        if let Some(i) = self.queue.iter().position(|n| Rc::ptr_eq(n, node)) {
            self.queue.remove(i);
        }
    }

    /// Grants every waiter `make(position)`, in order, and returns their wakers.
    pub(crate) fn grant_all(&mut self, mut make: impl FnMut(usize) -> G) -> Vec<Waker> {
        let mut wakers = Vec::with_capacity(self.queue.len());
        for (i, node) in self.queue.drain(..).enumerate() {
            wakers.extend(set_granted(&node, make(i)));
        }
        wakers
    }
}

/// Moves `node` to `Granted(grant)`; returns its waker.
pub(crate) fn set_granted<G>(node: &Node<G>, grant: G) -> Option<Waker> {
    match std::mem::replace(&mut *node.borrow_mut(), Slot::Granted(grant)) {
        Slot::Waiting(waker) => waker,
        _ => None,
    }
}

/// Wakes every waker of `wakers`.
pub(crate) fn wake_all(wakers: Vec<Waker>) {
    wakers.into_iter().for_each(Waker::wake);
}

/// Wakes `waker` if there is one.
pub(crate) fn wake(waker: Option<Waker>) {
    if let Some(w) = waker {
        w.wake();
    }
}

/// Polls a waiter: `Ready(grant)` once granted, else refreshes its waker.
pub(crate) fn poll_node<G>(node: &Node<G>, cx: &Context<'_>) -> Poll<G> {
    let mut slot = node.borrow_mut();
    match &mut *slot {
        Slot::Waiting(waker) => {
            match waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *waker = Some(cx.waker().clone()),
            }
            Poll::Pending
        }
        Slot::Granted(_) => match std::mem::replace(&mut *slot, Slot::Taken) {
            Slot::Granted(g) => Poll::Ready(g),
            _ => Poll::Pending,
        },
        Slot::Taken => Poll::Pending,
    }
}

/// What a dropped waiter leaves: `(still_in_list, uncollected_grant)`.
pub(crate) fn abandon<G>(node: &Node<G>) -> (bool, Option<G>) {
    match std::mem::replace(&mut *node.borrow_mut(), Slot::Taken) {
        Slot::Waiting(_) => (true, None),
        Slot::Granted(g) => (false, Some(g)),
        Slot::Taken => (false, None),
    }
}
