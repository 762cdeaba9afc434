//! What every byte stream (`TcpStream`, `UnixStream`) offers: owned-buffer
//! `read_owned`/`write_owned`/`write_all_owned`, `shutdown`, splitting into halves that can
//! live in different tasks, and the futures-io traits (see [`crate::io`]).
//!
//! The stream types are thin wrappers around [`StreamCore`]; the
//! [`stream_api!`] macro gives each the same documented methods.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::Shutdown;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::io::fd::{LoopFd, Reads};
use crate::io::ready_wait::{recv_now, send_now, ReadyWait};
use crate::loop_core::error::Result;
use crate::op::buf_op::{BufOp, Recv, SendAll, SendOnce};
use crate::op::salvage::{take_into, Salvaged};

/// A connected stream socket with the readiness waits of its futures-io side.
#[derive(Debug)]
pub(crate) struct StreamCore {
    pub(crate) sock: Rc<LoopFd>,
    read: ReadyWait<Rc<LoopFd>>,
    ahead: AheadRead,
    /// A short futures-io read emptied the receive queue (see [`Drained`]).
    read_drained: Drained,
    write: ReadyWait<Rc<LoopFd>>,
    /// A short futures-io write filled the send buffer.
    write_full: Drained,
}

impl StreamCore {
    pub(crate) fn new(sock: Rc<LoopFd>) -> Self {
        StreamCore {
            sock,
            read: ReadyWait::default(),
            ahead: AheadRead::default(),
            read_drained: Drained::default(),
            write: ReadyWait::default(),
            write_full: Drained::default(),
        }
    }

    pub(crate) fn read<B: IoBufMut>(&self, buf: B) -> StreamRead<B> {
        stream_read(&self.sock, buf)
    }

    pub(crate) fn write<B: IoBuf>(&self, buf: B) -> BufOp<B, Rc<LoopFd>, SendOnce> {
        self.sock.send(buf)
    }

    pub(crate) fn write_all<B: IoBuf>(&self, buf: B) -> BufOp<B, Rc<LoopFd>, SendAll> {
        self.sock.send_all(buf)
    }

    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.sock.sock_ref().shutdown(how)
    }

    pub(crate) fn into_split(self) -> (ReadHalf, WriteHalf) {
        (
            ReadHalf {
                sock: self.sock.clone(),
                state: self.read,
                ahead: self.ahead,
                drained: self.read_drained,
            },
            WriteHalf {
                sock: self.sock,
                state: self.write,
                full: self.write_full,
            },
        )
    }

    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        poll_read(
            &self.sock,
            &mut self.read,
            &mut self.ahead,
            &mut self.read_drained,
            cx,
            out,
        )
    }

    pub(crate) fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        poll_write(&self.sock, &mut self.write, &mut self.write_full, cx, data)
    }

    pub(crate) fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        poll_write_vectored(&self.sock, &mut self.write, &mut self.write_full, cx, bufs)
    }

    pub(crate) fn poll_close(&mut self) -> Poll<io::Result<()>> {
        Poll::Ready(shutdown_write(&self.sock))
    }
}

/// An owned-buffer read of a stream. The stream's first read asks the
/// backend to receive ahead (see [`LoopFd::stream_reads`]) when it is first
/// polled, so a read future that is made and dropped unpolled (a disabled
/// `select!` branch) decides nothing.
pub(crate) enum StreamRead<B: IoBufMut> {
    /// Not polled yet, on a stream whose way of reading is undecided.
    Undecided(Option<(Rc<LoopFd>, B)>),
    /// The receive.
    Recv(BufOp<B, Rc<LoopFd>, Recv>),
}

// Nothing in a `StreamRead` is pinned: the buffer is moved by value into
// the `BufOp`, which is `Unpin` itself.
impl<B: IoBufMut> Unpin for StreamRead<B> {}

