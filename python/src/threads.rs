//! Threads: a key per OS thread, and the wrapper that lets the `!Send`
//! loop live inside a Python object (which any thread may touch).

use std::cell::Cell;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static KEY: Cell<u64> = const { Cell::new(0) };
}

/// A number for the calling thread, never 0, never reused.
pub fn thread_key() -> u64 {
    KEY.with(|k| {
        if k.get() == 0 {
            k.set(NEXT_KEY.fetch_add(1, Ordering::Relaxed));
        }
        k.get()
    })
}

/// Holds state that is not `Send` (loop-api's `EventLoop`: `Rc`s and
/// `RefCell`s) inside a `Send + Sync` Python object.
pub struct GilBound<T>(T);

impl<T> GilBound<T> {
    /// Wraps `value`; see the `Send`/`Sync` impls for what callers promise.
    pub fn new(value: T) -> Self {
        GilBound(value)
    }
}

impl<T> Deref for GilBound<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> std::fmt::Debug for GilBound<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GilBound(..)")
    }
}

// SAFETY: `LoopCore` (the only user) touches the wrapped state only while
// holding the GIL, and either on the thread that is running the loop or,
// while the loop is not running, on any thread: the GIL serializes those
// accesses, so no two threads ever touch the `Rc`s and `RefCell`s at once
// (the one place the loop thread lets go of the GIL, the backend wait, uses
// only the backend, and every other thread is refused while the loop runs:
// `LoopCore::check_thread`). What stays behind between accesses is
// thread-agnostic: the loop is detached (`EventLoop::detach`: nothing of it
// in any thread-local between runs), its callbacks hold only `Py` objects,
// and the drivers are plain descriptors (the io_uring ring is built without
// SINGLE_ISSUER and DEFER_TASKRUN, which would tie it to its creator).
unsafe impl<T> Send for GilBound<T> {}
// SAFETY: as for `Send`: every access holds the GIL and follows the rule above.
unsafe impl<T> Sync for GilBound<T> {}
