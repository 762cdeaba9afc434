//! Owned buffers for I/O.
//!
//! Operations take their buffer by value and hand it back with the result
//! ([`DriverBufResult`]), because a completion backend (io_uring) writes into the
//! memory after the call returned: the buffer must live until the kernel is
//! done, even if the future awaiting it is dropped. Borrowed `&mut [u8]`
//! cannot promise that.

/// The result of an owned-buffer operation at the backend boundary: the
/// driver's outcome (a plain [`std::io::Error`] on failure) and the buffer.
///
/// Only backends and the loop's internals see this one. The user API's
/// owned-buffer methods return `loop_api::buf::BufResult`,
/// `(loop_api::Result<T>, B)`, whose error is the loop's one error type.
pub type DriverBufResult<T, B> = (std::io::Result<T>, B);

/// A buffer the kernel may read from while an operation runs.
///
/// # Safety
/// `stable_ptr()` must point to `bytes_init()` initialised bytes that stay at
/// the same address while the value is alive, even when the value itself is
/// moved (heap memory owned by the value, or `'static` data).
pub unsafe trait IoBuf: 'static {
    /// Start of the bytes.
    fn stable_ptr(&self) -> *const u8;
    /// Number of initialised bytes (what a write sends).
    fn bytes_init(&self) -> usize;
    /// The initialised bytes.
    fn as_slice(&self) -> &[u8] {
        // SAFETY: the trait's contract: `stable_ptr()` points to
        // `bytes_init()` initialised bytes owned by `self`.
        unsafe { std::slice::from_raw_parts(self.stable_ptr(), self.bytes_init()) }
    }
}

/// A buffer the kernel may write into while an operation runs.
///
/// # Safety
/// Besides [`IoBuf`]'s contract, `stable_mut_ptr()` must point to
/// `bytes_total()` bytes of writable memory with the same stability, and
/// `set_init(n)` may be trusted by callers only for `n <= bytes_total()`.
pub unsafe trait IoBufMut: IoBuf {
    /// Start of the writable memory.
    fn stable_mut_ptr(&mut self) -> *mut u8;
    /// Capacity: how many bytes a read may write.
    fn bytes_total(&self) -> usize;
    /// Marks the first `n` bytes as initialised (after a read wrote them).
    ///
    /// # Safety
    /// The first `n` bytes (`n <= bytes_total()`) must have been written.
    unsafe fn set_init(&mut self, n: usize);
}

// SAFETY: a Vec's heap buffer does not move when the Vec is moved, and
// `as_ptr`/`len` describe initialised bytes.
unsafe impl IoBuf for Vec<u8> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
}

// SAFETY: reads write into `[0, capacity)`, the Vec's whole allocation,
// which stays put when the Vec moves.
unsafe impl IoBufMut for Vec<u8> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
    unsafe fn set_init(&mut self, n: usize) {
        // SAFETY: the caller guarantees the first `n <= capacity` bytes were written.
        unsafe { self.set_len(n) }
    }
}

// SAFETY: a boxed slice's heap memory is stable across moves of the Box.
unsafe impl IoBuf for Box<[u8]> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
}

// SAFETY: as above; a boxed slice is fully initialised.
unsafe impl IoBufMut for Box<[u8]> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
    unsafe fn set_init(&mut self, _n: usize) {}
}

// SAFETY: 'static data never moves or goes away.
unsafe impl IoBuf for &'static [u8] {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
}

// SAFETY: 'static data never moves or goes away.
unsafe impl IoBuf for &'static str {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
}

// SAFETY: a String's heap buffer is stable across moves.
unsafe impl IoBuf for String {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
}
