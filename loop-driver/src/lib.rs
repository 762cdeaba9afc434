//! # loop-driver
//!
//! evloop's backend boundary: an operation-submission (proactor)
//! interface, and nothing of the loop above it. A backend depends on this
//! crate alone (plus `loop-api` only to build an `EventLoop` around itself).
//!
//! The loop hands a backend an [`Op`] under an [`OpId`]; the backend either
//! completes it at once (`Poll::Ready`) or reports a [`Completion`] for that id
//! from a later [`Driver::wait`]. A completion backend (io_uring) turns each
//! `Op` into a submission-queue entry; readiness backends (epoll through mio
//! or polling) emulate completion with the `backend-readiness` crate: try
//! the syscall, and on `WouldBlock` wait for readiness and retry. The whole
//! contract is written on [`Driver`].
//!
//! Timers never reach the backend: the loop keeps its own timer heap and
//! passes the time to the earliest deadline as the `timeout` of `wait`.
//!
//! [`buf`] holds the owned-buffer traits operations point into; [`sys`]
//! the syscall helpers both sides share.

pub mod buf;
pub mod sys;

pub use sys::is_stream_socket;

use std::fmt;
use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use socket2::SockAddr;

/// Identifies one submitted operation until its completion is reported.
pub type OpId = usize;

