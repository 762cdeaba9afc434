//! `recv`: the read of evloop's stream transports, without asyncio's
//! per-read 256 KiB allocation.
//!
//! asyncio's socket transport reads with `sock.recv(max_size)`: CPython
//! allocates a `bytes` of `max_size` (256 KiB), receives into it and shrinks
//! it to what arrived. An allocation that large is above glibc's mmap
//! threshold (128 KiB until a large block is freed whole), and the shrunken
//! block is freed below it, so the threshold never adapts: every read costs
//! an `mmap`, an `mremap`, a `munmap` (with its TLB flush) and a page fault.
//! Measured on an echo server (1 KiB, 100 connections, AMD EPYC VM), those
//! three calls were three of the five syscalls per request.
//!
//! Here the read is capped just below that threshold ([`READ_CAP`]), so the
//! `bytes` comes from the heap, and the kernel writes straight into it: no
//! syscall beyond the `recv`, and no copy (a first version received into a
//! per-thread buffer and copied; the copy cost 100 KiB reads about 7%). A
//! stream with more than `READ_CAP` bytes waiting is read again on the next
//! loop iteration, as asyncio does beyond its `max_size`.

use pyo3::exceptions::PyOSError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// The largest single read: below glibc's default mmap threshold (128 KiB),
/// with room for the `bytes` header and malloc's bookkeeping.
pub const READ_CAP: usize = 128 * 1024 - 256;

/// `recv(fd, max_size) -> bytes`: one non-blocking `recv(2)` of at most
/// `min(max_size, READ_CAP)` bytes from `fd`, as `socket.recv` would return
/// it (`b""` at end of stream); an error raises `OSError` with its errno, so
/// Python picks the subclass (`BlockingIOError`, `ConnectionResetError`,
/// ...).
#[pyfunction]
pub fn recv<'py>(py: Python<'py>, fd: i32, max_size: usize) -> PyResult<Bound<'py, PyBytes>> {
    let cap = max_size.min(READ_CAP);
    if cap == 0 {
        return Ok(PyBytes::new(py, b""));
    }
    // SAFETY: a NULL source asks CPython for a `bytes` with `cap`
    // uninitialised bytes; `cap` fits in `Py_ssize_t` (it is at most
    // READ_CAP). We hold the only reference until it is returned.
    let mut obj =
        unsafe { ffi::PyBytes_FromStringAndSize(std::ptr::null(), cap as ffi::Py_ssize_t) };
    if obj.is_null() {
        return Err(PyErr::fetch(py));
    }
    // SAFETY: `obj` is a `bytes` with room for `cap` bytes, and the kernel
    // writes at most `cap` bytes there. MSG_DONTWAIT: never block the loop,
    // even on a socket left in blocking mode.
    let n = unsafe {
        libc::recv(
            fd,
            ffi::PyBytes_AsString(obj).cast(),
            cap,
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        let err = std::io::Error::last_os_error();
        // SAFETY: `obj` is our own reference, dropped once.
        unsafe { ffi::Py_DECREF(obj) };
        let errno = err.raw_os_error().unwrap_or(libc::EIO);
        // OSError(errno, strerror) becomes the subclass for that errno.
        return Err(PyOSError::new_err((
            errno,
            strip_os_suffix(&err.to_string()),
        )));
    }
    // SAFETY: `obj` is a fresh `bytes` nobody else has seen (refcount 1),
    // as `_PyBytes_Resize` requires; shrinking a heap block splits it in
    // place. On failure it frees `obj`, sets it to NULL and raises.
    if (n as usize) < cap && unsafe { ffi::_PyBytes_Resize(&mut obj, n) } != 0 {
        return Err(PyErr::fetch(py));
    }
    // SAFETY: `obj` is a new reference to a `bytes`, handed to the caller.
    Ok(unsafe { Bound::from_owned_ptr(py, obj).cast_into_unchecked() })
}

/// Rust's message for an OS error ends in " (os error N)"; Python's
/// `strerror` has no such suffix.
fn strip_os_suffix(msg: &str) -> String {
    match msg.rfind(" (os error ") {
        Some(at) => msg[..at].to_owned(),
        None => msg.to_owned(),
    }
}
