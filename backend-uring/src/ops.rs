//! Each [`Op`] as one io_uring submission entry, and the memory the driver
//! owns for it until its final completion.
//!
//! The caller's buffers are kept alive by the loop (the `submit` contract);
//! what the kernel needs besides them — the peer-address storage of an
//! accept, the destination of a connect, the `msghdr` + `iovec` + address of
//! a `recvmsg`/`sendmsg` — is allocated here, in a [`Stable`] box whose
//! address never changes, and travels with the operation in a [`Holding`]
//! that the driver drops only when the final CQE has been reaped.

use std::io;
use std::mem;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::ptr::{self, NonNull};

use io_uring::{opcode, squeue, types::Fd};
use loop_driver::{Op, OpOutput};
use socket2::{SockAddr, SockAddrStorage};

/// `offset` for Read/Write meaning "the file's current position" (what
/// `read(2)`/`write(2)` do; the only choice for pipes and sockets).
const CURRENT_POSITION: u64 = u64::MAX;

/// Heap memory at a fixed address, freed on drop.
///
/// Unlike a `Box`, moving a `Stable` asserts nothing about exclusive access
/// to the pointee, so the kernel may keep a pointer into it (inside an SQE)
/// while the `Stable` itself moves around the driver's tables.
pub(crate) struct Stable<T>(NonNull<T>);

impl<T> Stable<T> {
    pub(crate) fn new(value: T) -> Self {
        Stable(NonNull::from(Box::leak(Box::new(value))))
    }

    /// The fixed address of the value.
    pub(crate) fn as_ptr(&self) -> *mut T {
        self.0.as_ptr()
    }

    /// Moves the value out and frees the allocation.
    ///
    /// # Safety
    /// The kernel must no longer reference the memory (its final CQE was reaped).
    pub(crate) unsafe fn into_inner(self) -> T {
        let this = mem::ManuallyDrop::new(self);
        // SAFETY: the pointer came from `Box::leak` in `new` and is freed only
        // here or in `drop`, which `ManuallyDrop` keeps from running; the
        // caller guarantees the kernel is done with it.
        *unsafe { Box::from_raw(this.0.as_ptr()) }
    }
}

