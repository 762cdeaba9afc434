//! The non-blocking syscalls behind each [`Op`], tried directly by the
//! readiness emulation. Each returns `WouldBlock` when the descriptor is not
//! ready; the caller then waits for readiness and tries again.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use socket2::SockAddr;

use loop_driver::sys::cvt_len as cvt;
use loop_driver::{Op, OpOutput};

/// Runs `f` again while it fails with `EINTR`.
fn retry<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Attempts `op` once.
///
/// `Recv` and `Send`, the operations of every stream message, are raw
/// `recvfrom`/`sendto` syscalls rather than glibc's `recv`/`send`: those
/// are thread-cancellation points, and their cancellation bookkeeping cost
/// about 80 instructions per echo request (callgrind), about a twentieth
/// of the loop's user-space work. Rust never cancels threads, so nothing
/// is lost. Must not be called for `Op::Close` (handled by the driver)
/// or for a `Connect` that is already in progress (see [`connect_result`]).
pub(crate) fn attempt(op: &Op) -> io::Result<OpOutput> {
    retry(|| match *op {
        Op::Accept { fd } => accept(fd),
        Op::Connect { fd, ref addr } => connect(fd, addr).map(|()| OpOutput::new(0)),
        Op::Recv { fd, buf, len } => {
            // SAFETY: the submitter guarantees `buf..buf+len` is writable memory
            // reserved for this operation (Driver::submit's contract); a
            // null address and length ask for no sender.
            cvt(unsafe {
                libc::syscall(
                    libc::SYS_recvfrom,
                    fd as libc::c_long,
                    buf,
                    len,
                    0 as libc::c_long,
                    std::ptr::null_mut::<libc::sockaddr>(),
                    std::ptr::null_mut::<libc::socklen_t>(),
                )
            } as libc::ssize_t)
            .map(OpOutput::new)
        }
        Op::Send { fd, buf, len } => {
            // SAFETY: as above, `buf..buf+len` is readable for the operation's
            // life; no destination address (a connected socket).
            cvt(unsafe {
                libc::syscall(
                    libc::SYS_sendto,
                    fd as libc::c_long,
                    buf,
                    len,
                    libc::MSG_NOSIGNAL as libc::c_long,
                    std::ptr::null::<libc::sockaddr>(),
                    0 as libc::c_long,
                )
            } as libc::ssize_t)
            .map(OpOutput::new)
        }
        Op::Read { fd, buf, len } => {
            // SAFETY: as for Recv.
            cvt(unsafe { libc::read(fd, buf.cast(), len) }).map(OpOutput::new)
        }
        Op::Write { fd, buf, len } => {
            // SAFETY: as for Send.
            cvt(unsafe { libc::write(fd, buf.cast(), len) }).map(OpOutput::new)
        }
        Op::RecvFrom { fd, buf, len } => recv_from(fd, buf, len),
        Op::SendTo {
            fd,
            buf,
            len,
            ref addr,
        } => {
            // SAFETY: `buf..buf+len` is readable (submit contract); `addr`
            // is a valid socket address of `addr.len()` bytes.
            cvt(unsafe {
                libc::sendto(
                    fd,
                    buf.cast(),
                    len,
                    libc::MSG_NOSIGNAL,
                    addr.as_ptr().cast(),
                    addr.len(),
                )
            })
            .map(OpOutput::new)
        }
        Op::PollReadable { fd } => poll_now(fd, libc::POLLIN),
        Op::PollWritable { fd } => poll_now(fd, libc::POLLOUT),
        // Readiness only: a pidfd turns readable when its process exits.
        // The child is not reaped here (`child_status` stays `None`).
        Op::ChildExit { pidfd } => poll_now(pidfd, libc::POLLIN),
        Op::Close { .. } => Err(io::Error::from(io::ErrorKind::InvalidInput)),
        // Regular files are always "ready" to epoll (which refuses to
        // register them), so a file operation here could only block the
        // loop's thread: refused, and the loop runs it on its executor.
        ref op if op.is_file_op() => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "file operations run on the loop's executor with a readiness backend",
        )),
        // An operation added to the boundary after this driver was written.
        _ => Err(io::Error::from(io::ErrorKind::Unsupported)),
    })
}

