//! The whole conformance suite on backend-uring.
//!
//! The one permitted skip: io_uring unavailable on the host (ENOSYS, EPERM
//! in a container, `kernel.io_uring_disabled`, a missing opcode). Then each
//! test prints why and returns — unless `EVLOOP_REQUIRE_URING=1` (CI sets
//! it), which makes unavailability a failure like any other error. Every
//! other error, and every failed assertion, fails the test as usual.

use loop_api::{Error, EventLoop, Result};

/// `backend_uring::new_event_loop`, except that an unavailable io_uring
/// skips the calling test when that is allowed.
fn uring_or_skip() -> Result<EventLoop> {
    or_skip(backend_uring::new_event_loop())
}

/// The same with multishot receive into a provided-buffer ring for streams
/// (off by default: see `UringBuilder::multishot_recv`).
fn uring_multishot_or_skip() -> Result<EventLoop> {
    or_skip(
        backend_uring::UringBuilder::new()
            .multishot_recv(true)
            .new_event_loop(),
    )
}

fn or_skip(lp: Result<EventLoop>) -> Result<EventLoop> {
    match lp {
        Err(Error::BackendUnavailable { backend, reason })
            if std::env::var("EVLOOP_REQUIRE_URING").as_deref() != Ok("1") =>
        {
            conformance_tests::support::skip(format!(
                "backend `{backend}` is unavailable on this host ({reason}); \
                 set EVLOOP_REQUIRE_URING=1 to make this a failure"
            ))
        }
        other => other,
    }
}

conformance_tests::conformance_suite!(uring, crate::uring_or_skip);
conformance_tests::conformance_suite!(uring_multishot, crate::uring_multishot_or_skip);
