//! # backend-uring
//!
//! An evloop backend on io_uring (through the [`io_uring`] crate) with real
//! completion operations: every [`loop_driver::Op`] is submitted to the
//! ring as itself — Accept, Connect, Recv, Send, Read, Write, RecvMsg (for
//! `RecvFrom`), SendMsg (for `SendTo`), PollAdd (single-shot, for readiness
//! waits) and Close — never as a readiness poll followed by a syscall.
//!
//! ## How it runs
//! - `submit` pushes one SQE and returns `Poll::Pending`; nothing enters the
//!   kernel until the loop's next `wait`, which makes one `io_uring_enter`
//!   that submits the whole batch and waits, with the time to the loop's
//!   earliest timer as an `EXT_ARG` timespec (nanosecond precision).
//! - Cancellation is synchronous where the kernel allows
//!   (`IORING_REGISTER_SYNC_CANCEL`, Linux 6.0; not on SQPOLL rings):
//!   `cancel` submits what is queued, cancels, runs the deferred task work
//!   and reads the target's final CQE, so the kernel has let go of the
//!   operation (its memory and its file) when it returns. Cancelled:
//!   `Cancel::Forgotten`, and nothing is ever reported for it. Completed first:
//!   `Cancel::Pending`, and the next `wait` reports the result unchanged
//!   (a read-ahead stream's one-shot `Recv` instead hands its bytes back
//!   to the next read, `Forgotten`). Otherwise (older kernel, a target the
//!   kernel keeps missing) it submits `AsyncCancel` and answers
//!   `Cancel::Pending`: the final CQE is still reported, and the loop
//!   frees the memory (closing an accepted descriptor nobody will
//!   receive) only then.
//! - Optionally ([`UringBuilder::multishot_recv`], off by default; Linux
//!   6.0), stream sockets the loop reads only through owned-buffer reads
//!   ([`loop_driver::Driver::promise_recv_only`]) use one multishot receive
//!   per socket into a provided-buffer ring, each read copying what it
//!   queued. Datagram sockets, borrowed descriptors and kernels without it
//!   use one-shot `Recv`s.
//! - Cross-thread wake-ups: an eventfd that the driver reads with a real
//!   `Read` on the ring, re-armed after each completion (see `notify.rs`
//!   for why not a ring message).
//! - Dropping the driver cancels everything still in flight and waits (at
//!   most 2 s) for the final CQEs before the ring goes; memory of an
//!   operation the kernel did not return by then is leaked, never freed.
//!
//! ## Measuring
//! `cargo run --release -p backend-uring --example echo_bench` races a loop-level
//! TCP echo server on mio, on this backend's default ring and on a plain
//! ring (interleaved runs; requests/s and server CPU time per request).
//!
//! ## Requirements
//! Linux 5.11 (`IORING_FEAT_EXT_ARG`) with the opcodes Accept, Connect,
//! Recv, Send, Read, Write, RecvMsg, SendMsg, PollAdd and AsyncCancel
//! (Close is used where present, else the driver closes synchronously).
//! [`new_event_loop`] probes all of it and returns
//! [`Error::BackendUnavailable`] with the reason when io_uring cannot run
//! here (`ENOSYS`, `EPERM` from a container policy or
//! `kernel.io_uring_disabled`, a missing opcode).
//!
//! ## Limits
//! - Every operation is one SQE and one CQE, except the optional multishot
//!   receive of read-ahead streams (see above); multishot accept is not used.
//! - If the kernel does not return a cancelled operation within the bound
//!   (2 s in `EventLoop::close`, 2 s more in the driver's Drop), the memory
//!   of that operation is leaked, never freed: the driver's own storage by
//!   the driver, the caller's buffers of orphaned operations by the loop.
//! - One gap remains: a future polled outside any task of the loop (so not
//!   destroyed by `close`) that outlives the loop frees its buffer when it
//!   is dropped; that is sound only if the kernel returned the operation
//!   within the bound. Socket, pipe and poll operations are cancelled at
//!   once in practice.
//! - A one-shot recv cancelled just as it completes is answered `Pending`
//!   and its bytes are reported by the next `wait` (what the loop does with
//!   an uncollected result is the loop's affair). A recv waiting on a
//!   multishot is forgotten at once (`Cancel::Forgotten`) and loses nothing:
//!   what arrives stays queued for the next read; a one-shot recv on such
//!   a stream that completed before its cancel hands its bytes back there.

mod buf_ring;
mod builder;
mod config;
mod driver;
mod notify;
mod ops;
mod probe;
mod recv_ring;
mod user_data;

use loop_api::{Error, EventLoop};

pub use builder::UringBuilder;
pub use config::RingConfig;
pub use driver::UringDriver;
pub use user_data::MAX_OPS;

/// The backend's name, as `EVLOOP_BACKEND` spells it.
pub const NAME: &str = "uring";

/// A driver with the default options ([`UringBuilder::new`]).
pub fn driver() -> Result<UringDriver, Error> {
    UringBuilder::new().build()
}

/// A new event loop on this backend with the default options
/// (`SINGLE_ISSUER | DEFER_TASKRUN` where the kernel has them, else a plain
/// ring), or [`Error::BackendUnavailable`] saying why io_uring cannot be used.
pub fn new_event_loop() -> Result<EventLoop, Error> {
    UringBuilder::new().new_event_loop()
}

// The driver's unit tests share their helpers with the integration tests
// (`tests/common/mod.rs`), which name the crate `backend_uring`.
#[cfg(test)]
extern crate self as backend_uring;
