//! The one error type of the loop API.

use std::fmt;
use std::io;

/// Everything an evloop call can fail with: the one error type of every
/// API (the loop, tasks, networking, pipes, files, processes), so
/// `futures::try_join!` and `?` mix them freely.
///
/// The variants follow asyncio's exceptions where one exists
/// (`RuntimeError` for lifecycle misuse, `CancelledError`, `TimeoutError`,
/// `ValueError`/`TypeError` for bad arguments). Anything the operating
/// system refused is [`Error::Io`]: the [`io::Error`] itself (its
/// [`kind`](io::Error::kind) and OS code) plus, where the call knows it,
/// what was being done to what, as asyncio's messages say it:
/// `connect to 127.0.0.1:9: Connection refused (os error 111)`,
/// `open /no/such: No such file or directory (os error 2)`,
/// ``spawn `nosuchprog`: No such file or directory (os error 2)``,
/// `bind [::1]:80: Permission denied (os error 13)`.
///
/// To branch on what went wrong, match [`kind`](Error::kind) (an
/// [`io::ErrorKind`], defined for every variant) or the variant; the
/// [`io::Error`] is [`io_error`](Error::io_error) (also the
/// [`source`](std::error::Error::source)), its OS code
/// [`raw_os_error`](Error::raw_os_error). `Display` is complete on its
/// own (context and the OS's text), so print it with `{}`.
///
/// It converts both ways with [`io::Error`] (`?` works in either kind of
/// function): an `io::Error` becomes [`Error::Io`] without context, and an
/// `Error` becomes an `io::Error` of the same kind (the bare `io::Error`
/// when there is no context; otherwise one that wraps this `Error`, which
/// `From<io::Error>` unwraps again, losing nothing). Owned-buffer methods
/// return it too: [`BufResult`](crate::buf::BufResult) is
/// `(Result<T>, B)`. Only the trait implementations for other ecosystems
/// (futures-io's `AsyncRead`/`AsyncWrite`, tokio's and hyper's I/O traits
/// in `evloop-compat`) return `io::Error`, as their traits require; they
/// convert that way.
///
/// ```
/// use std::io::ErrorKind;
/// use evloop::net::TcpStream;
///
/// evloop::run(async {
///     // A port nobody listens on (bound, then closed).
///     let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
///     let err = TcpStream::connect(addr).await.unwrap_err();
///     assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
///     assert!(err.to_string().starts_with(&format!("connect to {addr}: ")));
///     match &err {
///         evloop::Error::Io { context, source } => {
///             assert_eq!(context.as_deref(), Some(&*format!("connect to {addr}")));
///             assert_eq!(source.raw_os_error(), Some(111)); // ECONNREFUSED
///         }
///         other => panic!("not an OS error: {other}"),
///     }
///     // Lifecycle errors have kinds too.
///     assert_eq!(evloop::Error::TimedOut.kind(), ErrorKind::TimedOut);
///     Ok::<_, evloop::Error>(())
/// })??;
/// # Ok::<_, evloop::Error>(())
/// ```
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
    Io {
        /// What was being done, naming the address, path or program it
        /// concerns (`connect to 127.0.0.1:9`, `open /no/such`,
        /// ``spawn `ls` ``); `None` where the call has nothing to add
        /// (a read or write on an open stream).
        context: Option<String>,
        /// The operating system's error: its kind and OS code.
        source: io::Error,
    },
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

    /// An [`Error::Io`] saying what was being done (`"connect to 127.0.0.1:9"`).
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: Some(context.into()),
            source,
        }
    }

    /// Says what a failed call was doing: an OS error without context gets
    /// `context` (built only on failure); anything else is kept as it is.
    pub(crate) fn ctx<T, E: Into<Error>, C: fmt::Display>(
        result: std::result::Result<T, E>,
        context: impl FnOnce() -> C,
    ) -> Result<T> {
        result.map_err(|e| match e.into() {
            Error::Io {
                context: None,
                source,
            } => Error::io(context().to_string(), source),
            other => other,
        })
    }

    /// The [`io::Error`] of an [`Error::Io`].
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }

    /// What an [`Error::Io`] was doing (`"open /no/such"`), if known.
    pub fn context(&self) -> Option<&str> {
        match self {
            Error::Io { context, .. } => context.as_deref(),
            _ => None,
        }
    }

    /// The OS error code (`errno`) of an [`Error::Io`] that has one.
    pub fn raw_os_error(&self) -> Option<i32> {
        self.io_error().and_then(io::Error::raw_os_error)
    }

    /// The [`io::ErrorKind`] this error maps to (for [`Error::Io`], its
    /// `io::Error`'s kind; for the others, the nearest kind: `TimedOut`,
    /// `InvalidInput`, `Unsupported`, `Interrupted` for a cancellation,
    /// `Other` for the rest).
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            Error::Io { source, .. } => source.kind(),
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
            Error::Io {
                context: Some(context),
                source,
            } => write!(f, "{context}: {source}"),
            Error::Io {
                context: None,
                source,
            } => source.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    /// [`Error::Io`] without context, or, for an `io::Error` that wraps an
    /// `Error` (made by `From<Error> for io::Error`), that `Error` again.
    fn from(e: io::Error) -> Self {
        if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            let inner = e.into_inner().expect("checked just above");
            return *inner.downcast::<Error>().expect("checked just above");
        }
        Error::Io {
            context: None,
            source: e,
        }
    }
}

impl From<Error> for io::Error {
    /// The `io::Error` itself for an [`Error::Io`] without context;
    /// otherwise an `io::Error` of the same [`kind`](Error::kind) wrapping
    /// the `Error` (so its message keeps the context).
    fn from(e: Error) -> Self {
        match e {
            Error::Io {
                context: None,
                source,
            } => source,
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
