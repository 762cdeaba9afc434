//! The cross-thread waker: an eventfd that the driver reads with a real
//! `Read` operation on the ring.
//!
//! Why an eventfd read and not a ring message (`MsgRingData`): a ring
//! message must be submitted from another ring, so every thread that calls
//! `call_soon_threadsafe` would need an io_uring of its own (or share one
//! behind a lock). An eventfd write is one plain syscall from any thread,
//! and the read that consumes it is an ordinary operation on our ring:
//! when a notification arrives, that read completes and the blocked
//! `io_uring_enter` returns. The driver re-arms the read after each
//! completion; a write that lands while no read is armed leaves the
//! counter non-zero, so the next read completes at once and no wake-up is lost.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use loop_driver::Notify;

/// The eventfd shared by the driver (reader) and every notifier clone (writers).
///
/// It is closed when the last clone goes: a `LoopHandle` on another thread
/// may outlive the driver, and writing to a closed, possibly reused
/// descriptor number would corrupt somebody else's file.
#[derive(Debug)]
pub(crate) struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    pub(crate) fn new() -> io::Result<Self> {
        // Blocking on purpose: io_uring then waits for data itself (polling
        // where the kernel supports it, a worker thread on old kernels),
        // whereas a read of an O_NONBLOCK eventfd may complete with EAGAIN
        // on kernels whose eventfd lacks NOWAIT support. Writers never
        // block: the counter would have to reach 2^64 - 2 first, and every
        // completed read resets it.
        // SAFETY: eventfd takes no pointers; a non-negative result is a new
        // descriptor that we own from here on.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and nobody else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(EventFd { fd })
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Notify for EventFd {
    fn notify(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live local to a descriptor this value
        // owns (it stays open while `self` exists).
        let ret = unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
        // A failure could only mean a saturated counter (a wake-up is
        // pending anyway) or an interrupted call; neither needs handling.
        let _ = ret;
    }
}
