//! Unit tests of [`ReadinessDriver`] against the [`FakeSelector`]: real
//! non-blocking descriptors give the syscalls something to act on, the fake
//! decides when the driver is told they are ready, and its call log shows
//! what the driver asked of the selector.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::task::Poll;
use std::time::{Duration, Instant};

use socket2::SockAddr;

use super::*;
use crate::{ReadinessDriver, READ_BUDGET};
use loop_driver::{Cancel, Completion, Driver, Op, OpId, OpOutput};

type Fake = ReadinessDriver<FakeSelector>;

fn driver() -> (Fake, FakeControl) {
    let selector = FakeSelector::new();
    let ctl = selector.control();
    (ReadinessDriver::new(selector), ctl)
}

/// A non-blocking `socketpair` of type `ty`: (the driver's end, the test's end).
fn pair(ty: libc::c_int) -> (OwnedFd, OwnedFd) {
    let mut fds = [-1; 2];
    let ty = ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: `fds` has room for the two descriptors.
    let ret = unsafe { libc::socketpair(libc::AF_UNIX, ty, 0, fds.as_mut_ptr()) };
    assert_eq!(ret, 0, "socketpair: {}", io::Error::last_os_error());
    // SAFETY: fresh descriptors nobody else owns.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

fn stream_pair() -> (OwnedFd, OwnedFd) {
    pair(libc::SOCK_STREAM)
}

/// Writes all of `data` to the non-blocking `fd` (which must have room).
fn put(fd: &OwnedFd, data: &[u8]) {
    // SAFETY: `data` is readable for its length.
    let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
    assert_eq!(n, data.len() as isize, "{}", io::Error::last_os_error());
}

/// Reads everything `fd` holds now.
fn drain(fd: &OwnedFd) -> usize {
    let mut total = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return total;
        }
        total += n as usize;
    }
}

fn recv(d: &mut Fake, id: OpId, fd: &OwnedFd, buf: &mut [u8]) -> Poll<io::Result<OpOutput>> {
    let op = Op::Recv {
        fd: fd.as_raw_fd(),
        buf: buf.as_mut_ptr(),
        len: buf.len(),
    };
    // SAFETY: every test keeps `buf` and `fd` alive, untouched, until the
    // operation completes, is cancelled, or the driver is dropped.
    unsafe { d.submit(id, op) }
}

fn send(d: &mut Fake, id: OpId, fd: &OwnedFd, buf: &[u8]) -> Poll<io::Result<OpOutput>> {
    let op = Op::Send {
        fd: fd.as_raw_fd(),
        buf: buf.as_ptr(),
        len: buf.len(),
    };
    // SAFETY: as in `recv`.
    unsafe { d.submit(id, op) }
}

/// One `wait(Some(0))`: its completions.
fn wait0(d: &mut Fake) -> Vec<Completion> {
    let mut done = Vec::new();
    d.wait(Some(Duration::ZERO), &mut done).unwrap();
    done
}

fn ids(done: &[Completion]) -> Vec<OpId> {
    done.iter().map(|c| c.id).collect()
}

fn res(c: &Completion) -> usize {
    match &c.result {
        Ok(out) => out.bytes,
        Err(e) => panic!("operation {} failed: {e}", c.id),
    }
}

fn ready_res(p: Poll<io::Result<OpOutput>>) -> usize {
    match p {
        Poll::Ready(Ok(out)) => out.bytes,
        Poll::Ready(Err(e)) => panic!("failed: {e}"),
        Poll::Pending => panic!("parked, expected to complete at once"),
    }
}

fn arm(fd: RawFd, read: bool, write: bool, registered: bool) -> Call {
    Call::Arm {
        fd,
        read,
        write,
        registered,
    }
}

fn set_interest(fd: RawFd, read: bool, write: bool, served_read: bool) -> Call {
    Call::Rearm {
        fd,
        read,
        write,
        served_read,
    }
}

fn select0(events: usize) -> Call {
    Call::Select {
        timeout: Some(Duration::ZERO),
        events,
    }
}

#[test]
fn an_operation_that_can_complete_at_once_never_touches_the_selector() {
    let (mut d, ctl) = driver();
    let (ours, peer) = stream_pair();
    put(&peer, b"hello");
    let mut buf = [0u8; 5];
    assert_eq!(ready_res(recv(&mut d, 1, &ours, &mut buf)), 5);
    assert_eq!(&buf, b"hello");
    assert_eq!(ready_res(send(&mut d, 2, &ours, b"back")), 4);
    assert_eq!(ctl.calls(), []);
    // Nothing parked: a poll that may not block asks the selector nothing.
    assert!(wait0(&mut d).is_empty());
    assert_eq!(ctl.calls(), []);
}

