//! Native `Handle` and `TimerHandle`: what `call_soon`, `call_at` and
//! `call_later` return outside debug mode.
//!
//! A handle keeps its callback, its argument tuple (the one the `*args` call
//! already built) and its `contextvars.Context` on the Rust side; running it
//! enters the context (`PyContext_Enter`), calls the callback with the tuple
//! (`PyObject_Call`, which hands a vectorcall callable the tuple's items as
//! they are) and leaves the context, with no Python frame of its own. Errors
//! are handled as `asyncio.Handle._run` handles them: `SystemExit` and
//! `KeyboardInterrupt` propagate, any other exception goes to the loop's
//! `call_exception_handler` with asyncio's context dict.
//!
//! They are not subclasses of `asyncio.Handle` / `asyncio.TimerHandle` (a
//! native type cannot inherit from a Python class); they keep those classes'
//! methods and attributes (`cancel`, `cancelled`, `get_context`, `when`,
//! `_run`, `_repr_info`, `_callback`, `_args`, `_cancelled`, `_when`,
//! `_scheduled`, ...) and their repr, ordering, equality and hash. Debug mode
//! uses asyncio's own classes (source tracebacks, slow-callback timing).

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::exceptions::{PyKeyboardInterrupt, PySystemExit};
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::pyclass::CompareOp;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

use crate::core::LoopCore;

/// A value that only the thread holding the GIL touches (every accessor
/// takes a `Python` token), and never across a call into Python.
pub struct GilCell<T>(UnsafeCell<T>);

impl<T> GilCell<T> {
    /// Wraps `value`.
    pub fn new(value: T) -> Self {
        GilCell(UnsafeCell::new(value))
    }

    /// Puts `value` in and returns the old value (dropped by the caller,
    /// after the cell is no longer borrowed).
    pub fn replace(&self, _py: Python<'_>, value: T) -> T {
        // SAFETY: the GIL is held (the token), so no other thread is in the
        // cell; no reference into it outlives one of these calls, and none
        // calls into Python while it holds one.
        unsafe { std::mem::replace(&mut *self.0.get(), value) }
    }
}

impl<T> GilCell<Option<Py<T>>> {
    /// A new reference to the value, if any (an incref: no Python code runs).
    pub fn get(&self, py: Python<'_>) -> Option<Py<T>> {
        // SAFETY: as in `replace`: GIL held, the reference ends here, and
        // `clone_ref` only increments a reference count.
        unsafe { (*self.0.get()).as_ref().map(|v| v.clone_ref(py)) }
    }
}

impl<T> GilCell<T> {
    /// The value, for the garbage collector's traversal only.
    ///
    /// # Safety
    /// Only from `__traverse__`: the collector holds the GIL and runs no
    /// Python code of ours meanwhile, so nothing replaces the value while
    /// the reference lives.
    unsafe fn peek(&self) -> &T {
        // SAFETY: the caller's promise above.
        unsafe { &*self.0.get() }
    }
}

impl<T> std::fmt::Debug for GilCell<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GilCell(..)")
    }
}

// SAFETY: the value is reached only through the accessors above, each of
// which holds the GIL (its `Python` token) for the whole access and runs no
// Python code meanwhile; the package is built for the GIL-enabled CPython
// of each version (no free-threaded build), so the GIL serializes every access.
unsafe impl<T: Send> Sync for GilCell<T> {}

static FORMAT_CALLBACK_SOURCE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// asyncio's `format_helpers._format_callback_source(callback, args)` (with
/// `debug=` from 3.13, as `Handle` passes it there).
fn format_callback(
    py: Python<'_>,
    lp: &Bound<'_, PyAny>,
    callback: &Bound<'_, PyAny>,
    args: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    let f =
        FORMAT_CALLBACK_SOURCE.import(py, "asyncio.format_helpers", "_format_callback_source")?;
    if py.version_info() >= (3, 13) {
        let kw = PyDict::new(py);
        kw.set_item(intern!(py, "debug"), loop_debug(lp)?)?;
        Ok(f.call((callback, args), Some(&kw))?.unbind())
    } else {
        Ok(f.call1((callback, args))?.unbind())
    }
}

/// `loop.get_debug()`, read in Rust when the loop is an evloop loop.
fn loop_debug(lp: &Bound<'_, PyAny>) -> PyResult<bool> {
    match lp.cast::<LoopCore>() {
        Ok(core) => Ok(core.get().debug_now()),
        Err(_) => lp.call_method0(intern!(lp.py(), "get_debug"))?.is_truthy(),
    }
}

