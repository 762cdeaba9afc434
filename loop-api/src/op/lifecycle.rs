//! The life cycle of one operation: the loop's table of operations the
//! backend holds, every state a slot can be in, and every transition
//! between them, in one place.
//!
//! An operation is known to the backend by its [`OpId`], the index of its
//! slot here (dense and small, as the backends index arrays by it). Its
//! owner (a future, a watcher) holds an [`OpKey`]: the index plus the
//! slot's generation, which changes every time the slot is vacated. So a
//! key that outlived its operation never reaches whoever got the index
//! next: every transition checks the generation first.
//!
//! ```text
//!                 submit (pending)                      completion
//!   Vacant ───────────────────────────▶ Waiting ─────────────────────▶ Arrived
//!     ▲ ▲                                  │  │                          │
//!     │ │ collected / cancel → Forgotten   │  │ future dropped,          │ collected by
//!     │ └──────────────────────────────────┘  │ backend still owns it    │ the future
//!     │                                       ▼                          │
//!     │ ◀────────── final completion ──── Orphan                         │
//!     │                                                                  │
//!     │ ◀────────────────────────────────────────────────────────────────┘
//!     │
//!     │        submit_with_callback          completion
//!     ├──────────────────────────▶ Callback ────────────▶ Fired ──▶ (callback runs
//!     │ ◀─ cancel → Forgotten ─────┘ │                      │        or is cancelled)
//!     │                              └─ cancel, Pending ─▶ Orphan    │
//!     └──────────────────────────────────────────────────────────────┘
//!
//!   close(): Waiting ──(the backend could not confirm it let go)──▶ Stuck
//! ```
//!
//! A slot's state, one by one:
//!
//! - **Vacant**: free. Its generation was bumped when it was vacated, so
//!   every key issued for the previous operation is stale.
//! - **Waiting**: the backend owns the operation, a future awaits it. The
//!   memory it points into is owned by the future. Holds the future's
//!   waker once the future has been polled.
//! - **Arrived**: the result arrived and waits for the future to collect it.
//!   The backend has forgotten the operation. A future dropped now does not
//!   lose the result: [`OpTable::abandon`] hands it to the future's
//!   leftovers, which keep what a receive took for the next receive.
//! - **Orphan**: the future was dropped while the backend still owned the
//!   operation (a cancel the backend answered [`Cancel::Pending`]). The
//!   slot owns the memory (the [`Abandoned`] leftovers) until the final
//!   completion, which the leftovers then take: bytes, a datagram or a
//!   connection go to the descriptor's stash, never to the floor.
//! - **Callback**: the backend owns the operation and a callback will take
//!   its result (readiness watchers, the loop's internal readers).
//! - **Fired**: the result arrived and the callback is queued to run. The
//!   slot stays taken until the callback runs or is cancelled, because its
//!   owner still holds the key and may cancel it meanwhile.
//! - **Stuck**: the loop was closed while the backend owned the operation
//!   and the backend could not confirm that the kernel let go of it. Its
//!   future never completes, and its memory is leaked rather than freed
//!   when the future is dropped.

use std::fmt;
use std::io;
use std::task::{Context, Poll, Waker};

use crate::driver::{Cancel, OpId, OpOutput};
use crate::loop_core::handle::Handle;
use crate::op::salvage::{Abandoned, Kept};

/// Names one operation in the loop's table: its slot and that slot's
/// generation when the operation started.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct OpKey {
    index: u32,
    gen: u32,
}

impl OpKey {
    /// The id the backend knows the operation by.
    #[inline]
    pub(crate) fn id(self) -> OpId {
        self.index as OpId
    }
}

/// A callback that takes an operation's result.
pub(crate) type OpCallback = Box<dyn FnOnce(io::Result<OpOutput>)>;

/// The state of one slot (see the module docs, state by state).
pub(crate) enum OpState {
    /// Free.
    Vacant,
    /// In the backend; a future awaits it.
    Waiting(Option<Waker>),
    /// Arrived, not yet collected.
    Arrived(io::Result<OpOutput>),
    /// In the backend; its future is gone and these leftovers own its memory.
    Orphan(Box<dyn Abandoned>),
    /// In the backend; this callback takes the result.
    Callback(OpCallback),
    /// Arrived; its callback is queued under this handle (`None` for the
    /// moment between the completion and the queueing).
    Fired(Option<Handle>),
    /// Left in the backend by `close()`, unconfirmed: never completes.
    Stuck,
}

