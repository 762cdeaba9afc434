//! The whole conformance suite on backend-polling.
conformance_tests::conformance_suite!(polling, backend_polling::new_event_loop);
