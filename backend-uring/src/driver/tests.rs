//! Driver tests that need its internals: cancellation without
//! `IORING_REGISTER_SYNC_CANCEL` (forced by clearing the probed flag), a
//! synchronous cancel that keeps missing its target (faked), `ChildExit`
//! without `IORING_OP_WAITID`, and the synchronous cancel and release
//! checked against the probe.
//
// Where the driver tests live: those that need only the public API (and
// `loop_driver`, `loop_api`) under `tests/`, by topic, with the helpers in
// `tests/common/mod.rs`; those that need the driver's internals (forcing a
// fallback by clearing a probed flag, faking cancels that miss, counting
// targets in transit) in `src/driver/tests.rs`, which includes the same
// helpers. Not a public testing hook: it would put test-only fields and
// branches into every build of the driver.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::{UringBuilder, UringDriver};
use loop_driver::{Cancel, Driver, Op};

use common::*;

/// Without synchronous cancellation (before Linux 6.0, or an SQPOLL ring;
/// forced here by clearing the probed flag) a cancel is an `AsyncCancel`
/// answered `Pending`, and the final completion comes from a later `wait`.
#[test]
fn cancel_of_a_pending_recv_reports_the_final_completion() {
    let _g = shared();
    let mut d = driver();
    d.support.sync_cancel = false;
    let (a, mut b) = UnixStream::pair().unwrap();
    let mut buf = vec![0u8; 64];
    submit_recv(&mut d, 7, a.as_raw_fd(), &mut buf);
    let mut done = Vec::new();
    d.wait(Some(Duration::ZERO), &mut done).unwrap(); // in the kernel now
    assert_eq!(d.cancel(7), Cancel::Pending);
    // The buffer stays ours to keep until the final CQE for 7 arrives.
    let c = wait_for(&mut d, 7);
    assert_eq!(c.result.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    assert_eq!(d.in_flight(), 0);
    // Data sent after the cancellation is not consumed by the dead recv.
    b.write_all(b"late").unwrap();
    submit_recv(&mut d, 7, a.as_raw_fd(), &mut buf);
    assert_eq!(wait_for(&mut d, 7).result.unwrap().bytes, 4);
    assert_eq!(&buf[..4], b"late");
}

#[test]
fn cancel_before_submission_reaches_the_kernel() {
    let _g = shared();
    for sync in [true, false] {
        let mut d = driver();
        d.support.sync_cancel = sync;
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut buf = vec![0u8; 64];
        // Submit and cancel within one iteration: the SQE is still queued.
        submit_recv(&mut d, 0, a.as_raw_fd(), &mut buf);
        if sync {
            // Submitted, then cancelled synchronously: nothing more comes.
            assert_eq!(d.cancel(0), Cancel::Forgotten);
            assert_eq!(d.in_flight(), 0);
            let mut done = Vec::new();
            d.wait(Some(Duration::from_millis(10)), &mut done).unwrap();
            assert!(done.is_empty(), "{done:?}");
        } else {
            // Both SQEs go in one enter.
            assert_eq!(d.cancel(0), Cancel::Pending);
            let c = wait_for(&mut d, 0);
            assert_eq!(c.result.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
        }
        drop(buf);
        // The dead recv consumed nothing.
        b.write_all(b"next").unwrap();
        let mut buf = vec![0u8; 64];
        submit_recv(&mut d, 0, a.as_raw_fd(), &mut buf);
        assert_eq!(wait_for(&mut d, 0).result.unwrap().bytes, 4);
    }
}

#[test]
fn drop_with_operations_in_flight_returns_promptly() {
    for sync in [true, false] {
        drop_with_operations_in_flight(sync);
    }
}

fn drop_with_operations_in_flight(sync: bool) {
    let _g = shared();
    let (a, _b) = UnixStream::pair().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut bufs: Vec<Vec<u8>> = (0..16).map(|_| vec![0u8; 128]).collect();
    let mut d = driver();
    d.support.sync_cancel = sync;
    for (i, buf) in bufs.iter_mut().enumerate() {
        submit_recv(&mut d, i, a.as_raw_fd(), buf);
    }
    submit(
        &mut d,
        100,
        Op::Accept {
            fd: listener.as_raw_fd(),
        },
    );
    let mut done = Vec::new();
    d.wait(Some(Duration::ZERO), &mut done).unwrap();
    // Half of them are cancelled by the loop before the drop, half not.
    let (answer, left) = match sync {
        true => (Cancel::Forgotten, 9),
        false => (Cancel::Pending, 17),
    };
    for i in 0..8 {
        assert_eq!(d.cancel(i), answer);
    }
    assert_eq!(d.in_flight(), left);
    let t = Instant::now();
    drop(d);
    // The kernel gave everything back well before Drop's bound.
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "drop took {:?}",
        t.elapsed()
    );
    // Only now may the buffers go.
    drop(bufs);
}

/// On a kernel without IORING_OP_WAITID (before 6.7) `ChildExit` is a
/// PollAdd on the pidfd: it reports the exit without reaping, and the
/// caller reaps with `waitpid` (what the loop's process watcher does).
/// Forced here by clearing the probed flag on a 6.7+ kernel.
#[test]
fn waitpid_op_without_waitid_polls_the_pidfd_and_leaves_the_reaping() {
    let _g = shared();
    let mut d = driver();
    d.support.waitid = false;
    let child = std::process::Command::new("sh")
        .args(["-c", "exit 3"])
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let pidfd = pidfd_open(pid);
    submit_waitpid(&mut d, 3, &pidfd);
    let out = wait_for(&mut d, 3).result.unwrap();
    assert_eq!(out.bytes, 0);
    assert_eq!(out.child_status, None, "a poll does not reap");
    // The child is still there to be reaped, with its status.
    let (ret, st) = waitpid_now(pid);
    assert_eq!(ret, pid, "the exited child waits to be reaped");
    assert!(libc::WIFEXITED(st), "raw status {st:#x}");
    assert_eq!(libc::WEXITSTATUS(st), 3);
    drop(child);
}

#[test]
fn multishot_off_or_a_datagram_socket_uses_one_shot_recvs() {
    let _g = shared();
    // Off (also the default).
    let mut d = UringBuilder::new().multishot_recv(false).build().unwrap();
    assert!(!d.multishot_recv());
    assert!(!driver().multishot_recv());
    let (server, mut client) = tcp_pair();
    assert!(!d.promise_recv_only(server.as_raw_fd()));
    let mut buf = vec![0u8; 8];
    submit_recv(&mut d, 0, server.as_raw_fd(), &mut buf);
    client.write_all(b"plain").unwrap();
    assert_eq!(wait_for(&mut d, 0).result.unwrap().bytes, 5);
    // A cancelled one-shot still goes through the kernel (with the async
    // cancel, the final completion says so).
    d.support.sync_cancel = false;
    submit_recv(&mut d, 1, server.as_raw_fd(), &mut buf);
    assert_eq!(d.cancel(1), Cancel::Pending);
    let _ = wait_for(&mut d, 1);

    // Datagrams keep their boundaries even where read-ahead is allowed.
    let mut d = mshot_driver();
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    a.connect(b.local_addr().unwrap()).unwrap();
    b.connect(a.local_addr().unwrap()).unwrap();
    d.promise_recv_only(a.as_raw_fd());
    b.send(b"one").unwrap();
    b.send(b"two").unwrap();
    let mut buf = vec![0u8; 64];
    submit_recv(&mut d, 0, a.as_raw_fd(), &mut buf);
    assert_eq!(wait_for(&mut d, 0).result.unwrap().bytes, 3);
    assert_eq!(&buf[..3], b"one");
}

#[test]
fn multishot_large_chunks_switch_to_one_shot_reads_and_back() {
    let _g = shared();
    let mut d = mshot_driver();
    // With the async cancel, `Pending` tells a one-shot (the kernel holds
    // the buffer) from a Recv waiting on the multishot (`Forgotten`).
    d.support.sync_cancel = false;
    let (server, mut client) = tcp_pair();
    let fd = server.as_raw_fd();
    assert!(d.promise_recv_only(fd));
    let mut buf = vec![0u8; 64 * 1024];
    // Small: the multishot serves it; a waiting Recv is cancelled at once.
    client.write_all(b"small").unwrap();
    assert_eq!(recv_now_or_later(&mut d, 0, fd, &mut buf).0, 5);
    submit_recv(&mut d, 1, fd, &mut buf);
    assert_eq!(d.cancel(1), Cancel::Forgotten);
    // One large chunk (>= 4 KiB, one CQE once it has all arrived) ...
    let big = vec![7u8; 8192];
    client.write_all(&big).unwrap();
    settle(&mut d);
    let mut got = 0;
    while got < big.len() {
        got += recv_now_or_later(&mut d, 2, fd, &mut buf).0;
    }
    assert_eq!(got, big.len());
    settle(&mut d); // the multishot is cancelled meanwhile
                    // ... and the next reads are one-shots into the caller's buffer: the
                    // kernel holds it, so a cancel is pending until its CQE.
    submit_recv(&mut d, 3, fd, &mut buf);
    assert_eq!(d.cancel(3), Cancel::Pending);
    let _ = wait_for(&mut d, 3);
    // After enough of them the multishot is tried again.
    for i in 0..64u8 {
        client.write_all(&[i]).unwrap();
        assert_eq!(recv_now_or_later(&mut d, 4, fd, &mut buf).0, 1);
        assert_eq!(buf[0], i);
    }
    submit_recv(&mut d, 5, fd, &mut buf);
    assert_eq!(d.cancel(5), Cancel::Forgotten);
}

/// The setups whose cancellation must be synchronous: the default ring
/// (DEFER_TASKRUN: a cancelled request's CQE waits for task work the
/// driver must run) and a plain one (task work runs on any kernel entry).
fn sync_cancel_drivers() -> Vec<UringDriver> {
    [UringBuilder::new(), UringBuilder::plain()]
        .into_iter()
        .map(|b| {
            let d = b.build().unwrap();
            assert!(d.support.sync_cancel, "a 6.x kernel cancels synchronously");
            d
        })
        .collect()
}

/// `remove_reader(listener)` then closing it: once `cancel` has returned
/// `Forgotten`, the kernel holds no reference to the listening socket, so
/// closing it really closes it and a connect is refused at once (with the
/// old asynchronous cancel the kernel kept the file until the next `wait`:
/// the connect was accepted into the dead listener's backlog, then reset;
/// `cancel_fallback_is_pending_and_keeps_the_file_until_the_next_wait`
/// shows it).
#[test]
fn cancelled_poll_on_a_listener_lets_go_so_a_connect_is_refused() {
    let _g = shared();
    for mut d in sync_cancel_drivers() {
        for queued in [false, true] {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            let addr = listener.local_addr().unwrap();
            submit(
                &mut d,
                0,
                Op::PollReadable {
                    fd: listener.as_raw_fd(),
                },
            );
            if !queued {
                // In the kernel, armed.
                let mut done = Vec::new();
                d.wait(Some(Duration::ZERO), &mut done).unwrap();
                assert!(done.is_empty());
            }
            assert_eq!(d.cancel(0), Cancel::Forgotten, "{:?}", d.config());
            assert_eq!(d.in_flight(), 0);
            drop(listener);
            let err = TcpStream::connect(addr).expect_err("the listener is gone");
            assert_eq!(
                err.kind(),
                std::io::ErrorKind::ConnectionRefused,
                "queued: {queued}, {:?}: {err}",
                d.config()
            );
            // Nothing for the cancelled poll is ever reported.
            let mut done = Vec::new();
            d.wait(Some(Duration::from_millis(5)), &mut done).unwrap();
            assert!(done.is_empty(), "{done:?}");
        }
    }
}

/// The fallback (no IORING_REGISTER_SYNC_CANCEL: Linux before 6.0, or an
/// SQPOLL ring; forced here) keeps today's behaviour: `Pending`, and the
/// kernel holds the poll's file until a later `wait` submits the
/// `AsyncCancel` and reports the final completion.
#[test]
fn cancel_fallback_is_pending_and_keeps_the_file_until_the_next_wait() {
    let _g = shared();
    let mut d = driver();
    d.support.sync_cancel = false;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    submit(
        &mut d,
        0,
        Op::PollReadable {
            fd: listener.as_raw_fd(),
        },
    );
    let mut done = Vec::new();
    d.wait(Some(Duration::ZERO), &mut done).unwrap();
    assert_eq!(d.cancel(0), Cancel::Pending);
    drop(listener);
    // The kernel still holds the listener: the connection is accepted
    // into its backlog (this is what the synchronous cancel fixes).
    let early = TcpStream::connect(addr);
    assert!(early.is_ok(), "the fallback holds the listener: {early:?}");
    let c = wait_for(&mut d, 0);
    assert_eq!(c.result.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    assert_eq!(d.in_flight(), 0);
}

/// The next `n` bytes of the writer's pattern (a counter modulo 251)
/// starting at `*pos`; checks `got` against them and advances.
fn check_pattern(got: &[u8], pos: &mut u64) {
    for &b in got {
        assert_eq!(u64::from(b), *pos % 251, "byte {pos} lost or reordered");
        *pos += 1;
    }
}

/// Receives what is queued on `sock` without blocking (a plain
/// `recv(2)`), checking the pattern; the number of bytes.
fn drain_plain(mut sock: &TcpStream, pos: &mut u64) -> usize {
    let mut buf = [0u8; 4096];
    let mut total = 0;
    loop {
        match sock.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => {
                check_pattern(&buf[..n], pos);
                total += n;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return total,
            Err(e) => panic!("recv: {e}"),
        }
    }
}

/// A `Recv` cancelled while data arrives: either `Forgotten`, and the data is
/// still in the socket (a plain recv gets it, in order), or `Pending`, and
/// the next `wait` reports the completion with the data. Never lost, never
/// reported under the id's next operation. The old asynchronous cancel
/// never answered `Forgotten` (the assertion on `dones` fails with it).
#[test]
fn recv_racing_its_cancel_is_done_with_the_data_left_or_reported() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let _g = shared();
    for mut d in sync_cancel_drivers() {
        let (server, mut client) = tcp_pair();
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut pos = 0u64;
                let mut k = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    k += 1;
                    let chunk: Vec<u8> = (0..1 + k % 13).map(|i| ((pos + i) % 251) as u8).collect();
                    if client.write_all(&chunk).is_err() {
                        break; // the reader failed and went
                    }
                    pos += chunk.len() as u64;
                    if k.is_multiple_of(3) {
                        std::thread::sleep(Duration::from_micros(20));
                    }
                }
                pos
            })
        };
        let fd = server.as_raw_fd();
        let (mut dones, mut pendings, mut pos) = (0u32, 0u32, 0u64);
        for round in 0..600u32 {
            let mut buf = vec![0u8; 8];
            submit_recv(&mut d, 3, fd, &mut buf);
            match round % 4 {
                // Cancelled while its SQE is still queued.
                0 => {}
                // In the kernel: armed, or already complete.
                1 => {
                    let mut done = Vec::new();
                    d.wait(Some(Duration::ZERO), &mut done).unwrap();
                    if let Some(c) = done.pop() {
                        // Completed before the cancel: nothing to cancel.
                        assert_eq!(c.id, 3);
                        check_pattern(&buf[..c.result.unwrap().bytes], &mut pos);
                        continue;
                    }
                }
                // Armed, then data arrives while we are away.
                _ => {
                    let mut done = Vec::new();
                    d.wait(Some(Duration::ZERO), &mut done).unwrap();
                    if let Some(c) = done.pop() {
                        check_pattern(&buf[..c.result.unwrap().bytes], &mut pos);
                        continue;
                    }
                    std::thread::sleep(Duration::from_micros(u64::from(round % 50)));
                }
            }
            match d.cancel(3) {
                Cancel::Forgotten => {
                    dones += 1;
                    assert_eq!(d.in_flight(), 0);
                    // The data is still in the socket, in order.
                    if round % 3 == 0 {
                        drain_plain(&server, &mut pos);
                    }
                }
                Cancel::Pending => {
                    pendings += 1;
                    let c = wait_for(&mut d, 3);
                    let n = c.result.expect("only a completed recv is pending").bytes;
                    assert!(n > 0);
                    check_pattern(&buf[..n], &mut pos);
                }
            }
            // No completion of a cancelled recv is ever reported (the next
            // recv under id 3 would take it for its own).
            let mut done = Vec::new();
            d.wait(Some(Duration::ZERO), &mut done).unwrap();
            assert!(done.is_empty(), "round {round}: {done:?}");
        }
        stop.store(true, Ordering::Relaxed);
        let sent = writer.join().unwrap();
        server.set_nonblocking(false).unwrap();
        server
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while pos < sent && Instant::now() < deadline {
            let mut buf = [0u8; 4096];
            match (&server).read(&mut buf) {
                Ok(n) => check_pattern(&buf[..n], &mut pos),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("recv: {e}"),
            }
        }
        assert_eq!(pos, sent, "bytes lost");
        eprintln!(
            "{:?}: {dones} done, {pendings} pending, {} in transit",
            d.config().defer_taskrun,
            d.in_transit
        );
        assert!(dones > 0, "no recv was cancelled synchronously");
    }
}

