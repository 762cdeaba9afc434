//! Small descriptor and socket syscalls shared by the loop's modules.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::loop_core::LoopInner;

pub(crate) use loop_driver::sys::{cvt, cvt_len};

/// A close-on-exec pipe: `(read end, write end)`.
pub(crate) fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both are fresh descriptors owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sets or clears `O_NONBLOCK` on the open file description of `fd`.
pub(crate) fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFL takes no pointer; an invalid fd gives EBADF.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    let new = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    if new != flags {
        // SAFETY: F_SETFL with an integer argument.
        cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, new) })?;
    }
    Ok(())
}

/// Tells the loop's backend (if any) to forget `fd`, which stays open
/// (for another owner, or until its last holder closes it). The caller
/// guarantees no operation on `fd` is pending (a cancelled one is fine: a
/// completion backend keeps its own reference to the file until the final
/// completion).
pub(crate) fn release(inner: Option<&LoopInner>, fd: RawFd) {
    if let Some(inner) = inner {
        if let Ok(mut driver) = inner.driver.try_borrow_mut() {
            if let Some(driver) = driver.as_mut() {
                driver.release_fd(fd);
            }
        }
    }
}

/// Asks the loop's backend (if any) whether it will receive ahead on `fd`
/// ([`Driver::promise_recv_only`](crate::driver::Driver::promise_recv_only)); the caller
/// promises to read `fd` only through `Op::Recv` until it is released.
pub(crate) fn promise_recv_only(inner: &LoopInner, fd: RawFd) -> bool {
    match inner.driver.try_borrow_mut() {
        Ok(mut driver) => driver.as_mut().is_some_and(|d| d.promise_recv_only(fd)),
        Err(_) => false,
    }
}

/// Duplicates `fd` (close-on-exec); `EBADF` if it is not open.
pub(crate) fn dup_cloexec(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC takes an integer; an invalid fd gives EBADF.
    let new = cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) })?;
    // SAFETY: the new descriptor is fresh and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}
