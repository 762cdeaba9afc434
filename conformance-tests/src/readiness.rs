//! Section 9 — readiness callbacks (RDY-*): `add_reader`/`add_writer`.

use std::cell::Cell;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use loop_api::{Error, EventLoop};

use crate::support::{capture_exceptions, new_loop, Log};
use crate::Factory;

#[doc(hidden)]
#[macro_export]
macro_rules! __readiness_tests {
    ($f:expr) => {
        $crate::__section!($f, readiness: [
            reader_is_level_triggered,
            reader_stops_when_drained,
            remove_reader_reports_registration,
            writer_fires_and_removes_once,
            second_add_replaces_first,
            reader_and_writer_coexist,
            removal_is_synchronous_and_fd_reusable,
            callback_may_remove_itself,
            panicking_reader_is_reported_and_keeps_watching,
            watchers_dropped_on_close,
            add_after_close_is_error_remove_is_false,
        ]);
    };
}

fn pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

/// Runs `n` loop iterations (each `stop()` + `run_forever()` is one iteration).
fn iterate(lp: &EventLoop, n: usize) {
    for _ in 0..n {
        lp.stop();
        lp.run_forever().unwrap();
    }
}

/// Runs the loop until `done()` or a generous deadline.
fn run_until(lp: &EventLoop, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "condition not reached in time"
        );
        lp.call_later(Duration::from_millis(1), || {}).unwrap();
        iterate(lp, 1);
    }
}

/// RDY-1: the reader runs on every iteration while data is pending.
pub fn reader_is_level_triggered(factory: impl Factory) {
    let lp = new_loop(factory);
    let (a, mut b) = pair();
    b.write_all(b"x").unwrap();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    lp.add_reader(a.as_raw_fd(), move || c.set(c.get() + 1))
        .unwrap();
    run_until(&lp, || calls.get() >= 1);
    let first = calls.get();
    iterate(&lp, 5);
    assert!(
        calls.get() >= first + 4,
        "level-triggered: fires each iteration ({} calls)",
        calls.get()
    );
    assert!(lp.remove_reader(a.as_raw_fd()));
    lp.close().unwrap();
}

