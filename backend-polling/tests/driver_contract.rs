//! The driver contract suite (`conformance_tests::driver_suite!`) on
//! backend-polling's bare driver (its `Selector` in the shared `ReadinessDriver`).

/// `backend_polling::driver`, boxed; a driver that cannot be made fails the test.
fn driver() -> Box<dyn loop_driver::Driver> {
    match backend_polling::driver() {
        Ok(driver) => Box::new(driver),
        Err(e) => panic!("backend-polling could not create a driver: {e}"),
    }
}

conformance_tests::driver_suite!(polling, crate::driver);