/// One I/O operation, as the loop hands it to a backend.
///
/// Buffers travel as raw pointers: the loop keeps the memory they point to
/// alive until the backend reports the operation's completion, or until
/// [`Driver::cancel`] answers [`Cancel::Forgotten`] (see the contract on
/// [`Driver::submit`]). File descriptors stay open for the same span.
#[derive(Debug)]
#[non_exhaustive]
pub enum Op {
    /// `accept4(fd)`: the output's [`OpOutput::accepted`] is the new,
    /// non-blocking, close-on-exec descriptor (owned from the moment it
    /// exists, so no path can leak it) and `addr` the peer's address; `res`
    /// is 0.
    Accept {
        /// The listening socket.
        fd: RawFd,
    },
    /// `connect(fd, addr)`, completing once the connection is established or has failed.
    Connect {
        /// The socket to connect.
        fd: RawFd,
        /// Where to connect.
        /// Boxed to keep `Op` small (it is moved on every submission).
        addr: Box<SockAddr>,
    },
    /// `recv(fd, buf, len)`: `res` is the byte count, 0 at end of stream.
    Recv {
        /// The socket.
        fd: RawFd,
        /// Start of writable memory.
        buf: *mut u8,
        /// Bytes available at `buf`.
        len: usize,
    },
    /// `send(fd, buf, len, MSG_NOSIGNAL)`: `res` is the byte count sent.
    Send {
        /// The socket.
        fd: RawFd,
        /// Start of readable memory.
        buf: *const u8,
        /// Bytes at `buf`.
        len: usize,
    },
    /// `read(fd, buf, len)`, for pipes, ttys and other non-socket descriptors.
    Read {
        /// The descriptor.
        fd: RawFd,
        /// Start of writable memory.
        buf: *mut u8,
        /// Bytes available at `buf`.
        len: usize,
    },
    /// `write(fd, buf, len)`, for pipes, ttys and other non-socket descriptors.
    Write {
        /// The descriptor.
        fd: RawFd,
        /// Start of readable memory.
        buf: *const u8,
        /// Bytes at `buf`.
        len: usize,
    },
    /// `recvfrom(fd, buf, len)`: `res` is the byte count, `addr` the sender.
    RecvFrom {
        /// The socket.
        fd: RawFd,
        /// Start of writable memory.
        buf: *mut u8,
        /// Bytes available at `buf`.
        len: usize,
    },
    /// `sendto(fd, buf, len, addr)`: `res` is the byte count sent.
    SendTo {
        /// The socket.
        fd: RawFd,
        /// Start of readable memory.
        buf: *const u8,
        /// Bytes at `buf`.
        len: usize,
        /// The destination.
        /// Boxed to keep `Op` small (it is moved on every submission).
        addr: Box<SockAddr>,
    },
    /// Completes (with `res` 0) once `fd` is readable (or has an error or hang-up).
    PollReadable {
        /// The descriptor to watch.
        fd: RawFd,
    },
    /// Completes (with `res` 0) once `fd` is writable (or has an error or hang-up).
    PollWritable {
        /// The descriptor to watch.
        fd: RawFd,
    },
    /// Completes once the child process behind `pidfd` has exited.
    ///
    /// A backend may reap the child itself (io_uring's `waitid` with
    /// `P_PIDFD`, `WEXITED`): the output's [`OpOutput::child_status`] then
    /// carries its raw wait status, and the child must not be waited for
    /// again. Or it may only report readiness (the pidfd polled readable,
    /// as the readiness backends and io_uring without `IORING_OP_WAITID` do):
    /// `child_status` is `None` and the caller reaps with `waitpid(WNOHANG)`,
    /// which may also find the child still running after a spurious wake-up.
    /// `res` is 0 either way.
    ChildExit {
        /// A pidfd (`pidfd_open`) of a child of this process.
        pidfd: RawFd,
    },
    /// Forgets every registration for `fd` and closes it.
    Close {
        /// The descriptor to close; the backend owns it from submission on.
        fd: RawFd,
    },
    /// `openat(dirfd, path, flags | O_CLOEXEC, mode)`: the output's
    /// [`OpOutput::accepted`] is the opened descriptor (that field carries
    /// every descriptor an operation creates, owned from the moment it
    /// exists), `bytes` is 0.
    ///
    /// This and the other file operations below (`ReadAt` to `MkdirAt`)
    /// may be refused: a backend that cannot perform them without blocking
    /// its thread answers `Unsupported` (see "Unsupported" in [`Driver`]'s
    /// contract), and the loop runs them on its executor instead.
    OpenAt {
        /// The directory `path` is relative to (`libc::AT_FDCWD`: the
        /// current directory).
        dirfd: RawFd,
        /// A NUL-terminated path, valid (like a buffer) for the operation's life.
        path: *const libc::c_char,
        /// `O_*` flags (`O_CLOEXEC` is always added).
        flags: libc::c_int,
        /// Permission bits of a file `O_CREAT` creates.
        mode: libc::mode_t,
    },
    /// `pread(fd, buf, len, offset)`: `res` is the byte count, 0 at end of file.
    ReadAt {
        /// A regular file (or anything `pread` accepts).
        fd: RawFd,
        /// Start of writable memory.
        buf: *mut u8,
        /// Bytes available at `buf`.
        len: usize,
        /// Where in the file to read.
        offset: u64,
    },
    /// `pwrite(fd, buf, len, offset)`: `res` is the byte count written.
    WriteAt {
        /// A regular file (or anything `pwrite` accepts).
        fd: RawFd,
        /// Start of readable memory.
        buf: *const u8,
        /// Bytes at `buf`.
        len: usize,
        /// Where in the file to write (the kernel appends instead on an
        /// `O_APPEND` file).
        offset: u64,
    },
    /// `statx(dirfd, path, flags, mask, buf)`: fills `*buf`; `bytes` is 0.
    /// With `AT_EMPTY_PATH` in `flags` and an empty `path` it describes
    /// `dirfd` itself.
    Statx {
        /// The directory `path` is relative to, or the file itself.
        dirfd: RawFd,
        /// A NUL-terminated path, valid for the operation's life.
        path: *const libc::c_char,
        /// `AT_*` flags.
        flags: libc::c_int,
        /// The `STATX_*` fields wanted.
        mask: u32,
        /// Where the kernel writes the result, valid for the operation's life.
        buf: *mut libc::statx,
    },
    /// `fsync(fd)`, or `fdatasync(fd)` with `datasync`.
    Fsync {
        /// The file to flush.
        fd: RawFd,
        /// Flush the data only (and the metadata needed to read it back).
        datasync: bool,
    },
    /// `renameat(olddirfd, oldpath, newdirfd, newpath)`.
    RenameAt {
        /// The directory `oldpath` is relative to.
        olddirfd: RawFd,
        /// A NUL-terminated path, valid for the operation's life.
        oldpath: *const libc::c_char,
        /// The directory `newpath` is relative to.
        newdirfd: RawFd,
        /// A NUL-terminated path, valid for the operation's life.
        newpath: *const libc::c_char,
    },
    /// `unlinkat(dirfd, path, if dir { AT_REMOVEDIR } else { 0 })`.
    UnlinkAt {
        /// The directory `path` is relative to.
        dirfd: RawFd,
        /// A NUL-terminated path, valid for the operation's life.
        path: *const libc::c_char,
        /// Remove an (empty) directory instead of a file.
        dir: bool,
    },
    /// `mkdirat(dirfd, path, mode)`.
    MkdirAt {
        /// The directory `path` is relative to.
        dirfd: RawFd,
        /// A NUL-terminated path, valid for the operation's life.
        path: *const libc::c_char,
        /// Permission bits of the new directory (before the umask).
        mode: libc::mode_t,
    },
}

