//! The timer heap: ordered by (deadline, sequence), so equal deadlines fire in
//! the order they were scheduled. Cancelled timers stay in the heap until they
//! reach the top or until they make up more than half of a heap of more than
//! [`PURGE_MIN`] entries, then are purged (as asyncio). The purge is checked
//! by every method the loop calls on an iteration that has timers
//! ([`Timers::pop_due`], busy or not; [`Timers::next_deadline`] before
//! blocking; [`Timers::push`]): two integer comparisons while nothing needs
//! purging, one O(n) pass when the cancelled entries dominate, so its cost
//! is amortized over the cancellations that caused it.

use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::rc::Rc;
use std::time::Instant;

use crate::loop_core::handle::Callback;

/// Purge only heaps bigger than this (small heaps clean themselves by
/// popping); asyncio's `_MIN_SCHEDULED_TIMER_HANDLES`.
const PURGE_MIN: usize = 100;

struct Entry {
    when: Instant,
    seq: u64,
    cb: Rc<dyn Callback>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    // Reversed: BinaryHeap is a max-heap and we want the earliest first.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .when
            .cmp(&self.when)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

pub(crate) struct Timers {
    heap: BinaryHeap<Entry>,
    seq: u64,
    /// Entries in `heap` whose callback was cancelled (shared with each `TimerCell`).
    cancelled: Rc<Cell<usize>>,
}

impl Timers {
    pub(crate) fn new() -> Self {
        Timers {
            heap: BinaryHeap::new(),
            seq: 0,
            cancelled: Rc::new(Cell::new(0)),
        }
    }

    /// The counter each `TimerCell` bumps when cancelled while in the heap.
    pub(crate) fn cancel_counter(&self) -> Rc<Cell<usize>> {
        self.cancelled.clone()
    }

    pub(crate) fn push(&mut self, when: Instant, cb: Rc<dyn Callback>) {
        self.purge_if_dominated();
        self.seq += 1;
        self.heap.push(Entry {
            when,
            seq: self.seq,
            cb,
        });
    }

    /// The earliest live deadline, dropping cancelled entries on the way.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        self.purge_if_dominated();
        while let Some(top) = self.heap.peek() {
            if top.cb.is_cancelled() {
                self.heap.pop();
                self.cancelled.set(self.cancelled.get() - 1);
            } else {
                return Some(top.when);
            }
        }
        None
    }

    /// Moves every live timer due at `now` into `out`, earliest first.
    ///
    /// Called on every loop iteration that has timers, including busy ones
    /// that never block (and so never ask for [`next_deadline`](Self::next_deadline)):
    /// it purges the cancelled entries first if they dominate the heap.
    pub(crate) fn pop_due(&mut self, now: Instant, out: &mut impl FnMut(Rc<dyn Callback>)) {
        self.purge_if_dominated();
        while let Some(top) = self.heap.peek() {
            if top.cb.is_cancelled() {
                self.heap.pop();
                self.cancelled.set(self.cancelled.get() - 1);
                continue;
            }
            if top.when > now {
                break;
            }
            if let Some(entry) = self.heap.pop() {
                entry.cb.leave_heap();
                out(entry.cb);
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Removes every entry (used by `close()`); the caller drops them.
    pub(crate) fn take_all(&mut self) -> Vec<Rc<dyn Callback>> {
        self.cancelled.set(0);
        std::mem::take(&mut self.heap)
            .into_vec()
            .into_iter()
            .map(|e| e.cb)
            .collect()
    }

    /// Drops every cancelled entry if they are more than half of a heap of
    /// more than [`PURGE_MIN`]; O(1) otherwise.
    fn purge_if_dominated(&mut self) {
        let cancelled = self.cancelled.get();
        if self.heap.len() > PURGE_MIN && cancelled * 2 > self.heap.len() {
            self.heap.retain(|e| !e.cb.is_cancelled());
            self.cancelled.set(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::loop_core::handle::TimerCell;

    /// `n` far timers, one second apart, and their callbacks.
    fn heap_of(n: usize) -> (Timers, Vec<Rc<dyn Callback>>, Instant) {
        let mut timers = Timers::new();
        let now = Instant::now();
        let cbs: Vec<Rc<dyn Callback>> = (0..n)
            .map(|i| {
                let cb: Rc<dyn Callback> = Rc::new(TimerCell::new(|| {}, timers.cancel_counter()));
                timers.push(now + Duration::from_secs(3600 + i as u64), cb.clone());
                cb
            })
            .collect();
        (timers, cbs, now)
    }

    /// Cancels three timers in four, never the earliest (so no cancelled
    /// entry reaches the top, where popping would drop it anyway).
    fn cancel_three_in_four(cbs: &[Rc<dyn Callback>]) -> usize {
        let mut n = 0;
        for (i, cb) in cbs.iter().enumerate() {
            if i % 4 != 0 && cb.cancel() {
                n += 1;
            }
        }
        n
    }

    #[test]
    fn pop_due_purges_cancelled_entries_that_dominate() {
        let (mut timers, cbs, now) = heap_of(200);
        assert_eq!(cancel_three_in_four(&cbs), 150);
        assert_eq!(timers.cancelled.get(), 150);
        // Nothing is due: only the purge can shrink the heap.
        timers.pop_due(now, &mut |_| panic!("nothing is due"));
        assert_eq!(timers.len(), 50);
        assert_eq!(timers.cancelled.get(), 0);
        // The live timers are all still there, in order.
        let mut fired = 0;
        timers.pop_due(now + Duration::from_secs(7200), &mut |cb| {
            assert!(!cb.is_cancelled());
            fired += 1;
        });
        assert_eq!(fired, 50);
        assert_eq!(timers.len(), 0);
    }

    #[test]
    fn purge_needs_more_than_half_of_more_than_a_hundred() {
        // 100 entries, 75 cancelled: small enough to clean itself by popping.
        let (mut timers, cbs, now) = heap_of(100);
        cancel_three_in_four(&cbs);
        timers.pop_due(now, &mut |_| panic!("nothing is due"));
        assert_eq!(timers.len(), 100);
        // 102 entries, exactly half cancelled (odd indexes): not more than half.
        let (mut timers, cbs, now) = heap_of(102);
        for cb in cbs.iter().skip(1).step_by(2) {
            cb.cancel();
        }
        assert_eq!(timers.cancelled.get(), 51);
        timers.pop_due(now, &mut |_| panic!("nothing is due"));
        assert_eq!(timers.len(), 102);
        // One more cancellation tips it over.
        cbs[2].cancel();
        timers.pop_due(now, &mut |_| panic!("nothing is due"));
        assert_eq!(timers.len(), 50);
    }

    #[test]
    fn next_deadline_skips_and_purges_cancelled_entries() {
        let (mut timers, cbs, now) = heap_of(200);
        cancel_three_in_four(&cbs);
        assert_eq!(
            timers.next_deadline(),
            Some(now + Duration::from_secs(3600))
        );
        assert_eq!(timers.len(), 50);
        cbs[0].cancel();
        assert_eq!(
            timers.next_deadline(),
            Some(now + Duration::from_secs(3604))
        );
        assert_eq!(timers.len(), 49);
        assert_eq!(timers.cancelled.get(), 0);
    }
}
