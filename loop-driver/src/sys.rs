//! The few syscall helpers both sides of the boundary use: the loop and
//! every backend turn raw return values into `io::Result` the same way.

use std::io;
use std::os::fd::RawFd;

/// A raw syscall return value: negative means failure, `errno` saying why.
pub trait SyscallReturn: Copy {
    /// `true` for a failure.
    fn failed(self) -> bool;
}

impl SyscallReturn for i32 {
    fn failed(self) -> bool {
        self < 0
    }
}

impl SyscallReturn for isize {
    fn failed(self) -> bool {
        self < 0
    }
}

impl SyscallReturn for i64 {
    fn failed(self) -> bool {
        self < 0
    }
}

/// `Err(errno)` for a failed syscall, else its return value. Retrying on
/// `EINTR` is the caller's choice.
///
/// ```
/// // SAFETY: getpid takes no argument and cannot fail.
/// let pid = loop_driver::sys::cvt(unsafe { libc::getpid() }).unwrap();
/// assert!(pid > 0);
/// ```
pub fn cvt<T: SyscallReturn>(ret: T) -> io::Result<T> {
    if ret.failed() {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// [`cvt`] for a byte count (`read`, `recv`, `send`, ... return `ssize_t`).
pub fn cvt_len(ret: libc::ssize_t) -> io::Result<usize> {
    cvt(ret).map(|n| n as usize)
}

/// `getsockopt(fd, SOL_SOCKET, option)` for an `int`-valued option.
pub fn socket_int_option(fd: RawFd, option: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid for writes of the sizes passed;
    // the kernel writes at most `len` bytes into `value`.
    cvt(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    Ok(value)
}

/// Whether `fd` is a `SOCK_STREAM` socket (`false` for anything else, or if
/// the kernel will not say). For code that treats byte streams differently
/// from datagrams (a short read drains a stream's queue; a stream may be
/// received ahead; a stream's leftover bytes may be split between reads).
pub fn is_stream_socket(fd: RawFd) -> bool {
    socket_int_option(fd, libc::SO_TYPE).is_ok_and(|ty| ty == libc::SOCK_STREAM)
}

/// Whether `fd` is a socket that keeps message boundaries (`SOCK_DGRAM`,
/// `SOCK_SEQPACKET`): one receive takes one message, and what does not fit
/// the buffer is gone. `false` for byte streams: stream sockets, pipes,
/// terminals, files (or if the kernel will not say).
pub fn is_datagram_socket(fd: RawFd) -> bool {
    socket_int_option(fd, libc::SO_TYPE)
        .is_ok_and(|ty| ty == libc::SOCK_DGRAM || ty == libc::SOCK_SEQPACKET)
}
