//! The user data of every SQE the driver submits, and so of every CQE it
//! reaps: the one place where it is built ([`op`], [`op_cancel`],
//! [`WAKER`], [`WAKER_CANCEL`], [`multishot`], [`multishot_cancel`]) and
//! read back ([`decode`]).
//!
//! A user data is 64 bits: a generation in the high half, a payload in the
//! low half.
//!
//! | form                               | generation | low half                     |
//! |------------------------------------|------------|------------------------------|
//! | an operation ([`op`])              | 1..        | its id (`< MAX_OPS = 2^24`)  |
//! | `AsyncCancel` of an operation      | 0          | the target's id (`< 2^24`)   |
//! | the waker's eventfd read           | 0          | `u32::MAX`                   |
//! | `AsyncCancel` of the waker's read  | 0          | `u32::MAX - 1`               |
//! | a multishot receive                | 1..        | bit 31, the descriptor       |
//! | `AsyncCancel` of a multishot       | 0          | bit 30, the descriptor       |
//!
//! Ids and descriptors stay below 2^24, so bits 24..=31 of the low half are
//! free for the tags; every form is told apart by [`decode`], so no two
//! can collide (the unit tests check it at every boundary).
//!
//! The generation of an operation changes with every submission
//! ([`Generations`]), so a late `AsyncCancel` (which names its target by
//! the full user data) can never hit a newer operation that reuses the id.
//! Generation 0 is never an operation's: a cancel's user data is the bare
//! id of its target, so its answer can be matched to the target (and the
//! cancel retried if it found nothing), and the waker's values are fixed.
//! Multishot receives (`recv_ring.rs`) have generations of their own, per
//! arm, so that the CQEs of a released descriptor's dying multishot are
//! never taken for those of the one armed next on the same number.

use std::num::NonZeroU32;
use std::os::fd::RawFd;

use loop_driver::OpId;

/// Ids at or above this are refused: the per-id table is a vector indexed
/// by id, and the loop's ids are dense (one per operation in flight).
/// It also leaves bits 24..=31 of a user data's low half to the tags.
pub const MAX_OPS: usize = 1 << 24;

/// Descriptors at or above this never read ahead: a multishot's user data
/// carries its descriptor in the low 24 bits.
pub(crate) const MAX_FD: RawFd = 1 << 24;

/// The waker's eventfd read (generation 0: never an operation's).
pub(crate) const WAKER: u64 = u32::MAX as u64;
/// The `AsyncCancel` of the waker's read (generation 0, above every id,
/// so never taken for a cancel of an operation).
pub(crate) const WAKER_CANCEL: u64 = u32::MAX as u64 - 1;

/// Low-half tag of a multishot receive (with a generation).
const MULTISHOT: u64 = 1 << 31;
/// Low-half tag of the `AsyncCancel` of a multishot (generation 0, bit 31
/// clear: neither an operation, a cancel of one, nor the waker's).
const MULTISHOT_CANCEL: u64 = 1 << 30;

/// The low half: an id, a descriptor with a tag, or a fixed value.
const LOW: u64 = u32::MAX as u64;

/// A generation counter that never yields 0 (reserved, see the module).
#[derive(Debug, Default)]
pub(crate) struct Generations(u32);

impl Generations {
    /// The next generation: 1, 2, ..., `u32::MAX`, then 1 again.
    pub(crate) fn next(&mut self) -> NonZeroU32 {
        self.0 = self.0.wrapping_add(1).max(1);
        NonZeroU32::new(self.0).unwrap_or(NonZeroU32::MIN)
    }
}

/// The user data of operation `id` (`< MAX_OPS`) submitted under `generation`.
pub(crate) fn op(generation: NonZeroU32, id: OpId) -> u64 {
    debug_assert!(id < MAX_OPS);
    (u64::from(generation.get()) << 32) | id as u64
}

/// The user data of an `AsyncCancel` of operation `id` (`< MAX_OPS`):
/// generation 0, which no operation ever has.
pub(crate) fn op_cancel(id: OpId) -> u64 {
    debug_assert!(id < MAX_OPS);
    id as u64
}

/// The user data of a multishot receive on `fd` (`0..MAX_FD`), armed
/// under `generation`.
pub(crate) fn multishot(generation: NonZeroU32, fd: RawFd) -> u64 {
    debug_assert!((0..MAX_FD).contains(&fd));
    (u64::from(generation.get()) << 32) | MULTISHOT | fd as u64
}