#[test]
fn a_parked_operation_completes_only_once_readiness_is_reported() {
    let (mut d, ctl) = driver();
    let (ours, peer) = stream_pair();
    let fd = ours.as_raw_fd();
    let mut buf = [0u8; 3];
    assert!(recv(&mut d, 7, &ours, &mut buf).is_pending());
    assert_eq!(ctl.take_calls(), [arm(fd, true, false, false)]);
    assert_eq!(
        ctl.interest(fd),
        Some(Interest {
            read: true,
            write: false
        })
    );

    // The data is there, but the selector has not said so.
    put(&peer, b"abc");
    assert!(wait0(&mut d).is_empty());
    assert_eq!(ctl.take_calls(), [select0(0)]);

    // A write readiness the operation does not wait for is not reported.
    ctl.writable(fd);
    assert!(wait0(&mut d).is_empty());
    assert_eq!(ctl.take_calls(), [select0(0)]);

    ctl.readable(fd);
    let done = wait0(&mut d);
    assert_eq!(ids(&done), [7]);
    assert_eq!(res(&done[0]), 3);
    assert_eq!(&buf, b"abc");
    // The event served a reader; nobody waits any more.
    assert_eq!(
        ctl.take_calls(),
        [select0(1), set_interest(fd, false, false, true)]
    );
    // Nothing parked: no select, whatever is marked.
    assert!(wait0(&mut d).is_empty());
    assert_eq!(ctl.calls(), []);
    assert!(ctl.is_marked(fd), "the unreported write readiness is kept");
}

#[test]
fn parked_operations_on_one_descriptor_are_retried_in_submission_order() {
    let (mut d, ctl) = driver();
    let (ours, peer) = stream_pair();
    let fd = ours.as_raw_fd();
    let mut bufs = [[0u8; 4]; 3];
    let [a, b, c] = &mut bufs;
    assert!(recv(&mut d, 3, &ours, a).is_pending());
    assert!(recv(&mut d, 1, &ours, b).is_pending());
    assert!(recv(&mut d, 2, &ours, c).is_pending());
    assert_eq!(
        ctl.take_calls(),
        [
            arm(fd, true, false, false),
            arm(fd, true, false, true),
            arm(fd, true, false, true)
        ]
    );

    // Enough for two of them: the third would block and stays parked.
    put(&peer, b"aaaabbbb");
    ctl.readable(fd);
    let done = wait0(&mut d);
    assert_eq!(ids(&done), [3, 1]);
    assert_eq!(&bufs[0], b"aaaa");
    assert_eq!(&bufs[1], b"bbbb");
    assert_eq!(
        ctl.take_calls(),
        [select0(1), set_interest(fd, true, false, true)]
    );

    put(&peer, b"cccc");
    ctl.readable(fd);
    let done = wait0(&mut d);
    assert_eq!(ids(&done), [2]);
    assert_eq!(&bufs[2], b"cccc");
}

#[test]
fn parked_writers_are_retried_in_submission_order_after_readers() {
    let (mut d, ctl) = driver();
    let (ours, peer) = stream_pair();
    let fd = ours.as_raw_fd();
    // Fill the send buffer: a short send.
    let big = vec![7u8; 8 << 20];
    let sent = ready_res(send(&mut d, 0, &ours, &big));
    assert!(sent < big.len());
    let mut rbuf = [0u8; 2];
    assert!(recv(&mut d, 1, &ours, &mut rbuf).is_pending());
    assert!(send(&mut d, 2, &ours, b"x").is_pending());
    assert!(send(&mut d, 3, &ours, b"y").is_pending());
    assert_eq!(
        ctl.take_calls(),
        [
            arm(fd, true, false, false),
            arm(fd, true, true, true),
            arm(fd, true, true, true)
        ]
    );
    assert_eq!(drain(&peer), sent);
    put(&peer, b"hi");
    ctl.ready(fd, true, true);
    let done = wait0(&mut d);
    assert_eq!(ids(&done), [1, 2, 3]);
    assert_eq!(&rbuf, b"hi");
    let mut got = [0u8; 2];
    // SAFETY: `got` is writable for its length.
    let n = unsafe { libc::read(peer.as_raw_fd(), got.as_mut_ptr().cast(), 2) };
    assert_eq!((n, &got), (2, b"xy"));
}