/// An `Accept` cancelled while connections arrive: either `Forgotten`, and the
/// connection is still in the backlog (a plain accept gets it), or
/// `Pending`, and the next `wait` reports the accepted descriptor. Every
/// connection is found exactly once.
#[test]
fn accept_racing_its_cancel_leaves_the_connection_or_reports_it() {
    let _g = shared();
    for mut d in sync_cancel_drivers() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        const CONNECTIONS: usize = 200;
        let connector = std::thread::spawn(move || {
            let mut clients = Vec::new();
            for i in 0..CONNECTIONS {
                clients.push(TcpStream::connect(addr).unwrap());
                if i % 4 == 0 {
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
            clients
        });
        let drain = |n: &mut usize| loop {
            match listener.accept() {
                Ok(_) => *n += 1,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("accept: {e}"),
            }
        };
        let (mut accepted, mut dones, mut pendings) = (0usize, 0u32, 0u32);
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut round = 0u32;
        while accepted < CONNECTIONS {
            assert!(Instant::now() < deadline, "{accepted} of {CONNECTIONS}");
            round += 1;
            submit(
                &mut d,
                1,
                Op::Accept {
                    fd: listener.as_raw_fd(),
                },
            );
            if round % 2 == 1 {
                let mut done = Vec::new();
                d.wait(Some(Duration::ZERO), &mut done).unwrap();
                if let Some(c) = done.pop() {
                    assert!(c.result.unwrap().accepted.is_some());
                    accepted += 1;
                    continue;
                }
                std::thread::sleep(Duration::from_micros(u64::from(round % 40)));
            }
            match d.cancel(1) {
                Cancel::Forgotten => {
                    dones += 1;
                    assert_eq!(d.in_flight(), 0);
                    if round.is_multiple_of(3) {
                        drain(&mut accepted);
                    }
                }
                Cancel::Pending => {
                    pendings += 1;
                    let out = wait_for(&mut d, 1)
                        .result
                        .expect("only a completed accept is pending");
                    assert!(out.accepted.is_some());
                    accepted += 1;
                }
            }
            let mut done = Vec::new();
            d.wait(Some(Duration::ZERO), &mut done).unwrap();
            assert!(done.is_empty(), "round {round}: {done:?}");
        }
        let clients = connector.join().unwrap();
        drain(&mut accepted);
        assert_eq!(accepted, CONNECTIONS, "a connection was lost or doubled");
        eprintln!(
            "{:?}: {dones} done, {pendings} pending, {} in transit",
            d.config().defer_taskrun,
            d.in_transit
        );
        assert!(dones > 0, "no accept was cancelled synchronously");
        drop(clients);
    }
}

/// The kernel answers `ENOENT` while the target is in transit between
/// issue attempts (task work queued after a poll wake-up). Simulated: the
/// first answers are taken as `ENOENT` without asking the kernel; the
/// driver runs the task work and asks again, and after
/// `SYNC_CANCEL_ATTEMPTS` misses falls back to the `AsyncCancel`.
#[test]
fn sync_cancel_retries_a_target_in_transit_then_falls_back() {
    let _g = shared();
    for mut d in sync_cancel_drivers() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut buf = vec![0u8; 16];
        // Missed three times, found the fourth: still synchronous.
        submit_recv(&mut d, 0, a.as_raw_fd(), &mut buf);
        d.fake_misses = super::SYNC_CANCEL_ATTEMPTS - 1;
        assert_eq!(d.cancel(0), Cancel::Forgotten);
        assert_eq!(d.in_transit, super::SYNC_CANCEL_ATTEMPTS - 1);
        assert_eq!(d.in_flight(), 0);
        // Missed every time: an AsyncCancel, `Pending`, the final
        // completion from the next wait.
        d.in_transit = 0;
        submit_recv(&mut d, 0, a.as_raw_fd(), &mut buf);
        d.fake_misses = super::SYNC_CANCEL_ATTEMPTS;
        assert_eq!(d.cancel(0), Cancel::Pending);
        assert_eq!(d.in_transit, super::SYNC_CANCEL_ATTEMPTS);
        let c = wait_for(&mut d, 0);
        assert_eq!(c.result.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
        assert_eq!(d.in_flight(), 0);
        // Neither cancelled recv took anything.
        b.write_all(b"abc").unwrap();
        submit_recv(&mut d, 0, a.as_raw_fd(), &mut buf);
        assert_eq!(wait_for(&mut d, 0).result.unwrap().bytes, 3);
        assert_eq!(&buf[..3], b"abc");
    }
}

/// The read-ahead setups whose release must be synchronous: the default
/// ring (DEFER_TASKRUN) and a plain one.
fn sync_release_drivers() -> Vec<UringDriver> {
    [UringBuilder::new(), UringBuilder::plain()]
        .into_iter()
        .map(|b| {
            let d = b.multishot_recv(true).build().unwrap();
            assert!(d.multishot_recv(), "a 6.x kernel has multishot receive");
            assert!(d.support.sync_cancel, "a 6.x kernel cancels synchronously");
            d
        })
        .collect()
}

/// The peer of a socket the driver released and the test closed: reads
/// end of stream within `within` (`Err` on a timeout).
fn peer_sees_eof(client: &mut TcpStream, within: Duration) -> std::io::Result<usize> {
    client.set_read_timeout(Some(within)).unwrap();
    let mut byte = [0u8; 1];
    client.read(&mut byte)
}

/// Arms the multishot of `server` in one of three states: `0` in the
/// kernel, idle; `1` in the kernel with bytes it received queued in the
/// driver, unread; `2` its SQE still queued, not yet submitted (the `Recv`
/// that armed it was cancelled before any `wait`).
fn arm_multishot(d: &mut UringDriver, server: &TcpStream, client: &mut TcpStream, state: u8) {
    let fd = server.as_raw_fd();
    assert!(d.promise_recv_only(fd));
    let mut buf = [0u8; 8];
    if state == 2 {
        submit_recv(d, 0, fd, &mut buf);
        assert_eq!(d.cancel(0), Cancel::Forgotten);
        return;
    }
    client.write_all(b"q").unwrap();
    assert_eq!(recv_now_or_later(d, 0, fd, &mut buf).0, 1);
    if state == 1 {
        client.write_all(b"queued").unwrap();
    }
    settle(d);
}

/// `release_fd` on a read-ahead stream cancels its multishot receive
/// synchronously: when it returns the kernel holds no reference to the
/// socket, so closing it right after sends the FIN at once and the peer
/// reads end of stream with no loop iteration in between (with the old
/// asynchronous cancel the socket stayed open until the next `wait`).
/// The cancelled multishot's CQEs only recycled their buffers: nothing is
/// reported, and the next stream reads normally.
#[test]
fn multishot_release_lets_go_so_the_peer_sees_the_close_at_once() {
    let _g = shared();
    for mut d in sync_release_drivers() {
        for state in 0..3 {
            let (server, mut client) = tcp_pair();
            arm_multishot(&mut d, &server, &mut client, state);
            d.release_fd(server.as_raw_fd());
            drop(server);
            let res = peer_sees_eof(&mut client, Duration::from_millis(500));
            assert_eq!(
                res.ok(),
                Some(0),
                "state {state}, {:?}: the peer must see the close at once",
                d.config()
            );
            assert_eq!(d.in_flight(), 0);
            let mut done = Vec::new();
            d.wait(Some(Duration::from_millis(5)), &mut done).unwrap();
            assert!(done.is_empty(), "{done:?}");
        }
        // The next stream on the same driver reads normally.
        let (server, mut client) = tcp_pair();
        let fd = server.as_raw_fd();
        assert!(d.promise_recv_only(fd));
        let mut buf = [0u8; 8];
        for i in 0..100 {
            client.write_all(b"x").unwrap();
            assert_eq!(recv_now_or_later(&mut d, i, fd, &mut buf).0, 1);
        }
        d.release_fd(fd);
    }
}

/// Without `IORING_REGISTER_SYNC_CANCEL` (forced), or when the kernel
/// keeps missing the multishot, the release falls back to the
/// `AsyncCancel`: the socket closes only once a later `wait` submitted it.
#[test]
fn multishot_release_fallback_closes_the_socket_on_the_next_wait() {
    let _g = shared();
    for forced in ["no sync cancel", "missed"] {
        let mut d = mshot_driver();
        let (server, mut client) = tcp_pair();
        arm_multishot(&mut d, &server, &mut client, 0);
        match forced {
            "no sync cancel" => d.support.sync_cancel = false,
            _ => d.fake_misses = super::SYNC_CANCEL_ATTEMPTS,
        }
        d.release_fd(server.as_raw_fd());
        drop(server);
        let early = peer_sees_eof(&mut client, Duration::from_millis(50));
        assert!(
            early.is_err(),
            "{forced}: the kernel still holds the socket"
        );
        settle(&mut d);
        assert_eq!(
            peer_sees_eof(&mut client, Duration::from_secs(5)).ok(),
            Some(0),
            "{forced}"
        );
        assert_eq!(d.in_flight(), 0);
    }
}

/// An operation whose cancel fell back to an `AsyncCancel` (forced here)
/// may still hold its file when the loop releases the descriptor:
/// `release_fd` cancels it synchronously too, so closing the listener
/// refuses a connect at once; its final completion stays for the next
/// `wait` to report (the loop was told `Pending`).
#[test]
fn release_lets_go_of_an_op_whose_cancel_fell_back() {
    let _g = shared();
    for mut d in sync_cancel_drivers() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let fd = listener.as_raw_fd();
        submit(&mut d, 0, Op::PollReadable { fd });
        let mut done = Vec::new();
        d.wait(Some(Duration::ZERO), &mut done).unwrap();
        d.fake_misses = super::SYNC_CANCEL_ATTEMPTS;
        assert_eq!(d.cancel(0), Cancel::Pending);
        d.release_fd(fd);
        drop(listener);
        let err = TcpStream::connect(addr).expect_err("the listener is gone");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
        let c = wait_for(&mut d, 0);
        assert_eq!(c.result.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
        assert_eq!(d.in_flight(), 0);
    }
}
