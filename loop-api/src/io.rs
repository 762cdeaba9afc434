//! futures-io glue: `AsyncRead`/`AsyncWrite` over owned-buffer operations.
//!
//! Runtime-agnostic crates speak `futures_io::{AsyncRead, AsyncWrite}`,
//! which lend the callee a `&mut [u8]` for one poll only. An operation that
//! the kernel may still be performing after the poll returns cannot write
//! into that slice (that is the unsoundness owned buffers exist to avoid),
//! so each stream keeps a buffer of its own for the one operation in flight
//! and copies between it and the caller's slice:
//! - reading receives into the internal buffer (at least 8 KiB, at most
//!   64 KiB at a time) and hands out what the caller asks for; the rest is
//!   served by the next calls without another syscall;
//! - writing copies up to 64 KiB of the caller's bytes, sends them, and
//!   reports how many were sent once the send has completed. As with any
//!   completion-based writer, a `poll_write` that returned `Pending` has
//!   started sending: call it again with the same bytes (as `write_all`
//!   and every other combinator does) to learn the count.
//!
//! The owned-buffer methods (`read`, `write`, `write_all`) skip the copy.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use crate::driver::Op;
use crate::net::socket::SockFd;
use crate::op::OpFuture;

/// The smallest receive the reader issues, whatever the caller's slice.
const MIN_READ: usize = 8 * 1024;
/// The largest receive or send issued at once.
const MAX_CHUNK: usize = 64 * 1024;

type BufOp = OpFuture<(Vec<u8>, Rc<SockFd>)>;

/// The read side of the adapter: bytes received but not yet handed out,
/// and the receive in flight.
#[derive(Debug, Default)]
pub(crate) struct ReadState {
    buf: Vec<u8>,
    pos: usize,
    op: Option<BufOp>,
}

impl ReadState {
    /// `AsyncRead::poll_read` for the socket `sock`.
    pub(crate) fn poll_read(
        &mut self,
        sock: &Rc<SockFd>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if self.pos < self.buf.len() {
            return Poll::Ready(Ok(self.hand_out(out)));
        }
        if out.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let op = match &mut self.op {
            Some(op) => op,
            None => {
                let lp = sock.event_loop()?;
                let mut buf = std::mem::take(&mut self.buf);
                buf.clear();
                buf.reserve(out.len().clamp(MIN_READ, MAX_CHUNK));
                let len = buf.capacity().min(MAX_CHUNK);
                let op = Op::Recv {
                    fd: sock.fd(),
                    buf: buf.as_mut_ptr(),
                    len,
                };
                // SAFETY: the op writes into the Vec's heap allocation
                // (`len <= capacity`), which the future owns and which does
                // not move with it; the Rc keeps the descriptor open.
                self.op
                    .insert(unsafe { OpFuture::new(&lp, op, (buf, sock.clone())) })
            }
        };
        let (res, (mut buf, _sock)) = ready!(Pin::new(op).poll(cx));
        self.op = None;
        self.pos = 0;
        match res {
            Ok(out_) => {
                // SAFETY: the kernel initialised the first `res <= len` bytes.
                unsafe { buf.set_len(out_.res) };
                self.buf = buf;
                Poll::Ready(Ok(self.hand_out(out)))
            }
            Err(e) => {
                buf.clear();
                self.buf = buf;
                Poll::Ready(Err(e))
            }
        }
    }

    fn hand_out(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        n
    }
}

/// The write side of the adapter: the send in flight and a spare buffer.
#[derive(Debug, Default)]
pub(crate) struct WriteState {
    spare: Vec<u8>,
    op: Option<BufOp>,
}

impl WriteState {
    /// `AsyncWrite::poll_write` for the socket `sock`.
    pub(crate) fn poll_write(
        &mut self,
        sock: &Rc<SockFd>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.op.is_none() {
            if data.is_empty() {
                return Poll::Ready(Ok(0));
            }
            let lp = sock.event_loop()?;
            let mut buf = std::mem::take(&mut self.spare);
            buf.clear();
            buf.extend_from_slice(&data[..data.len().min(MAX_CHUNK)]);
            let op = Op::Send {
                fd: sock.fd(),
                buf: buf.as_ptr(),
                len: buf.len(),
            };
            // SAFETY: the op reads the Vec's initialised heap bytes, owned by
            // the future and not moved with it; the Rc keeps the descriptor open.
            self.op = Some(unsafe { OpFuture::new(&lp, op, (buf, sock.clone())) });
        }
        self.poll_in_flight(cx)
    }

    fn poll_in_flight(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some(op) = &mut self.op else {
            return Poll::Ready(Ok(0));
        };
        let (res, (buf, _sock)) = ready!(Pin::new(op).poll(cx));
        self.op = None;
        self.spare = buf;
        Poll::Ready(res.map(|out| out.res))
    }

    /// `AsyncWrite::poll_flush`: nothing is buffered beyond the send in
    /// flight, which is driven to completion.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_in_flight(cx))?;
        Poll::Ready(Ok(()))
    }

    /// `AsyncWrite::poll_close`: flushes, then shuts the write direction down.
    pub(crate) fn poll_close(
        &mut self,
        sock: &Rc<SockFd>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        ready!(self.poll_flush(cx))?;
        Poll::Ready(shutdown_write(sock))
    }
}

/// Shuts down the write direction; a peer that is already gone is not an error.
pub(crate) fn shutdown_write(sock: &SockFd) -> io::Result<()> {
    match sock.sock_ref().shutdown(std::net::Shutdown::Write) {
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
        other => other,
    }
}