#[test]
fn a_cancelled_operation_never_completes() {
    let (mut d, ctl) = driver();
    let (ours, peer) = stream_pair();
    let fd = ours.as_raw_fd();
    let (mut a, mut b) = ([0u8; 4], [0u8; 4]);
    assert!(recv(&mut d, 1, &ours, &mut a).is_pending());
    assert!(recv(&mut d, 2, &ours, &mut b).is_pending());
    assert_eq!(d.cancel(1), Cancel::Forgotten);
    // Twice, and an id the driver never saw: still nothing to wait for.
    assert_eq!(d.cancel(1), Cancel::Forgotten);
    assert_eq!(d.cancel(99), Cancel::Forgotten);

    put(&peer, b"data");
    ctl.readable(fd);
    let done = wait0(&mut d);
    assert_eq!(ids(&done), [2]);
    assert_eq!(&b, b"data");
    assert_eq!(a, [0; 4], "the cancelled receive's buffer was not touched");

    // Cancelling the last waiter: an event for the descriptor finds nobody.
    assert!(recv(&mut d, 3, &ours, &mut a).is_pending());
    assert_eq!(d.cancel(3), Cancel::Forgotten);
    put(&peer, b"more");
    ctl.readable(fd);
    ctl.take_calls();
    // Nothing is parked, so `wait(0)` would not even select: block briefly.
    let mut done = Vec::new();
    d.wait(Some(Duration::from_millis(1)), &mut done).unwrap();
    assert!(done.is_empty());
    assert_eq!(a, [0; 4]);
    assert_eq!(
        ctl.take_calls(),
        [
            Call::Select {
                timeout: Some(Duration::from_millis(1)),
                events: 1
            },
            set_interest(fd, false, false, false)
        ]
    );
}

#[test]
fn a_refused_registration_fails_the_operation_and_parks_nothing() {
    let (mut d, ctl) = driver();
    let (ours, _peer) = stream_pair();
    let fd = ours.as_raw_fd();
    ctl.refuse(fd, libc::EPERM);
    let mut buf = [0u8; 4];
    match recv(&mut d, 1, &ours, &mut buf) {
        Poll::Ready(Err(e)) => assert_eq!(e.raw_os_error(), Some(libc::EPERM)),
        other => panic!("expected EPERM, got {other:?}"),
    }
    assert_eq!(ctl.take_calls(), [arm(fd, true, false, false)]);
    // Nothing parked (no select), and the descriptor is still unregistered.
    assert!(wait0(&mut d).is_empty());
    assert_eq!(ctl.calls(), []);
    ctl.allow(fd);
    assert!(recv(&mut d, 1, &ours, &mut buf).is_pending());
    assert_eq!(ctl.take_calls(), [arm(fd, true, false, false)]);
}

#[test]
fn a_failed_rearm_fails_the_descriptors_waiters() {
    let (mut d, ctl) = driver();
    let (ours, _peer) = stream_pair();
    let fd = ours.as_raw_fd();
    let mut buf = [0u8; 4];
    assert!(recv(&mut d, 1, &ours, &mut buf).is_pending());
    assert!(
        send(&mut d, 2, &ours, b"").is_ready(),
        "an empty send completes"
    );
    ctl.refuse(fd, libc::EBADF);
    ctl.readable(fd); // spurious: no data, the receive would block
    let done = wait0(&mut d);
    assert_eq!(ids(&done), [1]);
    let err = done[0].result.as_ref().unwrap_err();
    assert_eq!(err.kind(), io::Error::from_raw_os_error(libc::EBADF).kind());
    // It is no longer parked.
    assert!(wait0(&mut d).is_empty());
    assert_eq!(ctl.selects(), 1);
}

#[test]
fn events_for_descriptors_nobody_registered_are_ignored() {
    let (mut d, ctl) = driver();
    let (ours, peer) = stream_pair();
    let (other, _other_peer) = stream_pair();
    let fd = ours.as_raw_fd();
    let mut buf = [0u8; 4];
    assert!(recv(&mut d, 1, &ours, &mut buf).is_pending());
    put(&peer, b"abcd");
    // A stale event for a descriptor the driver never registered, and one
    // for a number beyond any it knows: no retry, no re-arm.
    for fd in [other.as_raw_fd(), 1 << 20, -1] {
        ctl.event(Event {
            fd,
            readable: true,
            writable: true,
            closed: true,
        });
    }
    ctl.take_calls();
    assert!(wait0(&mut d).is_empty());
    assert_eq!(ctl.take_calls(), [select0(3)]);
    ctl.readable(fd);
    assert_eq!(ids(&wait0(&mut d)), [1]);
}

