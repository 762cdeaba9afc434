//! `Event` (asyncio's `asyncio.Event`).

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::waiters::{abandon, poll_node, wake_all, Node, WaitList};

struct Inner {
    set: bool,
    waiters: WaitList<()>,
}

/// A flag tasks can wait for (`asyncio.Event`).
///
/// `set()` wakes every task waiting in `wait()`, and later waits return at
/// once until `clear()`. A waiter woken by `set()` returns even if `clear()`
/// is called before it runs, as in asyncio. A handle: clones share the event.
///
/// ```
/// use evloop::sync::Event;
/// let ev = Event::new();
/// assert!(!ev.is_set());
/// ev.set();
/// assert!(ev.is_set());
/// ev.clear();
/// assert!(!ev.is_set());
/// ```
#[derive(Clone)]
pub struct Event {
    inner: Rc<RefCell<Inner>>,
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = self.inner.borrow();
        f.debug_struct("Event")
            .field("set", &i.set)
            .field("waiters", &i.waiters.len())
            .finish()
    }
}

impl Default for Event {
    fn default() -> Self {
        Event::new()
    }
}

impl Event {
    /// A new event, not set.
    pub fn new() -> Event {
        Event {
            inner: Rc::new(RefCell::new(Inner {
                set: false,
                waiters: WaitList::default(),
            })),
        }
    }

    /// `true` if the event is set.
    pub fn is_set(&self) -> bool {
        self.inner.borrow().set
    }

    /// Sets the event and wakes every waiter.
    pub fn set(&self) {
        let mut i = self.inner.borrow_mut();
        i.set = true;
        let w = i.waiters.grant_all(|_| ());
        drop(i);
        wake_all(w);
    }

    /// Clears the event: later waits wait for the next `set()`.
    pub fn clear(&self) {
        self.inner.borrow_mut().set = false;
    }

    /// Waits until the event is set (at once if it is).
    pub fn wait(&self) -> EventWait {
        EventWait {
            event: self.clone(),
            node: None,
        }
    }
}

/// The future of [`Event::wait`].
#[must_use = "futures do nothing unless awaited"]
pub struct EventWait {
    event: Event,
    node: Option<Node<()>>,
}

impl fmt::Debug for EventWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventWait")
            .field("waiting", &self.node.is_some())
            .finish()
    }
}

impl Future for EventWait {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if let Some(node) = &this.node {
            let r = poll_node(node, cx);
            if r.is_ready() {
                this.node = None;
            }
            return r;
        }
        let mut i = this.event.inner.borrow_mut();
        if i.set {
            return Poll::Ready(());
        }
        this.node = Some(i.waiters.push(cx));
        Poll::Pending
    }
}

impl Drop for EventWait {
    fn drop(&mut self) {
        if let Some(node) = self.node.take() {
            if abandon(&node).0 {
                self.event.inner.borrow_mut().waiters.remove(&node);
            }
        }
    }
}