/// The user data of the `AsyncCancel` of a multishot receive on `fd`
/// (`0..MAX_FD`).
pub(crate) fn multishot_cancel(fd: RawFd) -> u64 {
    debug_assert!((0..MAX_FD).contains(&fd));
    MULTISHOT_CANCEL | fd as u64
}

/// What a CQE's user data says it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tag {
    /// An operation (or a stale user data of one: the driver compares the
    /// whole user data with what it holds for the id).
    Op(OpId),
    /// The `AsyncCancel` of the operation with this id.
    OpCancel(OpId),
    /// The waker's eventfd read.
    Waker,
    /// The `AsyncCancel` of the waker's read.
    WakerCancel,
    /// A multishot receive on this descriptor (the whole user data tells
    /// which arm).
    Multishot(RawFd),
    /// The `AsyncCancel` of a multishot receive on this descriptor.
    MultishotCancel(RawFd),
    /// Generation 0 and none of the above: no SQE of the driver's has it.
    Unknown,
}

/// What `user_data` belongs to (the inverse of the functions above).
pub(crate) fn decode(user_data: u64) -> Tag {
    let generation = user_data >> 32;
    let low = user_data & LOW;
    if generation != 0 {
        if low & MULTISHOT != 0 {
            Tag::Multishot((low & (MULTISHOT - 1)) as RawFd)
        } else {
            Tag::Op(low as OpId)
        }
    } else if user_data == WAKER {
        Tag::Waker
    } else if user_data == WAKER_CANCEL {
        Tag::WakerCancel
    } else if low & (MULTISHOT | MULTISHOT_CANCEL) == MULTISHOT_CANCEL {
        Tag::MultishotCancel((low & (MULTISHOT_CANCEL - 1)) as RawFd)
    } else if low < MAX_OPS as u64 {
        Tag::OpCancel(low as OpId)
    } else {
        Tag::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDS: [OpId; 5] = [0, 1, 2, 0xff_ffff - 1, MAX_OPS - 1];
    const FDS: [RawFd; 5] = [0, 1, 2, 1000, MAX_FD - 1];

    fn generations() -> Vec<NonZeroU32> {
        [1, 2, 0x8000_0000, u32::MAX - 1, u32::MAX]
            .into_iter()
            .filter_map(NonZeroU32::new)
            .collect()
    }

    /// Every user data the driver can build, with what it must decode to.
    fn every_form() -> Vec<(u64, Tag)> {
        let mut all = vec![(WAKER, Tag::Waker), (WAKER_CANCEL, Tag::WakerCancel)];
        for g in generations() {
            all.extend(IDS.iter().map(|&id| (op(g, id), Tag::Op(id))));
            all.extend(FDS.iter().map(|&fd| (multishot(g, fd), Tag::Multishot(fd))));
        }
        all.extend(IDS.iter().map(|&id| (op_cancel(id), Tag::OpCancel(id))));
        all.extend(
            FDS.iter()
                .map(|&fd| (multishot_cancel(fd), Tag::MultishotCancel(fd))),
        );
        all
    }

    #[test]
    fn every_form_round_trips() {
        for (user_data, tag) in every_form() {
            assert_eq!(decode(user_data), tag, "{user_data:#018x}");
        }
    }

    #[test]
    fn no_two_forms_collide() {
        // `decode` is a function: a value that two forms could build would
        // decode to one tag only, so one of them would fail to round-trip.
        // Checked directly too: all the values are distinct.
        let all = every_form();
        let mut values: Vec<u64> = all.iter().map(|&(ud, _)| ud).collect();
        values.sort_unstable();
        values.dedup();
        assert_eq!(values.len(), all.len());
    }

    #[test]
    fn operations_of_one_id_differ_by_generation() {
        let mut gens = Generations::default();
        let (a, b) = (gens.next(), gens.next());
        assert_ne!(op(a, 7), op(b, 7));
        assert_eq!(decode(op(a, 7)), decode(op(b, 7)));
    }

    #[test]
    fn generation_zero_is_skipped_when_the_counter_wraps() {
        let mut gens = Generations(u32::MAX - 1);
        assert_eq!(gens.next().get(), u32::MAX);
        assert_eq!(gens.next().get(), 1);
        assert_eq!(Generations::default().next().get(), 1);
    }

    #[test]
    fn values_no_sqe_carries_are_unknown() {
        assert_eq!(decode(MAX_OPS as u64), Tag::Unknown);
        assert_eq!(decode(u64::from(u32::MAX - 2)), Tag::Unknown);
        assert_eq!(decode(MULTISHOT), Tag::Unknown);
    }
}
