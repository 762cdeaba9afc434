//! The standard streams, whatever they are connected to.
//!
//! A pipe, socket, tty or other character device goes through the pipe
//! path ([`PipeReader`]/[`PipeWriter`]: non-blocking, readiness or
//! io_uring completions). A regular file (`prog < input.txt`,
//! `prog > out.log`) cannot: epoll refuses it and `O_NONBLOCK` means
//! nothing to it, which is why [`PipeReader::new`] refuses it. So a
//! regular file goes through the file path ([`File`]: positional reads and
//! writes, real operations on io_uring, the executor on epoll), starting at
//! the stream's current offset, and the shared open file's offset is moved
//! along after each read or write (one `lseek`, which never blocks), so
//! that the parent shell, a child process or a later synchronous
//! `std::io::stdin()` continue where the loop stopped.
//!
//! The loop works on a duplicate of descriptor 0, 1 or 2 (close-on-exec),
//! so dropping the stream never closes the process's own. A pipe or tty is
//! made non-blocking as [`EventLoop::connect_read_pipe`] does, which
//! affects every holder of that open file.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use super::File;
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::io::pipe::{PipeReader, PipeWriter};
use crate::loop_core::error::Result;
use crate::loop_core::EventLoop;

/// `true` if `fd` is a regular file; where its offset is.
fn regular_file_offset(fd: BorrowedFd<'_>) -> Result<Option<u64>> {
    // SAFETY: zeroed stat is a valid out-parameter for fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is valid for writes; the descriptor is borrowed for the call.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } < 0 {
        return Err(io::Error::last_os_error().into());
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Ok(None);
    }
    // SAFETY: lseek only reads the offset of a descriptor we borrow.
    let pos = unsafe { libc::lseek(fd.as_raw_fd(), 0, libc::SEEK_CUR) };
    if pos < 0 {
        return Err(io::Error::last_os_error().into());
    }
    Ok(Some(pos as u64))
}

fn file_at(lp: &EventLoop, fd: OwnedFd, pos: u64) -> File {
    let mut file = File::from_fd(lp, fd);
    file.pos = pos;
    file.sync_offset = true;
    file
}

enum In {
    Stream(PipeReader),
    File(File),
}

/// The loop's view of standard input (or of any readable descriptor): a
/// pipe, tty or socket, or a regular file (see the module docs).
///
/// ```no_run
/// # async fn demo() -> evloop::Result<()> {
/// // `prog < input.txt` and `cat input.txt | prog` both work:
/// let mut stdin = evloop::fs::stdin()?;
/// let all = stdin.read_to_end_owned().await?;
/// # Ok(()) }
/// ```
pub struct Stdin(In);

impl fmt::Debug for Stdin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            In::Stream(r) => f.debug_tuple("Stdin").field(r).finish(),
            In::File(file) => f.debug_tuple("Stdin").field(file).finish(),
        }
    }
}

impl Stdin {
    /// Reads from `fd` on `lp`: a regular file from its current offset
    /// (which it keeps up to date), anything [`PipeReader::new`] accepts
    /// as a pipe stream; a directory is [`Error::InvalidArgument`](crate::Error::InvalidArgument).
    pub fn from_fd(lp: &EventLoop, fd: OwnedFd) -> Result<Stdin> {
        lp.check_open()?;
        Ok(Stdin(match regular_file_offset(fd.as_fd())? {
            Some(pos) => In::File(file_at(lp, fd, pos)),
            None => In::Stream(PipeReader::new(lp, fd)?),
        }))
    }

    /// `true` when reading a regular file (the file path), `false` for a
    /// pipe stream.
    pub fn is_file(&self) -> bool {
        matches!(self.0, In::File(_))
    }

    /// Reads into `buf` (replacing its contents); `Ok(0)` at end of input.
    pub async fn read_owned<B: IoBufMut>(&mut self, buf: B) -> BufResult<usize, B> {
        match &mut self.0 {
            In::Stream(r) => r.read_owned(buf).await,
            In::File(file) => file.read_owned(buf).await,
        }
    }

    /// Reads everything up to end of input.
    pub async fn read_to_end_owned(&mut self) -> Result<Vec<u8>> {
        match &mut self.0 {
            In::Stream(r) => r.read_to_end_owned().await,
            In::File(file) => file.read_to_end_owned().await,
        }
    }
}

