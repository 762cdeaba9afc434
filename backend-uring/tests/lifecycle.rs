//! Timed and zero waits, the cross-thread waker, every ring setup, and
//! descriptor hygiene of creating and dropping drivers and loops.
//
// Where the driver tests live: those that need only the public API (and
// `loop_driver`, `loop_api`) under `tests/`, by topic, with the helpers in
// `tests/common/mod.rs`; those that need the driver's internals (forcing a
// fallback by clearing a probed flag, faking cancels that miss, counting
// targets in transit) in `src/driver/tests.rs`, which includes the same
// helpers. Not a public testing hook: it would put test-only fields and
// branches into every build of the driver.

mod common;

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use backend_uring::UringBuilder;
use loop_driver::{Cancel, Driver};

use common::*;

fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[test]
fn timed_wait_of_half_a_millisecond_sleeps_that_long_without_spinning() {
    let _g = shared();
    let mut d = driver();
    let mut done = Vec::new();
    d.wait(Some(Duration::ZERO), &mut done).unwrap(); // arm the waker first
    let rounds = 40;
    let mut elapsed = Vec::new();
    let cpu0 = thread_cpu_time();
    let wall0 = Instant::now();
    for _ in 0..rounds {
        let t = Instant::now();
        d.wait(Some(Duration::from_micros(500)), &mut done).unwrap();
        elapsed.push(t.elapsed());
    }
    let wall = wall0.elapsed();
    let cpu = thread_cpu_time() - cpu0;
    assert!(done.is_empty());
    elapsed.sort();
    assert!(
        elapsed[0] >= Duration::from_micros(500),
        "returned early: {:?}",
        elapsed[0]
    );
    let median = elapsed[rounds / 2];
    // Generous: a loaded CI machine may be slow to run the woken thread.
    assert!(
        median < Duration::from_millis(10),
        "median wait {median:?} for 0.5 ms"
    );
    // Sleeping, not spinning: the thread used a small part of the wall time.
    assert!(cpu < wall / 2, "cpu {cpu:?} over wall {wall:?}");
}

#[test]
fn zero_wait_does_not_block() {
    let _g = shared();
    let mut d = driver();
    let (a, _b) = UnixStream::pair().unwrap();
    let mut buf = vec![0u8; 8];
    submit_recv(&mut d, 0, a.as_raw_fd(), &mut buf);
    let mut done = Vec::new();
    let t = Instant::now();
    for _ in 0..100 {
        d.wait(Some(Duration::ZERO), &mut done).unwrap();
    }
    assert!(t.elapsed() < Duration::from_millis(500));
    assert!(done.is_empty());
    if d.cancel(0) == Cancel::Pending {
        let _ = wait_for(&mut d, 0);
    }
}

#[test]
fn notifier_from_another_thread_wakes_a_blocked_wait() {
    let _g = shared();
    let mut d = driver();
    let notifier = d.notifier();
    let mut done = Vec::new();
    for _ in 0..3 {
        let n = notifier.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            n.notify();
        });
        let start = Instant::now();
        d.wait(None, &mut done).unwrap();
        let waited = start.elapsed();
        t.join().unwrap();
        assert!(
            waited >= Duration::from_millis(20),
            "woke early: {waited:?}"
        );
        assert!(waited < Duration::from_secs(5));
        assert!(done.is_empty());
    }
    // A notification that arrives before the wait is not lost.
    notifier.notify();
    let start = Instant::now();
    d.wait(Some(Duration::from_secs(10)), &mut done).unwrap();
    assert!(start.elapsed() < Duration::from_secs(5));
}

/// Kernel worker threads (`iou-wrk-*`) io_uring started for this process.
fn io_workers() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.starts_with("iou-wrk"))
        .count()
}

#[test]
fn the_waker_read_is_polled_not_parked_on_a_kernel_worker() {
    let _g = exclusive();
    let mut d = driver();
    let mut done = Vec::new();
    // Arm the read and let it wait a little, then wake it twice.
    d.wait(Some(Duration::from_millis(5)), &mut done).unwrap();
    let before = io_workers();
    d.notifier().notify();
    d.wait(Some(Duration::from_secs(5)), &mut done).unwrap();
    d.wait(Some(Duration::from_millis(5)), &mut done).unwrap();
    // (Workers of earlier tests may exit meanwhile, never start.)
    assert!(io_workers() <= before, "a blocking read went to io-wq");
}

#[test]
fn every_setup_works_or_falls_back() {
    let _g = shared();
    for builder in [
        UringBuilder::plain(),
        UringBuilder::new(),
        UringBuilder::plain().coop_taskrun(true),
        UringBuilder::new().sqpoll(Some(Duration::from_millis(10))),
    ] {
        let mut d = builder.build().unwrap();
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut buf = vec![0u8; 8];
        submit_recv(&mut d, 0, a.as_raw_fd(), &mut buf);
        b.write_all(b"ok").unwrap();
        assert_eq!(
            wait_for(&mut d, 0).result.unwrap().bytes,
            2,
            "{:?}",
            d.config()
        );
    }
    assert!(matches!(
        UringBuilder::new().entries(0).build(),
        Err(loop_api::Error::InvalidArgument(_))
    ));
    let cfg = UringBuilder::new().build().unwrap().config();
    assert!(
        cfg.defer_taskrun && cfg.single_issuer,
        "6.x kernel: {cfg:?}"
    );
}

#[test]
fn creating_and_dropping_leaves_the_fd_count_unchanged() {
    let _g = exclusive();
    let before = fd_count();
    for _ in 0..10 {
        let mut d = driver();
        let mut done = Vec::new();
        d.wait(Some(Duration::ZERO), &mut done).unwrap();
        let n = d.notifier();
        drop(d);
        n.notify(); // the eventfd outlives the driver while a notifier does
        drop(n);
        let lp = backend_uring::new_event_loop().unwrap();
        lp.run_until_complete(loop_api::sleep(Duration::from_millis(1)))
            .unwrap();
        lp.close().unwrap();
        drop(lp);
    }
    assert_eq!(fd_count(), before);
}
