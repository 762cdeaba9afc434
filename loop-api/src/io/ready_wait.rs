//! futures-io glue shared by sockets and pipes: `AsyncRead`/`AsyncWrite`
//! without buffers of our own.
//!
//! Runtime-agnostic crates speak `futures_io::{AsyncRead, AsyncWrite}`,
//! which lend the callee a slice for one poll only. Handing that slice to a
//! completion backend would be unsound (the kernel could write into it after
//! the poll returned), so this path never does: it tries the non-blocking
//! syscall directly on the caller's slice and, when that would block, waits
//! with a memory-free [`Op::PollReadable`]/[`Op::PollWritable`], which every
//! backend supports. So there is no copy, and a poll that returned
//! `Pending` has transferred nothing: dropping the read or write future
//! then loses no byte. The owned-buffer methods (`read_owned(buf)`, `write_owned(buf)`)
//! remain the path that uses real completion operations on io_uring.

use std::future::Future;
use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use crate::driver::Op;
use crate::loop_core::EventLoop;
use crate::op::OpFuture;

/// The readiness wait of one direction of a futures-io stream. `K` keeps
/// the descriptor open while the wait is in flight (an owned socket's
/// `Rc`; `()` where the owner outlives the wait).
pub(crate) struct ReadyWait<K: 'static> {
    fut: Option<OpFuture<K>>,
}

impl<K: 'static> Default for ReadyWait<K> {
    fn default() -> Self {
        ReadyWait { fut: None }
    }
}

impl<K: 'static> std::fmt::Debug for ReadyWait<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadyWait")
            .field("waiting", &self.fut.is_some())
            .finish()
    }
}

impl<K: 'static> ReadyWait<K> {
    /// Runs `attempt` (a non-blocking syscall on the caller's memory) until
    /// it does not block, waiting for `fd` to become readable (`readable`)
    /// or writable in between.
    pub(crate) fn poll_io(
        &mut self,
        lp: &EventLoop,
        fd: RawFd,
        cx: &mut Context<'_>,
        readable: bool,
        keep: impl Fn() -> K,
        mut attempt: impl FnMut(RawFd) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            if let Some(fut) = self.fut.as_mut() {
                let (result, _keep) = ready!(Pin::new(fut).poll(cx));
                self.fut = None;
                result?;
            }
            match attempt(fd) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let op = if readable {
                        Op::PollReadable { fd }
                    } else {
                        Op::PollWritable { fd }
                    };
                    // SAFETY: a readiness poll points into no memory; `keep`
                    // (or the stream owning this wait, which drops the wait
                    // before closing its descriptor) keeps `fd` open.
                    self.fut = Some(unsafe { OpFuture::new(lp, op, keep()) });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return Poll::Ready(other),
            }
        }
    }

    /// Cancels the wait in flight, if any.
    pub(crate) fn clear(&mut self) {
        self.fut = None;
    }
}

use crate::sys::cvt_len as cvt;

/// `recv(fd, buf)` once, non-blocking.
pub(crate) fn recv_now(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` bytes of writes.
    cvt(unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) })
}

/// `send(fd, buf)` once, non-blocking, without `SIGPIPE` on a closed peer.
pub(crate) fn send_now(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    // SAFETY: `buf` is valid for `buf.len()` bytes of reads.
    cvt(unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), flags) })
}

/// `sendto(fd, buf, addr)` once, non-blocking, without `SIGPIPE`.
pub(crate) fn send_to_now(fd: RawFd, buf: &[u8], addr: &socket2::SockAddr) -> io::Result<usize> {
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    // SAFETY: `buf` is valid for `buf.len()` bytes of reads; `addr` is a
    // valid socket address of `addr.len()` bytes.
    cvt(unsafe {
        libc::sendto(
            fd,
            buf.as_ptr().cast(),
            buf.len(),
            flags,
            addr.as_ptr().cast(),
            addr.len(),
        )
    })
}