impl Op {
    /// The descriptor the operation works on (for an operation on a path,
    /// the directory it is relative to, which may be `AT_FDCWD`, negative).
    pub fn fd(&self) -> RawFd {
        match *self {
            Op::OpenAt { dirfd, .. }
            | Op::Statx { dirfd, .. }
            | Op::UnlinkAt { dirfd, .. }
            | Op::MkdirAt { dirfd, .. }
            | Op::RenameAt {
                olddirfd: dirfd, ..
            } => dirfd,
            Op::ReadAt { fd, .. } | Op::WriteAt { fd, .. } | Op::Fsync { fd, .. } => fd,
            Op::Accept { fd }
            | Op::Connect { fd, .. }
            | Op::Recv { fd, .. }
            | Op::Send { fd, .. }
            | Op::Read { fd, .. }
            | Op::Write { fd, .. }
            | Op::RecvFrom { fd, .. }
            | Op::SendTo { fd, .. }
            | Op::PollReadable { fd }
            | Op::PollWritable { fd }
            | Op::ChildExit { pidfd: fd }
            | Op::Close { fd } => fd,
        }
    }

    /// `true` if the operation waits for the descriptor to become readable
    /// (as opposed to writable) when a readiness backend emulates it.
    pub fn wants_read(&self) -> bool {
        matches!(
            self,
            Op::Accept { .. }
                | Op::Recv { .. }
                | Op::Read { .. }
                | Op::RecvFrom { .. }
                | Op::PollReadable { .. }
                | Op::ChildExit { .. }
                | Op::ReadAt { .. }
        )
    }

    /// `true` for the file operations (`OpenAt` to `MkdirAt`), which a
    /// backend may answer with `Unsupported` (see [`Driver`]'s contract).
    pub fn is_file_op(&self) -> bool {
        matches!(
            self,
            Op::OpenAt { .. }
                | Op::ReadAt { .. }
                | Op::WriteAt { .. }
                | Op::Statx { .. }
                | Op::Fsync { .. }
                | Op::RenameAt { .. }
                | Op::UnlinkAt { .. }
                | Op::MkdirAt { .. }
        )
    }
}

/// What a completed operation produced.
#[derive(Debug)]
pub struct OpOutput {
    /// How many bytes the operation moved (received, sent, read, written);
    /// 0 for operations that move none.
    pub bytes: usize,
    /// The descriptor the operation created: the accepted connection of
    /// [`Op::Accept`], the opened file of [`Op::OpenAt`].
    pub accepted: Option<OwnedFd>,
    /// The peer's address, for `Accept` and `RecvFrom`.
    /// Boxed: a `SockAddr` is 132 bytes, and every completion moves an
    /// `OpOutput` several times.
    pub addr: Option<Box<SockAddr>>,
    /// For [`Op::ChildExit`] only: `Some(status)` if the backend reaped the
    /// child, `status` being the raw wait status as `waitpid(2)` would have
    /// stored it (decode with `WIFEXITED`/`WEXITSTATUS`/`WTERMSIG`). `None`
    /// if the backend only saw the pidfd become readable, and for every
    /// other operation.
    pub child_status: Option<libc::c_int>,
}

impl OpOutput {
    /// An output with no address and no child status.
    pub fn new(bytes: usize) -> Self {
        OpOutput {
            bytes,
            accepted: None,
            addr: None,
            child_status: None,
        }
    }
}

/// A finished operation, reported by [`Driver::wait`].
#[derive(Debug)]
pub struct Completion {
    /// The id the operation was submitted under.
    pub id: OpId,
    /// Its result; a cancelled operation reports `ErrorKind::Interrupted` or
    /// whatever the kernel said (it may also have completed after all).
    pub result: io::Result<OpOutput>,
}

/// The answer of [`Driver::cancel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancel {
    /// The backend has forgotten the operation: no completion will be reported
    /// and its memory is no longer referenced.
    Forgotten,
    /// The kernel may still be using the operation's memory; a [`Completion`]
    /// for the id will arrive from a later `wait`, and only then may the loop
    /// free the memory.
    Pending,
}

/// Wakes a backend blocked in [`Driver::wait`] from any thread.
pub trait Notify: Send + Sync {
    /// Make the current or next `wait` return promptly.
    fn notify(&self);
}

