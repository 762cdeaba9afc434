//! Small descriptor helpers shared by the loop and the readiness emulation.

use std::os::fd::RawFd;

/// Closes a descriptor the loop owns and nobody else references.
pub(crate) fn close_raw(fd: RawFd) {
    // SAFETY: `close` takes any integer; the callers pass a descriptor that
    // the loop owns exclusively (an accepted socket nobody received, or one
    // handed over with `Op::Close`), so no other owner can be closing or
    // using the same number.
    unsafe {
        libc::close(fd);
    }
}
