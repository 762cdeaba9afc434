//! `LoopCore`: the ready queue, timers, poll and readiness callbacks of an
//! asyncio loop, on loop-api's `EventLoop`.
//!
//! Handles: outside debug mode `call_soon`, `_call_soon`, `call_at` and
//! `call_later` (in Rust, with no Python frame of their own) make the
//! native handles of `handle.rs` and queue a closure that runs one unless
//! it was cancelled; debug mode makes asyncio's own `Handle` and
//! `TimerHandle` (through `_loop.py`), run the same way through their
//! `_run()`. A timer is a loop-api timer, kept by the handle's address (an
//! unhashed map) until it fires or the handle is cancelled, so a cancelled
//! timer leaves the Rust heap as loop-api purges cancelled ones; readers
//! and writers are loop-api watchers whose closures run the current reader
//! or writer `Handle` (asyncio's). Inside `run_forever`, `_run_once` keeps
//! iterating until `stop()`.
//!
//! A callback that raises `BaseException` (what `Handle._run` lets through:
//! `KeyboardInterrupt`, `SystemExit`) ends the batch after itself
//! (`EventLoop::abandon_batch`) and is re-raised from `_run_once`, so it
//! stops the loop and propagates out of `run_forever`; the callbacks not yet
//! run stay queued and the loop stays usable.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use loop_api::{EmbeddedRun, EventLoop, LoopHandle, TimerHandle, WaitHook};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyFloat, PyTuple};

use crate::backend::{new_loop, to_py};
use crate::clock::Clock;
use crate::handle::{Handle, TimerHandle as NativeTimer};
use crate::threads::{thread_key, GilBound};

/// What the loop thread keeps (never touched by another thread while the
/// loop runs; see `GilBound`).
struct Inner {
    lp: EventLoop,
    /// The run in progress (set while asyncio's `_thread_id` is set).
    run: RefCell<Option<EmbeddedRun>>,
    /// The Rust timer of each scheduled Python `TimerHandle`, by its identity.
    timers: RefCell<HashMap<usize, TimerHandle, ByAddress>>,
    /// A `BaseException` a callback raised, re-raised by `_run_once`.
    pending: RefCell<Option<PyErr>>,
    /// The Python loop, while `_run_once` runs (for debug-mode callbacks and
    /// removing a cancelled reader as asyncio does).
    py_loop: RefCell<Option<Py<PyAny>>>,
    debug: Cell<bool>,
}

thread_local! {
    /// The core whose `_run_once` is running on this thread: what the
    /// callbacks (which hold only `Send` Python objects) report to.
    static CURRENT: RefCell<Option<Rc<Inner>>> = const { RefCell::new(None) };
}

static HANDLE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Hashes a Python object's address as is: the keys of `Inner::timers` are
/// live objects' addresses, distinct and spread by the allocator, so
/// SipHash would buy nothing and costs a good part of a timer's schedule
/// and cancel.
#[derive(Debug, Default, Clone, Copy)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `usize` keys are hashed (`write_usize`); this is the
        // fallback the trait requires.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_usize(&mut self, addr: usize) {
        // Objects are 16-byte aligned: drop the bits that never vary, and
        // fold the high half in (hashbrown takes its tag from the top bits).
        let a = (addr >> 4) as u64;
        self.0 = a ^ a.rotate_left(32).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type ByAddress = BuildHasherDefault<AddressHasher>;

const WRONG_THREAD: &str =
    "Non-thread-safe operation invoked on an event loop other than the current one";

/// The native base class of `evloop.EventLoop` (asyncio's Python code runs
/// on top of it; see the module docs).
#[pyclass(subclass, frozen, module = "evloop._core")]
pub struct LoopCore {
    inner: GilBound<Rc<Inner>>,
    /// For other threads: `call_soon` from them while the loop runs.
    handle: LoopHandle,
    backend: &'static str,
    clock: Clock,
    /// `thread_key()` of the thread running the loop; 0 when not running.
    running_thread: AtomicU64,
    /// asyncio's `_thread_id` (0: `None`).
    thread_ident: AtomicU64,
    stopping: AtomicBool,
    /// A copy of `Inner::debug` that any thread may read: while it is
    /// false, `debug_now()` needs no thread check.
    debug_set: AtomicBool,
    /// asyncio's `_closed` (set by `close()` before the Rust loop closes).
    py_closed: AtomicBool,
    forked: AtomicBool,
    closed: AtomicBool,
}