/// `n` stream pairs, each with a receive of `len` bytes parked on the
/// driver's end under id `i`.
struct Parked {
    pairs: Vec<(OwnedFd, OwnedFd)>,
    bufs: Vec<Vec<u8>>,
}

fn park_receives(d: &mut Fake, n: usize, len: usize) -> Parked {
    let pairs: Vec<_> = (0..n).map(|_| stream_pair()).collect();
    let mut bufs = vec![vec![0u8; len]; n];
    for (i, ((ours, _), buf)) in pairs.iter().zip(&mut bufs).enumerate() {
        assert!(recv(d, i, ours, buf).is_pending());
    }
    Parked { pairs, bufs }
}

#[test]
fn a_batch_is_handled_in_read_budget_slices_without_selecting_again() {
    const LEN: usize = 64 * 1024;
    assert_eq!(READ_BUDGET, 2 * LEN, "the slices below assume 128 KiB");
    let (mut d, ctl) = driver();
    let p = park_receives(&mut d, 5, LEN);
    let data = vec![1u8; LEN];
    for (ours, peer) in &p.pairs {
        put(peer, &data);
        ctl.readable(ours.as_raw_fd());
    }
    ctl.take_calls();

    // One select reports all five; each wait reads at most the budget.
    let done = wait0(&mut d);
    assert_eq!(ids(&done), [0, 1]);
    assert!(done.iter().all(|c| res(c) == LEN));
    assert_eq!(ctl.selects(), 1);
    assert_eq!(
        ctl.take_calls()[0],
        Call::Select {
            timeout: Some(Duration::ZERO),
            events: 5
        }
    );
    // The kept events come first, without a select, even for a wait that
    // could block.
    let mut done = Vec::new();
    d.wait(None, &mut done).unwrap();
    assert_eq!(ids(&done), [2, 3]);
    assert_eq!(ids(&wait0(&mut d)), [4]);
    assert_eq!(ctl.selects(), 0);
    // All served: nothing parked, nothing kept.
    assert!(wait0(&mut d).is_empty());
    assert_eq!(ctl.selects(), 0);
    assert!(p.bufs.iter().all(|b| b.iter().all(|&x| x == 1)));
}

#[test]
fn a_released_descriptor_is_disarmed_and_its_reused_number_starts_clean() {
    const LEN: usize = 64 * 1024;
    let (mut d, ctl) = driver();
    let mut p = park_receives(&mut d, 4, LEN);
    let data = vec![1u8; LEN];
    for (ours, peer) in &p.pairs {
        put(peer, &data);
        ctl.readable(ours.as_raw_fd());
    }
    // The first slice: 0 and 1; the events of 2 and 3 are kept.
    assert_eq!(ids(&wait0(&mut d)), [0, 1]);
    ctl.take_calls();

    // The loop drops 2's receive and releases its descriptor...
    let fd = p.pairs[2].0.as_raw_fd();
    assert_eq!(d.cancel(2), Cancel::Forgotten);
    d.release_fd(fd);
    assert_eq!(ctl.take_calls(), [Call::Disarm { fd }]);
    assert_eq!(ctl.interest(fd), None);
    // ... and the number comes back as a new socket (dup2 makes the reuse
    // certain), on which a receive parks as on a descriptor never seen.
    let (new_ours, new_peer) = stream_pair();
    // SAFETY: `fd` is owned by `p.pairs[2].0`, which now holds the new socket.
    assert_eq!(unsafe { libc::dup2(new_ours.as_raw_fd(), fd) }, fd);
    drop(new_ours);
    let mut buf = [0u8; 8];
    assert!(recv(&mut d, 20, &p.pairs[2].0, &mut buf).is_pending());
    assert_eq!(ctl.take_calls(), [arm(fd, true, false, false)]);
    put(&new_peer, b"new data");

    // The rest of the batch: the old socket's event was blanked, so the new
    // socket's receive is not tried (nor its interest touched) although
    // data is there; only 3 completes.
    let done = wait0(&mut d);
    assert_eq!(ids(&done), [3]);
    let fd3 = p.pairs[3].0.as_raw_fd();
    assert_eq!(ctl.take_calls(), [set_interest(fd3, false, false, true)]);
    assert_eq!(buf, [0; 8]);

    // Once the fake reports the new socket, it completes.
    ctl.readable(fd);
    let done = wait0(&mut d);
    assert_eq!(ids(&done), [20]);
    assert_eq!(&buf, b"new data");
    p.bufs.clear();
}

