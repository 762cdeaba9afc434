//! `Queue`, `LifoQueue`, `PriorityQueue` (asyncio's `asyncio.queues`, 3.13).

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::waiters::{abandon, poll_node, wake, wake_all, Node, WaitList};
use super::SyncError;

/// How a queue stores its items: which one comes out next.
///
/// Implemented for `VecDeque<T>` (FIFO, [`Queue`]), `Vec<T>` (LIFO,
/// [`LifoQueue`]) and `BinaryHeap<Reverse<T>>` (smallest first,
/// [`PriorityQueue`]).
pub trait QueueKind<T>: Default {
    /// Stores an item.
    fn push(&mut self, item: T);
    /// Takes the next item out.
    fn pop(&mut self) -> Option<T>;
    /// Puts back an item [`pop`](Self::pop) returned, so that it comes out next again.
    fn unpop(&mut self, item: T);
    /// How many items are stored.
    fn len(&self) -> usize;
    /// `true` if none is.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> QueueKind<T> for VecDeque<T> {
    fn push(&mut self, item: T) {
        self.push_back(item);
    }
    fn pop(&mut self) -> Option<T> {
        self.pop_front()
    }
    fn unpop(&mut self, item: T) {
        self.push_front(item);
    }
    fn len(&self) -> usize {
        VecDeque::len(self)
    }
}

impl<T> QueueKind<T> for Vec<T> {
    fn push(&mut self, item: T) {
        Vec::push(self, item);
    }
    fn pop(&mut self) -> Option<T> {
        Vec::pop(self)
    }
    fn unpop(&mut self, item: T) {
        Vec::push(self, item);
    }
    fn len(&self) -> usize {
        Vec::len(self)
    }
}

impl<T: Ord> QueueKind<T> for BinaryHeap<Reverse<T>> {
    fn push(&mut self, item: T) {
        BinaryHeap::push(self, Reverse(item));
    }
    fn pop(&mut self) -> Option<T> {
        BinaryHeap::pop(self).map(|Reverse(t)| t)
    }
    fn unpop(&mut self, item: T) {
        BinaryHeap::push(self, Reverse(item));
    }
    fn len(&self) -> usize {
        BinaryHeap::len(self)
    }
}

/// Why `put_nowait` refused; the item comes back.
///
/// ```
/// use evloop::sync::{PutError, Queue};
///
/// evloop::run(async {
///     let queue = Queue::new(1); // room for one item
///     queue.put_nowait("first").unwrap();
///     let refused = queue.put_nowait("second").unwrap_err();
///     assert!(refused.is_full());
///     assert_eq!(refused.into_inner(), "second"); // nothing is lost
///     queue.shutdown(false);
///     assert!(matches!(queue.put_nowait("third"), Err(PutError::ShutDown("third"))));
/// })?;
/// # Ok::<_, evloop::Error>(())
/// ```
#[derive(PartialEq, Eq)]
pub enum PutError<T> {
    /// The queue has `maxsize` items (`asyncio.QueueFull`).
    Full(T),
    /// The queue was shut down (`asyncio.QueueShutDown`).
    ShutDown(T),
}

impl<T> PutError<T> {
    /// The item that was not put.
    pub fn into_inner(self) -> T {
        match self {
            PutError::Full(t) | PutError::ShutDown(t) => t,
        }
    }

    /// `true` for [`PutError::Full`].
    pub fn is_full(&self) -> bool {
        matches!(self, PutError::Full(_))
    }
}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full(_) => f.write_str("Full(..)"),
            PutError::ShutDown(_) => f.write_str("ShutDown(..)"),
        }
    }
}

impl<T> fmt::Display for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full(_) => f.write_str("the queue is full"),
            PutError::ShutDown(_) => f.write_str("the queue is shut down"),
        }
    }
}

impl<T> std::error::Error for PutError<T> {}

struct Inner<T, S> {
    items: S,
    maxsize: usize,
    /// Items handed to a getter that has not returned yet (still counted in `qsize`).
    handed: usize,
    /// Free places handed to a putter that has not put yet.
    reserved: usize,
    unfinished: usize,
    shutdown: bool,
    immediate: bool,
    /// A getter is granted `Some(item)`, or `None` at shutdown.
    getters: WaitList<Option<T>>,
    /// A putter is granted `true` (a place is reserved for it) or `false` (shut down).
    putters: WaitList<bool>,
    joiners: WaitList<()>,
}

