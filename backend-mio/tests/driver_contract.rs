//! The driver contract suite (`conformance_tests::driver_suite!`) on
//! backend-mio's bare driver (its `Selector` in the shared `ReadinessDriver`).

/// `backend_mio::driver`, boxed; a driver that cannot be made fails the test.
fn driver() -> Box<dyn loop_driver::Driver> {
    match backend_mio::driver() {
        Ok(driver) => Box::new(driver),
        Err(e) => panic!("backend-mio could not create a driver: {e}"),
    }
}

conformance_tests::driver_suite!(mio, crate::driver);