#[test]
fn a_short_stream_receive_makes_the_next_park_at_once() {
    let (mut d, ctl) = driver();
    let (ours, peer) = stream_pair();
    let fd = ours.as_raw_fd();
    put(&peer, b"abc");
    let mut buf = [0u8; 16];
    assert_eq!(ready_res(recv(&mut d, 1, &ours, &mut buf)), 3);
    // The queue was drained: the next receive parks without trying,
    // although data has arrived since (a syscall would have returned it).
    put(&peer, b"defgh");
    let mut small = [0u8; 4];
    assert!(recv(&mut d, 2, &ours, &mut small).is_pending());
    assert_eq!(ctl.take_calls(), [arm(fd, true, false, false)]);

    // The event clears the mark: a full-length read leaves it clear...
    ctl.readable(fd);
    assert_eq!(ids(&wait0(&mut d)), [2]);
    assert_eq!(&small, b"defg");
    // ... so the next receive is tried at once, and gets the last byte.
    assert_eq!(ready_res(recv(&mut d, 3, &ours, &mut buf)), 1);
    assert_eq!(buf[0], b'h');
}

#[test]
fn a_short_stream_send_makes_the_next_park_at_once() {
    let (mut d, ctl) = driver();
    let (ours, peer) = stream_pair();
    let fd = ours.as_raw_fd();
    let big = vec![7u8; 8 << 20];
    let sent = ready_res(send(&mut d, 1, &ours, &big));
    assert!(sent < big.len(), "the send buffer is smaller than 8 MiB");
    // Room again, but no event came: the next send parks without trying.
    assert_eq!(drain(&peer), sent);
    assert!(send(&mut d, 2, &ours, b"z").is_pending());
    assert_eq!(ctl.take_calls(), [arm(fd, false, true, false)]);
    ctl.writable(fd);
    let done = wait0(&mut d);
    assert_eq!(ids(&done), [2]);
    assert_eq!(res(&done[0]), 1);
    assert_eq!(
        ctl.take_calls(),
        [select0(1), set_interest(fd, false, false, false)]
    );
}

#[test]
fn datagram_sockets_never_skip_the_attempt() {
    let (mut d, ctl) = driver();
    let (ours, peer) = pair(libc::SOCK_DGRAM);
    put(&peer, b"one");
    put(&peer, b"two");
    let mut buf = [0u8; 16];
    // Short datagrams say nothing about the queue.
    assert_eq!(ready_res(recv(&mut d, 1, &ours, &mut buf)), 3);
    assert_eq!(ready_res(recv(&mut d, 2, &ours, &mut buf)), 3);
    assert_eq!(&buf[..3], b"two");
    assert_eq!(ctl.calls(), []);
}

#[test]
fn a_hang_up_is_sticky_and_ends_the_known_drained_skip() {
    let (mut d, ctl) = driver();
    let (ours, peer) = stream_pair();
    let fd = ours.as_raw_fd();
    let mut buf = [0u8; 16];
    assert!(recv(&mut d, 1, &ours, &mut buf).is_pending());
    // The last data and the end of stream come in one edge.
    put(&peer, b"bye");
    drop(peer);
    ctl.hang_up(fd);
    let done = wait0(&mut d);
    assert_eq!(ids(&done), [1]);
    assert_eq!(res(&done[0]), 3);
    // A short read, but the descriptor is closed: the next receive is
    // tried (and finds the end of stream) instead of parking for an edge
    // that will not come again.
    assert_eq!(ready_res(recv(&mut d, 2, &ours, &mut buf)), 0);
    assert_eq!(ready_res(recv(&mut d, 3, &ours, &mut buf)), 0);
}

#[test]
fn a_hang_up_fails_a_parked_send_with_the_error() {
    let (mut d, ctl) = driver();
    let (ours, peer) = stream_pair();
    let fd = ours.as_raw_fd();
    let big = vec![7u8; 8 << 20];
    let _ = ready_res(send(&mut d, 1, &ours, &big));
    assert!(send(&mut d, 2, &ours, b"z").is_pending());
    drop(peer);
    ctl.hang_up(fd);
    let done = wait0(&mut d);
    assert_eq!(ids(&done), [2]);
    let err = done[0].result.as_ref().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPIPE));
}

/// A non-blocking TCP socket.
fn tcp_socket() -> OwnedFd {
    let ty = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(libc::AF_INET, ty, 0) };
    assert!(fd >= 0, "socket: {}", io::Error::last_os_error());
    // SAFETY: a fresh descriptor.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Submits a connect to `addr` (it must go in progress), then reports the
