//! Pipes, FIFOs, PTY masters and other stream descriptors as async streams.
//!
//! [`PipeReader`] and [`PipeWriter`] own a non-blocking descriptor and offer
//! two interfaces:
//! - owned-buffer I/O (`read_owned(buf)`, `write_owned(buf)`, `write_all_owned(buf)`): one
//!   [`Op::Read`]/[`Op::Write`] per call through the backend, a real
//!   completion operation on io_uring. The buffer is moved in and handed
//!   back with the result ([`BufResult`]), so cancelling the future is sound;
//! - the runtime-agnostic [`futures_io::AsyncRead`]/[`futures_io::AsyncWrite`]
//!   traits, for crates that expect them. Those work on caller-borrowed
//!   slices, which must never be handed to a completion backend, so they try
//!   the non-blocking `read(2)`/`write(2)` directly and wait with a
//!   memory-free [`Op::PollReadable`]/[`Op::PollWritable`] when the
//!   descriptor is not ready. Every backend supports both operations.
//!
//! End of stream and errors:
//! - a read returns 0 once every writer has closed its end;
//! - a PTY master reports `EIO` once the slave side is closed; the reader
//!   turns that into end of stream (0);
//! - a write after the reader closed fails with
//!   [`io::ErrorKind::BrokenPipe`] (`EPIPE`), every time. This relies on
//!   `SIGPIPE` being ignored, as the Rust runtime arranges for binaries; a
//!   host program that leaves `SIGPIPE` at its default is killed instead.
//!
//! Dropping a stream closes its descriptor (after telling the backend to
//! forget it). `AsyncWrite::poll_close` closes a writer early, so the
//! reader sees end of stream while the `PipeWriter` value is still around.

use std::fmt;
use std::io;
use std::ops::ControlFlow;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::driver::Op;
use crate::driver::OpOutput;
use crate::io::fd::LoopFd;
use crate::io::ready_wait::ReadyWait;
use crate::loop_core::error::{Error, Result};
use crate::loop_core::EventLoop;
use crate::op::buf_op::{BufKind, BufOp, Recv};
use crate::op::salvage::take_into;
use crate::sys;

/// Size of each chunk [`PipeReader::read_to_end_owned`] asks for.
const CHUNK: usize = 64 * 1024;

fn closed_stream() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the pipe end is closed")
}

/// Checks that `fd` is a pipe, FIFO, socket or character device (a tty or
/// PTY), and makes it non-blocking. Returns whether it is a terminal.
fn prepare(fd: RawFd) -> Result<bool> {
    // SAFETY: zeroed stat is a valid out-parameter for fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is valid for writes; an invalid fd gives EBADF.
    sys::cvt(unsafe { libc::fstat(fd, &mut st) })?;
    let kind = st.st_mode & libc::S_IFMT;
    if !matches!(kind, libc::S_IFIFO | libc::S_IFSOCK | libc::S_IFCHR) {
        return Err(Error::InvalidArgument(
            "pipe streams are for pipes, sockets and character devices only".to_owned(),
        ));
    }
    sys::set_nonblocking(fd, true)?;
    // SAFETY: isatty only inspects the descriptor.
    Ok(unsafe { libc::isatty(fd) } == 1)
}

/// The state shared by both directions: the loop, the descriptor, and the
/// readiness wait of the futures-io interface.
///
/// The descriptor is shared with every operation in flight on it (each
/// holds a clone of the `Rc`), so it is closed only once the backend is
/// done with all of them, even when closing the stream abandons some: a
/// number the kernel reuses for another file is never read or written.
struct Stream {
    lp: EventLoop,
    fd: Option<Rc<LoopFd>>,
    /// A pending `PollReadable`/`PollWritable` of `poll_read`/`poll_write`;
    /// dropped before the descriptor is closed.
    ready: ReadyWait<Rc<LoopFd>>,
}

impl Stream {
    fn new(lp: &EventLoop, fd: OwnedFd) -> Stream {
        Stream {
            lp: lp.clone(),
            fd: Some(LoopFd::new(lp, fd)),
            ready: ReadyWait::default(),
        }
    }

    fn raw(&self) -> io::Result<RawFd> {
        self.fd.as_ref().map(|fd| fd.fd()).ok_or_else(closed_stream)
    }

    fn loop_fd(&self) -> io::Result<&Rc<LoopFd>> {
        self.fd.as_ref().ok_or_else(closed_stream)
    }

    /// The futures-io path: run `attempt` until it does not block, waiting
    /// for readiness (`readable` or writable) in between.
    fn poll_io(
        &mut self,
        cx: &mut Context<'_>,
        readable: bool,
        attempt: impl FnMut(RawFd) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        let fd = self.loop_fd()?.clone();
        self.ready
            .poll_io(&self.lp, fd.fd(), cx, readable, || fd.clone(), attempt)
    }

