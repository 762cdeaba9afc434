//! Helpers shared by the driver-level tests: the integration tests under
//! `tests/` and the unit tests of `src/driver/tests.rs`, which include this
//! file with `#[path]` (the crate names itself `backend_uring` in its test
//! build, so the paths below work in both).
//!
//! Each test binary uses only some of them.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::task::Poll;
use std::time::{Duration, Instant};

use backend_uring::{UringBuilder, UringDriver};
use loop_driver::{Completion, Driver, Op};

/// Tests that count descriptors run alone; the others share.
static FDS: RwLock<()> = RwLock::new(());

pub fn shared() -> RwLockReadGuard<'static, ()> {
    FDS.read().unwrap_or_else(|e| e.into_inner())
}

pub fn exclusive() -> RwLockWriteGuard<'static, ()> {
    FDS.write().unwrap_or_else(|e| e.into_inner())
}

pub fn driver() -> UringDriver {
    match UringBuilder::new().build() {
        Ok(d) => d,
        Err(e) => panic!("io_uring must work on the test machine: {e}"),
    }
}

/// Waits until the completion for `id` arrives (at most 5 s).
pub fn wait_for(d: &mut UringDriver, id: usize) -> Completion {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut done = Vec::new();
    loop {
        d.wait(Some(Duration::from_millis(100)), &mut done).unwrap();
        if let Some(pos) = done.iter().position(|c| c.id == id) {
            return done.swap_remove(pos);
        }
        assert!(Instant::now() < deadline, "no completion for op {id}");
    }
}

/// Submits `op`, which must not complete at once.
pub fn submit(d: &mut UringDriver, id: usize, op: Op) {
    // SAFETY: every test keeps the memory and descriptors the op points to
    // alive until the op's completion was reported or the driver dropped.
    match unsafe { d.submit(id, op) } {
        Poll::Pending => {}
        Poll::Ready(r) => panic!("io_uring ops complete through wait, got {r:?}"),
    }
}

/// Submits a `Recv` into the whole of `buf`, which must not complete at once.
pub fn submit_recv(d: &mut UringDriver, id: usize, fd: RawFd, buf: &mut [u8]) {
    submit(
        d,
        id,
        Op::Recv {
            fd,
            buf: buf.as_mut_ptr(),
            len: buf.len(),
        },
    );
}

pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

pub fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD takes no pointer.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// A connected TCP pair (both non-blocking: the ring never blocks on them).
pub fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    server.set_nonblocking(true).unwrap();
    (server, client)
}

pub fn mshot_driver() -> UringDriver {
    let d = UringBuilder::new().multishot_recv(true).build().unwrap();
    assert!(d.multishot_recv(), "a 6.x kernel has multishot receive");
    d
}

/// Submits a `Recv` into `buf`, waiting for its completion if it does not
/// finish at once; returns the result and whether it finished at once.
pub fn recv_now_or_later(
    d: &mut UringDriver,
    id: usize,
    fd: RawFd,
    buf: &mut [u8],
) -> (usize, bool) {
    let op = Op::Recv {
        fd,
        buf: buf.as_mut_ptr(),
        len: buf.len(),
    };
    // SAFETY: `buf` outlives the op: we wait for its completion below.
    match unsafe { d.submit(id, op) } {
        Poll::Ready(r) => (r.unwrap().bytes, true),
        Poll::Pending => (wait_for(d, id).result.unwrap().bytes, false),
    }
}

/// Lets the multishot take in what the peer sent (a few iterations).
pub fn settle(d: &mut UringDriver) {
    let mut done = Vec::new();
    for _ in 0..5 {
        d.wait(Some(Duration::from_millis(10)), &mut done).unwrap();
    }
    assert!(done.is_empty(), "unexpected completions: {done:?}");
}

/// Runs the stress tasks to the end, stops the writer thread, and checks
/// that `close()` does not wait for an operation the kernel kept.
pub fn finish_cancel_stress(
    lp: &loop_api::EventLoop,
    tasks: Vec<loop_api::Task<()>>,
    stop: &std::sync::atomic::AtomicBool,
    writer: std::thread::JoinHandle<()>,
) {
    lp.run_until_complete(async move {
        for t in tasks {
            t.await.unwrap();
        }
    })
    .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    let t = Instant::now();
    lp.close().unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "close took {:?}",
        t.elapsed()
    );
}

/// A pidfd for the child `pid`.
pub fn pidfd_open(pid: libc::pid_t) -> OwnedFd {
    // SAFETY: pidfd_open takes two integers and returns a new descriptor or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    assert!(raw >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh descriptor owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(raw as RawFd) }
}

/// Submits a `ChildExit` on `pidfd` under `id`.
pub fn submit_waitpid(d: &mut UringDriver, id: usize, pidfd: &OwnedFd) {
    submit(
        d,
        id,
        Op::ChildExit {
            pidfd: pidfd.as_raw_fd(),
        },
    );
}

/// `waitpid(pid, WNOHANG)`: its return value and the status it stored.
pub fn waitpid_now(pid: libc::pid_t) -> (libc::pid_t, libc::c_int) {
    let mut st = 0;
    // SAFETY: waitpid on one pid with a valid status pointer.
    let ret = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
    (ret, st)
}