/// A callback scheduled by `call_soon` (asyncio's `Handle`, natively).
#[pyclass(module = "evloop._core", name = "Handle", subclass, frozen, weakref)]
pub struct Handle {
    callback: GilCell<Option<Py<PyAny>>>,
    args: GilCell<Option<Py<PyAny>>>,
    /// Always set, except after the garbage collector's `__clear__`.
    context: GilCell<Option<Py<PyAny>>>,
    /// As `context`.
    lp: GilCell<Option<Py<PyAny>>>,
    cancelled: AtomicBool,
    /// The repr kept by `cancel()` in debug mode (asyncio's `_repr`).
    repr: GilCell<Option<Py<PyAny>>>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("cancelled", &self.cancelled)
            .finish_non_exhaustive()
    }
}

impl Handle {
    /// A handle for `callback(*args)` in `context` (a copy of the current
    /// context when `None`), for `lp`.
    pub fn create(
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyAny>,
        lp: &Bound<'_, PyAny>,
        context: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let py = callback.py();
        let context = match context {
            Some(c) if !c.is_none() => c.clone().unbind(),
            _ => {
                // SAFETY: the GIL is held; `PyContext_CopyCurrent` returns a
                // new reference or NULL with an exception set.
                unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyContext_CopyCurrent())? }.unbind()
            }
        };
        Ok(Handle {
            callback: GilCell::new(Some(callback.clone().unbind())),
            args: GilCell::new(Some(args.clone().unbind())),
            context: GilCell::new(Some(context)),
            lp: GilCell::new(Some(lp.clone().unbind())),
            cancelled: AtomicBool::new(false),
            repr: GilCell::new(None),
        })
    }

    /// The loop (`None` only once the garbage collector cleared the handle).
    fn loop_obj(&self, py: Python<'_>) -> Py<PyAny> {
        self.lp.get(py).unwrap_or_else(|| py.None())
    }

    /// Whether `cancel()` was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Runs the callback in its context unless cancelled. `Err` is what
    /// `Handle._run` lets through: `SystemExit`, `KeyboardInterrupt`, or an
    /// error raised by the exception handler itself.
    pub fn run(slf: &Bound<'_, Handle>) -> PyResult<()> {
        let py = slf.py();
        let h = slf.get();
        let (Some(callback), Some(args), Some(context)) =
            (h.callback.get(py), h.args.get(py), h.context.get(py))
        else {
            return Ok(());
        };
        let args = args.into_bound(py);
        let args = match args.cast_into::<PyTuple>() {
            Ok(t) => t,
            Err(e) => PyTuple::new(
                py,
                e.into_inner().try_iter()?.collect::<PyResult<Vec<_>>>()?,
            )?,
        };
        let ctx = context.as_ptr();
        // SAFETY: the GIL is held; `ctx` is a live object owned by the
        // handle (a non-context is refused by `PyContext_Enter` with a
        // TypeError, as `Context.run` would be unavailable on it).
        if unsafe { ffi::PyContext_Enter(ctx) } < 0 {
            return h.report(slf, PyErr::fetch(py));
        }
        // SAFETY: GIL held; `callback` and `args` (a tuple) are owned
        // references kept alive across the call; the result is a new
        // reference or NULL with an exception set.
        let result = unsafe {
            Bound::from_owned_ptr_or_err(
                py,
                ffi::PyObject_Call(callback.as_ptr(), args.as_ptr(), std::ptr::null_mut()),
            )
        };
        // SAFETY: GIL held; the context was entered just above on this
        // thread and is still current (the callback cannot leave it: a
        // context left by someone else fails `PyContext_Exit`, reported).
        let exited = unsafe { ffi::PyContext_Exit(ctx) };
        match result {
            Ok(_) if exited == 0 => Ok(()),
            Ok(_) => h.report(slf, PyErr::fetch(py)),
            Err(e) => {
                if exited != 0 {
                    // Keep the callback's error; the exit failure is a
                    // consequence of it.
                    drop(PyErr::take(py));
                }
                h.report(slf, e)
            }
        }
    }

    /// `Handle._run`'s `except` clauses.
    fn report(&self, slf: &Bound<'_, Handle>, e: PyErr) -> PyResult<()> {
        let py = slf.py();
        if e.is_instance_of::<PySystemExit>(py) || e.is_instance_of::<PyKeyboardInterrupt>(py) {
            return Err(e);
        }
        let lp = self.loop_obj(py).into_bound(py);
        let lp = &lp;
        let none = py.None();
        let callback = self.callback.get(py).unwrap_or_else(|| none.clone_ref(py));
        let args = self.args.get(py).unwrap_or_else(|| none.clone_ref(py));
        let cb = format_callback(py, lp, callback.bind(py), args.bind(py))?;
        let msg = PyString::new(py, "Exception in callback ").add(cb.bind(py))?;
        let ctx = PyDict::new(py);
        ctx.set_item(intern!(py, "message"), msg)?;
        ctx.set_item(intern!(py, "exception"), e.value(py))?;
        ctx.set_item(intern!(py, "handle"), slf)?;
        lp.call_method1(intern!(py, "call_exception_handler"), (ctx,))?;
        Ok(())
    }

    /// `Handle.cancel`: marks it cancelled, keeps its repr in debug mode,
    /// drops the callback and its arguments.
    fn cancel_handle(slf: &Bound<'_, Handle>) -> PyResult<()> {
        let py = slf.py();
        let h = slf.get();
        if h.cancelled.swap(true, Ordering::Relaxed) {
            return Ok(());
        }
        if loop_debug(h.loop_obj(py).bind(py))? {
            let r = slf.repr()?.into_any().unbind();
            drop(h.repr.replace(py, Some(r)));
        }
        let callback = h.callback.replace(py, None);
        let args = h.args.replace(py, None);
        drop((callback, args));
        Ok(())
    }
}