    /// `kind` on the descriptor with `buf`, the descriptor kept open by
    /// the operation; an error (with `buf`) once the stream is closed.
    fn op<B: 'static, T: BufKind<B>>(
        &self,
        buf: B,
        kind: T,
    ) -> std::result::Result<BufOp<B, Rc<LoopFd>, T>, (io::Error, B)> {
        match &self.fd {
            Some(fd) => Ok(BufOp::new(
                Some(self.lp.clone()),
                fd.fd(),
                buf,
                fd.clone(),
                kind,
            )),
            None => Err((closed_stream(), buf)),
        }
    }

    fn close(&mut self) {
        // Drop order: the readiness wait first (it cancels its operation),
        // then our hold on the descriptor; it is closed once no operation
        // holds it any more.
        self.ready.clear();
        self.fd.take();
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.close();
    }
}

/// The reading end of a pipe (or a FIFO, socket, tty or PTY master).
///
/// Both ends implement futures-io's `AsyncRead`/`AsyncWrite`, so the
/// `futures` crate's extension traits work on them (see [`pipe`]). With
/// owned buffers (a descriptor you already have becomes one with
/// [`EventLoop::connect_read_pipe`], as [`open_pty`]'s example shows):
///
/// ```
/// evloop::run(async {
///     let lp = evloop::get_running_loop()?;
///     let (mut reader, mut writer) = evloop::pipe::pipe(&lp)?;
///     let (res, _) = writer.write_all_owned(b"owned".as_slice()).await;
///     res?;
///     drop(writer); // the reader sees end of stream after the bytes
///     let (res, buf) = reader.read_owned(Vec::with_capacity(64)).await;
///     assert_eq!(res?, 5);
///     assert_eq!(buf, b"owned");
///     let (res, _) = reader.read_owned(Vec::with_capacity(64)).await;
///     assert_eq!(res?, 0);
///     Ok::<_, evloop::Error>(())
/// })??;
/// # Ok::<_, evloop::Error>(())
/// ```
pub struct PipeReader {
    stream: Stream,
    tty: bool,
}

/// The writing end of a pipe (or a FIFO, socket, tty or PTY master).
///
/// Examples: [`pipe`] (futures-io), [`PipeReader`] (owned buffers).
pub struct PipeWriter {
    stream: Stream,
}

impl fmt::Debug for PipeReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipeReader")
            .field("fd", &self.stream.raw().ok())
            .field("tty", &self.tty)
            .finish()
    }
}

impl fmt::Debug for PipeWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipeWriter")
            .field("fd", &self.stream.raw().ok())
            .finish()
    }
}

impl PipeReader {
    /// Wraps `fd` (asyncio's `connect_read_pipe`): it is made non-blocking
    /// and closed when the reader is dropped. A regular file or directory
    /// is [`Error::InvalidArgument`].
    pub fn new(lp: &EventLoop, fd: OwnedFd) -> Result<PipeReader> {
        lp.check_open()?;
        let tty = prepare(fd.as_raw_fd())?;
        Ok(PipeReader {
            stream: Stream::new(lp, fd),
            tty,
        })
    }

    /// End of stream for a PTY master whose slave side is gone (`EIO`),
    /// for either error type (`io::Error` of the futures-io impl, `Error`
    /// of the owned-buffer reads).
    fn map_eof<E: EofErrno>(
        &self,
        result: std::result::Result<usize, E>,
    ) -> std::result::Result<usize, E> {
        match result {
            // A PTY master whose slave side is gone.
            Err(e) if self.tty && e.errno() == Some(libc::EIO) => Ok(0),
            other => other,
        }
    }

    /// Reads up to `buf.bytes_total()` bytes into `buf` (replacing its
    /// contents); 0 means end of stream. Dropping the future cancels the
    /// read; whatever it had already taken is returned by the next read.
    pub async fn read_owned<B: IoBufMut>(&mut self, buf: B) -> BufResult<usize, B> {
        if buf.bytes_total() == 0 {
            return (self.stream.loop_fd().map(|_| 0).map_err(Error::from), buf);
        }
        let (result, buf) = match self.stream.op(buf, Recv::FILE) {
            Ok(op) => op.await,
            Err((e, buf)) => return (Err(e.into()), buf),
        };
        (self.map_eof(result), buf)
    }

