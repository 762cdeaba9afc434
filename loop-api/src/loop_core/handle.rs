//! `Handle` and `TimerHandle`: the cancellable callbacks that `call_soon` and
//! `call_later` return.
//!
//! A callback lives in one reference-counted cell, the closure stored inline
//! (one allocation per `call_soon`). The cell drops the closure as soon as it
//! has run or been cancelled, so captured values are released promptly.

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::time::Instant;

/// The life of a scheduled callback.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    /// Scheduled, not yet run.
    Pending,
    /// `cancel()` was called before it ran.
    Cancelled,
    /// It has run (or is running).
    Ran,
}

/// A scheduled callback, type-erased.
pub(crate) trait Callback {
    /// Runs the closure unless cancelled; a second call does nothing.
    fn run(&self);
    /// Prevents a pending closure from running; `true` if it was pending.
    fn cancel(&self) -> bool;
    /// `true` once `cancel` stopped it.
    fn is_cancelled(&self) -> bool;
    /// `true` once it has run.
    fn has_run(&self) -> bool;
    /// A timer leaves the heap for the ready queue (nothing for others).
    fn leave_heap(&self) {}
}

pub(crate) struct CallbackCell<F> {
    state: Cell<State>,
    f: Cell<Option<F>>,
}

impl<F: FnOnce()> CallbackCell<F> {
    pub(crate) fn new(f: F) -> Self {
        CallbackCell {
            state: Cell::new(State::Pending),
            f: Cell::new(Some(f)),
        }
    }
}

impl<F: FnOnce()> Callback for CallbackCell<F> {
    fn run(&self) {
        if self.state.get() != State::Pending {
            return;
        }
        self.state.set(State::Ran);
        if let Some(f) = self.f.take() {
            f();
        }
    }

    fn cancel(&self) -> bool {
        if self.state.get() != State::Pending {
            return false;
        }
        self.state.set(State::Cancelled);
        drop(self.f.take());
        true
    }

    fn is_cancelled(&self) -> bool {
        self.state.get() == State::Cancelled
    }

    fn has_run(&self) -> bool {
        self.state.get() == State::Ran
    }
}

/// A timer's callback: a [`CallbackCell`] that also counts cancellations,
/// so the loop knows when cancelled entries dominate its heap.
pub(crate) struct TimerCell<F> {
    cell: CallbackCell<F>,
    cancelled_in_heap: Rc<Cell<usize>>,
    /// Still in the heap: not yet moved to the ready queue by `pop_due`.
    in_heap: Cell<bool>,
}

impl<F: FnOnce()> TimerCell<F> {
    pub(crate) fn new(f: F, cancelled_in_heap: Rc<Cell<usize>>) -> Self {
        TimerCell {
            cell: CallbackCell::new(f),
            cancelled_in_heap,
            in_heap: Cell::new(true),
        }
    }
}

impl<F: FnOnce()> Callback for TimerCell<F> {
    fn run(&self) {
        self.cell.run()
    }

    fn cancel(&self) -> bool {
        let was_pending = self.cell.cancel();
        // Counted only while it is in the heap: a timer already moved to
        // the ready queue takes no heap space.
        if was_pending && self.in_heap.get() {
            self.cancelled_in_heap.set(self.cancelled_in_heap.get() + 1);
        }
        was_pending
    }

    fn leave_heap(&self) {
        self.in_heap.set(false);
    }

    fn is_cancelled(&self) -> bool {
        self.cell.is_cancelled()
    }

    fn has_run(&self) -> bool {
        self.cell.has_run()
    }
}

/// A callback scheduled with `call_soon`; cancel it before it runs to prevent it.
///
/// ```
/// let lp = evloop::new_event_loop().unwrap();
/// let handle = lp.call_soon(|| unreachable!("cancelled before it ran")).unwrap();
/// handle.cancel();
/// let done = lp.call_soon(|| ()).unwrap();
/// lp.run_until_complete(evloop::yield_now()).unwrap();
/// assert!(handle.cancelled() && !handle.has_run());
/// assert!(done.has_run());
/// lp.close().unwrap();
/// ```
#[derive(Clone)]
pub struct Handle(pub(crate) Rc<dyn Callback>);

impl Handle {
    /// Prevents the callback from running if it has not run yet, and
    /// releases the closure. Calling it again, or after the callback ran, does nothing.
    pub fn cancel(&self) {
        self.0.cancel();
    }

    /// `true` if `cancel()` stopped the callback (false once it has run).
    pub fn cancelled(&self) -> bool {
        self.0.is_cancelled()
    }

    /// `true` once the callback has run.
    pub fn has_run(&self) -> bool {
        self.0.has_run()
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("cancelled", &self.cancelled())
            .finish()
    }
}

/// A callback scheduled with `call_later` or `call_at`.
///
/// ```
/// use std::time::{Duration, Instant};
/// let lp = evloop::new_event_loop().unwrap();
/// let before = Instant::now();
/// let late = lp.call_later(Duration::from_secs(3600), || unreachable!()).unwrap();
/// assert!(late.when() >= before + Duration::from_secs(3600));
/// late.cancel(); // the loop forgets it: run_forever below does not wait an hour
/// let l = lp.clone();
/// lp.call_later(Duration::from_millis(5), move || l.stop()).unwrap();
/// lp.run_forever().unwrap();
/// assert!(late.cancelled());
/// lp.close().unwrap();
/// ```
#[derive(Clone)]
pub struct TimerHandle {
    pub(crate) cb: Rc<dyn Callback>,
    pub(crate) when: Instant,
}

impl TimerHandle {
    /// Prevents the callback from running if it has not fired yet.
    pub fn cancel(&self) {
        self.cb.cancel();
    }

    /// `true` if `cancel()` stopped the callback.
    pub fn cancelled(&self) -> bool {
        self.cb.is_cancelled()
    }

    /// The deadline on the loop's clock; unchanged by cancelling or firing.
    pub fn when(&self) -> Instant {
        self.when
    }
}

impl fmt::Debug for TimerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerHandle")
            .field("when", &self.when)
            .field("cancelled", &self.cancelled())
            .finish()
    }
}