impl std::fmt::Debug for LoopCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopCore")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// Releases the GIL for the backend wait, and takes it back on drop.
struct Released(*mut ffi::PyThreadState);

impl Drop for Released {
    fn drop(&mut self) {
        // SAFETY: `self.0` came from `PyEval_SaveThread` on this thread and
        // is restored exactly once.
        unsafe { ffi::PyEval_RestoreThread(self.0) };
    }
}

/// The wait hook: lets other Python threads run while the backend waits.
fn release_gil_around(wait: &mut dyn FnMut()) {
    // SAFETY: the hook runs only inside `_run_once`, on the thread that
    // holds the GIL; the wait touches no Python object, and `Released`
    // takes the GIL back even if the wait unwinds.
    let _released = Released(unsafe { ffi::PyEval_SaveThread() });
    wait();
}

fn handle_class(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    HANDLE.import(py, "asyncio.events", "Handle")
}

/// The Python loop when debug mode is on (its `_evloop_run_debug` times
/// each step), else `None`: read from the core whose `_run_once` runs.
fn debug_loop(py: Python<'_>) -> Option<Py<PyAny>> {
    CURRENT.with(|c| {
        c.borrow().as_ref().and_then(|inner| {
            if inner.debug.get() {
                inner.py_loop.borrow().as_ref().map(|l| l.clone_ref(py))
            } else {
                None
            }
        })
    })
}

/// Runs an asyncio handle as the loop's step: skipped if cancelled; in debug
/// mode through the Python loop's timing wrapper; a `BaseException` is kept
/// for `_run_once` and ends the batch.
fn run_handle(handle: &Py<PyAny>) {
    Python::attach(|py| {
        let h = handle.bind(py);
        match h
            .getattr(intern!(py, "_cancelled"))
            .and_then(|c| c.is_truthy())
        {
            Ok(false) => {}
            Ok(true) => return,
            Err(e) => return report(e),
        }
        let result = match debug_loop(py) {
            Some(lp) => lp
                .bind(py)
                .call_method1(intern!(py, "_evloop_run_debug"), (h,)),
            None => h.call_method0(intern!(py, "_run")),
        };
        if let Err(e) = result {
            report(e);
        }
    })
}

/// Runs a native handle as the loop's step: skipped if cancelled; in debug
/// mode through the Python loop's timing wrapper; else in Rust.
fn run_native(h: &Bound<'_, Handle>) {
    if h.get().is_cancelled() {
        return;
    }
    let py = h.py();
    let result = match debug_loop(py) {
        Some(lp) => lp
            .bind(py)
            .call_method1(intern!(py, "_evloop_run_debug"), (h,))
            .map(drop),
        None => Handle::run(h),
    };
    if let Err(e) = result {
        report(e);
    }
}

/// What a Rust timer holds: a native `TimerHandle`, or asyncio's (debug mode).
enum Timer {
    Native(Py<NativeTimer>),
    Asyncio(Py<PyAny>),
}

/// A callback raised past `Handle._run`: keep the first such exception for
/// `_run_once` and end the batch.
fn report(e: PyErr) {
    CURRENT.with(|c| {
        if let Some(inner) = c.borrow().as_ref() {
            let mut pending = inner.pending.borrow_mut();
            if pending.is_none() {
                *pending = Some(e);
            }
            inner.lp.abandon_batch();
        }
    })
}

/// Clears `CURRENT` and the Python loop reference when `_run_once` ends.
struct CurrentGuard(Rc<Inner>);

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        self.0.py_loop.borrow_mut().take();
        let _ = CURRENT.try_with(|c| c.borrow_mut().take());
    }
}

