//! `recv`: the read of evloop's stream transports, without asyncio's
//! per-read 256 KiB allocation.
//!
//! asyncio's socket transport reads with `sock.recv(max_size)`: CPython
//! allocates a `bytes` of `max_size` (256 KiB), receives into it and shrinks
//! it to what arrived. An allocation that large is above glibc's mmap
//! threshold, and the shrunken block stays below it, so the threshold never
//! adapts: every read costs an `mmap`, an `mremap`, a `munmap` and a page
//! fault per page the kernel writes. Measured on an echo server (1 KiB, 100
//! connections, AMD EPYC VM), those three calls were three of the five
//! syscalls per request. Here the kernel writes into one buffer kept per
//! thread, and the `bytes` handed to the protocol is a copy of exactly what
//! arrived (a heap allocation of that size).

use std::cell::RefCell;

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

thread_local! {
    /// The receive buffer of this thread's transports (grown to the
    /// largest `max_size` asked for; never shrunk).
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// `recv(fd, max_size) -> bytes`: one non-blocking `recv(2)` of at most
/// `max_size` bytes from `fd`, as `socket.recv` would return it (`b""` at
/// end of stream); an error raises `OSError` with its errno, so Python
/// picks the subclass (`BlockingIOError`, `ConnectionResetError`, ...).
#[pyfunction]
pub fn recv<'py>(py: Python<'py>, fd: i32, max_size: usize) -> PyResult<Bound<'py, PyBytes>> {
    if max_size == 0 {
        return Ok(PyBytes::new(py, b""));
    }
    BUFFER.with(|cell| {
        let mut buf = cell.borrow_mut();
        if buf.len() < max_size {
            buf.resize(max_size, 0);
        }
        // SAFETY: `buf` has at least `max_size` initialised bytes, and the
        // kernel writes at most `max_size` bytes into it. MSG_DONTWAIT:
        // never block the loop, even on a socket left in blocking mode.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), max_size, libc::MSG_DONTWAIT) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            let errno = err.raw_os_error().unwrap_or(libc::EIO);
            // OSError(errno, strerror) becomes the subclass for that errno.
            return Err(PyOSError::new_err((
                errno,
                strip_os_suffix(&err.to_string()),
            )));
        }
        Ok(PyBytes::new(py, &buf[..n as usize]))
    })
}

/// Rust's message for an OS error ends in " (os error N)"; Python's
/// `strerror` has no such suffix.
fn strip_os_suffix(msg: &str) -> String {
    match msg.rfind(" (os error ") {
        Some(at) => msg[..at].to_owned(),
        None => msg.to_owned(),
    }
}
