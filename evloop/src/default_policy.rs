//! The default policy: `EVLOOP_BACKEND`, else the built-in default backend.

use loop_api::{Error, EventLoop, EventLoopPolicy, Result};

use crate::BACKEND_ENV;

/// The backend used when `EVLOOP_BACKEND` is not set: io_uring, chosen by
/// measurement (it was at or near the top of the echo matrix in every full
/// run on the development machine, and makes the fewest syscalls; the
/// README has the figures, which put the three backends within a few
/// percent of each other and of tokio). Where it cannot run, the default
/// policy falls back to [`FALLBACK_BACKEND`] and says why in a debug log.
pub const DEFAULT_BACKEND: &str = "uring";

/// The backend the default policy uses when [`DEFAULT_BACKEND`] is not
/// compiled in or cannot run on this host.
pub const FALLBACK_BACKEND: &str = "mio";

/// Every backend name evloop knows, compiled in or not (each backend
/// crate's `NAME`; spelled out here because a backend that is not compiled
/// in cannot be asked).
const KNOWN: &[&str] = &["mio", "polling", "uring"];

/// The backends compiled into this build.
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
