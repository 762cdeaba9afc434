//! The cross-thread wake-up protocol: the queue through which other threads
//! send the loop work (`call_soon_threadsafe`, `stop`, task wake-ups), and
//! the flag that lets them wake a loop blocked in its backend with one
//! notification per sleep instead of one per call, without ever losing one.
//!
//! # The protocol
//!
//! The loop thread, around every backend wait:
//!
//! 1. [`announce_sleep`](RemoteQueue::announce_sleep):
//!    `notified.swap(false)`, `fence(SeqCst)`, `!queue.is_empty()`. If work
//!    is queued the wait gets timeout 0 (it must not block).
//! 2. `driver.wait(timeout)`.
//! 3. [`awake`](RemoteQueue::awake): `notified.swap(true)`.
//! 4. [`pop`](RemoteQueue::pop) until the queue is empty.
//!
//! Any thread, to send an item ([`push`](RemoteQueue::push)):
//!
//! 1. `queue.push(item)`; a closed queue hands the item back.
//! 2. `fence(SeqCst)`.
//! 3. If `!notified.swap(true)`: lock `notifier` and, if the loop has not
//!    taken it out at close, `notify()` while holding the lock.
//!
//! The backend's [`Notify`] is sticky: it makes the *current or next* wait
//! return (an eventfd counter, a self-pipe byte). A notification that
//! arrives while the loop is awake is therefore not lost; it costs one
//! spurious, harmless wake-up later.
//!
//! # The state, field by field
//!
//! `queue`: the items. Any thread pushes; only the loop thread pops. The
//! protocol assumes nothing about the orderings the queue uses inside,
//! only that `push` makes an atomic write that `is_empty` reads, and that
//! `is_empty` answers "not empty" once it reads that write or a later one
//! (until the loop pops the item). Handing the item's *contents* over
//! (push → pop) is the queue's own business. Today's queue,
//! `concurrent-queue`, happens to use `SeqCst` for every index access,
//! which alone would have closed the race below (the protocol used to
//! lean on that); the fences make that unnecessary.
//!
//! `notified`, an `AtomicBool`:
//! - `false`: the loop has announced (step 1) that it may block and no
//!   thread has set out to notify it since: the next push must notify.
//! - `true`: the loop is awake (from step 3 until the next step 1; also the
//!   initial value), or some thread that saw `false` is sending a
//!   notification: pushes need not notify, so a burst of remote calls costs
//!   one notification.
//!
//! Its orderings (every access is `Relaxed`; the fences do the ordering):
//! - the loop's `swap(false)` (announce): what orders it before the
//!   emptiness check is the `SeqCst` fence right after it;
//! - the producer's `swap(true)`: ordered after the push by the fence right
//!   before it. Being a read-modify-write, it reads the latest value in the
//!   flag's modification order: of several producers racing after one
//!   announcement, exactly one reads `false` and notifies;
//! - the loop's `swap(true)` (awake): it only suppresses notifications. A
//!   producer that still reads the older `false` sends one notification
//!   too many, which costs a spurious wake-up and nothing else. Its place
//!   in program order (after the wait) is what matters;
//! - no access needs `Acquire`/`Release`: the item's contents travel
//!   through the queue, and the notification through the backend.
//!
//! Every write to `notified` is a swap, the loop's two included, though
//! their results are unused and plain stores would do in the memory model
//! (the argument below holds for them). With only read-modify-writes, the
//! flag's modification order is one chain that loom follows exactly; loom
//! does not keep a plain store in modification order with a concurrent
//! read-modify-write (tokio-rs/loom#254, #282) and, with stores, reports
//! lost wake-ups that no execution allowed by the memory model has. The
//! cost is an `xchg` instead of a `mov` per backend wait, beside a syscall.
//!
//! The two `SeqCst` fences pair with each other: loop (`swap(false)`;
//! fence *X*; `is_empty()`) against producer (`push`; fence *Y*; `swap`) is
//! the store-buffering (Dekker) pattern. Without the fences both reads may
//! see the old values, the loop "empty" and the producer `true`, so the
//! loop blocks with the item queued and nobody notifies: a lost wake-up
//! (the loom model finds exactly this when either fence is removed).
//! `SeqCst` fences are totally ordered (the order *S*), and the C++20 rule
//! that Rust follows ([atomics.order]: if write *A* is sequenced before
//! fence *X*, fence *Y* is sequenced before read *B* and *X* precedes *Y* in
//! *S*, then *B* reads *A* or a later write) gives, for a push with fence
//! *Y* and swap *B*:
//!
//! - every announcement whose fence follows *Y* in *S* sees the item queued
//!   (its `is_empty` reads the push's write or a later one), so its wait
//!   does not block on it;
//! - every announcement whose fence precedes *Y* has its `swap(false)`
//!   before *B* in the flag's modification order. Let *j* be the last of
//!   them. *B* reads the flag as written by announcement *j*'s
//!   `swap(false)` or by a later write that precedes announcement *j+1*
//!   (whose fence follows *Y*): either `false` itself (this producer
//!   notifies), or another producer's `swap` (the first swap after the
//!   `swap(false)` read `false`, and that producer notifies), or the
//!   loop's `swap(true)` after wait *j* (wait *j* is over). Either way wait
//!   *j* ends, and wait *j+1* sees the item by the first case. Waits
//!   before *j* ended before wait *j* began.
//!
//! So no wait blocks while an item sits in the queue unnotified, whatever
//! orderings the queue uses.
//!
//! `notifier`, a `Mutex<Option<Arc<dyn Notify>>>`: the backend's waker,
//! taken out by [`close`](RemoteQueue::close) so its descriptor is released
//! with the backend even while `LoopHandle`s live on. A producer notifies
//! while holding the lock, so `close` waits for a notification in progress
//! and none is sent once the notifier is gone. It is locked only when a
//! notification is actually sent (a syscall anyway) and at close, never
//! on the loop's own path.
//!
//! Closing: `queue.close()` and `push` are linearizable: a push either
//! lands before the close (the loop's closing drain pops and drops the
//! item, on the loop thread) or fails and hands the item back to the
//! producer. Nothing is lost silently.