/// socket writable until it completes; asserts that nothing completes
/// before the first report.
fn connect_via_writability(addr: SocketAddr) -> (io::Result<OpOutput>, OwnedFd) {
    let (mut d, ctl) = driver();
    let sock = tcp_socket();
    let fd = sock.as_raw_fd();
    let op = Op::Connect {
        fd,
        addr: Box::new(SockAddr::from(addr)),
    };
    // SAFETY: no memory; `sock` outlives the operation.
    let first = unsafe { d.submit(1, op) };
    assert!(
        first.is_pending(),
        "a loopback TCP connect goes in progress"
    );
    assert_eq!(ctl.take_calls(), [arm(fd, false, true, false)]);
    assert!(wait0(&mut d).is_empty(), "not reported writable yet");
    // The handshake on loopback is over by now; a spurious wake-up before
    // it is would leave the connect parked, so a few rounds are allowed.
    let start = Instant::now();
    loop {
        ctl.writable(fd);
        let mut done = wait0(&mut d);
        if let Some(c) = done.pop() {
            assert_eq!(c.id, 1);
            return (c.result, sock);
        }
        assert!(start.elapsed() < Duration::from_secs(5), "connect hangs");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_connect_in_progress_finishes_on_writability() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let (result, sock) = connect_via_writability(listener.local_addr().unwrap());
    assert_eq!(result.unwrap().bytes, 0);
    let (accepted, _) = listener.accept().unwrap();
    assert_eq!(
        accepted.peer_addr().unwrap(),
        std::net::TcpStream::from(sock).local_addr().unwrap()
    );
}

#[test]
fn a_refused_connect_reports_the_socket_error() {
    // A port nobody listens on (just freed).
    let addr = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap();
    let (result, _sock) = connect_via_writability(addr);
    assert_eq!(result.unwrap_err().kind(), io::ErrorKind::ConnectionRefused);
}

#[test]
fn wait_zero_selects_only_while_something_is_parked() {
    let (mut d, ctl) = driver();
    assert!(wait0(&mut d).is_empty());
    assert_eq!(ctl.selects(), 0);
    let (ours, _peer) = stream_pair();
    let mut buf = [0u8; 4];
    assert!(recv(&mut d, 1, &ours, &mut buf).is_pending());
    assert!(wait0(&mut d).is_empty());
    assert_eq!(ctl.selects(), 1);
    assert_eq!(d.cancel(1), Cancel::Forgotten);
    assert!(wait0(&mut d).is_empty());
    assert_eq!(ctl.selects(), 1);
    // A wait that may block always asks (here it times out at once).
    let mut done = Vec::new();
    d.wait(Some(Duration::from_millis(1)), &mut done).unwrap();
    assert_eq!(ctl.selects(), 2);
}

#[test]
fn the_notifier_makes_a_blocked_wait_return() {
    let (mut d, ctl) = driver();
    let notifier = d.notifier();
    let (ours, _peer) = stream_pair();
    let mut buf = [0u8; 4];
    assert!(recv(&mut d, 1, &ours, &mut buf).is_pending());

    // Notified before the wait: it returns at once, and only once.
    let n = notifier.clone();
    std::thread::spawn(move || n.notify()).join().unwrap();
    let mut done = Vec::new();
    d.wait(None, &mut done).unwrap();
    assert!(done.is_empty());
    d.wait(Some(Duration::from_millis(1)), &mut done).unwrap();

    // Notified while blocked with no limit.
    let n = notifier.clone();
    let waker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        n.notify();
    });
    d.wait(None, &mut done).unwrap();
    waker.join().unwrap();
    assert!(done.is_empty());
    assert_eq!(
        ctl.calls()
            .into_iter()
            .filter(|c| matches!(c, Call::Select { timeout: None, .. }))
            .count(),
        2
    );
}

#[test]
fn readiness_marked_from_another_thread_wakes_a_blocked_select() {
    let (mut d, ctl) = driver();
    let (ours, peer) = stream_pair();
    let fd = ours.as_raw_fd();
    let mut buf = [0u8; 2];
    assert!(recv(&mut d, 1, &ours, &mut buf).is_pending());
    let remote = ctl.clone();
    let marker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        put(&peer, b"ok");
        remote.readable(fd);
        peer
    });
    let mut done = Vec::new();
    d.wait(None, &mut done).unwrap();
    let _peer = marker.join().unwrap();
    assert_eq!(ids(&done), [1]);
    assert_eq!(&buf, b"ok");
}