impl<T, S: QueueKind<T>> Inner<T, S> {
    fn full(&self) -> bool {
        self.maxsize > 0 && self.items.len() + self.handed + self.reserved >= self.maxsize
    }

    /// Stores a new item (or hands it to the oldest getter).
    fn deliver(&mut self, item: T) -> Option<std::task::Waker> {
        self.unfinished += 1;
        self.offer(item)
    }

    /// An item to the oldest getter, else into the store.
    fn offer(&mut self, item: T) -> Option<std::task::Waker> {
        match self.getters.grant_next(Some(item)) {
            Ok(w) => {
                self.handed += 1;
                w
            }
            Err(Some(item)) => {
                self.items.push(item);
                None
            }
            Err(None) => None,
        }
    }

    /// A place became free: reserve it for the oldest putter.
    fn free_place(&mut self) -> Option<std::task::Waker> {
        if self.shutdown || self.full() {
            return None;
        }
        match self.putters.grant_next(true) {
            Ok(w) => {
                self.reserved += 1;
                w
            }
            Err(_) => None,
        }
    }

    /// An item a getter was handed but will never return: it goes to the
    /// next getter or back to the front of the store (discarded after an
    /// immediate shutdown).
    fn give_back(&mut self, item: T) -> Option<std::task::Waker> {
        self.handed -= 1;
        if self.shutdown && self.immediate {
            drop(item);
            return self.finish_one();
        }
        match self.getters.grant_next(Some(item)) {
            Ok(w) => {
                self.handed += 1;
                w
            }
            Err(Some(item)) => {
                self.items.unpop(item);
                None
            }
            Err(None) => None,
        }
    }

    fn finish_one(&mut self) -> Option<std::task::Waker> {
        self.unfinished = self.unfinished.saturating_sub(1);
        if self.unfinished == 0 {
            wake_all(self.joiners.grant_all(|_| ()));
        }
        None
    }
}

/// A first-in, first-out queue for the tasks of one loop (`asyncio.Queue`).
///
/// `maxsize` 0 means unbounded, as in asyncio. `put` waits while the queue
/// is full, `get` while it is empty; waiters are served in arrival order,
/// and an item is handed straight to the oldest waiting getter. `join`
/// waits until every item put was marked done with `task_done`.
/// `shutdown` (Python 3.13) makes puts fail at once and gets fail once the
/// queue is empty (`shutdown(true)`: at once, discarding the items).
///
/// A `get` dropped after it was handed an item (cancelled with its task,
/// timed out by `wait_for`, ...) hands the item to the next getter or puts
/// it back at the front: no item is ever lost. A `put` dropped while it
/// waits puts nothing.
///
/// `qsize()` counts the items handed to a getter that has not returned yet
/// (asyncio's getter takes its item only when it runs, so it counts them
/// too); `get_nowait` cannot take them.
///
/// The type is a handle: clones share the queue. It is `!Send`, for the
/// tasks of one loop.
///
/// ```
/// use evloop::sync::{PutError, Queue, SyncError};
/// let q = Queue::new(2);
/// q.put_nowait("a").unwrap();
/// q.put_nowait("b").unwrap();
/// assert!(matches!(q.put_nowait("c"), Err(PutError::Full("c"))));
/// assert_eq!(q.get_nowait(), Ok("a"));
/// q.task_done().unwrap();
/// q.shutdown(false);
/// assert_eq!(q.get_nowait(), Ok("b")); // a shut-down queue still drains
/// assert_eq!(q.get_nowait(), Err(SyncError::QueueShutDown));
/// ```
///
/// With tasks (`q.put(x).await`, `q.get().await`, `q.join().await`), see
/// the `evloop::sync` example.
pub struct Queue<T, S: QueueKind<T> = VecDeque<T>> {
    inner: Rc<RefCell<Inner<T, S>>>,
}

/// A last-in, first-out queue (`asyncio.LifoQueue`): a [`Queue`] over a
/// `Vec`, with every `Queue` method (through `Deref`).
///
/// ```
/// use evloop::sync::LifoQueue;
/// let q = LifoQueue::new(0);
/// q.put_nowait(1).unwrap();
/// q.put_nowait(2).unwrap();
/// assert_eq!(q.get_nowait(), Ok(2));
/// ```
#[derive(Debug)]
pub struct LifoQueue<T>(Queue<T, Vec<T>>);