use std::fmt;
use std::sync::Arc;

use crate::driver::Notify;
use crate::loop_core::loom::{fence, AtomicBool, Mutex, Ordering};

/// The queue other threads send a loop work through, with the wake-up
/// protocol described in the module documentation.
pub struct RemoteQueue<T> {
    queue: queue::Queue<T>,
    notified: AtomicBool,
    notifier: Mutex<Option<Arc<dyn Notify>>>,
}

impl<T> fmt::Debug for RemoteQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteQueue")
            .field("notified", &self.notified.load(Ordering::Relaxed))
            .field("closed", &self.queue.is_closed())
            .finish()
    }
}

impl<T> RemoteQueue<T> {
    /// An open, empty queue that wakes the loop through `notifier`. The
    /// loop starts out awake.
    pub fn new(notifier: Arc<dyn Notify>) -> Self {
        RemoteQueue {
            queue: queue::Queue::new(),
            notified: AtomicBool::new(true),
            notifier: Mutex::new(Some(notifier)),
        }
    }

    /// Producer side, any thread: queues `item` and wakes the loop if it
    /// may be blocked and nobody has woken it yet. A closed queue hands
    /// `item` back.
    pub fn push(&self, item: T) -> Result<(), T> {
        self.queue.push(item)?;
        // Pairs with the fence in `announce_sleep`: orders the push's write
        // before the swap's read (see the module documentation).
        fence(Ordering::SeqCst);
        if !self.notified.swap(true, Ordering::Relaxed) {
            let notifier = self.notifier.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(notifier) = notifier.as_ref() {
                notifier.notify();
            }
        }
        Ok(())
    }

