//! [`HyperIo`]: a futures-io stream as hyper's `rt::Read` + `rt::Write`.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};
use hyper::rt::ReadBufCursor;

/// The most [`HyperIo`] reads in one call (the size its scratch buffer can grow to).
const MAX_READ: usize = 64 * 1024;

/// A futures-io stream (evloop's `TcpStream`, `UnixStream`, `PipeReader`,
/// ...) as hyper I/O: implements [`hyper::rt::Read`] and [`hyper::rt::Write`].
///
/// ```no_run
/// # async fn f(stream: evloop::net::TcpStream) {
/// let io = evloop_compat::HyperIo::new(stream);
/// # let _ = io;
/// # }
/// ```
///
/// Writes go straight through. Reads go through a scratch buffer owned by
/// the adapter (grown on demand, at most 64 KiB) and are copied into
/// hyper's buffer: hyper hands out possibly-uninitialised memory, and
/// filling it in place needs `unsafe` (`ReadBufCursor::advance`), which
/// this crate keeps out. The copy is small next to the system call.
///
/// evloop's futures-io impls never hand the caller's slice to the kernel
/// asynchronously (they try the non-blocking call and wait for readiness
/// otherwise), so this is sound on io_uring too.
pub struct HyperIo<T> {
    inner: T,
    scratch: Vec<u8>,
    vectored: bool,
}

impl<T> HyperIo<T> {
    /// Wraps `inner`. hyper is told its writes are not vectored, so it
    /// copies a response's head and body into one buffer before writing:
    /// right for any futures-io stream, whose `poll_write_vectored` may
    /// write only the first slice (futures-io's default). For evloop's
    /// sockets, use [`vectored`](Self::vectored).
    pub fn new(inner: T) -> Self {
        HyperIo {
            inner,
            scratch: Vec::new(),
            vectored: false,
        }
    }

    /// Wraps `inner`, a stream whose `poll_write_vectored` writes all the
    /// slices it can in one call: evloop's `TcpStream`, `UnixStream` and
    /// their `WriteHalf` (one `sendmsg`). hyper then queues a response's
    /// head and body and writes them together, without copying the body.
    /// (futures-io has no way to ask a stream this, hence two
    /// constructors.)
    ///
    /// ```no_run
    /// # async fn f(stream: evloop::net::TcpStream) {
    /// let io = evloop_compat::HyperIo::vectored(stream);
    /// # let _ = io;
    /// # }
    /// ```
    pub fn vectored(inner: T) -> Self {
        HyperIo {
            vectored: true,
            ..HyperIo::new(inner)
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The wrapped stream, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Unwraps the stream.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: fmt::Debug> fmt::Debug for HyperIo<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HyperIo")
            .field("inner", &self.inner)
            .field("vectored", &self.vectored)
            .finish()
    }
}

impl<T: AsyncRead + Unpin> hyper::rt::Read for HyperIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let want = buf.remaining().min(MAX_READ);
        if want == 0 {
            return Poll::Ready(Ok(()));
        }
        if this.scratch.len() < want {
            this.scratch.resize(want, 0);
        }
        let n = ready!(Pin::new(&mut this.inner).poll_read(cx, &mut this.scratch[..want]))?;
        // Nothing put means end of stream, as hyper expects.
        buf.put_slice(&this.scratch[..n]);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> hyper::rt::Write for HyperIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    /// Whether the stream was wrapped with [`HyperIo::vectored`].
    fn is_write_vectored(&self) -> bool {
        self.vectored
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    /// futures-io's `poll_close`: on evloop's sockets, shuts the write
    /// direction down (the peer reads end-of-stream).
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}
