//! Descriptors the loop owns: [`LoopFd`] (a socket, a pipe, shared by its
//! owner and every operation in flight on it), and closing them.
//!
//! Every socket type (`TcpStream`, `UdpSocket`, `UnixListener`, ...) and
//! pipe end holds its descriptor in an `Rc<LoopFd>`, and every operation in
//! flight holds another clone as part of its keep-alive. So the descriptor is closed only
//! when the last of them is gone: never while the backend may still use it,
//! even if an operation's future is leaked or (on io_uring) outlives its
//! cancellation. Closing first makes the driver forget the descriptor
//! ([`Driver::release_fd`](crate::driver::Driver::release_fd)), so a stale
//! registration can never be inherited by the next socket that gets the
//! same number from the kernel.

use std::cell::Cell;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use std::rc::{Rc, Weak};

use socket2::Socket;

use crate::loop_core::{EventLoop, LoopInner};
use crate::op::salvage::{Keep, Stash};
use crate::Error;

/// A descriptor owned by a loop object (see the module docs).
pub(crate) struct LoopFd {
    lp: Weak<LoopInner>,
    fd: RawFd,
    /// How a stream's bytes are read (see [`LoopFd::stream_reads`]).
    reads: Cell<Reads>,
    /// What cancelled receives took, for the next receives.
    pub(crate) stash: Stash,
}

impl Keep for Rc<LoopFd> {
    #[inline]
    fn stash(&self) -> Option<&Stash> {
        Some(&self.stash)
    }
}

/// How the bytes of a stream socket are read, decided by its first read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reads {
    /// No read yet.
    Undecided,
    /// Only `Op::Recv`, and the backend receives ahead
    /// ([`Driver::promise_recv_only`](crate::driver::Driver::promise_recv_only)): the
    /// futures-io side must read through `Op::Recv` too.
    Ahead,
    /// Owned-buffer reads are `Op::Recv`s, futures-io reads are readiness
    /// waits plus `recv(2)`: the backend holds nothing.
    Direct,
}

impl LoopFd {
    /// Takes ownership of a socket that is already non-blocking and close-on-exec.
    pub(crate) fn new(lp: &EventLoop, fd: impl Into<OwnedFd>) -> Rc<LoopFd> {
        let fd = fd.into().into_raw_fd();
        crate::io::borrowed::mark_owned(lp, fd);
        Rc::new(LoopFd {
            lp: lp.downgrade(),
            fd,
            reads: Cell::new(Reads::Undecided),
            stash: Stash::default(),
        })
    }

    /// Takes ownership of a socket from the user, making it non-blocking and
    /// close-on-exec (the loop's sockets always are).
    pub(crate) fn adopt(lp: &EventLoop, fd: OwnedFd) -> io::Result<Rc<LoopFd>> {
        let socket = Socket::from(fd);
        socket.set_nonblocking(true)?;
        socket.set_cloexec(true)?;
        Ok(LoopFd::new(lp, socket))
    }

    /// The loop this socket belongs to, or an error once it is gone.
    pub(crate) fn event_loop(&self) -> io::Result<EventLoop> {
        self.loop_if_open().ok_or_else(|| Error::Closed.into())
    }

    /// The loop this socket belongs to, unless it is gone.
    #[inline]
    pub(crate) fn loop_if_open(&self) -> Option<EventLoop> {
        self.lp.upgrade().map(|inner| EventLoop { inner })
    }

    /// The raw descriptor.
    pub(crate) fn fd(&self) -> RawFd {
        self.fd
    }

    /// How this stream's bytes are read. The first owned-buffer read
    /// (`for_recv`) asks the backend to receive ahead; the first
    /// futures-io read (`!for_recv`) settles on direct reads.
    #[inline]
    pub(crate) fn stream_reads(&self, for_recv: bool) -> Reads {
        match self.reads.get() {
            Reads::Undecided => self.decide_reads(for_recv),
            decided => decided,
        }
    }

    /// Whether the first read has decided how this stream is read.
    #[inline]
    pub(crate) fn reads_decided(&self) -> bool {
        self.reads.get() != Reads::Undecided
    }

    #[cold]
    fn decide_reads(&self, for_recv: bool) -> Reads {
        let ahead = for_recv
            && self
                .lp
                .upgrade()
                .is_some_and(|inner| crate::sys::promise_recv_only(&inner, self.fd));
        let reads = if ahead { Reads::Ahead } else { Reads::Direct };
        self.reads.set(reads);
        reads
    }

    /// For a listening socket's owner that is going away: if operations
    /// still hold the descriptor (an accept whose cancellation the kernel
    /// has not confirmed yet keeps it open), stop listening now, so new
    /// connections are refused at once instead of queueing on a socket
    /// that is about to close. Connections already taken are kept for
    /// nobody and closed with it.
    pub(crate) fn stop_listening_if_held(self: &Rc<Self>) {
        if Rc::strong_count(self) > 1 {
            let _ = self.sock_ref().shutdown(std::net::Shutdown::Both);
        }
    }

    /// A borrowed view for socket options (`socket2::SockRef::from(&*sock)`).
    pub(crate) fn sock_ref(&self) -> socket2::SockRef<'_> {
        socket2::SockRef::from(self)
    }
}

impl AsRawFd for LoopFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}

impl AsFd for LoopFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: `fd` is open for as long as `self` lives (closed only in Drop).
        unsafe { BorrowedFd::borrow_raw(self.fd) }
    }
}

impl fmt::Debug for LoopFd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LoopFd").field(&self.fd).finish()
    }
}

impl Drop for LoopFd {
    fn drop(&mut self) {
        // No operation holds this descriptor any more (each holds an Rc), so
        // the driver may forget it; then it is closed.
        let inner = self.lp.upgrade();
        if let Some(inner) = &inner {
            // Before closing: the number may be reused at once.
            crate::io::borrowed::unmark_owned(inner, self.fd);
        }
        crate::sys::release(inner.as_deref(), self.fd);
        crate::io::fd::close_raw(self.fd);
    }
}

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
