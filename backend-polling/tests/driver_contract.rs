//! The driver contract suite (`conformance_tests::driver_suite!`) on
//! backend-polling's bare driver (its `Selector` in the shared `ReadinessDriver`).

/// `backend_polling::driver`, boxed; a driver that cannot be made fails the test.
fn driver() -> Box<dyn loop_driver::Driver> {
    match backend_polling::driver() {
        Ok(driver) => Box::new(driver),
        Err(e) => panic!("backend-polling could not create a driver: {e}"),
    }
}

// Known breaches of "Completions" (operations that read, or write, one
// descriptor are performed in submission order), in the shared
// `ReadinessDriver`: `submit` tries the syscall at once even while an
// earlier operation of the same direction is parked on the descriptor
// (only its `read_drained`/`write_full` hints defer it), so a later
// `Recv` takes bytes that arrived for the parked one, and a later `Send`
// goes out before a parked one once the buffer has room.
conformance_tests::driver_suite!(
    polling,
    crate::driver,
    known_violations: [
        a_recv_submitted_behind_a_pending_one_waits_its_turn,
        a_send_submitted_behind_a_pending_one_waits_its_turn,
    ]
);