impl LoopCore {
    /// Refuses a non-thread-safe call: after `fork()`, or from a thread
    /// other than the one running the loop.
    fn check_thread(&self) -> PyResult<()> {
        self.check_fork()?;
        let running = self.running_thread.load(Ordering::Acquire);
        if running != 0 && running != thread_key() {
            return Err(PyRuntimeError::new_err(WRONG_THREAD));
        }
        Ok(())
    }

    fn check_fork(&self) -> PyResult<()> {
        if self.forked.load(Ordering::Acquire) {
            return Err(PyRuntimeError::new_err(
                "this evloop event loop was created in the parent process and \
                 cannot be used after fork(); create a new loop in the child",
            ));
        }
        Ok(())
    }

    fn check_open(&self) -> PyResult<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(PyRuntimeError::new_err("Event loop is closed"));
        }
        Ok(())
    }

    fn on_loop_thread(&self) -> bool {
        let running = self.running_thread.load(Ordering::Acquire);
        running == 0 || running == thread_key()
    }

    /// asyncio's `get_debug()` as the loop thread sees it.
    pub(crate) fn debug_now(&self) -> bool {
        // The atomic copy first: debug mode is rare, and the thread check
        // costs a thread-local lookup; then the thread, since another thread
        // may not touch `inner` while the loop runs (see `GilBound`).
        self.debug_set.load(Ordering::Relaxed) && self.on_loop_thread() && self.inner.debug.get()
    }

    /// A native `TimerHandle` of this loop is being cancelled: drop its Rust
    /// timer (asyncio's `_timer_handle_cancelled`).
    pub(crate) fn native_timer_cancelled(&self, timer: &Bound<'_, NativeTimer>) -> PyResult<()> {
        if self.drop_timer(timer.as_any()) {
            timer.get().set_scheduled(false);
        }
        Ok(())
    }

    /// Cancels and forgets the Rust timer of the cancelled handle `timer`;
    /// whether there was one. Only on the loop thread (and not in a forked
    /// child): elsewhere the timer stays on the heap, and does nothing when
    /// it fires because its handle is cancelled.
    fn drop_timer(&self, timer: &Bound<'_, PyAny>) -> bool {
        if !self.on_loop_thread() || self.forked.load(Ordering::Acquire) {
            return false;
        }
        let key = timer.as_ptr() as usize;
        let rust = self.inner.timers.borrow_mut().remove(&key);
        rust.map(|rust| rust.cancel()).is_some()
    }

    /// Queues a native handle to run on the loop (its thread, or any thread
    /// while it does not run).
    fn push_native(&self, handle: Py<Handle>) -> PyResult<()> {
        self.check_fork()?;
        if self.on_loop_thread() {
            self.inner
                .lp
                .call_soon(move || Python::attach(|py| run_native(handle.bind(py))))
                .map(drop)
                .map_err(to_py)
        } else {
            self.handle
                .call_soon_threadsafe(move || Python::attach(|py| run_native(handle.bind(py))))
                .map_err(to_py)
        }
    }

    /// A native `Handle` for `callback(*args)` in `context`, queued.
    fn queue_native(
        slf: &Bound<'_, Self>,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyAny>,
        context: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let h = Bound::new(
            slf.py(),
            Handle::create(callback, args, slf.as_any(), context)?,
        )?;
        slf.get().push_native(h.clone().unbind())?;
        Ok(h.into_any().unbind())
    }

    /// Queues `handle` to run on the loop (its thread, or any thread while
    /// it does not run).
    fn push_handle(&self, handle: Py<PyAny>) -> PyResult<()> {
        self.check_fork()?;
        if self.on_loop_thread() {
            self.inner
                .lp
                .call_soon(move || run_handle(&handle))
                .map(drop)
                .map_err(to_py)
        } else {
            // The loop runs on another thread: the thread-safe path joins the
            // same FIFO when the loop takes it in, and wakes the loop.
            self.handle
                .call_soon_threadsafe(move || run_handle(&handle))
                .map_err(to_py)
        }
    }

    fn watch(&self, fd: i32, write: bool, handle: Py<PyAny>) -> PyResult<()> {
        self.check_thread()?;
        let cb = move || {
            Python::attach(|py| {
                let cancelled = handle
                    .bind(py)
                    .getattr(intern!(py, "_cancelled"))
                    .and_then(|c| c.is_truthy())
                    .unwrap_or(false);
                if cancelled {
                    // asyncio removes a reader or writer whose handle was cancelled.
                    let lp = CURRENT.with(|c| {
                        c.borrow()
                            .as_ref()
                            .and_then(|i| i.py_loop.borrow().as_ref().map(|l| l.clone_ref(py)))
                    });
                    if let Some(lp) = lp {
                        let name = if write {
                            "_remove_writer"
                        } else {
                            "_remove_reader"
                        };
                        if let Err(e) = lp.bind(py).call_method1(name, (fd,)) {
                            report(e);
                        }
                    }
                    return;
                }
                run_handle(&handle);
            })
        };
        let r = if write {
            self.inner.lp.add_writer(fd, cb)
        } else {
            self.inner.lp.add_reader(fd, cb)
        };
        r.map_err(to_py)
    }

    /// `call_at` once `when` is checked (`at` is its value as a float).
    fn schedule(
        slf: &Bound<'_, Self>,
        when: &Bound<'_, PyAny>,
        at: f64,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        context: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let this = slf.get();
        this.check_fork()?;
        if this.py_closed.load(Ordering::Acquire) {
            return Err(PyRuntimeError::new_err("Event loop is closed"));
        }
        if this.on_loop_thread() && this.inner.debug.get() {
            return Ok(slf
                .call_method1(
                    intern!(py, "_evloop_call_at_debug"),
                    (when, callback, args, context),
                )?
                .unbind());
        }
        let init = NativeTimer::create(when, callback, args, slf.as_any(), context)?;
        let timer = Bound::new(py, init)?;
        this.add_timer(Timer::Native(timer.clone().unbind()), at)?;
        timer.get().set_scheduled(true);
        Ok(timer.into_any().unbind())
    }

    /// Puts `timer` (a `TimerHandle` due at `when`) on a Rust timer.
    fn add_timer(&self, timer: Timer, when: f64) -> PyResult<()> {
        self.check_thread()?;
        self.check_open()?;
        let at = self
            .clock
            .instant(when)
            .map_err(|_| PyValueError::new_err("timer deadline is NaN"))?;
        let key = match &timer {
            Timer::Native(t) => t.as_ptr() as usize,
            Timer::Asyncio(t) => t.as_ptr() as usize,
        };
        let fire = move || {
            CURRENT.with(|c| {
                if let Some(inner) = c.borrow().as_ref() {
                    inner.timers.borrow_mut().remove(&key);
                }
            });
            match &timer {
                Timer::Native(t) => {
                    t.get().set_scheduled(false);
                    Python::attach(|py| run_native(t.bind(py).as_super()));
                }
                Timer::Asyncio(t) => {
                    Python::attach(|py| {
                        if let Err(e) = t.bind(py).setattr(intern!(py, "_scheduled"), false) {
                            report(e);
                        }
                    });
                    run_handle(t);
                }
            }
        };
        let rust = match at {
            Some(at) => self.inner.lp.call_at(at, fire),
            None => self.inner.lp.call_later(Duration::MAX, fire),
        }
        .map_err(to_py)?;
        if let Some(old) = self.inner.timers.borrow_mut().insert(key, rust) {
            old.cancel();
        }
        Ok(())
    }

    fn close_rust(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let _ = self.inner.lp.close();
        let timers = std::mem::take(&mut *self.inner.timers.borrow_mut());
        drop(timers);
        self.inner.pending.borrow_mut().take();
    }
}

