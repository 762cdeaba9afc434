//! The default policy: `EVLOOP_BACKEND`, else the built-in default backend.

use loop_api::{Error, EventLoop, EventLoopPolicy, Result};

use crate::BACKEND_ENV;

/// The backend used when `EVLOOP_BACKEND` is not set: io_uring. Where it
/// cannot run (old kernel, `io_uring_disabled`, a container that forbids
/// it, or `backend-uring` not compiled in), the default policy falls back
/// to [`FALLBACK_BACKEND`] and says why in a debug log.
///
/// Not because it is faster at TCP: the README's measurements put the
/// three backends within a few percent of each other and of tokio, with
/// the order changing between machines. Echo requests per
/// server-CPU-second relative to tokio, geometric mean over 12 cells:
///
/// | machine, date | uring | mio | polling |
/// |---|---|---|---|
/// | 2 vCPU AMD EPYC, Linux 6.18, 2026-11-22 (9 repetitions) | 1.03× | 1.00× | 0.97× |
/// | 2 vCPU Intel Xeon, Linux 6.18, 2026-12-02 (4 runs of 3) | 0.85–0.91× | 0.93–0.97× | 0.87–0.93× |
///
/// (0.96–0.98×, 0.97–0.98× and 0.94–0.96× over the 9 cells up to 10 KiB
/// on the Intel machine, where single 100 KiB cells swing by tens of
/// percent between runs.) io_uring is the default because it makes the
/// fewest syscalls per request (batched submissions, about one
/// `io_uring_enter` per 20–30 echo requests, no re-arming) and it is the
/// only backend with real file operations: on the Intel machine,
/// 2026-12-02, it read 10,000 small files at 10.8k files/s against mio's
/// 7.9k, but wrote a 1 GiB file at 642 MB/s against mio's 984 MB/s.
///
/// ```
/// // With EVLOOP_BACKEND unset, a loop from the default policy is on
/// // DEFAULT_BACKEND, or on FALLBACK_BACKEND where io_uring cannot run.
/// if std::env::var_os(evloop::BACKEND_ENV).is_none() {
///     let lp = evloop::new_event_loop().unwrap();
///     assert!([evloop::DEFAULT_BACKEND, evloop::FALLBACK_BACKEND].contains(&lp.backend_name()));
///     lp.close().unwrap();
/// }
/// ```
pub const DEFAULT_BACKEND: &str = "uring";

/// The backend the default policy uses when [`DEFAULT_BACKEND`] is not
/// compiled in or cannot run on this host.
pub const FALLBACK_BACKEND: &str = "mio";

/// Every backend name evloop knows, compiled in or not (each backend
/// crate's `NAME`; spelled out here because a backend that is not compiled
/// in cannot be asked).
const KNOWN: &[&str] = &["mio", "polling", "uring"];

/// The backends compiled into this build (the enabled `backend-*`
/// features), whether or not they can run on this host.
///
/// ```
/// // With the default features, all three:
/// assert_eq!(evloop::available_backends(), ["mio", "polling", "uring"]);
/// ```
pub fn available_backends() -> Vec<&'static str> {
    [
        #[cfg(feature = "backend-mio")]
        backend_mio::NAME,
        #[cfg(feature = "backend-polling")]
        backend_polling::NAME,
        #[cfg(feature = "backend-uring")]
        backend_uring::NAME,
    ]
    .to_vec()
}

