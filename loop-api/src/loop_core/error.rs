//! The one error type of the loop API.

use std::fmt;
use std::io;

/// Everything a loop call can fail with.
///
/// The variants follow asyncio's exceptions where one exists
/// (`RuntimeError` for lifecycle misuse, `CancelledError`, `TimeoutError`,
/// `ValueError`/`TypeError` for bad arguments) and carry an [`io::Error`]
/// for anything the operating system refused.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The loop is closed: nothing can be scheduled on it any more.
    Closed,
    /// `run_*` was called on a loop that is already running.
    AlreadyRunning,
    /// `run_*` was called while another loop runs on this thread.
    AnotherLoopRunning,
    /// `close()` was called on a running loop.
    CloseWhileRunning,
    /// There is no running loop on this thread (`get_running_loop()` outside a loop).
    NoRunningLoop,
    /// `stop()` was called before the future given to `run_until_complete` finished.
    /// The task stays pending; a later run resumes it.
    StoppedBeforeComplete,
    /// The task or operation was cancelled.
    Cancelled,
    /// The task (or executor job) panicked; the payload's message is kept.
    Panicked(String),
    /// `wait_for` (or another timed operation) ran out of time.
    TimedOut,
    /// The executor no longer accepts jobs: `shutdown_default_executor()`
    /// was called, or the executor was shut down.
    ExecutorShutdown,
    /// An argument was out of range or otherwise unusable.
    InvalidArgument(String),
    /// The requested backend is not compiled in or cannot run on this host.
    BackendUnavailable {
        /// The backend's name, as `EVLOOP_BACKEND` spells it.
        backend: String,
        /// Why it is unavailable.
        reason: String,
    },
    /// The operating system refused an operation.
    Io(io::Error),
}

impl Error {
    /// `true` for [`Error::Cancelled`].
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Error::Cancelled)
    }

    /// `true` for [`Error::Panicked`].
    pub fn is_panic(&self) -> bool {
        matches!(self, Error::Panicked(_))
    }

    /// The [`io::ErrorKind`] this error maps to (for [`Error::Io`], its own kind).
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            Error::Io(e) => e.kind(),
            Error::TimedOut => io::ErrorKind::TimedOut,
            Error::InvalidArgument(_) => io::ErrorKind::InvalidInput,
            Error::BackendUnavailable { .. } => io::ErrorKind::Unsupported,
            Error::Cancelled => io::ErrorKind::Interrupted,
            _ => io::ErrorKind::Other,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Closed => f.write_str("the event loop is closed"),
            Error::AlreadyRunning => f.write_str("this event loop is already running"),
            Error::AnotherLoopRunning => {
                f.write_str("cannot run the event loop while another loop is running")
            }
            Error::CloseWhileRunning => f.write_str("cannot close a running event loop"),
            Error::NoRunningLoop => f.write_str("no running event loop"),
            Error::StoppedBeforeComplete => {
                f.write_str("event loop stopped before the future completed")
            }
            Error::Cancelled => f.write_str("cancelled"),
            Error::Panicked(msg) => write!(f, "panicked: {msg}"),
            Error::TimedOut => f.write_str("timed out"),
            Error::ExecutorShutdown => f.write_str("executor shutdown has been called"),
            Error::InvalidArgument(msg) => write!(f, "invalid argument: {msg}"),
            Error::BackendUnavailable { backend, reason } => {
                write!(f, "backend `{backend}` is unavailable: {reason}")
            }
            Error::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Io(e) => e,
            other => io::Error::new(other.kind(), other),
        }
    }
}

/// Shorthand for `Result<T, evloop::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Turns a panic payload into a readable message.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