impl fmt::Debug for OpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpState::Vacant => "Vacant",
            OpState::Waiting(_) => "Waiting",
            OpState::Arrived(_) => "Arrived",
            OpState::Orphan(_) => "Orphan",
            OpState::Callback(_) => "Callback",
            OpState::Fired(_) => "Fired",
            OpState::Stuck => "Stuck",
        })
    }
}

struct Slot {
    gen: u32,
    state: OpState,
}

/// What [`OpTable::complete`] asks its caller to do once the table is no
/// longer borrowed (wakers and leftovers may run arbitrary code).
pub(crate) enum Delivered {
    /// Nothing: a stale completion, or one nobody waits for yet.
    Nothing,
    /// Wake the future that waits for the result.
    Wake(Waker),
    /// Hand the result to the leftovers of a dropped future.
    Salvage(Box<dyn Abandoned>, io::Result<OpOutput>),
    /// Queue the callback with the result, then [`OpTable::fire`].
    Call(OpKey, OpCallback, io::Result<OpOutput>),
}

/// What [`OpTable::abandon`] leaves its caller to do outside the borrow.
pub(crate) enum Abandon {
    /// Nothing (the operation was already gone).
    Nothing,
    /// Free these leftovers: the backend forgot the operation unfinished.
    Free(Box<dyn Abandoned>),
    /// The result had arrived: hand it to the leftovers.
    Salvage(Box<dyn Abandoned>, io::Result<OpOutput>),
}

/// The loop's table of operations in the backend (see the module docs).
#[derive(Default)]
pub(crate) struct OpTable {
    slots: Vec<Slot>,
    /// Vacant slots, reused last in, first out (the backend's arrays stay dense).
    free: Vec<u32>,
}

impl fmt::Debug for OpTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpTable")
            .field("slots", &self.slots.len())
            .field("free", &self.free.len())
            .finish()
    }
}

impl OpTable {
    /// The key the next [`insert`](Self::insert) will use. Nothing is
    /// taken: a submission that finishes at once never occupies a slot.
    pub(crate) fn next_key(&self) -> OpKey {
        match self.free.last() {
            Some(&index) => OpKey {
                index,
                gen: self.slots[index as usize].gen,
            },
            None => OpKey {
                index: u32::try_from(self.slots.len()).expect("fewer than 2^32 operations"),
                gen: 0,
            },
        }
    }

    /// Occupies the slot of `key`, which must come from
    /// [`next_key`](Self::next_key) with no insert in between.
    pub(crate) fn insert(&mut self, key: OpKey, state: OpState) {
        debug_assert!(!matches!(state, OpState::Vacant));
        if key.index as usize == self.slots.len() {
            self.slots.push(Slot {
                gen: key.gen,
                state,
            });
            return;
        }
        let popped = self.free.pop();
        debug_assert_eq!(popped, Some(key.index), "insert without next_key");
        let slot = &mut self.slots[key.index as usize];
        debug_assert!(matches!(slot.state, OpState::Vacant) && slot.gen == key.gen);
        discard(std::mem::replace(&mut slot.state, state));
    }

    /// The slot of `key`, unless the key is stale.
    fn slot(&mut self, key: OpKey) -> Option<&mut Slot> {
        self.slots
            .get_mut(key.index as usize)
            .filter(|slot| slot.gen == key.gen && !matches!(slot.state, OpState::Vacant))
    }

    /// The state of `key`'s operation (`Vacant` for a stale key).
    pub(crate) fn state(&self, key: OpKey) -> &OpState {
        match self.slots.get(key.index as usize) {
            Some(slot) if slot.gen == key.gen => &slot.state,
            _ => &OpState::Vacant,
        }
    }

    /// Frees a slot: the generation moves on, so every key of the
    /// operation that held it is stale from now on.
    fn vacate(&mut self, index: u32) -> OpState {
        let slot = &mut self.slots[index as usize];
        let state = std::mem::replace(&mut slot.state, OpState::Vacant);
        debug_assert!(!matches!(state, OpState::Vacant), "vacating a vacant slot");
        slot.gen = slot.gen.wrapping_add(1);
        self.free.push(index);
        state
    }

    /// Waiting → (Waiting with `cx`'s waker) or Arrived → Vacant (the result).
    /// A `Stuck` operation never completes. A stale key is a bug in the
    /// caller; it gets an error rather than someone else's result.
    pub(crate) fn poll(&mut self, key: OpKey, cx: &Context<'_>) -> Poll<io::Result<OpOutput>> {
        let Some(slot) = self.slot(key) else {
            debug_assert!(false, "poll of a stale operation key {key:?}");
            return Poll::Ready(Err(io::Error::other("operation no longer in the loop")));
        };
        match &mut slot.state {
            OpState::Waiting(waker) => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            OpState::Arrived(_) => {
                let OpState::Arrived(result) = self.vacate(key.index) else {
                    unreachable!("state checked above")
                };
                Poll::Ready(result)
            }
            OpState::Stuck => Poll::Pending,
            other => {
                debug_assert!(false, "poll of an operation in state {other:?}");
                Poll::Ready(Err(io::Error::other("operation not awaited")))
            }
        }
    }