#[test]
fn the_fake_reports_only_armed_directions_and_keeps_the_rest() {
    let mut sel = FakeSelector::new();
    let ctl = sel.control();
    let mut events = Vec::new();
    ctl.ready(5, true, true);
    ctl.readable(6);
    // Nothing registered: nothing reported, everything kept.
    sel.select(Some(Duration::ZERO), &mut events).unwrap();
    assert!(events.is_empty());
    sel.arm(6, true, false, false).unwrap();
    sel.arm(5, false, true, false).unwrap();
    sel.select(Some(Duration::ZERO), &mut events).unwrap();
    // In marking order; 5's readability waits for a read interest.
    let got: Vec<_> = events
        .iter()
        .map(|e| (e.fd, e.readable, e.writable, e.closed))
        .collect();
    assert_eq!(got, [(5, false, true, false), (6, true, false, false)]);
    assert!(ctl.is_marked(5) && !ctl.is_marked(6));
    events.clear();
    sel.set_interest(5, true, false, false).unwrap();
    sel.select(Some(Duration::ZERO), &mut events).unwrap();
    assert_eq!((events[0].fd, events[0].readable), (5, true));
    // Disarm forgets the descriptor and what was marked for it.
    ctl.hang_up(6);
    sel.disarm(6);
    sel.arm(6, true, true, false).unwrap();
    events.clear();
    sel.select(Some(Duration::ZERO), &mut events).unwrap();
    assert!(events.is_empty());
    assert_eq!(sel.name(), NAME);
}

fn poll_op(d: &mut Fake, id: OpId, fd: RawFd, read: bool) -> Poll<io::Result<OpOutput>> {
    let op = if read {
        Op::PollReadable { fd }
    } else {
        Op::PollWritable { fd }
    };
    // SAFETY: a readiness poll holds no memory; every test keeps `fd` open
    // until the poll completes or is cancelled.
    unsafe { d.submit(id, op) }
}

#[test]
fn readiness_polls_are_checked_together_by_the_next_wait() {
    let (mut d, ctl) = driver();
    let (a, a_peer) = stream_pair();
    let (b, _b_peer) = stream_pair();
    let (c, _c_peer) = stream_pair();
    put(&a_peer, b"x");
    // Submitting costs nothing: no syscall, no selector call.
    assert!(poll_op(&mut d, 1, a.as_raw_fd(), true).is_pending());
    assert!(poll_op(&mut d, 2, b.as_raw_fd(), true).is_pending());
    assert!(poll_op(&mut d, 3, c.as_raw_fd(), false).is_pending());
    assert_eq!(ctl.calls(), []);

    // The wait checks them: `a` is readable and `c` writable; `b` is not
    // readable and parks on its descriptor; the select does not block.
    let done = wait0(&mut d);
    let mut got = ids(&done);
    got.sort_unstable();
    assert_eq!(got, [1, 3]);
    assert!(done.iter().all(|c| res(c) == 0));
    assert_eq!(
        ctl.take_calls(),
        [arm(b.as_raw_fd(), true, false, false), select0(0)]
    );

    // `b` is parked: it completes once the selector reports it and the
    // check confirms it.
    put(&_b_peer, b"y");
    ctl.readable(b.as_raw_fd());
    assert_eq!(ids(&wait0(&mut d)), [2]);
}

#[test]
fn a_descriptor_left_readable_completes_every_resubmitted_poll() {
    // Level semantics: a watcher's poll is resubmitted after each callback,
    // and while the data stays unread every wait completes it again, with
    // no event from the (edge-triggered) selector.
    let (mut d, ctl) = driver();
    let (ours, peer) = stream_pair();
    let fd = ours.as_raw_fd();
    put(&peer, b"unread");
    for round in 0..3 {
        assert!(poll_op(&mut d, 5, fd, true).is_pending());
        assert_eq!(ids(&wait0(&mut d)), [5], "round {round}");
    }
    // Nothing was ever parked: the selector was never asked.
    assert_eq!(ctl.calls(), []);
    // Once drained, the resubmitted poll parks and stays quiet.
    drain(&ours);
    assert!(poll_op(&mut d, 5, fd, true).is_pending());
    assert!(wait0(&mut d).is_empty());
    assert_eq!(ctl.take_calls(), [arm(fd, true, false, false), select0(0)]);
}

