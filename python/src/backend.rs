//! Choosing the backend: the argument, else `EVLOOP_BACKEND`, else the Rust
//! default (`evloop::DEFAULT_BACKEND`) with its fallback
//! (`evloop::FALLBACK_BACKEND`), as `evloop::DefaultPolicy` does.

use loop_api::{Error, EventLoop};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;

/// The backends this build knows (all three are compiled in).
const KNOWN: &[&str] = &["mio", "polling", "uring"];

/// The names `new_event_loop(backend=...)` accepts.
#[pyfunction]
pub fn known_backends() -> Vec<&'static str> {
    KNOWN.to_vec()
}

/// The backend tried when neither the argument nor `EVLOOP_BACKEND` names one.
#[pyfunction]
pub fn default_backend() -> &'static str {
    evloop::DEFAULT_BACKEND
}

/// A loop on io_uring without `SINGLE_ISSUER`/`DEFER_TASKRUN`: a Python loop
/// may be created on one thread and run on another, so no ring flag may tie
/// it to its creator.
fn uring_loop() -> Result<EventLoop, Error> {
    backend_uring::UringBuilder::new()
        .single_issuer(false)
        .defer_taskrun(false)
        .coop_taskrun(true)
        .fallback(true)
        .new_event_loop()
}

fn by_name(name: &str) -> Result<EventLoop, Error> {
    match name {
        "uring" => uring_loop(),
        other => evloop::new_event_loop_for(other),
    }
}

/// The backend requested by `arg`, else by `EVLOOP_BACKEND` (blank: unset).
fn requested(arg: Option<&str>) -> Option<String> {
    let env = std::env::var(evloop::BACKEND_ENV).ok();
    arg.map(str::to_owned)
        .or(env)
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
}

/// Builds the loop. An unknown name is a `ValueError` naming the known
/// backends; a known one that cannot run here is a `RuntimeError` saying why.
pub fn new_loop(arg: Option<&str>) -> PyResult<EventLoop> {
    match requested(arg) {
        Some(name) => {
            if !KNOWN.contains(&name.as_str()) {
                return Err(PyValueError::new_err(format!(
                    "unknown evloop backend {name:?}; known backends: {}",
                    KNOWN.join(", ")
                )));
            }
            by_name(&name).map_err(to_py)
        }
        None => match by_name(evloop::DEFAULT_BACKEND) {
            Err(Error::BackendUnavailable { .. }) => {
                by_name(evloop::FALLBACK_BACKEND).map_err(to_py)
            }
            other => other.map_err(to_py),
        },
    }
}

/// A loop-api error as the Python exception asyncio would raise.
pub fn to_py(e: Error) -> PyErr {
    match e {
        Error::Closed => PyRuntimeError::new_err("Event loop is closed"),
        Error::InvalidArgument(msg) => PyValueError::new_err(msg),
        Error::Io(e) => match e.raw_os_error() {
            Some(code) => PyOSError::new_err((code, e.to_string())),
            None => PyOSError::new_err(e.to_string()),
        },
        Error::BackendUnavailable { backend, reason } => PyRuntimeError::new_err(format!(
            "evloop backend {backend:?} is unavailable: {reason}"
        )),
        other => PyRuntimeError::new_err(other.to_string()),
    }
}
