//! The synchronization primitives of the cross-thread wake-up protocol
//! ([`crate::remote`]), taken from [loom] in a `RUSTFLAGS="--cfg loom"`
//! build, so that the model in `tests/loom_remote.rs` explores every
//! interleaving and every weak-memory outcome of the protocol's atomics,
//! fences and lock, and from `std` otherwise (the shape of tokio's
//! `src/loom/`).
//!
//! Only what the protocol itself uses goes through here; the rest of the
//! crate uses `std` directly.

#[cfg(loom)]
pub(crate) use ::loom::sync::{
    atomic::{fence, AtomicBool, AtomicUsize, Ordering},
    Mutex,
};

#[cfg(not(loom))]
pub(crate) use std::sync::{
    atomic::{fence, AtomicBool, Ordering},
    Mutex,
};
