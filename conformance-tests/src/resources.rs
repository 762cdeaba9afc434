//! Section 17 — resource cleanup (RES-*).

use crate::support::{fd_count, new_loop};
use crate::Factory;

#[doc(hidden)]
#[macro_export]
macro_rules! __resources_tests {
    ($f:expr) => {
        $crate::__section!($f, resources: [] exclusive [
            create_and_close_leaves_fd_count_unchanged,
            close_releases_internal_fds,
        ]);
    };
}

/// RES-1: creating and closing loops leaves the process's fd count unchanged.
pub fn create_and_close_leaves_fd_count_unchanged(factory: impl Factory) {
    // Warm up lazily created process-wide descriptors, if a backend has any.
    new_loop(factory).close().unwrap();
    let before = fd_count();
    for _ in 0..20 {
        let lp = new_loop(factory);
        lp.run_until_complete(async {
            loop_api::sleep(std::time::Duration::from_millis(1)).await;
        })
        .unwrap();
        lp.close().unwrap();
    }
    assert_eq!(fd_count(), before);
}

/// RES-1: a loop owns some descriptors while open (epoll/ring, waker) and none after close.
pub fn close_releases_internal_fds(factory: impl Factory) {
    let before = fd_count();
    let lp = new_loop(factory);
    let open = fd_count();
    assert!(open > before, "a loop holds at least one descriptor");
    lp.close().unwrap();
    assert_eq!(fd_count(), before);
}
