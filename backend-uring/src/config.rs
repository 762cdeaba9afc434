//! [`RingConfig`]: what a ring was set up with. Its own module so that the
//! builder (which chooses it) and the driver (which runs with it) both
//! depend on it, and the builder alone depends on the driver.

/// The setup a ring was created with (what the kernel accepted, after any fallback).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingConfig {
    /// Submission-queue entries (rounded up to a power of two by the kernel).
    pub sq_entries: u32,
    /// Completion-queue entries.
    pub cq_entries: u32,
    /// `IORING_SETUP_SINGLE_ISSUER` is on.
    pub single_issuer: bool,
    /// `IORING_SETUP_DEFER_TASKRUN` is on.
    pub defer_taskrun: bool,
    /// `IORING_SETUP_COOP_TASKRUN` is on.
    pub coop_taskrun: bool,
    /// `IORING_SETUP_SQPOLL` is on (a kernel thread polls the submission queue).
    pub sqpoll: bool,
}
