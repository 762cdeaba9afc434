//! The whole conformance suite on backend-mio.
conformance_tests::conformance_suite!(mio, backend_mio::new_event_loop);