impl<T> Drop for Stable<T> {
    fn drop(&mut self) {
        // SAFETY: the pointer came from `Box::leak` in `new` and this is its
        // only release. The driver drops a `Stable` only after the final CQE
        // of its operation (or never: it leaks it when the kernel may still
        // write there, see the driver's Drop).
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

/// Where an accept stores the peer's address.
pub(crate) struct AcceptBuf {
    storage: SockAddrStorage,
    len: libc::socklen_t,
}

/// `recvmsg` arguments: one iovec over the caller's buffer, room for the sender.
pub(crate) struct RecvMsgBuf {
    hdr: libc::msghdr,
    iov: libc::iovec,
    name: SockAddrStorage,
}

/// `sendmsg` arguments: one iovec over the caller's buffer, the destination.
pub(crate) struct SendMsgBuf {
    hdr: libc::msghdr,
    iov: libc::iovec,
    addr: SockAddr,
}

/// What the driver keeps for an operation in flight, and how its CQE result reads.
pub(crate) enum Holding {
    /// Recv, Send, Read, Write, Close: the result is a byte count (or 0).
    Count,
    /// PollAdd: the result is the `revents` mask; reported as 0.
    Ready,
    /// Accept: the result is the new descriptor; the peer is in the buffer.
    Accept(Stable<AcceptBuf>),
    /// Connect: the destination must stay readable until the CQE.
    Connect {
        /// Only kept alive, never read back.
        _dest: Stable<SockAddr>,
    },
    /// RecvMsg standing for RecvFrom: the sender is in the buffer.
    RecvFrom(Stable<RecvMsgBuf>),
    /// SendMsg standing for SendTo.
    SendTo {
        /// Only kept alive, never read back.
        _msg: Stable<SendMsgBuf>,
    },
    /// WaitId standing for ChildExit: the reaped child's `siginfo_t`.
    WaitId(Stable<libc::siginfo_t>),
    /// OpenAt: the result is the new descriptor, owned from the CQE on.
    Opened,
}

impl Holding {
    /// Turns the CQE's `res` into the operation's output and frees the held memory.
    ///
    /// # Safety
    /// `res` must come from the operation's final CQE: the kernel no longer
    /// references the held memory.
    pub(crate) unsafe fn finish(self, res: i32) -> io::Result<OpOutput> {
        if res < 0 {
            // The held memory is dropped here, the kernel being done with it.
            return Err(io::Error::from_raw_os_error(-res));
        }
        let res = res as usize;
        Ok(match self {
            Holding::Count | Holding::Connect { .. } | Holding::SendTo { .. } => OpOutput::new(res),
            Holding::Ready => OpOutput::new(0),
            Holding::Opened => OpOutput {
                bytes: 0,
                // SAFETY: a successful openat's result is a new descriptor
                // that nobody else owns.
                accepted: Some(unsafe { OwnedFd::from_raw_fd(res as RawFd) }),
                addr: None,
                child_status: None,
            },
            Holding::Accept(buf) => {
                // SAFETY: final CQE reaped (the caller's contract).
                let AcceptBuf { storage, len } = unsafe { buf.into_inner() };
                OpOutput {
                    bytes: 0,
                    // SAFETY: a successful accept's result is a new
                    // descriptor that nobody else owns.
                    accepted: Some(unsafe { OwnedFd::from_raw_fd(res as RawFd) }),
                    // SAFETY: the kernel wrote a socket address of `len`
                    // bytes (at most the storage's size, which it was given)
                    // into the zero-initialised storage.
                    addr: Some(Box::new(unsafe { SockAddr::new(storage, len) })),
                    child_status: None,
                }
            }
            Holding::RecvFrom(buf) => {
                // SAFETY: final CQE reaped (the caller's contract).
                let RecvMsgBuf { hdr, name, .. } = unsafe { buf.into_inner() };
                OpOutput {
                    bytes: res,
                    accepted: None,
                    // SAFETY: as for Accept: `msg_namelen` is what the kernel
                    // wrote into the zeroed storage, bounded by its size.
                    addr: Some(Box::new(unsafe { SockAddr::new(name, hdr.msg_namelen) })),
                    child_status: None,
                }
            }
            Holding::WaitId(info) => {
                // SAFETY: final CQE reaped (the caller's contract).
                let info = unsafe { info.into_inner() };
                OpOutput {
                    bytes: 0,
                    accepted: None,
                    child_status: wait_status(&info),
                    addr: None,
                }
            }
        })
    }
}

/// The raw `waitpid` status encoded by what `waitid` stored in `info`, or
/// `None` if it names no child (`si_pid` 0: nothing was reaped).
fn wait_status(info: &libc::siginfo_t) -> Option<libc::c_int> {
    // SAFETY: `info` was zero-initialised and then filled by the kernel's
    // waitid as a SIGCHLD siginfo, whose union holds `si_pid`/`si_status`.
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if pid == 0 {
        return None;
    }
    Some(match info.si_code {
        libc::CLD_EXITED => (status & 0xff) << 8,
        libc::CLD_KILLED => status & 0x7f,
        libc::CLD_DUMPED => (status & 0x7f) | 0x80,
        // WEXITED reports only the three above; anything else is not an exit.
        _ => return None,
    })
}

/// Clamps a buffer length to what one SQE can carry (the kernel caps a
/// single transfer below this anyway; a short count is a valid result).
fn sqe_len(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// Builds the submission entry for `op` (user data not yet set) and the
/// memory the driver must hold until its final completion.
///
/// `Op::Close` is prepared as the Close opcode; a driver on a kernel without
/// it closes synchronously instead of calling this. `Op::ChildExit` becomes a
/// WaitId (`P_PIDFD`, `WEXITED`) that reaps the child when `waitid` is set
/// (the kernel has the opcode), else a PollAdd on the pidfd.
///
/// # Safety
/// The pointers in `op` must satisfy [`loop_driver::Driver::submit`]'s
/// contract: valid for the operation's whole life.
pub(crate) unsafe fn prepare(op: Op, waitid: bool) -> io::Result<(squeue::Entry, Holding)> {
    Ok(match op {
        Op::Accept { fd } => {
            let buf = Stable::new(AcceptBuf {
                storage: SockAddrStorage::zeroed(),
                len: mem::size_of::<SockAddrStorage>() as libc::socklen_t,
            });
            let p = buf.as_ptr();
            // SAFETY: `p` points to a live allocation owned by `buf`; only
            // field addresses are taken, nothing is read or referenced.
            let (addr, len) = unsafe {
                (
                    ptr::addr_of_mut!((*p).storage).cast::<libc::sockaddr>(),
                    ptr::addr_of_mut!((*p).len),
                )
            };
            let entry = opcode::Accept::new(Fd(fd), addr, len)
                .flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
                .build();
            (entry, Holding::Accept(buf))
        }
        Op::Connect { fd, addr } => {
            let addr = Stable::new(*addr);
            // SAFETY: `addr` owns a live, initialised SockAddr; the shared
            // reference lives only for this call to read its pointer and length.
            let (ptr, len) = unsafe { ((*addr.as_ptr()).as_ptr(), (*addr.as_ptr()).len()) };
            let entry = opcode::Connect::new(Fd(fd), ptr.cast(), len).build();
            (entry, Holding::Connect { _dest: addr })
        }
        Op::Recv { fd, buf, len } => (
            opcode::Recv::new(Fd(fd), buf, sqe_len(len)).build(),
            Holding::Count,
        ),
        Op::Send { fd, buf, len } => (
            opcode::Send::new(Fd(fd), buf, sqe_len(len))
                .flags(libc::MSG_NOSIGNAL)
                .build(),
            Holding::Count,
        ),
        Op::Read { fd, buf, len } => (
            opcode::Read::new(Fd(fd), buf, sqe_len(len))
                .offset(CURRENT_POSITION)
                .build(),
            Holding::Count,
        ),
        Op::Write { fd, buf, len } => (
            opcode::Write::new(Fd(fd), buf, sqe_len(len))
                .offset(CURRENT_POSITION)
                .build(),
            Holding::Count,
        ),
        Op::RecvFrom { fd, buf, len } => {
            // SAFETY: an all-zero msghdr/iovec is a valid (empty) value of
            // these plain C structs.
            let (hdr, iov) =
                unsafe { (mem::zeroed::<libc::msghdr>(), mem::zeroed::<libc::iovec>()) };
            let msg = Stable::new(RecvMsgBuf {
                hdr,
                iov,
                name: SockAddrStorage::zeroed(),
            });
            let p = msg.as_ptr();
            // SAFETY: `p` points to a live allocation owned by `msg`, nobody
            // else references it yet; the self-references stay valid because
            // the allocation never moves.
            unsafe {
                (*p).iov.iov_base = buf.cast();
                (*p).iov.iov_len = len;
                (*p).hdr.msg_iov = ptr::addr_of_mut!((*p).iov);
                (*p).hdr.msg_iovlen = 1;
                (*p).hdr.msg_name = ptr::addr_of_mut!((*p).name).cast();
                (*p).hdr.msg_namelen = mem::size_of::<SockAddrStorage>() as libc::socklen_t;
            }
            // SAFETY: as above, only the field's address is taken.
            let hdr = unsafe { ptr::addr_of_mut!((*p).hdr) };
            let entry = opcode::RecvMsg::new(Fd(fd), hdr).build();
            (entry, Holding::RecvFrom(msg))
        }
        Op::SendTo { fd, buf, len, addr } => {
            // SAFETY: as for RecvFrom.
            let (hdr, iov) =
                unsafe { (mem::zeroed::<libc::msghdr>(), mem::zeroed::<libc::iovec>()) };
            let msg = Stable::new(SendMsgBuf {
                hdr,
                iov,
                addr: *addr,
            });
            let p = msg.as_ptr();
            // SAFETY: as for RecvFrom; the kernel only reads through these.
            unsafe {
                (*p).iov.iov_base = buf.cast_mut().cast();
                (*p).iov.iov_len = len;
                (*p).hdr.msg_iov = ptr::addr_of_mut!((*p).iov);
                (*p).hdr.msg_iovlen = 1;
                (*p).hdr.msg_name = (*p).addr.as_ptr().cast_mut().cast();
                (*p).hdr.msg_namelen = (*p).addr.len();
            }
            // SAFETY: as above, only the field's address is taken.
            let hdr = unsafe { ptr::addr_of!((*p).hdr) };
            let entry = opcode::SendMsg::new(Fd(fd), hdr)
                .flags(libc::MSG_NOSIGNAL as u32)
                .build();
            (entry, Holding::SendTo { _msg: msg })
        }
        Op::PollReadable { fd } => (
            opcode::PollAdd::new(Fd(fd), libc::POLLIN as u32).build(),
            Holding::Ready,
        ),
        Op::PollWritable { fd } => (
            opcode::PollAdd::new(Fd(fd), libc::POLLOUT as u32).build(),
            Holding::Ready,
        ),
        Op::ChildExit { pidfd } if waitid => {
            // SAFETY: an all-zero siginfo_t is a valid value of this plain C
            // struct (and `si_pid` 0 reads as "nothing reaped").
            let info = Stable::new(unsafe { mem::zeroed::<libc::siginfo_t>() });
            let entry = opcode::WaitId::new(libc::P_PIDFD, pidfd as libc::id_t, libc::WEXITED)
                .infop(info.as_ptr())
                .build();
            (entry, Holding::WaitId(info))
        }
        Op::ChildExit { pidfd } => (
            opcode::PollAdd::new(Fd(pidfd), libc::POLLIN as u32).build(),
            Holding::Ready,
        ),
        Op::Close { fd } => (opcode::Close::new(Fd(fd)).build(), Holding::Count),
        // The file operations (the driver answered `Unsupported` already
        // for an opcode the kernel lacks). Paths and the statx buffer are
        // the loop's memory, valid until the final CQE like any buffer.
        Op::OpenAt {
            dirfd,
            path,
            flags,
            mode,
        } => (
            opcode::OpenAt::new(Fd(dirfd), path)
                .flags(flags | libc::O_CLOEXEC)
                .mode(mode)
                .build(),
            Holding::Opened,
        ),
        Op::ReadAt {
            fd,
            buf,
            len,
            offset,
        } => (
            opcode::Read::new(Fd(fd), buf, sqe_len(len))
                .offset(offset)
                .build(),
            Holding::Count,
        ),
        Op::WriteAt {
            fd,
            buf,
            len,
            offset,
        } => (
            opcode::Write::new(Fd(fd), buf, sqe_len(len))
                .offset(offset)
                .build(),
            Holding::Count,
        ),
        Op::Statx {
            dirfd,
            path,
            flags,
            mask,
            buf,
        } => (
            opcode::Statx::new(Fd(dirfd), path, buf.cast())
                .flags(flags)
                .mask(mask)
                .build(),
            Holding::Count,
        ),
        Op::Fsync { fd, datasync } => {
            let flags = match datasync {
                true => io_uring::types::FsyncFlags::DATASYNC,
                false => io_uring::types::FsyncFlags::empty(),
            };
            (
                opcode::Fsync::new(Fd(fd)).flags(flags).build(),
                Holding::Count,
            )
        }
        Op::RenameAt {
            olddirfd,
            oldpath,
            newdirfd,
            newpath,
        } => (
            opcode::RenameAt::new(Fd(olddirfd), oldpath, Fd(newdirfd), newpath).build(),
            Holding::Count,
        ),
        Op::UnlinkAt { dirfd, path, dir } => (
            opcode::UnlinkAt::new(Fd(dirfd), path)
                .flags(if dir { libc::AT_REMOVEDIR } else { 0 })
                .build(),
            Holding::Count,
        ),
        Op::MkdirAt { dirfd, path, mode } => (
            opcode::MkDirAt::new(Fd(dirfd), path).mode(mode).build(),
            Holding::Count,
        ),
        other => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("backend-uring does not know the operation {other:?}"),
            ))
        }
    })
}