/// A backend: performs operations and blocks the loop thread until something happens.
///
/// # The contract
///
/// What the loop promises and what it relies on; the conformance suite
/// and the driver contract tests (`conformance_tests::driver_suite!`)
/// check it.
///
/// - **Threads.** One driver belongs to one loop and is used only from the
///   loop's thread; only its [`notifier`](Driver::notifier) crosses threads.
/// - **Ids.** The loop numbers pending operations densely from 0: an id is
///   the index of a slot in the loop's table, never larger than the peak
///   number of operations pending at once, and always below 2^32. So a
///   backend may index arrays by id. An id is reused as soon as its
///   operation has completed (its [`Completion`] returned by `wait`, or a
///   `Ready` from `submit`) or was cancelled with [`Cancel::Forgotten`]; never
///   while it is pending, nor while a cancel answered [`Cancel::Pending`]
///   and its completion has not come yet.
/// - **Cancel.** [`cancel`](Driver::cancel) of an id the backend does not
///   hold (never submitted, already completed) answers [`Cancel::Forgotten`]
///   and changes nothing. `Forgotten` means no completion will come for the id
///   and its memory is free; `Pending` means one will, with whatever the
///   operation produced if it finished first (data received, a connection
///   accepted): the loop keeps that for its next receive, so a backend
///   must never drop a finished result.
/// - **Completions.** Each pending operation gets exactly one
///   [`Completion`]. An operation submitted after the previous one of its
///   direction (reading or writing) on the same descriptor has completed
///   sees everything that one left. Two operations of one direction
///   pending at once on one descriptor may be performed in either order
///   (io_uring's kernel wakes the newer waiter first; the readiness driver
///   tries a new operation at once). The loop itself never submits two:
///   a receive whose cancellation is still in the kernel is waited for
///   before the next receive on that descriptor. (A program that reads one
///   socket from two tasks at once gets the bytes split between them in
///   no particular order, as in asyncio.)
/// - **Descriptors.** The loop keeps every descriptor in an `Op` open
///   until the operation's completion or `Cancel::Forgotten`, except
///   [`Op::Close`]'s, which the backend owns from submission. An accepted
///   descriptor is handed over as an `OwnedFd` in [`OpOutput::accepted`].
///   [`release_fd`](Driver::release_fd) comes before the loop closes a
///   descriptor or gives it back, and only when no operation on it is
///   pending in the loop's view (a cancel that answered `Pending` may
///   still be in flight: its completion must still be reported); after it
///   the backend keeps no registration for the number, and, where it can,
///   no reference to the file, so closing it takes effect at once.
/// - **Unsupported.** A backend may refuse an operation it cannot perform
///   without blocking its thread (the file operations, [`Op::is_file_op`],
///   on epoll, which cannot wait on regular files; an opcode an old kernel
///   lacks): `submit` answers at once with an error of kind
///   [`io::ErrorKind::Unsupported`] that carries no OS error code, and
///   keeps nothing of the operation. The loop then does the work another
///   way (file operations: on its executor). A kernel's own `EOPNOTSUPP`
///   (with its code) is an ordinary failure of the operation.
/// - **Drop.** Dropping the driver releases every descriptor it created
///   (epoll fd, eventfd, ring fd), and must not return while the kernel may
///   still write into the memory of an operation submitted and not yet
///   completed (leak it rather than free it).
pub trait Driver {
    /// The backend's name, as `EVLOOP_BACKEND` spells it (`"mio"`, `"polling"`, `"uring"`).
    fn name(&self) -> &'static str;

    /// Starts `op` under `id`.
    ///
    /// Returns `Poll::Ready` when the operation finished immediately (the
    /// backend then keeps nothing of it), or `Poll::Pending`, after which a
    /// [`Completion`] for `id` is reported by a later [`Driver::wait`] unless
    /// [`Driver::cancel`] answers [`Cancel::Forgotten`].
    ///
    /// # Safety
    /// Every pointer in `op` must stay valid (and, for receive buffers, not be
    /// read or written by anyone else) until the completion for `id` has been
    /// returned by `wait`, or until `cancel(id)` has returned `Cancel::Forgotten`.
    /// The descriptor must stay open for the same span. `id` must not be in
    /// use by another pending operation.
    unsafe fn submit(&mut self, id: OpId, op: Op) -> Poll<io::Result<OpOutput>>;

    /// Asks the backend to abandon a pending operation (see "Cancel" in
    /// the contract above).
    fn cancel(&mut self, id: OpId) -> Cancel;

    /// The loop stops using `fd` (it is about to be closed or handed back to
    /// the user): forget any registration for it (see "Descriptors" in the
    /// contract above).
    fn release_fd(&mut self, fd: RawFd);

    /// The loop promises that, until [`release_fd`](Driver::release_fd)`(fd)`,
    /// it reads the stream socket `fd` only through [`Op::Recv`]: nobody
    /// else receives from it (no direct `recv(2)`, no other owner). The
    /// backend may then receive ahead of the operations and hand what it
    /// holds to later `Recv`s (io_uring's multishot receive into a
    /// provided-buffer ring). Returns `true` if it does so; the loop then
    /// must not read `fd` by any other means until it is released.
    /// Default: `false`, nothing changes.
    fn promise_recv_only(&mut self, fd: RawFd) -> bool {
        let _ = fd;
        false
    }

    /// Flushes submitted work, then blocks until at least one completion is
    /// available, the notifier fires, or `timeout` passes (`None`: no limit;
    /// zero: do not block). Completions are appended to `done`.
    fn wait(&mut self, timeout: Option<Duration>, done: &mut Vec<Completion>) -> io::Result<()>;

    /// A handle that wakes this driver's `wait` from any thread.
    fn notifier(&self) -> Arc<dyn Notify>;
}

impl fmt::Debug for dyn Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driver")
            .field("name", &self.name())
            .finish()
    }
}