#[test]
fn a_reported_poll_whose_readiness_is_gone_parks_again() {
    // An edge-triggered selector may report an edge whose data was already
    // read: the check finds nothing and the poll waits for the next edge
    // instead of completing spuriously.
    let (mut d, ctl) = driver();
    let (ours, peer) = stream_pair();
    let fd = ours.as_raw_fd();
    assert!(poll_op(&mut d, 4, fd, true).is_pending());
    assert!(wait0(&mut d).is_empty());
    ctl.take_calls();
    ctl.readable(fd); // stale: nothing to read
    assert!(wait0(&mut d).is_empty());
    // Served (the reader stays interested) and parked again.
    assert_eq!(
        ctl.take_calls(),
        [
            select0(1),
            set_interest(fd, false, false, true),
            arm(fd, true, false, true)
        ]
    );
    put(&peer, b"now");
    ctl.readable(fd);
    assert_eq!(ids(&wait0(&mut d)), [4]);
}

#[test]
fn a_cancelled_or_released_poll_never_completes() {
    let (mut d, _ctl) = driver();
    let (ours, peer) = stream_pair();
    let fd = ours.as_raw_fd();
    put(&peer, b"ready");
    // Cancelled before its check.
    assert!(poll_op(&mut d, 1, fd, true).is_pending());
    assert!(matches!(d.cancel(1), Cancel::Forgotten));
    // Its id reused at once by another poll: checked (and completed) once.
    assert!(poll_op(&mut d, 1, fd, false).is_pending());
    assert!(poll_op(&mut d, 2, fd, true).is_pending());
    d.release_fd(fd);
    let done = wait0(&mut d);
    assert!(done.is_empty(), "released: {:?}", ids(&done));
    assert!(poll_op(&mut d, 3, fd, true).is_pending());
    assert!(poll_op(&mut d, 3, fd, true).is_pending());
    assert_eq!(ids(&wait0(&mut d)), [3]);
    // Cancelled after parking: never completes, even when reported.
    drain(&ours);
    assert!(poll_op(&mut d, 6, fd, true).is_pending());
    assert!(wait0(&mut d).is_empty());
    assert!(matches!(d.cancel(6), Cancel::Forgotten));
    put(&peer, b"later");
    _ctl.readable(fd);
    assert!(wait0(&mut d).is_empty());
}

#[test]
fn a_poll_on_a_closed_descriptor_fails_with_ebadf() {
    let (mut d, _ctl) = driver();
    let (ours, _peer) = stream_pair();
    let fd = ours.as_raw_fd();
    drop(ours);
    assert!(poll_op(&mut d, 9, fd, true).is_pending());
    let done = wait0(&mut d);
    assert_eq!(ids(&done), [9]);
    match &done[0].result {
        Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EBADF)),
        Ok(_) => panic!("a poll on a closed descriptor succeeded"),
    }
    match poll_op(&mut d, 10, -1, true) {
        Poll::Ready(Err(e)) => assert_eq!(e.raw_os_error(), Some(libc::EBADF)),
        _ => panic!("a negative descriptor was accepted"),
    }
}

#[test]
fn an_event_finding_a_just_checked_read_poll_keeps_the_read_interest() {
    // A level-triggered selector reports the readiness the check just
    // saw; the watcher whose poll completed is about to come back, so the
    // event counts as serving a reader (no interest dropped and re-added).
    let (mut d, ctl) = driver();
    let (ours, peer) = stream_pair();
    let fd = ours.as_raw_fd();
    assert!(poll_op(&mut d, 1, fd, true).is_pending());
    assert!(wait0(&mut d).is_empty());
    assert_eq!(ctl.take_calls(), [arm(fd, true, false, false), select0(0)]);
    put(&peer, b"data");
    ctl.readable(fd);
    assert_eq!(ids(&wait0(&mut d)), [1]);
    // Something else parked, so the wait selects.
    let (other, _other_peer) = stream_pair();
    let mut buf = [0u8; 1];
    assert!(recv(&mut d, 2, &other, &mut buf).is_pending());
    ctl.take_calls();
    // Resubmitted with the data still there: the check completes it and
    // the select's event for the same readiness (as a level-triggered
    // selector that kept the read interest reports it) finds no parked
    // reader.
    assert!(poll_op(&mut d, 1, fd, true).is_pending());
    ctl.event(Event {
        fd,
        readable: true,
        writable: false,
        closed: false,
    });
    assert_eq!(ids(&wait0(&mut d)), [1]);
    assert_eq!(
        ctl.take_calls(),
        [select0(1), set_interest(fd, false, false, true)]
    );
}
