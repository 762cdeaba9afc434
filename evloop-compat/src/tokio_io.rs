//! [`TokioIo`]: a futures-io stream as tokio's `AsyncRead` + `AsyncWrite`.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};

/// The most one read asks of the stream (bounds the zeroing of tokio's
/// uninitialised buffer per call).
const MAX_READ: usize = 64 * 1024;

/// A futures-io stream (evloop's `TcpStream`, `UnixStream`, pipes) as
/// [`tokio::io::AsyncRead`] + [`tokio::io::AsyncWrite`], so crates written
/// against tokio's I/O traits (h2, tokio-util's codecs, tokio-rustls, ...)
/// run on evloop without a tokio runtime.
///
/// It adapts the traits only: a tokio crate that also needs tokio's
/// reactor or timers (`tokio::net`, `tokio::time::sleep`, `tokio::spawn`)
/// panics with "there is no reactor running"; run those inside
/// `async_compat::Compat`, which starts a tokio runtime on a side thread.
///
/// ```no_run
/// use futures::{SinkExt, StreamExt};
/// use tokio_util::codec::{Framed, LinesCodec};
///
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let stream = evloop::net::TcpStream::connect("127.0.0.1:7000").await?;
/// let mut lines = Framed::new(evloop_compat::TokioIo::new(stream), LinesCodec::new());
/// lines.send("hello").await?;
/// let reply = lines.next().await;
/// # let _ = reply; Ok(()) }
/// ```
///
/// Reads fill tokio's buffer in place (its unfilled part is zeroed first,
/// at most 64 KiB a call, which keeps this adapter free of `unsafe`).
/// `poll_shutdown` is futures-io's `poll_close`: on evloop's sockets it
/// shuts the write direction down.
pub struct TokioIo<T> {
    inner: T,
    vectored: bool,
}

impl<T> TokioIo<T> {
    /// Wraps `inner`. tokio crates are told its writes are not vectored
    /// (`is_write_vectored` is false), so they gather what they write into
    /// one buffer first: right for any futures-io stream, whose
    /// `poll_write_vectored` may write only the first slice (futures-io's
    /// default). For evloop's sockets, use [`vectored`](Self::vectored).
    pub fn new(inner: T) -> Self {
        TokioIo {
            inner,
            vectored: false,
        }
    }

    /// Wraps `inner`, a stream whose `poll_write_vectored` writes all the
    /// slices it can in one call: evloop's `TcpStream`, `UnixStream` and
    /// their `WriteHalf` (one `sendmsg`). Crates that check
    /// `is_write_vectored` (h2, tokio-util's `FramedWrite`) then hand over
    /// a frame's head and body as separate slices instead of copying them
    /// together.
    ///
    /// ```no_run
    /// # async fn f(stream: evloop::net::TcpStream) {
    /// let io = evloop_compat::TokioIo::vectored(stream);
    /// # let _ = io;
    /// # }
    /// ```
    pub fn vectored(inner: T) -> Self {
        TokioIo {
            inner,
            vectored: true,
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

impl<T: fmt::Debug> fmt::Debug for TokioIo<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokioIo")
            .field("inner", &self.inner)
            .field("vectored", &self.vectored)
            .finish()
    }
}

impl<T: AsyncRead + Unpin> tokio::io::AsyncRead for TokioIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let want = buf.remaining().min(MAX_READ);
        if want == 0 {
            return Poll::Ready(Ok(()));
        }
        let dst = buf.initialize_unfilled_to(want);
        let n = ready!(Pin::new(&mut self.get_mut().inner).poll_read(cx, dst))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> tokio::io::AsyncWrite for TokioIo<T> {
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

    /// Whether the stream was wrapped with [`TokioIo::vectored`].
    fn is_write_vectored(&self) -> bool {
        self.vectored
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}