/// A new loop on the backend called `name`, or an error that names the
/// backend and says why it cannot be used.
///
/// ```
/// let lp = evloop::new_event_loop_for("polling").unwrap();
/// assert_eq!(lp.backend_name(), "polling");
/// lp.close().unwrap();
/// match evloop::new_event_loop_for("kqueue") {
///     Err(evloop::Error::BackendUnavailable { backend, reason }) => {
///         assert_eq!(backend, "kqueue");
///         assert!(reason.contains("unknown backend"));
///     }
///     other => panic!("{other:?}"),
/// }
/// ```
pub fn new_event_loop_for(name: &str) -> Result<EventLoop> {
    match name {
        #[cfg(feature = "backend-mio")]
        backend_mio::NAME => backend_mio::new_event_loop(),
        #[cfg(feature = "backend-polling")]
        backend_polling::NAME => backend_polling::new_event_loop(),
        #[cfg(feature = "backend-uring")]
        backend_uring::NAME => backend_uring::new_event_loop(),
        known if KNOWN.contains(&known) => Err(Error::BackendUnavailable {
            backend: known.to_owned(),
            reason: format!("not compiled in (enable evloop's `backend-{known}` feature)"),
        }),
        other => Err(Error::BackendUnavailable {
            backend: other.to_owned(),
            reason: format!("unknown backend; known backends: {}", KNOWN.join(", ")),
        }),
    }
}

/// Picks the backend named by `EVLOOP_BACKEND` (an error if it cannot be
/// used), else [`DEFAULT_BACKEND`], falling back to [`FALLBACK_BACKEND`].
/// It is the policy in force until [`set_event_loop_policy`](crate::set_event_loop_policy)
/// installs another.
///
/// ```
/// use evloop::{DefaultPolicy, EventLoopPolicy};
/// let policy = DefaultPolicy;
/// // What EVLOOP_BACKEND asks for, if anything; else the default backend.
/// let wanted = policy.requested().unwrap_or_else(|| evloop::DEFAULT_BACKEND.to_owned());
/// assert_eq!(policy.backend(), wanted);
/// assert_eq!(policy.name(), format!("default({wanted})"));
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct DefaultPolicy;

impl DefaultPolicy {
    /// The backend `EVLOOP_BACKEND` asks for, if it is set.
    pub fn requested(&self) -> Option<String> {
        match std::env::var(BACKEND_ENV) {
            Ok(name) if !name.trim().is_empty() => Some(name.trim().to_ascii_lowercase()),
            _ => None,
        }
    }

    /// The backend this policy tries first: the requested one, else [`DEFAULT_BACKEND`].
    pub fn backend(&self) -> String {
        self.requested()
            .unwrap_or_else(|| DEFAULT_BACKEND.to_owned())
    }
}

impl EventLoopPolicy for DefaultPolicy {
    fn name(&self) -> String {
        format!("default({})", self.backend())
    }

    fn new_event_loop(&self) -> Result<EventLoop> {
        if let Some(name) = self.requested() {
            return new_event_loop_for(&name);
        }
        with_fallback(
            || new_event_loop_for(DEFAULT_BACKEND),
            || new_event_loop_for(FALLBACK_BACKEND),
        )
    }
}

/// `first()`, or `fallback()` if `first` reports its backend unavailable.
fn with_fallback(
    first: impl FnOnce() -> Result<EventLoop>,
    fallback: impl FnOnce() -> Result<EventLoop>,
) -> Result<EventLoop> {
    match first() {
        Err(Error::BackendUnavailable { backend, reason }) => {
            log::debug!(
                "evloop: default backend `{backend}` unavailable ({reason}); \
                 falling back to `{FALLBACK_BACKEND}`"
            );
            fallback()
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unavailable() -> Result<EventLoop> {
        Err(Error::BackendUnavailable {
            backend: "uring".into(),
            reason: "io_uring_disabled is 2".into(),
        })
    }

    #[test]
    fn unavailable_default_falls_back() {
        let lp = with_fallback(unavailable, || new_event_loop_for(FALLBACK_BACKEND)).unwrap();
        assert_eq!(lp.backend_name(), FALLBACK_BACKEND);
        lp.close().unwrap();
    }

    #[test]
    fn other_errors_do_not_fall_back() {
        let r = with_fallback(
            || Err(Error::from(std::io::Error::other("boom"))),
            || panic!("must not fall back on a real error"),
        );
        assert!(matches!(r, Err(Error::Io { .. })));
    }
}