    /// Reads until end of stream.
    pub async fn read_to_end_owned(&mut self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut chunk = Vec::with_capacity(CHUNK);
        loop {
            let (result, buf) = self.read_owned(chunk).await;
            chunk = buf;
            match result {
                Ok(0) => return Ok(out),
                Ok(_) => out.extend_from_slice(&chunk),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The loop this reader runs on.
    pub fn event_loop(&self) -> &EventLoop {
        &self.stream.lp
    }
}

impl PipeWriter {
    /// Wraps `fd` (asyncio's `connect_write_pipe`): it is made non-blocking
    /// and closed when the writer is dropped. A regular file or directory
    /// is [`Error::InvalidArgument`].
    pub fn new(lp: &EventLoop, fd: OwnedFd) -> Result<PipeWriter> {
        lp.check_open()?;
        prepare(fd.as_raw_fd())?;
        Ok(PipeWriter {
            stream: Stream::new(lp, fd),
        })
    }

    /// Writes some of `buf`'s bytes; returns how many. A closed reader is
    /// [`io::ErrorKind::BrokenPipe`].
    pub async fn write_owned<B: IoBuf>(&mut self, buf: B) -> BufResult<usize, B> {
        match self.stream.op(buf, PipeWrite::once()) {
            Ok(op) => op.await,
            Err((e, buf)) => (Err(e.into()), buf),
        }
    }

    /// Writes all of `buf`'s bytes.
    pub async fn write_all_owned<B: IoBuf>(&mut self, buf: B) -> BufResult<(), B> {
        match self.stream.op(buf, PipeWrite::all()) {
            Ok(op) => {
                let (result, buf) = op.await;
                (result.map(drop), buf)
            }
            Err((e, buf)) => (Err(e.into()), buf),
        }
    }

    /// The loop this writer runs on.
    pub fn event_loop(&self) -> &EventLoop {
        &self.stream.lp
    }
}

impl AsRawFd for PipeReader {
    fn as_raw_fd(&self) -> RawFd {
        self.stream.raw().unwrap_or(-1)
    }
}

impl AsRawFd for PipeWriter {
    /// The descriptor, or -1 after `poll_close`.
    fn as_raw_fd(&self) -> RawFd {
        self.stream.raw().unwrap_or(-1)
    }
}

fn read_now(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` bytes of writes.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn write_now(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` bytes of reads.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// An error's OS code, whichever of the two error types it is.
trait EofErrno {
    fn errno(&self) -> Option<i32>;
}

impl EofErrno for io::Error {
    fn errno(&self) -> Option<i32> {
        self.raw_os_error()
    }
}

impl EofErrno for Error {
    fn errno(&self) -> Option<i32> {
        self.raw_os_error()
    }
}

impl futures_io::AsyncRead for PipeReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        // What cancelled reads took comes first (and while one is still in
        // the kernel, its result is awaited).
        let fd = this.stream.loop_fd()?.clone();
        if !fd.stash.is_idle() {
            let item = ready!(fd.stash.poll_take(cx));
            if let Some(res) = item.and_then(|item| take_into(item, buf, &fd.stash)) {
                return Poll::Ready(this.map_eof(res));
            }
        }
        let result = this.stream.poll_io(cx, true, |fd| read_now(fd, buf));
        result.map(|r| this.map_eof(r))
    }
}

impl futures_io::AsyncWrite for PipeWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        self.get_mut()
            .stream
            .poll_io(cx, false, |fd| write_now(fd, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Nothing is buffered on our side.
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().stream.close();
        Poll::Ready(Ok(()))
    }
}

/// A new pipe as a connected `(reader, writer)` pair of streams on `lp`.
///
/// ```
/// use futures::io::{AsyncReadExt, AsyncWriteExt};
/// let text = evloop::run(async {
///     let lp = evloop::get_running_loop().unwrap();
///     let (mut reader, mut writer) = evloop::pipe::pipe(&lp).unwrap();
///     let writing = lp
///         .create_task(async move {
///             AsyncWriteExt::write_all(&mut writer, b"through the pipe").await.unwrap();
///             // Dropping the writer closes it: the reader sees end of file.
///         })
///         .unwrap();
///     let mut text = String::new();
///     AsyncReadExt::read_to_string(&mut reader, &mut text).await.unwrap();
///     writing.await.unwrap();
///     text
/// })
/// .unwrap();
/// assert_eq!(text, "through the pipe");
/// ```
pub fn pipe(lp: &EventLoop) -> Result<(PipeReader, PipeWriter)> {
    let (r, w) = sys::pipe_cloexec()?;
    Ok((PipeReader::new(lp, r)?, PipeWriter::new(lp, w)?))
}

/// Opens a pseudo-terminal: `(master, slave)`, both close-on-exec, the
/// slave not made the controlling terminal. Wrap the master in a
/// [`PipeReader`]/[`PipeWriter`] (use `try_clone` for both directions) and
/// give the slave to a child process or a blocking writer. The line
/// discipline applies (echo, `\n` to `\r\n`) unless the slave is put in
/// raw mode (`cfmakeraw` + `tcsetattr`).
///
/// ```
/// use futures::io::AsyncReadExt;
/// use std::io::Write;
///
/// evloop::run(async {
///     let lp = evloop::get_running_loop()?;
///     let (master, slave) = evloop::pipe::open_pty()?;
///     let mut terminal = lp.connect_read_pipe(master)?;
///     // What a program on the slave side prints (here, a blocking write) ...
///     let mut slave = std::fs::File::from(slave);
///     slave.write_all(b"hi\n")?;
///     // ... arrives on the master through the line discipline.
///     let mut line = [0u8; 4];
///     terminal.read_exact(&mut line).await?;
///     assert_eq!(&line, b"hi\r\n");
///     // Once the slave side is closed, the master reads end of stream.
///     drop(slave);
///     let mut rest = Vec::new();
///     terminal.read_to_end(&mut rest).await?;
///     assert!(rest.is_empty());
///     Ok::<_, evloop::Error>(())
/// })??;
/// # Ok::<_, evloop::Error>(())
/// ```
pub fn open_pty() -> Result<(OwnedFd, OwnedFd)> {
    // SAFETY: posix_openpt takes flags only.
    let master =
        sys::cvt(unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) })?;
    // SAFETY: `master` is a fresh descriptor we own.
    let master = unsafe { OwnedFd::from_raw_fd(master) };
    // SAFETY: grantpt/unlockpt take the master descriptor only.
    sys::cvt(unsafe { libc::grantpt(master.as_raw_fd()) })?;
    // SAFETY: as above.
    sys::cvt(unsafe { libc::unlockpt(master.as_raw_fd()) })?;
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: `name` is valid for `name.len()` bytes; ptsname_r NUL-terminates on success.
    let rc = unsafe { libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc).into());
    }
    // SAFETY: `name` holds a NUL-terminated path written by ptsname_r.
    let slave = sys::cvt(unsafe {
        libc::open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: `slave` is a fresh descriptor we own.
    Ok((master, unsafe { OwnedFd::from_raw_fd(slave) }))
}

impl EventLoop {
    /// asyncio's `connect_read_pipe`: `fd` as a [`PipeReader`] on this loop.
    pub fn connect_read_pipe(&self, fd: OwnedFd) -> Result<PipeReader> {
        PipeReader::new(self, fd)
    }

    /// asyncio's `connect_write_pipe`: `fd` as a [`PipeWriter`] on this loop.
    pub fn connect_write_pipe(&self, fd: OwnedFd) -> Result<PipeWriter> {
        PipeWriter::new(self, fd)
    }
}

/// `write(2)`s of the buffer: one (`all == false`, the count written) or
/// until every byte is written (a write of 0 bytes is `WriteZero`).
#[derive(Debug)]
struct PipeWrite {
    all: bool,
    /// Bytes written so far; never more than the buffer's `bytes_init()`.
    written: usize,
}

impl PipeWrite {
    fn once() -> Self {
        PipeWrite {
            all: false,
            written: 0,
        }
    }

    fn all() -> Self {
        PipeWrite {
            all: true,
            written: 0,
        }
    }
}

// SAFETY: the op reads `buf[written..bytes_init()]`, inside the buffer's
// own stable memory (IoBuf's contract): `written <= bytes_init()` always.
unsafe impl<B: IoBuf> BufKind<B> for PipeWrite {
    type Output = usize;
    const READABLE: bool = false;

    fn op(&mut self, fd: RawFd, buf: &mut B) -> ControlFlow<io::Result<usize>, Op> {
        let len = buf.bytes_init() - self.written;
        if len == 0 {
            return ControlFlow::Break(Ok(self.written));
        }
        ControlFlow::Continue(Op::Write {
            fd,
            // SAFETY: `written < bytes_init()` keeps the offset inside the buffer.
            buf: unsafe { buf.stable_ptr().add(self.written) },
            len,
        })
    }

    fn done(&mut self, res: io::Result<OpOutput>, _buf: &mut B) -> ControlFlow<io::Result<usize>> {
        match res {
            Ok(out) if !self.all => ControlFlow::Break(Ok(out.bytes)),
            Ok(out) if out.bytes == 0 => ControlFlow::Break(Err(io::ErrorKind::WriteZero.into())),
            Ok(out) => {
                self.written += out.bytes;
                ControlFlow::Continue(())
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(Err(e)),
        }
    }
}