/// A queue that gives its smallest item first (`asyncio.PriorityQueue`):
/// [`Queue`] over a `BinaryHeap<Reverse<T>>` (every `Queue` method, through
/// `Deref`). Use `(priority, data)` tuples
/// as asyncio does.
///
/// ```
/// use evloop::sync::PriorityQueue;
/// let q = PriorityQueue::new(0);
/// q.put_nowait((2, "b")).unwrap();
/// q.put_nowait((1, "a")).unwrap();
/// assert_eq!(q.get_nowait(), Ok((1, "a")));
/// ```
#[derive(Debug)]
pub struct PriorityQueue<T: Ord>(Queue<T, BinaryHeap<Reverse<T>>>);

impl<T> LifoQueue<T> {
    /// A LIFO queue holding at most `maxsize` items; 0 means unbounded.
    pub fn new(maxsize: usize) -> Self {
        LifoQueue(Queue::with_kind(maxsize))
    }
}

impl<T: Ord> PriorityQueue<T> {
    /// A priority queue holding at most `maxsize` items; 0 means unbounded.
    pub fn new(maxsize: usize) -> Self {
        PriorityQueue(Queue::with_kind(maxsize))
    }
}

impl<T> Clone for LifoQueue<T> {
    fn clone(&self) -> Self {
        LifoQueue(self.0.clone())
    }
}

impl<T: Ord> Clone for PriorityQueue<T> {
    fn clone(&self) -> Self {
        PriorityQueue(self.0.clone())
    }
}

/// Every [`Queue`] method (`put`, `get`, `join`, `shutdown`, ...).
impl<T> std::ops::Deref for LifoQueue<T> {
    type Target = Queue<T, Vec<T>>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// Every [`Queue`] method (`put`, `get`, `join`, `shutdown`, ...).
impl<T: Ord> std::ops::Deref for PriorityQueue<T> {
    type Target = Queue<T, BinaryHeap<Reverse<T>>>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<T, S: QueueKind<T>> Clone for Queue<T, S> {
    fn clone(&self) -> Self {
        Queue {
            inner: self.inner.clone(),
        }
    }
}

impl<T, S: QueueKind<T>> fmt::Debug for Queue<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = self.inner.borrow();
        f.debug_struct("Queue")
            .field("maxsize", &i.maxsize)
            .field("qsize", &(i.items.len() + i.handed))
            .field("getters", &i.getters.len())
            .field("putters", &i.putters.len())
            .field("unfinished", &i.unfinished)
            .field("shutdown", &i.shutdown)
            .finish()
    }
}

impl<T> Queue<T> {
    /// A FIFO queue holding at most `maxsize` items; 0 means unbounded.
    pub fn new(maxsize: usize) -> Self {
        Queue::with_kind(maxsize)
    }
}

impl<T, S: QueueKind<T>> Queue<T, S> {
    /// A queue over the storage `S`, holding at most `maxsize` items; 0 means unbounded.
    pub fn with_kind(maxsize: usize) -> Self {
        Queue {
            inner: Rc::new(RefCell::new(Inner {
                items: S::default(),
                maxsize,
                handed: 0,
                reserved: 0,
                unfinished: 0,
                shutdown: false,
                immediate: false,
                getters: WaitList::default(),
                putters: WaitList::default(),
                joiners: WaitList::default(),
            })),
        }
    }

    /// The bound given at creation (0: unbounded).
    pub fn maxsize(&self) -> usize {
        self.inner.borrow().maxsize
    }

    /// How many items are in the queue.
    pub fn qsize(&self) -> usize {
        let i = self.inner.borrow();
        i.items.len() + i.handed
    }

    /// `true` if the queue holds no item.
    pub fn empty(&self) -> bool {
        self.qsize() == 0
    }

    /// `true` if the queue holds `maxsize` items (never for an unbounded queue).
    pub fn full(&self) -> bool {
        let i = self.inner.borrow();
        i.maxsize > 0 && i.items.len() + i.handed >= i.maxsize
    }