impl<B: IoBufMut> Future for StreamRead<B> {
    type Output = BufResult<usize, B>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let StreamRead::Undecided(start) = this {
            let (sock, buf) = start.take().expect("StreamRead polled after completion");
            sock.stream_reads(true);
            *this = StreamRead::Recv(sock.recv(buf));
        }
        match this {
            StreamRead::Recv(op) => Pin::new(op).poll(cx),
            StreamRead::Undecided(_) => unreachable!("decided just above"),
        }
    }
}

fn stream_read<B: IoBufMut>(sock: &Rc<LoopFd>, buf: B) -> StreamRead<B> {
    if sock.reads_decided() {
        StreamRead::Recv(sock.recv(buf))
    } else {
        StreamRead::Undecided(Some((sock.clone(), buf)))
    }
}

fn poll_read(
    sock: &Rc<LoopFd>,
    wait: &mut ReadyWait<Rc<LoopFd>>,
    ahead: &mut AheadRead,
    drained: &mut Drained,
    cx: &mut Context<'_>,
    out: &mut [u8],
) -> Poll<io::Result<usize>> {
    let empty = out.is_empty();
    // What cancelled receives took comes first (and while one is still in
    // the kernel, its result is awaited).
    if !empty && !sock.stash.is_idle() {
        let item = ready!(sock.stash.poll_take(cx));
        if let Some(res) = item.and_then(|item| take_into(item, out, &sock.stash)) {
            return Poll::Ready(res);
        }
    }
    if !empty && sock.stream_reads(false) == Reads::Ahead {
        return ahead.poll(sock, cx, out);
    }
    let mut want = out.len();
    let res = if !empty && (ahead.in_flight() || drained.take()) {
        want = AheadRead::size_for(want);
        // Known drained: the next bytes come with a readiness event, so
        // receive them with the backend's `Op::Recv` into an owned buffer
        // (one `recv` when they arrive, none before) rather than a
        // readiness wait and a `recv` of our own.
        ready!(ahead.poll(sock, cx, out))
    } else {
        ready!(poll_sock(sock, wait, cx, true, empty, |fd| recv_now(
            fd, out
        )))
    };
    drained.note(&res, want);
    Poll::Ready(res)
}

/// That one direction of a stream socket is known not ready: a `recv` that
/// returned fewer bytes than asked (but not 0) emptied the receive queue, a
/// `send` that took fewer bytes than offered filled the send buffer. The
/// next futures-io transfer in that direction then skips the syscall that
/// would only fail with `WouldBlock` (tokio does the same):
///
/// - a read goes to the backend as an owned-buffer `Op::Recv`
///   ([`AheadRead`]), which the readiness backends park until the socket is
///   reported readable (their own drained hint, see backend-readiness) and
///   io_uring performs as one `IORING_OP_RECV`: one `recv` per message,
///   where a readiness wait plus our own `recv` cost a failed `recv`, the
///   wait's own readiness checks and the `recv`;
/// - a write starts with the writability wait.
///
/// Either checks the socket's current state when it is armed, so bytes (or
/// room) that came meanwhile end it at once: a wrong guess costs that
/// check, never a lost wake-up.
#[derive(Debug, Default)]
struct Drained(bool);

impl Drained {
    /// Whether the direction was known not ready; forgets it.
    fn take(&mut self) -> bool {
        std::mem::take(&mut self.0)
    }

    /// `syscall`, unless the direction is known not ready: then
    /// `WouldBlock` without a syscall, once (the wait that follows is
    /// retried with the real syscall).
    fn attempt(&mut self, syscall: impl FnOnce() -> io::Result<usize>) -> io::Result<usize> {
        if std::mem::take(&mut self.0) {
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            syscall()
        }
    }

    /// Remembers whether `res`, a transfer of up to `asked` bytes, was short.
    fn note(&mut self, res: &io::Result<usize>, asked: usize) {
        self.0 = matches!(res, Ok(n) if *n > 0 && *n < asked);
    }
}

