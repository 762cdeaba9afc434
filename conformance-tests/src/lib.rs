//! # conformance-tests
//!
//! The behaviours every evloop backend must show (see `CONFORMANCE.md` in
//! the design notes), written only against the public loop API.
//!
//! A backend runs the whole suite with one macro call in an integration
//! test, giving it a name and a loop factory:
//!
//! ```text
//! // my-backend/tests/conformance.rs
//! conformance_tests::conformance_suite!(mine, my_backend::new_event_loop);
//! ```
//!
//! The test names carry the backend and the section: `mine::timers::call_later_never_early`.
//! A capability the backend lacks shows up as failing tests, never as skipped ones.
//!
//! One level down, [`driver_suite!`] tests a bare [`loop_driver::Driver`]
//! against the boundary's contract, with no loop above it:
//!
//! ```text
//! // my-backend/tests/driver_contract.rs
//! conformance_tests::driver_suite!(mine, || Box::new(my_backend::driver().unwrap()));
//! ```

use loop_api::{EventLoop, Result};

pub mod bad_input_net;
pub mod cancellation;
pub mod dns;
pub mod driver_suite;
pub mod exceptions;
pub mod executor;
pub mod fs;
pub mod lifecycle;
pub mod net_support;
pub mod pipes;
pub mod policy;
pub mod readiness;
pub mod resources;
pub mod scheduling;
pub mod signals;
pub mod sockets;
pub mod structured;
pub mod subprocess;
pub mod support;
// asyncio's synchronization primitives (h-sync).
pub mod sync;
pub mod tasks;
pub mod tcp;
pub mod threads;
pub mod timers;
pub mod udp;
pub mod unix;

/// What the suite needs from a backend: a way to make a fresh loop.
pub trait Factory: Fn() -> Result<EventLoop> + Copy + Send + Sync + 'static {}
impl<F: Fn() -> Result<EventLoop> + Copy + Send + Sync + 'static> Factory for F {}

/// Instantiates every conformance test for one backend.
///
/// `$name` becomes the top-level module of the generated tests (and so the
/// first part of every test name); `$factory` is a `Fn() -> Result<EventLoop>`
/// (usually the backend's `new_event_loop`).
#[macro_export]
macro_rules! conformance_suite {
    ($name:ident, $factory:expr) => {
        #[allow(non_snake_case)]
        mod $name {
            $crate::__scheduling_tests!($factory);
            $crate::__timers_tests!($factory);
            $crate::__tasks_tests!($factory);
            $crate::__lifecycle_tests!($factory);
            $crate::__threads_tests!($factory);
            $crate::__exceptions_tests!($factory);
            $crate::__policy_tests!($factory);
            $crate::__resources_tests!($factory);
            $crate::__sockets_tests!($factory);
            $crate::__readiness_tests!($factory);
            $crate::__tcp_tests!($factory);
            $crate::__udp_tests!($factory);
            $crate::__unix_tests!($factory);
            $crate::__bad_input_net_tests!($factory);
            $crate::__executor_tests!($factory);
            $crate::__signals_tests!($factory);
            $crate::__pipes_tests!($factory);
            $crate::__subprocess_tests!($factory);
            $crate::__cancellation_tests!($factory);
            $crate::__fs_tests!($factory);
            $crate::__dns_tests!($factory);
            $crate::__sync_tests!($factory);
            $crate::__structured_tests!($factory);
        }
    };
}

/// Generates one `#[test]` per listed function of a section module.
///
/// Tests listed under `exclusive` touch process-wide state (signals, child
/// processes, the descriptor count, the global policy) and run alone; the
/// others run in parallel with each other.
#[doc(hidden)]
#[macro_export]
macro_rules! __section {
    ($factory:expr, $module:ident : [$($test:ident),* $(,)?] $(exclusive [$($xtest:ident),* $(,)?])?) => {
        mod $module {
            $(
                #[test]
                fn $test() {
                    let _shared = $crate::support::shared();
                    $crate::support::run_or_skip(|| $crate::$module::$test($factory));
                }
            )*
            $($(
                #[test]
                fn $xtest() {
                    let _exclusive = $crate::support::exclusive();
                    $crate::support::run_or_skip(|| $crate::$module::$xtest($factory));
                }
            )*)?
        }
    };
}
