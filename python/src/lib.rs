//! `evloop._core`: the native half of the `evloop` Python package.
//!
//! [`core::LoopCore`] is the base class of `evloop.EventLoop`, which also
//! inherits asyncio's `_UnixSelectorEventLoop`: the core takes over the ready
//! queue, the timers, the poll and the readiness callbacks (the methods
//! through which asyncio's Python code touches `_ready`, `_scheduled` and
//! `_selector`), on loop-api's `EventLoop`; everything else (transports,
//! servers, subprocesses, SSL, the executor) is asyncio's own code.
//! `ARCHITECTURE.md` ("Python package") has the whole picture.

use pyo3::prelude::*;

mod backend;
mod clock;
mod core;
mod handle;
mod sockio;
mod threads;

/// The native module `evloop._core`.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<core::LoopCore>()?;
    m.add_class::<handle::Handle>()?;
    m.add_class::<handle::TimerHandle>()?;
    m.add_function(wrap_pyfunction!(backend::known_backends, m)?)?;
    m.add_function(wrap_pyfunction!(backend::default_backend, m)?)?;
    m.add_function(wrap_pyfunction!(sockio::recv, m)?)?;
    m.add("READ_CAP", sockio::READ_CAP)?;
    Ok(())
}