    /// The backend reported operation `id`'s result.
    ///
    /// Waiting → Arrived (wake the future); Orphan → Vacant (the leftovers
    /// take the result); Callback → Fired, the callback handed to the
    /// caller to queue (then [`fire`](Self::fire)). Anything else (a vacant
    /// slot: the operation was cancelled and forgotten) is ignored.
    pub(crate) fn complete(&mut self, id: OpId, result: io::Result<OpOutput>) -> Delivered {
        let Some(slot) = self.slots.get_mut(id) else {
            return Delivered::Nothing;
        };
        let index = id as u32;
        match &mut slot.state {
            OpState::Waiting(waker) => {
                let waker = waker.take();
                discard(std::mem::replace(&mut slot.state, OpState::Arrived(result)));
                waker.map_or(Delivered::Nothing, Delivered::Wake)
            }
            OpState::Orphan(_) => {
                let OpState::Orphan(leftovers) = self.vacate(index) else {
                    unreachable!("state checked above")
                };
                Delivered::Salvage(leftovers, result)
            }
            OpState::Callback(_) => {
                let key = OpKey {
                    index,
                    gen: slot.gen,
                };
                let OpState::Callback(callback) =
                    std::mem::replace(&mut slot.state, OpState::Fired(None))
                else {
                    unreachable!("state checked above")
                };
                Delivered::Call(key, callback, result)
            }
            OpState::Vacant => Delivered::Nothing,
            other => {
                debug_assert!(false, "completion for an operation in state {other:?}");
                Delivered::Nothing
            }
        }
    }

    /// The callback of `key` is queued under `handle` (`None`: it was not,
    /// the loop being closed; the slot is freed).
    pub(crate) fn fire(&mut self, key: OpKey, handle: Option<Handle>) {
        let Some(slot) = self.slot(key) else { return };
        debug_assert!(matches!(slot.state, OpState::Fired(None)));
        match handle {
            Some(handle) => slot.state = OpState::Fired(Some(handle)),
            None => drop(self.vacate(key.index)),
        }
    }

    /// The queued callback of `key` runs now: Fired → Vacant.
    pub(crate) fn fired_runs(&mut self, key: OpKey) {
        if matches!(self.slot(key).map(|s| &s.state), Some(OpState::Fired(_))) {
            drop(self.vacate(key.index));
        }
    }

    /// The future awaiting `key` is gone; the backend answered `outcome` to
    /// the cancel (`None`: not asked, the result being already here).
    ///
    /// Arrived → Vacant (the leftovers take the result); Waiting → Vacant
    /// (`Cancel::Forgotten`: free the leftovers) or Orphan (`Cancel::Pending`);
    /// Stuck stays Stuck and the leftovers are leaked, since the kernel may
    /// still write into them.
    pub(crate) fn abandon(
        &mut self,
        key: OpKey,
        outcome: Option<Cancel>,
        leftovers: Box<dyn Abandoned>,
    ) -> Abandon {
        let Some(slot) = self.slot(key) else {
            return Abandon::Free(leftovers);
        };
        match (&slot.state, outcome) {
            (OpState::Arrived(_), _) => {
                let OpState::Arrived(result) = self.vacate(key.index) else {
                    unreachable!("state checked above")
                };
                Abandon::Salvage(leftovers, result)
            }
            (OpState::Waiting(_), Some(Cancel::Pending)) => {
                let mut leftovers = leftovers;
                leftovers.orphaned();
                slot.state = OpState::Orphan(leftovers);
                Abandon::Nothing
            }
            (OpState::Waiting(_), _) => {
                self.vacate(key.index);
                Abandon::Free(leftovers)
            }
            (OpState::Stuck, _) => {
                log_leak();
                std::mem::forget(leftovers);
                Abandon::Nothing
            }
            (other, _) => {
                debug_assert!(false, "abandoning an operation in state {other:?}");
                Abandon::Free(leftovers)
            }
        }
    }

