//! The timer heap: ordered by (deadline, sequence), so equal deadlines fire in
//! the order they were scheduled. Cancelled timers stay in the heap until they
//! reach the top or until they make up more than half of it, then are purged.

use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::rc::Rc;
use std::time::Instant;

use crate::handle::Callback;

/// Purge only heaps at least this big (small heaps clean themselves by popping).
const PURGE_MIN: usize = 64;

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
    pub(crate) fn pop_due(&mut self, now: Instant, out: &mut impl FnMut(Rc<dyn Callback>)) {
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

    fn purge_if_dominated(&mut self) {
        let cancelled = self.cancelled.get();
        if self.heap.len() >= PURGE_MIN && cancelled * 2 > self.heap.len() {
            self.heap.retain(|e| !e.cb.is_cancelled());
            self.cancelled.set(0);
        }
    }
}