/// The futures-io reads of a stream whose backend receives ahead
/// ([`Reads::Ahead`]), and of any stream known drained ([`Drained`]): each
/// read is an owned-buffer `Op::Recv` (of the slice's size) whose result is
/// copied out. Bytes that no longer fit a later, smaller slice go to the stream's
/// stash, where every later read, futures-io or owned-buffer, finds them
/// first.
#[derive(Default)]
struct AheadRead {
    /// The owned-buffer receive in flight.
    pending: Option<BufOp<Vec<u8>, Rc<LoopFd>, Recv>>,
    /// The last receive's buffer, for the next one of the same size (a
    /// request-response stream reads into one buffer instead of allocating
    /// one per message).
    spare: Vec<u8>,
}

impl fmt::Debug for AheadRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AheadRead")
            .field("pending", &self.pending.is_some())
            .field("spare", &self.spare.capacity())
            .finish()
    }
}

impl AheadRead {
    /// Whether a receive is in flight (the next read must finish it first:
    /// its bytes come before any later `recv`'s).
    fn in_flight(&self) -> bool {
        self.pending.is_some()
    }

    /// How much a receive for a slice of `len` (> 0) bytes asks for: the
    /// largest power of two that fits, so that slices of slowly changing
    /// sizes (hyper's read buffer) share one buffer size and the spare is
    /// reused. A read may return fewer bytes than the slice holds.
    fn size_for(len: usize) -> usize {
        1 << len.ilog2()
    }

    fn poll(
        &mut self,
        sock: &Rc<LoopFd>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let fut = match &mut self.pending {
            Some(fut) => fut,
            none => {
                let size = Self::size_for(out.len());
                let mut buf = std::mem::take(&mut self.spare);
                if buf.capacity() == size {
                    buf.clear();
                } else {
                    buf = Vec::with_capacity(size);
                }
                none.insert(sock.recv(buf))
            }
        };
        let (res, buf) = ready!(Pin::new(fut).poll(cx));
        self.pending = None;
        let n = match res {
            Ok(n) => n,
            Err(e) => {
                self.spare = buf;
                return Poll::Ready(Err(e.into()));
            }
        };
        let k = n.min(out.len());
        out[..k].copy_from_slice(&buf[..k]);
        if k < n {
            sock.stash.put_back(Salvaged::Bytes { data: buf, pos: k });
        } else {
            self.spare = buf;
        }
        Poll::Ready(Ok(k))
    }
}

fn poll_write(
    sock: &Rc<LoopFd>,
    wait: &mut ReadyWait<Rc<LoopFd>>,
    full: &mut Drained,
    cx: &mut Context<'_>,
    data: &[u8],
) -> Poll<io::Result<usize>> {
    let res = ready!(poll_sock(sock, wait, cx, false, data.is_empty(), |fd| {
        full.attempt(|| send_now(fd, data))
    }));
    full.note(&res, data.len());
    Poll::Ready(res)
}

/// The most slices one `sendmsg` takes (Linux's `IOV_MAX`); a write of
/// more sends the first this many, as a short write.
const MAX_IOVECS: usize = 1024;