#[pymethods]
impl Handle {
    #[new]
    #[pyo3(signature = (callback, args, r#loop, context = None))]
    fn py_new(
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyAny>,
        r#loop: &Bound<'_, PyAny>,
        context: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        Self::create(callback, args, r#loop, context)
    }

    /// Cancels the callback: it will not run.
    fn cancel(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::cancel_handle(slf)
    }

    /// Whether the handle was cancelled.
    fn cancelled(&self) -> bool {
        self.is_cancelled()
    }

    /// The `contextvars.Context` the callback runs in.
    fn get_context(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.context.get(py)
    }

    /// Runs the callback now, as asyncio's `Handle._run`.
    fn _run(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::run(slf)
    }

    /// asyncio's `_repr_info`: class name, `cancelled`, the callback.
    fn _repr_info(slf: &Bound<'_, Self>) -> PyResult<Vec<Py<PyAny>>> {
        let py = slf.py();
        let h = slf.get();
        let mut info = vec![slf.get_type().getattr(intern!(py, "__name__"))?.unbind()];
        if h.is_cancelled() {
            info.push(intern!(py, "cancelled").clone().into_any().unbind());
        }
        if let Some(cb) = h.callback.get(py) {
            let args = h.args.get(py).unwrap_or_else(|| py.None());
            let lp = h.loop_obj(py);
            info.push(format_callback(
                py,
                lp.bind(py),
                cb.bind(py),
                args.bind(py),
            )?);
        }
        Ok(info)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        if let Some(r) = slf.get().repr.get(py) {
            return Ok(r);
        }
        let info = slf.call_method0(intern!(py, "_repr_info"))?;
        let joined = PyString::new(py, " ").call_method1(intern!(py, "join"), (info,))?;
        Ok(PyString::new(py, &format!("<{}>", joined.str()?.to_str()?))
            .into_any()
            .unbind())
    }

    #[getter(_callback)]
    fn callback_attr(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.callback.get(py)
    }

    #[getter(_args)]
    fn args_attr(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.args.get(py)
    }

    #[getter(_context)]
    fn context_attr(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.context.get(py)
    }

    #[getter(_loop)]
    fn loop_attr(&self, py: Python<'_>) -> Py<PyAny> {
        self.loop_obj(py)
    }

    #[getter(_cancelled)]
    fn cancelled_attr(&self) -> bool {
        self.is_cancelled()
    }

    #[getter(_repr)]
    fn repr_attr(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.repr.get(py)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // SAFETY: this is the collector's traversal (see `GilCell::peek`).
        unsafe {
            visit.call(self.callback.peek())?;
            visit.call(self.args.peek())?;
            visit.call(self.context.peek())?;
            visit.call(self.lp.peek())?;
            visit.call(self.repr.peek())?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        // SAFETY: `__clear__` is called by the collector, which holds the GIL.
        let py = unsafe { Python::assume_attached() };
        let dropped = (
            self.callback.replace(py, None),
            self.args.replace(py, None),
            self.context.replace(py, None),
            self.lp.replace(py, None),
            self.repr.replace(py, None),
        );
        drop(dropped);
    }

    /// Always `None`: debug mode uses asyncio's handles, which keep one.
    #[getter(_source_traceback)]
    fn source_traceback_attr(&self) -> Option<Py<PyAny>> {
        None
    }
}

/// A callback scheduled at a time (asyncio's `TimerHandle`, natively).
#[pyclass(extends = Handle, module = "evloop._core", name = "TimerHandle", subclass, frozen)]
pub struct TimerHandle {
    when: Py<PyAny>,
    scheduled: AtomicBool,
}

impl std::fmt::Debug for TimerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerHandle")
            .field("scheduled", &self.scheduled)
            .finish_non_exhaustive()
    }
}