fn accept(fd: RawFd) -> io::Result<OpOutput> {
    // SAFETY: `try_init` hands us zeroed storage and its length to fill;
    // accept4 writes at most `*len` bytes there.
    let (newfd, addr) = unsafe {
        SockAddr::try_init(|storage, len| {
            let ret = libc::accept4(
                fd,
                storage.cast(),
                len,
                libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            );
            if ret < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(ret)
            }
        })
    }?;
    // SAFETY: accept4 succeeded: `newfd` is a fresh descriptor nobody else owns.
    let accepted = unsafe { OwnedFd::from_raw_fd(newfd) };
    Ok(OpOutput {
        bytes: 0,
        accepted: Some(accepted),
        addr: Some(Box::new(addr)),
        child_status: None,
    })
}

fn connect(fd: RawFd, addr: &SockAddr) -> io::Result<()> {
    // SAFETY: `addr` is a valid socket address of `addr.len()` bytes.
    let ret = unsafe { libc::connect(fd, addr.as_ptr().cast(), addr.len()) };
    if ret == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        // Not an error: the connection is on its way; wait for writability.
        Some(libc::EINPROGRESS) | Some(libc::EALREADY) => {
            Err(io::Error::from(io::ErrorKind::WouldBlock))
        }
        Some(libc::EISCONN) => Ok(()),
        _ => Err(err),
    }
}

/// The outcome of a connect that went `EINPROGRESS`, once the socket is writable.
pub(crate) fn connect_result(fd: RawFd) -> io::Result<OpOutput> {
    let err = loop_driver::sys::socket_int_option(fd, libc::SO_ERROR)?;
    if err != 0 {
        return Err(io::Error::from_raw_os_error(err));
    }
    // Writable with no error can still mean "not yet" after a spurious
    // wake-up; only a connected socket has a peer.
    match peer_connected(fd) {
        true => Ok(OpOutput::new(0)),
        false => Err(io::Error::from(io::ErrorKind::WouldBlock)),
    }
}

fn peer_connected(fd: RawFd) -> bool {
    // SAFETY: `try_init` provides storage of the size it reports.
    let res = unsafe {
        SockAddr::try_init(|storage, len| {
            if libc::getpeername(fd, storage.cast(), len) < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        })
    };
    res.is_ok()
}

fn recv_from(fd: RawFd, buf: *mut u8, len: usize) -> io::Result<OpOutput> {
    // SAFETY: `buf..buf+len` is writable (submit contract); the storage
    // and its length come from `try_init`.
    let (n, addr) = unsafe {
        SockAddr::try_init(|storage, addrlen| {
            cvt(libc::recvfrom(
                fd,
                buf.cast(),
                len,
                0,
                storage.cast(),
                addrlen,
            ))
        })
    }?;
    Ok(OpOutput {
        bytes: n,
        accepted: None,
        addr: Some(Box::new(addr)),
        child_status: None,
    })
}

/// Reports readiness without blocking: `Ok` if any of `events` (or an
/// error or hang-up) is pending now, `WouldBlock` otherwise.
fn poll_now(fd: RawFd, events: libc::c_short) -> io::Result<OpOutput> {
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let ret = unsafe { libc::poll(&mut pfd, 1, 0) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    if pfd.revents & libc::POLLNVAL != 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    if pfd.revents & (events | libc::POLLERR | libc::POLLHUP) != 0 {
        Ok(OpOutput::new(0))
    } else {
        Err(io::Error::from(io::ErrorKind::WouldBlock))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// File operations are refused with the boundary's "Unsupported" (that
    /// kind, no OS error code) and never performed: the fsync here would
    /// succeed on a real descriptor, and the missing path would fail.
    #[test]
    fn file_operations_are_refused_not_performed() {
        let file = std::fs::File::open("/proc/self/status").unwrap();
        let path = c"/nonexistent/evloop";
        let ops = [
            Op::Fsync {
                fd: std::os::fd::AsRawFd::as_raw_fd(&file),
                datasync: false,
            },
            Op::OpenAt {
                dirfd: libc::AT_FDCWD,
                path: path.as_ptr(),
                flags: libc::O_RDONLY,
                mode: 0,
            },
        ];
        for op in &ops {
            let err = attempt(op).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::Unsupported, "{op:?}");
            assert_eq!(err.raw_os_error(), None, "{op:?}");
        }
    }
}