#[pymethods]
impl LoopCore {
    #[new]
    #[pyo3(signature = (*_args, backend = None, **_kwargs))]
    fn new(
        _args: &Bound<'_, PyTuple>,
        backend: Option<&str>,
        _kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let lp = new_loop(backend)?;
        lp.detach();
        lp.set_wait_hook(Some(Rc::new(release_gil_around) as WaitHook));
        let handle = lp.handle();
        let backend = lp.backend_name();
        Ok(LoopCore {
            inner: GilBound::new(Rc::new(Inner {
                lp,
                run: RefCell::new(None),
                timers: RefCell::new(HashMap::default()),
                pending: RefCell::new(None),
                py_loop: RefCell::new(None),
                debug: Cell::new(false),
            })),
            handle,
            backend,
            clock: Clock::new(),
            running_thread: AtomicU64::new(0),
            thread_ident: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            debug_set: AtomicBool::new(false),
            py_closed: AtomicBool::new(false),
            forked: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        })
    }

    /// The backend this loop runs on: `"mio"`, `"polling"` or `"uring"`.
    fn backend_name(&self) -> &'static str {
        self.backend
    }

    /// The loop's clock (CLOCK_MONOTONIC seconds, as `time.monotonic()`).
    fn time(&self) -> f64 {
        self.clock.now()
    }

    /// asyncio's stop flag: set, the next poll does not block.
    #[getter(_stopping)]
    fn get_stopping_attr(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    #[setter(_stopping)]
    fn set_stopping_attr(&self, value: bool) {
        self.stopping.store(value, Ordering::Release);
    }

    /// asyncio's closed flag, kept here so `call_at` checks it in Rust.
    #[getter(_closed)]
    fn get_closed_attr(&self) -> bool {
        self.py_closed.load(Ordering::Acquire)
    }

    #[setter(_closed)]
    fn set_closed_attr(&self, value: bool) {
        self.py_closed.store(value, Ordering::Release);
    }

    /// asyncio's debug flag, mirrored for the callbacks.
    #[getter(_debug)]
    fn get_debug_attr(&self) -> bool {
        if self.on_loop_thread() {
            self.inner.debug.get()
        } else {
            false
        }
    }

    #[setter(_debug)]
    fn set_debug_attr(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let on = value.is_truthy()?;
        if self.on_loop_thread() {
            self.inner.debug.set(on);
            self.debug_set.store(on, Ordering::Relaxed);
            Ok(())
        } else {
            Err(PyRuntimeError::new_err(WRONG_THREAD))
        }
    }

    /// asyncio's `_thread_id`: set by `run_forever` for the duration of a
    /// run. Setting it starts the Rust run on this thread; `None` ends it.
    #[getter(_thread_id)]
    fn get_thread_id_attr(&self) -> Option<u64> {
        match self.thread_ident.load(Ordering::Acquire) {
            0 => None,
            id => Some(id),
        }
    }

    #[setter(_thread_id)]
    fn set_thread_id_attr(&self, value: Option<u64>) -> PyResult<()> {
        match value {
            Some(id) => {
                self.check_thread()?;
                self.check_open()?;
                let mut run =
                    self.inner.run.try_borrow_mut().map_err(|_| {
                        PyRuntimeError::new_err("This event loop is already running")
                    })?;
                if run.is_none() {
                    *run = Some(self.inner.lp.enter_embedded().map_err(to_py)?);
                }
                self.running_thread.store(thread_key(), Ordering::Release);
                self.thread_ident.store(id, Ordering::Release);
            }
            None => {
                if self.thread_ident.load(Ordering::Acquire) == 0 {
                    return Ok(());
                }
                self.check_thread()?;
                let run = self
                    .inner
                    .run
                    .try_borrow_mut()
                    .map_err(|_| PyRuntimeError::new_err("cannot end a run from inside it"))?
                    .take();
                drop(run);
                self.running_thread.store(0, Ordering::Release);
                self.thread_ident.store(0, Ordering::Release);
            }
        }
        Ok(())
    }

    /// asyncio's `_call_soon`: a `Handle` for `callback(*args)` in
    /// `context`, queued behind everything already queued.
    fn _call_soon(
        slf: &Bound<'_, Self>,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyAny>,
        context: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let this = slf.get();
        if !this.debug_now() {
            return Self::queue_native(slf, callback, args, Some(context));
        }
        let handle = handle_class(py)?.call1((callback, args, slf, context))?;
        {
            let tb = handle.getattr("_source_traceback")?;
            if tb.is_truthy()? {
                tb.del_item(-1)?;
            }
        }
        let out = handle.clone().unbind();
        this.push_handle(handle.unbind())?;
        Ok(out)
    }

    /// asyncio's `call_soon`, in Rust: a `Handle` for `callback(*args)` in
    /// `context` (the current one's copy by default), queued behind
    /// everything already queued. In debug mode it runs asyncio's version
    /// (`_evloop_call_soon_debug`: thread and callback checks, the handle's
    /// source traceback).
    #[pyo3(signature = (callback, *args, context = None))]
    fn call_soon(
        slf: &Bound<'_, Self>,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        context: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let this = slf.get();
        if this.debug_now() {
            return Ok(slf
                .call_method1(
                    intern!(py, "_evloop_call_soon_debug"),
                    (callback, args, context),
                )?
                .unbind());
        }
        if this.py_closed.load(Ordering::Acquire) {
            return Err(PyRuntimeError::new_err("Event loop is closed"));
        }
        Self::queue_native(slf, callback, args.as_any(), context)
    }

    /// asyncio's `_add_callback`: queue a handle unless it is cancelled.
    fn _add_callback(&self, handle: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Ok(native) = handle.cast::<Handle>() {
            if native.get().is_cancelled() {
                return Ok(());
            }
            return self.push_native(native.clone().unbind());
        }
        if handle
            .getattr(intern!(handle.py(), "_cancelled"))?
            .is_truthy()?
        {
            return Ok(());
        }
        self.push_handle(handle.clone().unbind())
    }

    /// Schedules a `TimerHandle` at its `when()` (for the debug-mode
    /// `call_at`, which stays in Python). NaN is a `ValueError`; an
    /// infinite or huge deadline never fires.
    fn _core_add_timer(&self, timer: &Bound<'_, PyAny>) -> PyResult<()> {
        let when: f64 = timer.call_method0(intern!(timer.py(), "when"))?.extract()?;
        self.add_timer(Timer::Asyncio(timer.clone().unbind()), when)?;
        timer.setattr(intern!(timer.py(), "_scheduled"), true)
    }

    /// asyncio's `call_at`, in Rust: a `TimerHandle` for `callback(*args)`
    /// at `when` on the loop's clock. In debug mode it runs the Python
    /// version (`_evloop_call_at_debug`: thread and callback checks, the
    /// handle's source traceback).
    #[pyo3(signature = (when, callback, *args, context = None))]
    fn call_at(
        slf: &Bound<'_, Self>,
        when: &Bound<'_, PyAny>,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        context: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        if when.is_none() {
            return Err(PyTypeError::new_err("when cannot be None"));
        }
        let at: f64 = when.extract()?;
        Self::schedule(slf, when, at, callback, args, context)
    }

    /// asyncio's `call_later`, in Rust: `call_at(time() + delay, ...)`.
    #[pyo3(signature = (delay, callback, *args, context = None))]
    fn call_later(
        slf: &Bound<'_, Self>,
        delay: &Bound<'_, PyAny>,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        context: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        if delay.is_none() {
            return Err(PyTypeError::new_err("delay must not be None"));
        }
        let delay: f64 = delay.extract()?;
        let at = slf.get().clock.now() + delay;
        let when = PyFloat::new(slf.py(), at);
        Self::schedule(slf, when.as_any(), at, callback, args, context)
    }

    /// asyncio's `_timer_handle_cancelled`: drops the Rust timer at once.
    fn _timer_handle_cancelled(&self, timer: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Ok(native) = timer.cast::<NativeTimer>() {
            return self.native_timer_cancelled(native);
        }
        if self.drop_timer(timer) {
            timer.setattr(intern!(timer.py(), "_scheduled"), false)?;
        }
        Ok(())
    }

    /// Number of Rust timers still scheduled (for tests: none may leak).
    fn _core_timer_count(&self) -> usize {
        self.inner.timers.borrow().len()
    }

    /// Watches `fd` for reading (`write` false) or writing, running `handle`.
    fn _core_watch(&self, fd: i32, write: bool, handle: &Bound<'_, PyAny>) -> PyResult<()> {
        self.watch(fd, write, handle.clone().unbind())
    }

    /// Stops watching `fd`; whether a watcher was there.
    fn _core_unwatch(&self, fd: i32, write: bool) -> PyResult<bool> {
        self.check_thread()?;
        Ok(if write {
            self.inner.lp.remove_writer(fd)
        } else {
            self.inner.lp.remove_reader(fd)
        })
    }

    /// asyncio's `_run_once`. An iteration: poll without blocking if
    /// stopping, else until the next timer; run due timers and the batch of
    /// ready callbacks; then run Python's signal handlers. Inside
    /// `run_forever` (a run started by setting `_thread_id`) it goes on with
    /// the next iteration until `stop()` was called, so `run_forever`'s
    /// Python loop (`_run_once()`, then `if self._stopping: break`) turns
    /// once per run instead of once per iteration; called on its own it runs
    /// one iteration.
    fn _run_once(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        this.check_thread()?;
        this.check_open()?;
        let inner: Rc<Inner> = (*this.inner).clone();
        *inner.py_loop.borrow_mut() = Some(slf.clone().into_any().unbind());
        CURRENT.with(|c| *c.borrow_mut() = Some(inner.clone()));
        let _current = CurrentGuard(inner.clone());
        let run = inner
            .run
            .try_borrow()
            .map_err(|_| PyRuntimeError::new_err("This event loop is already running"))?;
        // After each iteration, what asyncio's loop checks: a callback's
        // BaseException first, then the loop's own error, then Python's
        // signal handlers.
        let settle = |result: loop_api::Result<()>| -> PyResult<()> {
            if let Some(e) = inner.pending.borrow_mut().take() {
                return Err(e);
            }
            result.map_err(to_py)?;
            py.check_signals()
        };
        match run.as_ref() {
            Some(run) => loop {
                settle(run.run_once(this.stopping.load(Ordering::Acquire)))?;
                if this.stopping.load(Ordering::Acquire) {
                    return Ok(());
                }
            },
            // Called outside run_forever: a run of one iteration.
            None => {
                drop(run);
                let one = inner.lp.enter_embedded().map_err(to_py)?;
                let result = one.run_once(this.stopping.load(Ordering::Acquire));
                drop(one);
                settle(result)
            }
        }
    }

    /// Unused: `_run_once` runs readiness callbacks itself.
    fn _process_events(&self, _event_list: &Bound<'_, PyAny>) {}

    /// Wakes the loop from another thread. `call_soon` from another thread
    /// already wakes it (its work goes through the loop's remote queue), so
    /// there is nothing left to do.
    fn _write_to_self(&self) {}

    /// Closes the Rust loop: drops its callbacks and timers, closes the backend.
    fn _core_close(&self) -> PyResult<()> {
        if self.forked.load(Ordering::Acquire) {
            return Ok(());
        }
        self.check_thread()?;
        self.close_rust();
        Ok(())
    }

    /// Marks the loop unusable in a forked child (`os.register_at_fork`).
    fn _core_mark_forked(&self) {
        self.forked.store(true, Ordering::Release);
        self.running_thread.store(0, Ordering::Release);
    }
}

impl Drop for LoopCore {
    fn drop(&mut self) {
        if self.forked.load(Ordering::Acquire) {
            // The backend's descriptors (epoll set, io_uring ring) are shared
            // with the parent: tearing them down here would cancel the
            // parent's operations. The child leaks the loop instead.
            std::mem::forget(Rc::clone(&self.inner));
            return;
        }
        // Dropped with the GIL held (Python deallocates it), not running
        // (whoever runs it holds a reference): safe on any thread.
        self.close_rust();
    }
}