impl TimerHandle {
    /// A timer handle for `callback(*args)` due at `when`.
    pub fn create(
        when: &Bound<'_, PyAny>,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyAny>,
        lp: &Bound<'_, PyAny>,
        context: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let base = Handle::create(callback, args, lp, context)?;
        Ok(PyClassInitializer::from(base).add_subclass(TimerHandle {
            when: when.clone().unbind(),
            scheduled: AtomicBool::new(false),
        }))
    }

    /// Marks the handle as on (or off) the loop's timers.
    pub fn set_scheduled(&self, on: bool) {
        self.scheduled.store(on, Ordering::Relaxed);
    }

    fn compare(
        slf: &Bound<'_, Self>,
        other: &Bound<'_, PyAny>,
        op: CompareOp,
    ) -> PyResult<Option<bool>> {
        let py = slf.py();
        let Ok(other) = other.cast::<TimerHandle>() else {
            return Ok(None);
        };
        let (a, b) = (slf.get().when.bind(py), other.get().when.bind(py));
        let eq = || -> PyResult<bool> {
            let (x, y) = (slf.as_super().get(), other.as_super().get());
            Ok(a.eq(b)?
                && x.callback
                    .get(py)
                    .into_pyobject(py)?
                    .eq(y.callback.get(py))?
                && x.args.get(py).into_pyobject(py)?.eq(y.args.get(py))?
                && x.is_cancelled() == y.is_cancelled())
        };
        Ok(Some(match op {
            CompareOp::Lt => a.lt(b)?,
            CompareOp::Gt => a.gt(b)?,
            CompareOp::Le => a.lt(b)? || eq()?,
            CompareOp::Ge => a.gt(b)? || eq()?,
            CompareOp::Eq => eq()?,
            CompareOp::Ne => !eq()?,
        }))
    }
}

#[pymethods]
impl TimerHandle {
    #[new]
    #[pyo3(signature = (when, callback, args, r#loop, context = None))]
    fn py_new(
        when: &Bound<'_, PyAny>,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyAny>,
        r#loop: &Bound<'_, PyAny>,
        context: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        Self::create(when, callback, args, r#loop, context)
    }

    /// The time the callback is due at, on the loop's clock.
    fn when(&self, py: Python<'_>) -> Py<PyAny> {
        self.when.clone_ref(py)
    }

    /// Cancels the callback and tells the loop (which drops its timer).
    fn cancel(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let base = slf.as_super();
        if !base.get().is_cancelled() {
            let lp = base.get().loop_obj(py).into_bound(py);
            match lp.cast::<LoopCore>() {
                Ok(core) => core.get().native_timer_cancelled(slf)?,
                Err(_) => {
                    lp.call_method1(intern!(py, "_timer_handle_cancelled"), (slf,))?;
                }
            }
        }
        Handle::cancel_handle(base)
    }

    /// asyncio's `_repr_info`, with `when=` after the class name (and
    /// `cancelled`).
    fn _repr_info(slf: &Bound<'_, Self>) -> PyResult<Vec<Py<PyAny>>> {
        let py = slf.py();
        let mut info = Handle::_repr_info(slf.as_super())?;
        let pos = if slf.as_super().get().is_cancelled() {
            2
        } else {
            1
        };
        let when = format!("when={}", slf.get().when.bind(py).str()?);
        info.insert(pos, PyString::new(py, &when).into_any().unbind());
        Ok(info)
    }

    fn __hash__(&self, py: Python<'_>) -> PyResult<isize> {
        self.when.bind(py).hash()
    }

    fn __richcmp__(
        slf: &Bound<'_, Self>,
        other: &Bound<'_, PyAny>,
        op: CompareOp,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        Ok(match Self::compare(slf, other, op)? {
            Some(b) => b.into_pyobject(py)?.to_owned().into_any().unbind(),
            None => py.NotImplemented(),
        })
    }

    #[getter(_when)]
    fn when_attr(&self, py: Python<'_>) -> Py<PyAny> {
        self.when.clone_ref(py)
    }

    #[getter(_scheduled)]
    fn scheduled_attr(&self) -> bool {
        self.scheduled.load(Ordering::Relaxed)
    }

    #[setter(_scheduled)]
    fn set_scheduled_attr(&self, value: bool) {
        self.set_scheduled(value);
    }
}