/// `AsyncWrite::poll_write_vectored`: all the slices in one `sendmsg`
/// (non-blocking, no `SIGPIPE`), where futures-io's default would write
/// only the first. hyper, told so (`evloop_compat::HyperIo::vectored`),
/// then sends a response's head and body without copying them together.
fn poll_write_vectored(
    sock: &Rc<LoopFd>,
    wait: &mut ReadyWait<Rc<LoopFd>>,
    full: &mut Drained,
    cx: &mut Context<'_>,
    bufs: &[io::IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    let bufs = &bufs[..bufs.len().min(MAX_IOVECS)];
    let total = bufs.iter().fold(0usize, |n, b| n.saturating_add(b.len()));
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    let res = ready!(poll_sock(sock, wait, cx, false, total == 0, |_| {
        full.attempt(|| sock.sock_ref().send_vectored_with_flags(bufs, flags))
    }));
    full.note(&res, total);
    Poll::Ready(res)
}

/// One futures-io transfer on `sock` (nothing to do for an empty slice).
fn poll_sock(
    sock: &Rc<LoopFd>,
    wait: &mut ReadyWait<Rc<LoopFd>>,
    cx: &mut Context<'_>,
    readable: bool,
    empty: bool,
    attempt: impl FnMut(RawFd) -> io::Result<usize>,
) -> Poll<io::Result<usize>> {
    if empty {
        return Poll::Ready(Ok(0));
    }
    let lp = sock.event_loop()?;
    wait.poll_io(&lp, sock.fd(), cx, readable, || sock.clone(), attempt)
}

/// `AsyncWrite::poll_close`: shuts the write direction down (the peer reads
/// end-of-stream); a peer that is already gone is not an error. Nothing is
/// buffered on our side, so there is nothing to flush first.
fn shutdown_write(sock: &LoopFd) -> io::Result<()> {
    match sock.sock_ref().shutdown(Shutdown::Write) {
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
        other => other,
    }
}

/// The reading half of a stream, from `into_split`; the socket closes
/// when both halves are dropped.
///
/// The halves of one connection in two tasks (the same for
/// [`WriteHalf`]):
///
/// ```
/// use evloop::net::{TcpListener, TcpStream};
/// use futures::io::{AsyncReadExt, AsyncWriteExt};
///
/// evloop::run(async {
///     let lp = evloop::get_running_loop()?;
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let client = TcpStream::connect(listener.local_addr()?).await?;
///     let (server, _) = listener.accept().await?;
///     let (mut rd, mut wr) = client.into_split();
///     let writer = lp.create_task(async move {
///         wr.write_all(b"from the writer task").await?;
///         wr.close().await // shuts down the write direction
///     })?;
///     // The server echoes what it reads, then ends its side too.
///     let (mut srd, mut swr) = server.into_split();
///     futures::io::copy(&mut srd, &mut swr).await?;
///     swr.close().await?;
///     let mut echoed = String::new();
///     rd.read_to_string(&mut echoed).await?;
///     assert_eq!(echoed, "from the writer task");
///     writer.await??;
///     Ok::<_, evloop::Error>(())
/// })??;
/// # Ok::<_, evloop::Error>(())
/// ```
pub struct ReadHalf {
    sock: Rc<LoopFd>,
    state: ReadyWait<Rc<LoopFd>>,
    ahead: AheadRead,
    drained: Drained,
}

impl ReadHalf {
    /// Receives into `buf` (up to its capacity, replacing its contents) and
    /// returns the count; 0 means the peer closed its side.
    pub fn read_owned<B: IoBufMut>(
        &self,
        buf: B,
    ) -> impl Future<Output = BufResult<usize, B>> + '_ {
        stream_read(&self.sock, buf)
    }
}

impl fmt::Debug for ReadHalf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ReadHalf").field(&self.sock.fd()).finish()
    }
}

impl futures_io::AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        poll_read(
            &this.sock,
            &mut this.state,
            &mut this.ahead,
            &mut this.drained,
            cx,
            out,
        )
    }
}

/// The writing half of a stream, from `into_split`. Dropping it does not
/// shut the connection down; call [`shutdown`](WriteHalf::shutdown) (or
/// `AsyncWriteExt::close`) to send end-of-stream. Example: [`ReadHalf`]'s.
pub struct WriteHalf {
    sock: Rc<LoopFd>,
    state: ReadyWait<Rc<LoopFd>>,
    full: Drained,
}

impl WriteHalf {
    /// Sends what the kernel takes of `buf` at once; returns the count.
    pub fn write_owned<B: IoBuf>(&self, buf: B) -> impl Future<Output = BufResult<usize, B>> + '_ {
        self.sock.send(buf)
    }

    /// Sends every byte of `buf`.
    pub fn write_all_owned<B: IoBuf>(&self, buf: B) -> impl Future<Output = BufResult<(), B>> + '_ {
        self.sock.send_all(buf)
    }

    /// Shuts down the write direction: the peer reads end-of-stream.
    pub fn shutdown(&self) -> Result<()> {
        Ok(self.sock.sock_ref().shutdown(Shutdown::Write)?)
    }
}

