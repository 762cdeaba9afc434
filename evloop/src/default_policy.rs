//! The default policy: `EVLOOP_BACKEND`, else the built-in default backend.

use loop_api::{Error, EventLoop, EventLoopPolicy, Result};

use crate::BACKEND_ENV;

/// The backend used when `EVLOOP_BACKEND` is not set.
pub const DEFAULT_BACKEND: &str = "mio";

/// Every backend name evloop knows, compiled in or not.
const KNOWN: &[&str] = &["mio", "polling", "uring"];

/// The backends compiled into this build.
pub fn available_backends() -> Vec<&'static str> {
    let mut v = Vec::new();
    if cfg!(feature = "backend-mio") {
        v.push("mio");
    }
    if cfg!(feature = "backend-polling") {
        v.push("polling");
    }
    v
}

/// A new loop on the backend called `name`, or an error that names the
/// backend and says why it cannot be used.
pub fn new_event_loop_for(name: &str) -> Result<EventLoop> {
    match name {
        #[cfg(feature = "backend-mio")]
        "mio" => backend_mio::new_event_loop(),
        #[cfg(feature = "backend-polling")]
        "polling" => backend_polling::new_event_loop(),
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

/// Picks the backend from `EVLOOP_BACKEND`, else [`DEFAULT_BACKEND`].
#[derive(Debug, Default, Clone, Copy)]
pub struct DefaultPolicy;

impl DefaultPolicy {
    /// The backend this policy would use now.
    pub fn backend(&self) -> String {
        match std::env::var(BACKEND_ENV) {
            Ok(name) if !name.trim().is_empty() => name.trim().to_ascii_lowercase(),
            _ => DEFAULT_BACKEND.to_owned(),
        }
    }
}

impl EventLoopPolicy for DefaultPolicy {
    fn name(&self) -> String {
        format!("default({})", self.backend())
    }

    fn new_event_loop(&self) -> Result<EventLoop> {
        new_event_loop_for(&self.backend())
    }
}
