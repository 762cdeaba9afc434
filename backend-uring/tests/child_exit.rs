//! `Op::ChildExit` with `IORING_OP_WAITID`: reaping a child, a killing
//! signal, a cancelled wait.
//
// Where the driver tests live: those that need only the public API (and
// `loop_driver`, `loop_api`) under `tests/`, by topic, with the helpers in
// `tests/common/mod.rs`; those that need the driver's internals (forcing a
// fallback by clearing a probed flag, faking cancels that miss, counting
// targets in transit) in `src/driver/tests.rs`, which includes the same
// helpers. Not a public testing hook: it would put test-only fields and
// branches into every build of the driver.

mod common;

use std::time::Duration;

use loop_driver::{Cancel, Driver};

use common::*;

#[test]
fn waitpid_op_reaps_a_real_child_with_waitid() {
    let _g = shared();
    let mut d = driver();
    let child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    let pidfd = pidfd_open(pid);
    submit_waitpid(&mut d, 7, &pidfd);
    let out = wait_for(&mut d, 7).result.unwrap();
    assert_eq!(out.bytes, 0);
    let status = out
        .child_status
        .expect("a 6.7+ kernel reaps through IORING_OP_WAITID");
    assert!(libc::WIFEXITED(status), "raw status {status:#x}");
    assert_eq!(libc::WEXITSTATUS(status), 0);
    // The kernel reaped it: nothing is left for waitpid.
    let (ret, _) = waitpid_now(pid);
    assert_eq!(ret, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::ECHILD)
    );
    drop(child);
}

#[test]
// The ChildExit operation reaps the child; `Child::wait` would find nothing.
#[allow(clippy::zombie_processes)]
fn waitpid_op_reports_a_killing_signal_and_can_be_cancelled() {
    let _g = shared();
    let mut d = driver();
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let pidfd = pidfd_open(pid);
    // A wait that is cancelled before the child exits reaps nothing.
    submit_waitpid(&mut d, 1, &pidfd);
    let mut done = Vec::new();
    d.wait(Some(Duration::ZERO), &mut done).unwrap();
    assert_eq!(d.cancel(1), Cancel::Forgotten);
    assert_eq!(d.in_flight(), 0);
    // A second wait sees the kill.
    submit_waitpid(&mut d, 2, &pidfd);
    child.kill().unwrap();
    let status = wait_for(&mut d, 2).result.unwrap().child_status.unwrap();
    assert!(libc::WIFSIGNALED(status), "raw status {status:#x}");
    assert_eq!(libc::WTERMSIG(status), libc::SIGKILL);
}