impl fmt::Debug for WriteHalf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("WriteHalf").field(&self.sock.fd()).finish()
    }
}

impl futures_io::AsyncWrite for WriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        poll_write(&this.sock, &mut this.state, &mut this.full, cx, data)
    }

    /// All the slices in one `sendmsg`.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        poll_write_vectored(&this.sock, &mut this.state, &mut this.full, cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Nothing is buffered on our side.
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(shutdown_write(&self.sock))
    }
}

/// Gives a stream type wrapping a `StreamCore` in field `core` the common
/// stream methods and trait implementations.
macro_rules! stream_api {
    ($ty:ident) => {
        impl $ty {
            /// Receives into `buf` (up to its capacity, replacing its
            /// contents) and returns the count; 0 means the peer closed its
            /// side (end of stream). A buffer with no capacity reads nothing.
            ///
            /// Dropping the future before it completes cancels the receive:
            /// no byte is lost, the next read gets it. (A receive that had
            /// already completed when it was dropped keeps its bytes in the
            /// dropped buffer: cancellation races with completion, as on any
            /// completion-based backend.)
            pub fn read_owned<B: $crate::buf::IoBufMut>(
                &self,
                buf: B,
            ) -> impl std::future::Future<Output = $crate::buf::BufResult<usize, B>> + '_ {
                self.core.read(buf)
            }

            /// Sends what the kernel takes of `buf` at once; returns the count.
            pub fn write_owned<B: $crate::buf::IoBuf>(
                &self,
                buf: B,
            ) -> impl std::future::Future<Output = $crate::buf::BufResult<usize, B>> + '_ {
                self.core.write(buf)
            }

            /// Sends every byte of `buf`. If the future is dropped midway,
            /// a prefix of `buf` may have been sent.
            pub fn write_all_owned<B: $crate::buf::IoBuf>(
                &self,
                buf: B,
            ) -> impl std::future::Future<Output = $crate::buf::BufResult<(), B>> + '_ {
                self.core.write_all(buf)
            }

            /// Shuts down the read direction, the write direction (the peer
            /// reads end-of-stream) or both. The descriptor stays open until
            /// the stream is dropped.
            pub fn shutdown(&self, how: std::net::Shutdown) -> $crate::Result<()> {
                Ok(self.core.shutdown(how)?)
            }

            /// Splits the stream into a reading and a writing half that can
            /// be moved into different tasks ([`ReadHalf`](crate::net::ReadHalf)
            /// shows both in use).
            pub fn into_split(self) -> ($crate::io::net::ReadHalf, $crate::io::net::WriteHalf) {
                self.core.into_split()
            }
        }

        impl futures_io::AsyncRead for $ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                out: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.get_mut().core.poll_read(cx, out)
            }
        }

        impl futures_io::AsyncWrite for $ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                data: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.get_mut().core.poll_write(cx, data)
            }

            /// All the slices in one `sendmsg`.
            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.get_mut().core.poll_write_vectored(cx, bufs)
            }

            /// Nothing is buffered on our side: always ready.
            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }

            /// Shuts down the write direction (the peer reads end-of-stream);
            /// the descriptor closes when the stream is dropped.
            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                self.get_mut().core.poll_close()
            }
        }

        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.core.sock.fd()
            }
        }

        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                std::os::fd::AsFd::as_fd(&*self.core.sock)
            }
        }

        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_tuple(stringify!($ty))
                    .field(&self.core.sock.fd())
                    .finish()
            }
        }
    };
}
pub(crate) use stream_api;

/// `AsFd` for the types that hold an `Rc<LoopFd>` in field `sock`.
macro_rules! sock_fd_traits {
    ($($ty:ident),*) => {$(
        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.sock.fd()
            }
        }

        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                std::os::fd::AsFd::as_fd(&*self.sock)
            }
        }
    )*};
}
pub(crate) use sock_fd_traits;

sock_fd_traits!(ReadHalf, WriteHalf);