    /// `key`'s callback operation is cancelled; `outcome` is the backend's
    /// answer (`None` if it was not asked: the result is already here).
    ///
    /// Callback → Vacant (`Cancel::Forgotten`) or Orphan holding the unrun
    /// callback and whatever it captured (`Cancel::Pending`: the slot stays
    /// taken until the final completion); Fired → Vacant, cancelling the
    /// queued callback.
    /// Returns the state the operation left, for the caller to drop
    /// outside the borrow; `None` for a stale key.
    pub(crate) fn cancel_callback(
        &mut self,
        key: OpKey,
        outcome: Option<Cancel>,
    ) -> Option<OpState> {
        let slot = self.slot(key)?;
        match (&slot.state, outcome) {
            (OpState::Callback(_), Some(Cancel::Pending)) => {
                // The callback never runs, but what it holds (the
                // descriptor its owner shares with it) stays alive until
                // the final completion.
                let OpState::Callback(callback) =
                    std::mem::replace(&mut slot.state, OpState::Stuck)
                else {
                    unreachable!("state checked above")
                };
                slot.state = OpState::Orphan(Box::new(Kept(callback)));
                None
            }
            (OpState::Callback(_) | OpState::Fired(_), _) => Some(self.vacate(key.index)),
            _ => None,
        }
    }

    /// The keys of every slot whose state satisfies `which`.
    pub(crate) fn keys_where(&self, which: impl Fn(&OpState) -> bool) -> Vec<OpKey> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| which(&s.state))
            .map(|(i, s)| OpKey {
                index: i as u32,
                gen: s.gen,
            })
            .collect()
    }

    /// `true` while an orphan or an awaited operation is in the backend.
    pub(crate) fn kernel_holds_any(&self) -> bool {
        self.slots
            .iter()
            .any(|s| matches!(s.state, OpState::Waiting(_) | OpState::Orphan(_)))
    }

    /// For `close()`: the awaited operation `key` was cancelled and the
    /// backend forgot it (`Cancel::Forgotten`): Waiting → Arrived(`result`), its
    /// waker returned.
    pub(crate) fn finish_waiting(
        &mut self,
        key: OpKey,
        result: io::Result<OpOutput>,
    ) -> Option<Waker> {
        let slot = self.slot(key)?;
        match &mut slot.state {
            OpState::Waiting(waker) => {
                let waker = waker.take();
                slot.state = OpState::Arrived(result);
                waker
            }
            _ => None,
        }
    }

    /// For `close()`, once the backend is gone: takes every callback (they
    /// will never run) and every orphan's leftovers, and turns each still
    /// awaited operation into `Stuck` if `kernel_let_go` is false (else it
    /// completes with `closed()`). Returns the states taken out, with the
    /// wakers of the futures to wake; the caller frees or leaks them.
    pub(crate) fn close(
        &mut self,
        kernel_let_go: bool,
        closed: impl Fn() -> io::Error,
    ) -> (Vec<OpState>, Vec<Waker>) {
        let mut taken = Vec::new();
        let mut wakers = Vec::new();
        for index in 0..self.slots.len() {
            let slot = &mut self.slots[index];
            match &mut slot.state {
                OpState::Waiting(waker) => {
                    wakers.extend(waker.take());
                    slot.state = if kernel_let_go {
                        OpState::Arrived(Err(closed()))
                    } else {
                        OpState::Stuck
                    };
                }
                OpState::Orphan(_) | OpState::Callback(_) | OpState::Fired(_) => {
                    taken.push(self.vacate(index as u32));
                }
                _ => {}
            }
        }
        (taken, wakers)
    }

    /// The wakers of every awaited operation, taken (for `close()`).
    pub(crate) fn take_wakers(&mut self) -> Vec<Waker> {
        self.slots
            .iter_mut()
            .filter_map(|slot| match &mut slot.state {
                OpState::Waiting(w) => w.take(),
                _ => None,
            })
            .collect()
    }
}

/// Drops a replaced state, skipping the drop glue (an out-of-line call,
/// once or twice per operation) for the two states that own nothing: the
/// `Vacant` an insert replaces and the `Waiting(None)` a completion does.
#[inline]
fn discard(state: OpState) {
    if matches!(state, OpState::Vacant | OpState::Waiting(None)) {
        // Nothing to free: neither holds a value with a destructor.
        std::mem::forget(state);
    } else {
        drop(state);
    }
}

#[cold]
fn log_leak() {
    // No logging crate in loop-api: one line on stderr, as the default
    // exception handler does.
    eprintln!(
        "evloop: an operation's memory is leaked: the loop was closed while the kernel \
         still held it and its backend could not confirm the kernel let go"
    );
}

#[cfg(test)]
mod tests;