    /// Puts `item` without waiting: [`PutError::Full`] if the queue is full
    /// (or tasks already wait to put), [`PutError::ShutDown`] after
    /// [`shutdown`](Self::shutdown).
    pub fn put_nowait(&self, item: T) -> Result<(), PutError<T>> {
        let mut i = self.inner.borrow_mut();
        if i.shutdown {
            return Err(PutError::ShutDown(item));
        }
        if i.full() || !i.putters.is_empty() {
            return Err(PutError::Full(item));
        }
        let w = i.deliver(item);
        drop(i);
        wake(w);
        Ok(())
    }

    /// Puts `item`, waiting for a free place while the queue is full.
    /// Fails with [`PutError::ShutDown`] (the item back) if the queue is or
    /// gets shut down first; never with `Full`.
    pub fn put(&self, item: T) -> Put<T, S> {
        Put {
            queue: self.clone(),
            item: Some(item),
            node: None,
        }
    }

    /// Takes the next item without waiting: [`SyncError::QueueEmpty`], or
    /// [`SyncError::QueueShutDown`] once a shut-down queue is empty.
    pub fn get_nowait(&self) -> Result<T, SyncError> {
        let mut i = self.inner.borrow_mut();
        match i.items.pop() {
            Some(item) => {
                let w = i.free_place();
                drop(i);
                wake(w);
                Ok(item)
            }
            None if i.shutdown => Err(SyncError::QueueShutDown),
            None => Err(SyncError::QueueEmpty),
        }
    }

    /// Takes the next item, waiting while the queue is empty. Fails with
    /// [`SyncError::QueueShutDown`] if the queue is shut down and empty.
    pub fn get(&self) -> Get<T, S> {
        Get {
            queue: self.clone(),
            node: None,
        }
    }

    /// Marks one item taken with `get` as processed, for [`join`](Self::join).
    /// [`SyncError::TaskDoneTooManyTimes`] if called more often than items were put.
    pub fn task_done(&self) -> Result<(), SyncError> {
        let mut i = self.inner.borrow_mut();
        if i.unfinished == 0 {
            return Err(SyncError::TaskDoneTooManyTimes);
        }
        i.finish_one();
        Ok(())
    }

    /// Waits until every item put so far was marked done with
    /// [`task_done`](Self::task_done) (at once if none is pending).
    pub fn join(&self) -> Join<T, S> {
        Join {
            queue: self.clone(),
            node: None,
        }
    }

    /// Shuts the queue down (Python 3.13): `put` and `put_nowait` fail from
    /// now on, and so do waiting putters (their items come back in the
    /// error); waiting getters fail, and later gets fail once the queue is
    /// empty. With `immediate`, the items still queued are discarded at once
    /// (each counted done for `join`), so every get fails. Items already
    /// handed to a getter stay its own.
    pub fn shutdown(&self, immediate: bool) {
        let mut i = self.inner.borrow_mut();
        i.shutdown = true;
        i.immediate |= immediate;
        if immediate {
            while i.items.pop().is_some() {
                i.unfinished = i.unfinished.saturating_sub(1);
            }
            if i.unfinished == 0 {
                let w = i.joiners.grant_all(|_| ());
                wake_all(w);
            }
        }
        let mut wakers = i.getters.grant_all(|_| None);
        wakers.extend(i.putters.grant_all(|_| false));
        drop(i);
        wake_all(wakers);
    }

    /// `true` after [`shutdown`](Self::shutdown).
    pub fn is_shut_down(&self) -> bool {
        self.inner.borrow().shutdown
    }
}

/// The future of [`Queue::put`].
#[must_use = "futures do nothing unless awaited"]
pub struct Put<T, S: QueueKind<T> = VecDeque<T>> {
    queue: Queue<T, S>,
    item: Option<T>,
    node: Option<Node<bool>>,
}

// The item is moved in and out, never pinned.
impl<T, S: QueueKind<T>> Unpin for Put<T, S> {}

impl<T, S: QueueKind<T>> fmt::Debug for Put<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Put")
            .field("waiting", &self.node.is_some())
            .finish()
    }
}

