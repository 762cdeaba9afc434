//! asyncio's low-level socket operations (`sock_recv`, `sock_sendall`, ...)
//! on sockets the user created and owns: raw descriptors, `socket2::Socket`
//! or std sockets (anything `AsRawFd`).
//!
//! The socket must be non-blocking (a blocking one is an
//! [`Error::InvalidArgument`](crate::Error::InvalidArgument), asyncio's
//! debug-mode check made unconditional) and open (a closed descriptor fails
//! with `EBADF` at once, never hangs). The loop borrows the descriptor only
//! while an operation runs (the borrow travels with the operation, so it
//! outlives a cancellation the kernel has not confirmed yet): when the last
//! operation on it ends, the driver
//! forgets it, so the user may close it and reuse the number freely. The
//! socket must not be closed while an operation on it is in flight (the
//! borrow in each method's signature enforces that for owned socket types).

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use socket2::{SockAddr, Socket};

use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::io::borrowed::{check_fd, FdUse};
use crate::loop_core::error::{Error, Result};
use crate::loop_core::EventLoop;
use crate::op::buf_op as ops;

/// Checks a user's socket and counts the loop's use of it.
fn borrow_socket(lp: &EventLoop, fd: RawFd) -> io::Result<FdUse> {
    let flags = check_fd(fd)?;
    if flags & libc::O_NONBLOCK == 0 {
        return Err(Error::InvalidArgument("the socket must be non-blocking".to_owned()).into());
    }
    if lp.is_closed() {
        return Err(Error::Closed.into());
    }
    Ok(FdUse::acquire(lp, fd))
}

impl EventLoop {
    /// Accepts a connection on the listening socket `sock`: the new
    /// connection (non-blocking, close-on-exec) and the peer's address.
    pub async fn sock_accept(&self, sock: &impl AsRawFd) -> Result<(Socket, SockAddr)> {
        let fd = sock.as_raw_fd();
        let borrow = borrow_socket(self, fd)?;
        let (conn, addr) = ops::accept(self, fd, borrow).await?;
        Ok((Socket::from(conn), addr))
    }

    /// Connects `sock` to `addr` (`SocketAddr`, or `SockAddr::unix(path)`),
    /// completing once the connection is established. A port nobody
    /// listens on is `ConnectionRefused`.
    pub async fn sock_connect(&self, sock: &impl AsRawFd, addr: impl Into<SockAddr>) -> Result<()> {
        let fd = sock.as_raw_fd();
        let borrow = borrow_socket(self, fd)?;
        Ok(ops::connect(self, fd, addr.into(), borrow).await?)
    }

    /// Receives at most `n` bytes into a new buffer; an empty one means the
    /// peer closed its side (and every later call returns empty too).
    pub async fn sock_recv(&self, sock: &impl AsRawFd, n: usize) -> Result<Vec<u8>> {
        let (res, buf) = self.sock_recv_into(sock, Vec::with_capacity(n)).await;
        res.map(|_| buf)
    }

    /// Receives into `buf` (up to its capacity, replacing its contents):
    /// the count, 0 at end of stream.
    pub async fn sock_recv_into<B: IoBufMut>(
        &self,
        sock: &impl AsRawFd,
        buf: B,
    ) -> BufResult<usize, B> {
        let fd = sock.as_raw_fd();
        let borrow = match borrow_socket(self, fd) {
            Ok(b) => b,
            Err(e) => return (Err(e.into()), buf),
        };
        ops::recv(self, fd, buf, borrow).await
    }

    /// Sends every byte of `buf` (an empty buffer completes at once). If the
    /// future is dropped midway, a prefix of `buf` may have been sent.
    pub async fn sock_sendall<B: IoBuf>(&self, sock: &impl AsRawFd, buf: B) -> BufResult<(), B> {
        let fd = sock.as_raw_fd();
        let borrow = match borrow_socket(self, fd) {
            Ok(b) => b,
            Err(e) => return (Err(e.into()), buf),
        };
        ops::send_all(self, fd, buf, borrow).await
    }

    /// Receives one datagram of at most `n` bytes: the data and the sender.
    pub async fn sock_recvfrom(
        &self,
        sock: &impl AsRawFd,
        n: usize,
    ) -> Result<(Vec<u8>, SockAddr)> {
        let (res, buf) = self.sock_recvfrom_into(sock, Vec::with_capacity(n)).await;
        res.map(|(_, addr)| (buf, addr))
    }

    /// Receives one datagram into `buf` (up to its capacity): the count and the sender.
    pub async fn sock_recvfrom_into<B: IoBufMut>(
        &self,
        sock: &impl AsRawFd,
        buf: B,
    ) -> BufResult<(usize, SockAddr), B> {
        let fd = sock.as_raw_fd();
        let borrow = match borrow_socket(self, fd) {
            Ok(b) => b,
            Err(e) => return (Err(e.into()), buf),
        };
        ops::recv_from(self, fd, buf, borrow).await
    }

    /// Sends `buf` as one datagram to `addr`, waiting while the socket's
    /// send buffer is full: the count sent.
    pub async fn sock_sendto<B: IoBuf>(
        &self,
        sock: &impl AsRawFd,
        buf: B,
        addr: impl Into<SockAddr>,
    ) -> BufResult<usize, B> {
        let fd = sock.as_raw_fd();
        let borrow = match borrow_socket(self, fd) {
            Ok(b) => b,
            Err(e) => return (Err(e.into()), buf),
        };
        ops::send_to(self, fd, buf, addr.into(), borrow).await
    }
}