/// RDY-1: once the callback drains the data, it stops firing; new data fires it again.
pub fn reader_stops_when_drained(factory: impl Factory) {
    let lp = new_loop(factory);
    let (a, mut b) = pair();
    let a = Rc::new(a);
    let log = Log::new();
    let (l, reader) = (log.clone(), a.clone());
    lp.add_reader(a.as_raw_fd(), move || {
        let mut buf = [0u8; 64];
        match (&*reader).read(&mut buf) {
            Ok(n) => l.push(buf[..n].to_vec()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {} // spurious wake-up
            Err(e) => panic!("read: {e}"),
        }
    })
    .unwrap();
    b.write_all(b"one").unwrap();
    run_until(&lp, || log.len() == 1);
    iterate(&lp, 5);
    assert_eq!(log.get(), vec![b"one".to_vec()], "no call once drained");
    b.write_all(b"two").unwrap();
    run_until(&lp, || log.len() == 2);
    assert_eq!(log.get()[1], b"two");
    assert!(lp.remove_reader(a.as_raw_fd()));
    lp.close().unwrap();
}

/// RDY-1: remove_reader returns true for a registered reader, false otherwise.
pub fn remove_reader_reports_registration(factory: impl Factory) {
    let lp = new_loop(factory);
    let (a, _b) = pair();
    assert!(!lp.remove_reader(a.as_raw_fd()), "nothing registered yet");
    lp.add_reader(a.as_raw_fd(), || {}).unwrap();
    assert!(lp.remove_reader(a.as_raw_fd()));
    assert!(!lp.remove_reader(a.as_raw_fd()));
    assert!(!lp.remove_writer(a.as_raw_fd()), "a reader is not a writer");
    lp.close().unwrap();
}

/// RDY-2: the writer fires when writable; remove_writer is true once, then false.
pub fn writer_fires_and_removes_once(factory: impl Factory) {
    let lp = new_loop(factory);
    let (a, _b) = pair();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    lp.add_writer(a.as_raw_fd(), move || c.set(c.get() + 1))
        .unwrap();
    run_until(&lp, || calls.get() >= 2);
    assert!(lp.remove_writer(a.as_raw_fd()));
    assert!(!lp.remove_writer(a.as_raw_fd()));
    let n = calls.get();
    iterate(&lp, 3);
    assert_eq!(calls.get(), n, "a removed writer never runs");
    lp.close().unwrap();
}

/// RDY-3: a second add_reader replaces the first, which never runs again.
pub fn second_add_replaces_first(factory: impl Factory) {
    let lp = new_loop(factory);
    let (a, mut b) = pair();
    let log = Log::new();
    let l = log.clone();
    lp.add_reader(a.as_raw_fd(), move || l.push("first"))
        .unwrap();
    let l = log.clone();
    lp.add_reader(a.as_raw_fd(), move || l.push("second"))
        .unwrap();
    b.write_all(b"x").unwrap();
    run_until(&lp, || log.len() >= 3);
    assert!(log.get().iter().all(|s| *s == "second"), "{:?}", log.get());
    assert!(lp.remove_reader(a.as_raw_fd()));
    assert!(
        !lp.remove_reader(a.as_raw_fd()),
        "one registration, not two"
    );
    lp.close().unwrap();
}

/// RDY-3: a reader and a writer on one fd coexist; removing one keeps the other.
pub fn reader_and_writer_coexist(factory: impl Factory) {
    let lp = new_loop(factory);
    let (a, mut b) = pair();
    let (reads, writes) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    let r = reads.clone();
    lp.add_reader(a.as_raw_fd(), move || r.set(r.get() + 1))
        .unwrap();
    let w = writes.clone();
    lp.add_writer(a.as_raw_fd(), move || w.set(w.get() + 1))
        .unwrap();
    run_until(&lp, || writes.get() >= 1);
    assert_eq!(reads.get(), 0, "not readable yet");
    assert!(lp.remove_writer(a.as_raw_fd()));
    b.write_all(b"x").unwrap();
    run_until(&lp, || reads.get() >= 1);
    let w = writes.get();
    iterate(&lp, 3);
    assert_eq!(writes.get(), w, "the writer is gone");
    assert!(reads.get() >= 3, "the reader is still there");
    assert!(lp.remove_reader(a.as_raw_fd()));
    lp.close().unwrap();
}

/// Removal is synchronous: the fd can be closed at once, and a new socket
/// that gets the same number is watched correctly (no stale registration).
pub fn removal_is_synchronous_and_fd_reusable(factory: impl Factory) {
    let lp = new_loop(factory);
    for round in 0..20 {
        let (a, mut b) = pair();
        let fd = a.as_raw_fd();
        let fired = Rc::new(Cell::new(false));
        let f = fired.clone();
        lp.add_reader(fd, move || f.set(true)).unwrap();
        if round % 2 == 0 {
            iterate(&lp, 1); // let the poll park on the descriptor
        }
        b.write_all(b"late").unwrap();
        assert!(lp.remove_reader(fd));
        iterate(&lp, 2);
        assert!(!fired.get(), "a removed reader never runs");
        drop(a);
        // Very likely the same number again: it must be watched from scratch.
        let (c, mut d) = pair();
        let got = Rc::new(Cell::new(false));
        let g = got.clone();
        lp.add_reader(c.as_raw_fd(), move || g.set(true)).unwrap();
        iterate(&lp, 1);
        d.write_all(b"y").unwrap();
        run_until(&lp, || got.get());
        assert!(lp.remove_reader(c.as_raw_fd()));
    }
    lp.close().unwrap();
}

/// A callback may remove its own watcher; it then never runs again.
pub fn callback_may_remove_itself(factory: impl Factory) {
    let lp = new_loop(factory);
    let (a, mut b) = pair();
    b.write_all(b"x").unwrap();
    let calls = Rc::new(Cell::new(0));
    let (c, lp2, fd) = (calls.clone(), lp.clone(), a.as_raw_fd());
    lp.add_reader(fd, move || {
        c.set(c.get() + 1);
        assert!(lp2.remove_reader(fd));
    })
    .unwrap();
    run_until(&lp, || calls.get() == 1);
    iterate(&lp, 5);
    assert_eq!(calls.get(), 1);
    lp.close().unwrap();
}

/// A panicking reader is reported to the exception handler and stays registered.
pub fn panicking_reader_is_reported_and_keeps_watching(factory: impl Factory) {
    let lp = new_loop(factory);
    let errors = capture_exceptions(&lp);
    let (a, mut b) = pair();
    b.write_all(b"x").unwrap();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    lp.add_reader(a.as_raw_fd(), move || {
        c.set(c.get() + 1);
        if c.get() == 1 {
            panic!("reader failed");
        }
    })
    .unwrap();
    run_until(&lp, || calls.get() >= 3);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors.get()[0].payload.as_deref(), Some("reader failed"));
    assert!(lp.remove_reader(a.as_raw_fd()));
    lp.close().unwrap();
}

/// close() drops every watcher and its callback.
pub fn watchers_dropped_on_close(factory: impl Factory) {
    let lp = new_loop(factory);
    let (a, _b) = pair();
    let token = Rc::new(());
    let (t1, t2) = (token.clone(), token.clone());
    lp.add_reader(a.as_raw_fd(), move || {
        let _ = &t1;
    })
    .unwrap();
    lp.add_writer(a.as_raw_fd(), move || {
        let _ = &t2;
    })
    .unwrap();
    iterate(&lp, 2);
    lp.close().unwrap();
    assert_eq!(Rc::strong_count(&token), 1, "callbacks released by close()");
}

/// LIF-10: after close(), add_* is Error::Closed and remove_* returns false.
pub fn add_after_close_is_error_remove_is_false(factory: impl Factory) {
    let lp = new_loop(factory);
    let (a, _b) = pair();
    lp.add_reader(a.as_raw_fd(), || {}).unwrap();
    lp.close().unwrap();
    assert!(matches!(
        lp.add_reader(a.as_raw_fd(), || {}),
        Err(Error::Closed)
    ));
    assert!(matches!(
        lp.add_writer(a.as_raw_fd(), || {}),
        Err(Error::Closed)
    ));
    assert!(!lp.remove_reader(a.as_raw_fd()));
    assert!(!lp.remove_writer(a.as_raw_fd()));
}