impl<T, S: QueueKind<T>> Future for Put<T, S> {
    type Output = Result<(), PutError<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Some(item) = this.item.take() else {
            return Poll::Pending;
        };
        if let Some(node) = &this.node {
            match poll_node(node, cx) {
                Poll::Pending => {
                    this.item = Some(item);
                    return Poll::Pending;
                }
                Poll::Ready(granted) => {
                    this.node = None;
                    let mut i = this.queue.inner.borrow_mut();
                    if granted {
                        i.reserved -= 1;
                    }
                    if !granted || i.shutdown {
                        let w = if granted { i.free_place() } else { None };
                        drop(i);
                        wake(w);
                        return Poll::Ready(Err(PutError::ShutDown(item)));
                    }
                    let w = i.deliver(item);
                    drop(i);
                    wake(w);
                    return Poll::Ready(Ok(()));
                }
            }
        }
        let mut i = this.queue.inner.borrow_mut();
        if i.shutdown {
            return Poll::Ready(Err(PutError::ShutDown(item)));
        }
        if i.full() || !i.putters.is_empty() {
            this.node = Some(i.putters.push(cx));
            this.item = Some(item);
            return Poll::Pending;
        }
        let w = i.deliver(item);
        drop(i);
        wake(w);
        Poll::Ready(Ok(()))
    }
}

impl<T, S: QueueKind<T>> Drop for Put<T, S> {
    fn drop(&mut self) {
        let Some(node) = self.node.take() else {
            return;
        };
        let mut i = self.queue.inner.borrow_mut();
        let w = match abandon(&node) {
            (true, _) => {
                i.putters.remove(&node);
                None
            }
            // A place was reserved for this put: it goes to the next putter.
            (false, Some(true)) => {
                i.reserved -= 1;
                i.free_place()
            }
            _ => None,
        };
        drop(i);
        wake(w);
    }
}

/// The future of [`Queue::get`].
#[must_use = "futures do nothing unless awaited"]
pub struct Get<T, S: QueueKind<T> = VecDeque<T>> {
    queue: Queue<T, S>,
    node: Option<Node<Option<T>>>,
}

impl<T, S: QueueKind<T>> Unpin for Get<T, S> {}

impl<T, S: QueueKind<T>> fmt::Debug for Get<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Get")
            .field("waiting", &self.node.is_some())
            .finish()
    }
}

impl<T, S: QueueKind<T>> Future for Get<T, S> {
    type Output = Result<T, SyncError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(node) = &this.node {
            return match poll_node(node, cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(grant) => {
                    this.node = None;
                    match grant {
                        Some(item) => {
                            let mut i = this.queue.inner.borrow_mut();
                            i.handed -= 1;
                            let w = i.free_place();
                            drop(i);
                            wake(w);
                            Poll::Ready(Ok(item))
                        }
                        None => Poll::Ready(Err(SyncError::QueueShutDown)),
                    }
                }
            };
        }
        match this.queue.get_nowait() {
            Err(SyncError::QueueEmpty) => {
                this.node = Some(this.queue.inner.borrow_mut().getters.push(cx));
                Poll::Pending
            }
            other => Poll::Ready(other),
        }
    }
}

impl<T, S: QueueKind<T>> Drop for Get<T, S> {
    fn drop(&mut self) {
        let Some(node) = self.node.take() else {
            return;
        };
        let mut i = self.queue.inner.borrow_mut();
        let w = match abandon(&node) {
            (true, _) => {
                i.getters.remove(&node);
                None
            }
            // Handed an item it never returned: pass it on.
            (false, Some(Some(item))) => i.give_back(item),
            _ => None,
        };
        drop(i);
        wake(w);
    }
}

/// The future of [`Queue::join`].
#[must_use = "futures do nothing unless awaited"]
pub struct Join<T, S: QueueKind<T> = VecDeque<T>> {
    queue: Queue<T, S>,
    node: Option<Node<()>>,
}

impl<T, S: QueueKind<T>> fmt::Debug for Join<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Join")
            .field("waiting", &self.node.is_some())
            .finish()
    }
}

impl<T, S: QueueKind<T>> Future for Join<T, S> {
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
        let mut i = this.queue.inner.borrow_mut();
        if i.unfinished == 0 {
            return Poll::Ready(());
        }
        this.node = Some(i.joiners.push(cx));
        Poll::Pending
    }
}

impl<T, S: QueueKind<T>> Unpin for Join<T, S> {}

impl<T, S: QueueKind<T>> Drop for Join<T, S> {
    fn drop(&mut self) {
        if let Some(node) = self.node.take() {
            if abandon(&node).0 {
                self.queue.inner.borrow_mut().joiners.remove(&node);
            }
        }
    }
}