    /// Loop side, right before a wait that may block: from here on a push
    /// notifies. Returns `true` if work is already queued: the wait must
    /// then not block.
    pub fn announce_sleep(&self) -> bool {
        // A swap, not a store: see "Every write is a swap" in the module
        // documentation.
        self.notified.swap(false, Ordering::Relaxed);
        // Pairs with the fence in `push`: orders the store before the
        // emptiness check's read (see the module documentation).
        fence(Ordering::SeqCst);
        !self.queue.is_empty()
    }

    /// Loop side, right after the wait: pushes stop notifying until the
    /// next [`announce_sleep`](Self::announce_sleep).
    pub fn awake(&self) {
        // A swap, not a store, like the one in `announce_sleep`.
        self.notified.swap(true, Ordering::Relaxed);
    }

    /// Loop side: the oldest item, if any (each producer's items come out
    /// in the order it pushed them).
    pub fn pop(&self) -> Option<T> {
        self.queue.pop()
    }

    /// `true` if nothing is queued (a hint: a push may be landing).
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Loop side, at close: later pushes fail and hand their item back;
    /// items already queued stay for the caller to [`pop`](Self::pop) and
    /// drop. Returns the notifier, taken out, for the caller to drop when
    /// it sees fit; after this no notification is sent. Idempotent (a
    /// second call returns `None`).
    pub fn close(&self) -> Option<Arc<dyn Notify>> {
        self.queue.close();
        self.notifier
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// `true` once [`close`](Self::close) has been called.
    pub fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }
}

/// The real queue: lock-free, unbounded.
#[cfg(not(loom))]
mod queue {
    use concurrent_queue::{ConcurrentQueue, PushError};

    pub(super) struct Queue<T>(ConcurrentQueue<T>);

    impl<T> Queue<T> {
        pub(super) fn new() -> Self {
            Queue(ConcurrentQueue::unbounded())
        }

        pub(super) fn push(&self, item: T) -> Result<(), T> {
            self.0
                .push(item)
                .map_err(|(PushError::Closed(item) | PushError::Full(item))| item)
        }

        pub(super) fn pop(&self) -> Option<T> {
            self.0.pop().ok()
        }

        pub(super) fn is_empty(&self) -> bool {
            self.0.is_empty()
        }

        pub(super) fn close(&self) {
            self.0.close();
        }

        pub(super) fn is_closed(&self) -> bool {
            self.0.is_closed()
        }
    }
}

/// The model's stand-in: the weakest queue the protocol may assume.
/// `push` and `pop` are linearized by a lock (so push/close and the items
/// are exact), but `is_empty` reads a length published with `Release` and
/// read with `Acquire`, outside the lock, so it may see a stale "empty":
/// only the protocol's own fences make the emptiness check reliable.
#[cfg(loom)]
mod queue {
    use std::collections::VecDeque;

    use crate::loop_core::loom::{AtomicUsize, Mutex, Ordering};

    pub(super) struct Queue<T> {
        /// The items, and whether the queue is closed.
        items: Mutex<(VecDeque<T>, bool)>,
        /// `items.0.len()`, written under the lock, read without it.
        len: AtomicUsize,
    }

    impl<T> Queue<T> {
        pub(super) fn new() -> Self {
            Queue {
                items: Mutex::new((VecDeque::new(), false)),
                len: AtomicUsize::new(0),
            }
        }

        pub(super) fn push(&self, item: T) -> Result<(), T> {
            let mut items = self.items.lock().unwrap();
            if items.1 {
                return Err(item);
            }
            items.0.push_back(item);
            self.len.store(items.0.len(), Ordering::Release);
            Ok(())
        }

        pub(super) fn pop(&self) -> Option<T> {
            let mut items = self.items.lock().unwrap();
            let item = items.0.pop_front();
            self.len.store(items.0.len(), Ordering::Release);
            item
        }

        pub(super) fn is_empty(&self) -> bool {
            self.len.load(Ordering::Acquire) == 0
        }

        pub(super) fn close(&self) {
            self.items.lock().unwrap().1 = true;
        }

        pub(super) fn is_closed(&self) -> bool {
            self.items.lock().unwrap().1
        }
    }
}
