//! The driver contract suite (`conformance_tests::driver_suite!`) on
//! backend-uring's bare driver.
//!
//! The skip policy of `tests/conformance.rs`: io_uring unavailable on the
//! host (ENOSYS, EPERM in a container, `kernel.io_uring_disabled`, a
//! missing opcode) skips each test with a notice, unless
//! `EVLOOP_REQUIRE_URING=1` (CI sets it), which makes it a failure. Every
//! other error fails the test.

use loop_api::Error;

/// `backend_uring::driver`, boxed; an unavailable io_uring skips the
/// calling test when that is allowed.
fn uring_or_skip() -> Box<dyn loop_driver::Driver> {
    match backend_uring::driver() {
        Ok(driver) => Box::new(driver),
        Err(Error::BackendUnavailable { backend, reason })
            if std::env::var("EVLOOP_REQUIRE_URING").as_deref() != Ok("1") =>
        {
            conformance_tests::support::skip(format!(
                "backend `{backend}` is unavailable on this host ({reason}); \
                 set EVLOOP_REQUIRE_URING=1 to make this a failure"
            ))
        }
        Err(e) => panic!("backend-uring could not create a driver: {e}"),
    }
}

conformance_tests::driver_suite!(uring, crate::uring_or_skip);