enum Out {
    Stream(PipeWriter),
    File(File),
}

/// The loop's view of standard output or error (or of any writable
/// descriptor): a pipe, tty or socket, or a regular file (see the module
/// docs).
///
/// ```
/// # evloop::run(async {
/// // `prog > out.log` and `prog | less` both work:
/// let mut out = evloop::fs::stdout()?;
/// let (res, _) = out.write_all_owned(b"hello\n".to_vec()).await;
/// res?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap().unwrap();
/// ```
pub struct Stdout(Out);

impl fmt::Debug for Stdout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Out::Stream(w) => f.debug_tuple("Stdout").field(w).finish(),
            Out::File(file) => f.debug_tuple("Stdout").field(file).finish(),
        }
    }
}

impl Stdout {
    /// Writes to `fd` on `lp`: a regular file from its current offset
    /// (an `O_APPEND` one at its end), anything [`PipeWriter::new`]
    /// accepts as a pipe stream.
    pub fn from_fd(lp: &EventLoop, fd: OwnedFd) -> Result<Stdout> {
        lp.check_open()?;
        Ok(Stdout(match regular_file_offset(fd.as_fd())? {
            Some(pos) => Out::File(file_at(lp, fd, pos)),
            None => Out::Stream(PipeWriter::new(lp, fd)?),
        }))
    }

    /// `true` when writing a regular file (the file path).
    pub fn is_file(&self) -> bool {
        matches!(self.0, Out::File(_))
    }

    /// Writes some of `buf`; returns how much.
    pub async fn write_owned<B: IoBuf>(&mut self, buf: B) -> BufResult<usize, B> {
        match &mut self.0 {
            Out::Stream(w) => w.write_owned(buf).await,
            Out::File(file) => file.write_owned(buf).await,
        }
    }

    /// Writes all of `buf`.
    pub async fn write_all_owned<B: IoBuf>(&mut self, buf: B) -> BufResult<(), B> {
        match &mut self.0 {
            Out::Stream(w) => w.write_all_owned(buf).await,
            Out::File(file) => file.write_all_owned(buf).await,
        }
    }
}

fn dup(fd: BorrowedFd<'_>) -> Result<OwnedFd> {
    Ok(fd.try_clone_to_owned()?)
}

/// Standard input on the running loop (a duplicate of descriptor 0).
///
/// It reads whatever the process was given, which a doctest cannot
/// promise, so this one only shows the calls:
///
/// ```no_run
/// evloop::run(async {
///     let mut input = evloop::fs::stdin()?;
///     let (res, line) = input.read_owned(Vec::with_capacity(4096)).await;
///     let n = res?; // 0 at end of input
///     println!("read {n} bytes: {:?}", String::from_utf8_lossy(&line));
///     Ok::<_, evloop::Error>(())
/// })??;
/// # Ok::<_, evloop::Error>(())
/// ```
pub fn stdin() -> Result<Stdin> {
    let lp = super::running_loop()?;
    Stdin::from_fd(&lp, dup(io::stdin().as_fd())?)
}

/// Standard output on the running loop (a duplicate of descriptor 1).
///
/// ```
/// evloop::run(async {
///     let mut out = evloop::fs::stdout()?;
///     // `prog > out.log` writes the file at its offset; a pipe or tty
///     // is a stream: the same calls either way.
///     let how = if out.is_file() { "file" } else { "stream" };
///     let (res, _) = out.write_all_owned(format!("stdout is a {how}\n").into_bytes()).await;
///     res?;
///     Ok::<_, evloop::Error>(())
/// })??;
/// # Ok::<_, evloop::Error>(())
/// ```
pub fn stdout() -> Result<Stdout> {
    let lp = super::running_loop()?;
    Stdout::from_fd(&lp, dup(io::stdout().as_fd())?)
}

/// Standard error on the running loop (a duplicate of descriptor 2).
///
/// ```
/// evloop::run(async {
///     let mut err = evloop::fs::stderr()?;
///     let (res, _) = err.write_all_owned(format!("warning: {}\n", 42).into_bytes()).await;
///     res?;
///     Ok::<_, evloop::Error>(())
/// })??;
/// # Ok::<_, evloop::Error>(())
/// ```
pub fn stderr() -> Result<Stdout> {
    let lp = super::running_loop()?;
    Stdout::from_fd(&lp, dup(io::stderr().as_fd())?)
}
