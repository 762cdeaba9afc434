//! The driver contract: every clause of "The contract" on
//! [`loop_driver::Driver`], tested on a bare driver with no loop above it.
//!
//! A backend instantiates it in an integration test, giving a name and a
//! factory (`Fn() -> Box<dyn Driver>`; one that cannot make a driver panics,
//! or skips through [`support::skip`](crate::support::skip) where that is
//! allowed):
//!
//! ```text
//! // my-backend/tests/driver_contract.rs
//! fn driver() -> Box<dyn loop_driver::Driver> { Box::new(my_backend::driver().unwrap()) }
//! conformance_tests::driver_suite!(mine, crate::driver);
//! ```
//!
//! The tests use real non-blocking sockets, pipes and socket pairs and only
//! the trait. Where the contract leaves a choice they accept every
//! allowed answer: an operation that can finish at once may be `Ready` or
//! `Pending` and then completed by `wait`, and a cancel may answer
//! `Forgotten` or `Pending`; but whichever it is, exactly one result comes
//! per operation and nothing it produced is lost.
//!
//! Buffers given to operations are leaked (`'static`), so that a test that
//! fails, or a driver dropped with operations in flight, never lets the
//! kernel write into freed memory.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::task::Poll;
use std::time::{Duration, Instant};

use loop_driver::{Cancel, Completion, Driver, Op, OpId, OpOutput};
use socket2::{Domain, SockAddr, Socket, Type};

use crate::support::fd_count;

/// What the driver suite needs from a backend: a way to make a fresh driver.
pub trait DriverFactory: Fn() -> Box<dyn Driver> + Copy + Send + Sync + 'static {}
impl<F: Fn() -> Box<dyn Driver> + Copy + Send + Sync + 'static> DriverFactory for F {}

/// Instantiates every driver contract test for one backend.
///
/// `$name` becomes the top-level module of the generated tests;
/// `$factory` is a `Fn() -> Box<dyn loop_driver::Driver>` given as a path
/// from the crate root (`crate::my_driver`).
///
#[macro_export]
macro_rules! driver_suite {
    ($name:ident, $factory:expr $(,)?) => {
        #[allow(non_snake_case)]
        mod $name {
            $crate::__driver_tests!($factory, [
                name_is_not_empty,
                recv_with_data_queued_gives_exactly_one_result,
                recv_without_data_completes_from_wait_after_the_peer_writes,
                recv_at_end_of_stream_completes_with_zero_bytes,
                send_delivers_its_bytes,
                read_and_write_on_a_pipe,
                sendto_and_recvfrom_on_udp,
                close_op_closes_the_descriptor,
                cancel_of_an_unknown_id_is_forgotten_and_changes_nothing,
                cancel_of_an_idle_recv_gives_nothing_or_one_completion,
                cancel_of_a_recv_racing_with_data_loses_nothing,
                cancel_of_a_pending_accept_loses_no_connection,
                cancel_of_a_pending_poll_gives_nothing_or_one_completion,
                ids_are_reused_after_completion_and_after_forgotten,
                many_pending_ops_complete_by_id,
                queued_recvs_complete_in_submission_order,
                queued_sends_go_out_in_submission_order,
                accept_hands_back_an_owned_descriptor_and_the_peer_address,
                accept_with_a_connection_queued,
                connect_completes,
                connect_to_a_closed_port_fails,
                poll_writable_and_poll_readable,
                release_fd_after_a_completed_accept_lets_a_closed_listener_refuse,
                release_fd_after_a_cancelled_accept_lets_a_closed_listener_refuse,
                the_notifier_wakes_a_blocked_wait_from_another_thread,
                a_notify_before_wait_makes_it_return,
                wait_does_not_spin_after_a_wakeup,
                wait_zero_returns_promptly,
                invalid_descriptors_give_errors_not_panics,
                wrong_kinds_of_descriptor_give_one_result_not_panics,
            ] exclusive [
                dropping_a_driver_with_pending_ops_closes_its_descriptors,
                child_exit_completes,
            ]);
        }
    };
}

/// Generates one `#[test]` per driver contract test (see [`driver_suite!`]).
#[doc(hidden)]
#[macro_export]
macro_rules! __driver_tests {
    ($factory:expr, [$($test:ident),* $(,)?] exclusive [$($xtest:ident),* $(,)?]) => {
        mod driver_suite {
            $(
                #[test]
                fn $test() {
                    let _shared = $crate::support::shared();
                    $crate::support::run_or_skip(|| {
                        $crate::driver_suite::$test($factory)
                    });
                }
            )*
            $(
                #[test]
                fn $xtest() {
                    let _exclusive = $crate::support::exclusive();
                    $crate::support::run_or_skip(|| {
                        $crate::driver_suite::$xtest($factory)
                    });
                }
            )*
        }
    };
}

/// The longest any wait for an expected completion may take before the
/// test fails. A passing test never gets near it.
const LIMIT: Duration = Duration::from_secs(2);

/// How long a test watches for a completion that must not come.
const QUIET: Duration = Duration::from_millis(30);

/// A driver plus the completions it reported that no check has claimed yet.
struct Harness {
    driver: Box<dyn Driver>,
    got: Vec<Completion>,
}

impl Harness {
    fn new(factory: impl DriverFactory) -> Self {
        Harness {
            driver: factory(),
            got: Vec::new(),
        }
    }

    /// Submits `op` under `id`.
    ///
    /// # Safety
    /// As [`Driver::submit`]; the suite's buffers are leaked, so only the
    /// descriptors need care.
    unsafe fn submit(&mut self, id: OpId, op: Op) -> Poll<io::Result<OpOutput>> {
        // SAFETY: passed on to the caller.
        unsafe { self.driver.submit(id, op) }
    }

    /// Submits `op`, which must not be able to finish yet.
    fn submit_pending(&mut self, id: OpId, op: Op) {
        let what = format!("{op:?}");
        // SAFETY: leaked buffers; the callers keep the descriptors open.
        match unsafe { self.submit(id, op) } {
            Poll::Pending => {}
            Poll::Ready(r) => panic!("{what} could not finish yet, but was Ready: {r:?}"),
        }
    }

    /// One `wait` with `timeout`, keeping what it reports.
    fn wait_once(&mut self, timeout: Duration) {
        let mut done = Vec::new();
        self.driver
            .wait(Some(timeout), &mut done)
            .expect("Driver::wait failed");
        self.got.extend(done);
    }

    /// The completion for `id` if one was reported; more than one is a failure.
    fn take(&mut self, id: OpId) -> Option<io::Result<OpOutput>> {
        let n = self.got.iter().filter(|c| c.id == id).count();
        assert!(n <= 1, "{n} completions for id {id}: {:?}", self.got);
        let at = self.got.iter().position(|c| c.id == id)?;
        Some(self.got.remove(at).result)
    }

    /// Waits for the completion of `id`.
    fn wait_for(&mut self, id: OpId) -> io::Result<OpOutput> {
        let start = Instant::now();
        loop {
            if let Some(r) = self.take(id) {
                return r;
            }
            let left = LIMIT.saturating_sub(start.elapsed());
            assert!(
                !left.is_zero(),
                "no completion for id {id} within {LIMIT:?} (got {:?})",
                self.got
            );
            self.wait_once(left.min(Duration::from_millis(50)));
        }
    }

    /// The result of an operation submitted with `poll` as the answer.
    fn finish(&mut self, id: OpId, poll: Poll<io::Result<OpOutput>>) -> io::Result<OpOutput> {
        match poll {
            Poll::Ready(r) => {
                // Ready means the backend keeps nothing: no completion may follow.
                self.wait_once(Duration::ZERO);
                assert!(
                    self.take(id).is_none(),
                    "id {id} was Ready from submit and also completed from wait"
                );
                r
            }
            Poll::Pending => self.wait_for(id),
        }
    }

    /// Submits `op` and returns its one result, however it comes.
    fn run(&mut self, id: OpId, op: Op) -> io::Result<OpOutput> {
        // SAFETY: leaked buffers; the callers keep the descriptors open.
        let poll = unsafe { self.submit(id, op) };
        self.finish(id, poll)
    }

    /// Watches for `dur`: no completion for `id` may come.
    fn expect_none(&mut self, id: OpId, dur: Duration) {
        let start = Instant::now();
        loop {
            if let Some(r) = self.take(id) {
                panic!("unexpected completion for id {id}: {r:?}");
            }
            let left = dur.saturating_sub(start.elapsed());
            if left.is_zero() {
                return;
            }
            self.wait_once(left);
        }
    }

    /// The end of a test: nothing unclaimed, and nothing more comes.
    fn end(mut self) {
        let start = Instant::now();
        while start.elapsed() < QUIET {
            self.wait_once(QUIET.saturating_sub(start.elapsed()));
        }
        assert!(
            self.got.is_empty(),
            "completions nobody expected: {:?}",
            self.got
        );
    }
}

/// A zeroed buffer that is never freed.
fn leak(len: usize) -> &'static mut [u8] {
    Box::leak(vec![0u8; len].into_boxed_slice())
}

/// Bytes that are never freed.
fn leak_bytes(data: &[u8]) -> &'static [u8] {
    Box::leak(data.to_vec().into_boxed_slice())
}

fn recv_op(fd: RawFd, buf: &mut [u8]) -> Op {
    Op::Recv {
        fd,
        buf: buf.as_mut_ptr(),
        len: buf.len(),
    }
}

fn send_op(fd: RawFd, data: &'static [u8]) -> Op {
    Op::Send {
        fd,
        buf: data.as_ptr(),
        len: data.len(),
    }
}

/// A connected non-blocking `AF_UNIX` stream pair.
fn stream_pair() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    let flags = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: `fds` has room for two descriptors.
    let rc = unsafe { libc::socketpair(libc::AF_UNIX, flags, 0, fds.as_mut_ptr()) };
    assert_eq!(rc, 0, "socketpair: {}", io::Error::last_os_error());
    // SAFETY: both are fresh descriptors nobody else owns.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// A non-blocking pipe: (read end, write end).
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for two descriptors.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", io::Error::last_os_error());
    // SAFETY: both are fresh descriptors nobody else owns.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Writes all of `data` to `fd` at once (the test's side of a pair).
fn put(fd: &OwnedFd, data: &[u8]) {
    // SAFETY: `data` is valid for its length.
    let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
    assert_eq!(
        n,
        data.len() as isize,
        "write: {}",
        io::Error::last_os_error()
    );
}

/// Everything readable from `fd` now, without blocking.
fn drain(fd: &OwnedFd) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        // SAFETY: `chunk` is writable for its length.
        let n = unsafe { libc::read(fd.as_raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) };
        if n <= 0 {
            return out;
        }
        out.extend_from_slice(&chunk[..n as usize]);
    }
}

/// A non-blocking TCP listener on a free loopback port.
fn tcp_listener() -> (Socket, SocketAddr) {
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    sock.set_nonblocking(true).expect("nonblocking");
    let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
    sock.bind(&any.into()).expect("bind");
    sock.listen(128).expect("listen");
    let addr = sock
        .local_addr()
        .expect("local_addr")
        .as_socket()
        .expect("inet");
    (sock, addr)
}

/// A connection to `addr` (the kernel completes a loopback connect at once).
fn connect_to(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).expect("connect")
}

/// The `O_NONBLOCK` and `FD_CLOEXEC` flags of `fd`.
fn flags(fd: RawFd) -> (bool, bool) {
    // SAFETY: fcntl on a descriptor we own.
    let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    let fd_fl = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    assert!(
        fl >= 0 && fd_fl >= 0,
        "fcntl: {}",
        io::Error::last_os_error()
    );
    (fl & libc::O_NONBLOCK != 0, fd_fl & libc::FD_CLOEXEC != 0)
}

// ---------------------------------------------------------------- basics

/// `name` says which backend this is.
pub fn name_is_not_empty(factory: impl DriverFactory) {
    let h = Harness::new(factory);
    assert!(!h.driver.name().is_empty());
    h.end();
}

/// Completions: a `Recv` with data queued may finish at once or complete
/// from `wait`, but gives exactly one result, with the data.
pub fn recv_with_data_queued_gives_exactly_one_result(factory: impl DriverFactory) {
    let mut h = Harness::new(factory);
    let (a, b) = stream_pair();
    put(&b, b"hello");
    let buf = leak(16);
    let out = h.run(0, recv_op(a.as_raw_fd(), buf)).expect("recv");
    assert_eq!(&buf[..out.bytes], b"hello");
    h.end();
}

/// Completions: a `Recv` with no data is `Pending` and completes from a
/// `wait` blocked while a peer writes from another thread.
pub fn recv_without_data_completes_from_wait_after_the_peer_writes(factory: impl DriverFactory) {
    let mut h = Harness::new(factory);
    let (a, b) = stream_pair();
    let buf = leak(16);
    h.submit_pending(0, recv_op(a.as_raw_fd(), buf));
    h.expect_none(0, QUIET);
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        put(&b, b"ping");
        b
    });
    let out = h.wait_for(0).expect("recv");
    assert_eq!(&buf[..out.bytes], b"ping");
    drop(writer.join().expect("writer"));
    h.end();
}

/// Completions: a pending `Recv` completes with 0 bytes when the peer closes.
pub fn recv_at_end_of_stream_completes_with_zero_bytes(factory: impl DriverFactory) {
    let mut h = Harness::new(factory);
    let (a, b) = stream_pair();
    let buf = leak(16);
    h.submit_pending(0, recv_op(a.as_raw_fd(), buf));
    drop(b);
    let out = h.wait_for(0).expect("recv at end of stream");
    assert_eq!(out.bytes, 0);
    h.end();
}

/// Completions: a `Send` reports its byte count and the peer gets the bytes.
pub fn send_delivers_its_bytes(factory: impl DriverFactory) {
    let mut h = Harness::new(factory);
    let (a, b) = stream_pair();
    let out = h
        .run(0, send_op(a.as_raw_fd(), leak_bytes(b"abc")))
        .expect("send");
    assert_eq!(out.bytes, 3);
    assert_eq!(drain(&b), b"abc");
    h.end();
}

/// Completions: `Read` and `Write` on a pipe.
pub fn read_and_write_on_a_pipe(factory: impl DriverFactory) {
    let mut h = Harness::new(factory);
    let (r, w) = pipe();
    let buf = leak(16);
    h.submit_pending(
        0,
        Op::Read {
            fd: r.as_raw_fd(),
            buf: buf.as_mut_ptr(),
            len: buf.len(),
        },
    );
    let data = leak_bytes(b"xyz");
    let out = h
        .run(
            1,
            Op::Write {
                fd: w.as_raw_fd(),
                buf: data.as_ptr(),
                len: data.len(),
            },
        )
        .expect("write");
    assert_eq!(out.bytes, 3);
    let out = h.wait_for(0).expect("read");
    assert_eq!(&buf[..out.bytes], b"xyz");
    h.end();
}

/// Completions: `SendTo` reaches a UDP socket whose pending `RecvFrom`
/// reports the data and the sender's address.
pub fn sendto_and_recvfrom_on_udp(factory: impl DriverFactory) {
    let mut h = Harness::new(factory);
    let udp = || {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, None).expect("socket");
        s.set_nonblocking(true).expect("nonblocking");
        let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
        s.bind(&any.into()).expect("bind");
        s
    };
    let (rx, tx) = (udp(), udp());
    let buf = leak(64);
    h.submit_pending(
        0,
        Op::RecvFrom {
            fd: rx.as_raw_fd(),
            buf: buf.as_mut_ptr(),
            len: buf.len(),
        },
    );
    let data = leak_bytes(b"datagram");
    let out = h
        .run(
            1,
            Op::SendTo {
                fd: tx.as_raw_fd(),
                buf: data.as_ptr(),
                len: data.len(),
                addr: Box::new(rx.local_addr().expect("local_addr")),
            },
        )
        .expect("sendto");
    assert_eq!(out.bytes, data.len());
    let out = h.wait_for(0).expect("recvfrom");
    assert_eq!(&buf[..out.bytes], b"datagram");
    let from = out.addr.expect("RecvFrom reports the sender").as_socket();
    assert_eq!(from, tx.local_addr().expect("local_addr").as_socket());
    h.end();
}

/// Descriptors: `Close` takes the descriptor over and closes it: once it
/// has completed, the peer sees the end of the stream.
pub fn close_op_closes_the_descriptor(factory: impl DriverFactory) {
    let mut h = Harness::new(factory);
    let (a, b) = stream_pair();
    h.run(
        0,
        Op::Close {
            fd: a.into_raw_fd(),
        },
    )
    .expect("close");
    let mut byte = [0u8; 1];
    // SAFETY: `byte` is writable.
    let n = unsafe { libc::read(b.as_raw_fd(), byte.as_mut_ptr().cast(), 1) };
    assert_eq!(n, 0, "the peer sees end of stream once Close completed");
    h.end();
}

// ---------------------------------------------------------------- cancel

/// Cancel: an id the backend does not hold (never submitted, or already
/// completed) answers `Forgotten` and changes nothing.
pub fn cancel_of_an_unknown_id_is_forgotten_and_changes_nothing(factory: impl DriverFactory) {
    let mut h = Harness::new(factory);
    assert_eq!(h.driver.cancel(0), Cancel::Forgotten);
    assert_eq!(h.driver.cancel(5), Cancel::Forgotten);
    let (a, b) = stream_pair();
    let buf = leak(16);
    h.submit_pending(0, recv_op(a.as_raw_fd(), buf));
    assert_eq!(h.driver.cancel(1), Cancel::Forgotten);
    put(&b, b"still");
    let out = h
        .wait_for(0)
        .expect("recv untouched by another id's cancel");
    assert_eq!(&buf[..out.bytes], b"still");
    assert_eq!(h.driver.cancel(0), Cancel::Forgotten, "already completed");
    h.end();
}

/// The data a receive cancelled at some point delivered, checked against
/// what the peer wrote: the completion's bytes, then what is still in the
/// socket, must be exactly `written`.
fn account(
    h: &mut Harness,
    id: OpId,
    answer: Cancel,
    buf: &[u8],
    a: &OwnedFd,
    written: &[u8],
    earlier: Option<io::Result<OpOutput>>,
) {
    let result = match (earlier, answer) {
        (Some(r), Cancel::Forgotten) => {
            // Completed before the cancel: the cancel found nothing to do.
            h.expect_none(id, QUIET);
            Some(r)
        }
        (Some(r), Cancel::Pending) => {
            panic!("cancel answered Pending for id {id}, which had already completed with {r:?}")
        }
        (None, Cancel::Forgotten) => {
            h.expect_none(id, QUIET);
            None
        }
        (None, Cancel::Pending) => Some(h.wait_for(id)),
    };
    let mut seen = match result {
        Some(Ok(out)) => buf[..out.bytes].to_vec(),
        Some(Err(_)) | None => Vec::new(),
    };
    seen.extend(drain(a));
    assert_eq!(
        seen, written,
        "completion bytes plus what stays in the socket must be what the peer wrote \
         (cancel answered {answer:?})"
    );
}

/// Cancel: a pending `Recv` with no data cancelled: `Forgotten`, and no
/// completion ever comes (not even once data arrives); or `Pending`, and
/// exactly one comes.
pub fn cancel_of_an_idle_recv_gives_nothing_or_one_completion(factory: impl DriverFactory) {
    let mut h = Harness::new(factory);
    let (a, b) = stream_pair();
    let buf = leak(16);
    h.submit_pending(3, recv_op(a.as_raw_fd(), buf));
    h.wait_once(Duration::ZERO);
    let answer = h.driver.cancel(3);
    account(&mut h, 3, answer, buf, &a, b"", None);
    put(&b, b"late");
    h.expect_none(3, QUIET);
    assert_eq!(drain(&a), b"late", "a cancelled recv took no later data");
    h.end();
}

/// Cancel: a `Recv` cancelled just as its data arrives (before or after
/// the driver got to submit it) loses nothing: the bytes are in its one
/// completion or still in the socket.
pub fn cancel_of_a_recv_racing_with_data_loses_nothing(factory: impl DriverFactory) {
    let mut h = Harness::new(factory);
    let (a, b) = stream_pair();
    for round in 0..6 {
        let buf = leak(4);
        h.submit_pending(0, recv_op(a.as_raw_fd(), buf));
        let written = format!("r{round}-data");
        put(&b, written.as_bytes());
        // Rounds differ in how far the driver got before the cancel.
        match round % 3 {
            0 => {}
            1 => h.wait_once(Duration::ZERO),
            _ => std::thread::sleep(Duration::from_millis(2)),
        }
        let earlier = h.take(0);
        let answer = h.driver.cancel(0);
        account(&mut h, 0, answer, buf, &a, written.as_bytes(), earlier);
    }
    h.end();
}

/// Cancel: an `Accept` cancelled as a connection arrives loses no
/// connection: it is in the one completion or still in the backlog.
pub fn cancel_of_a_pending_accept_loses_no_connection(factory: impl DriverFactory) {
    let mut h = Harness::new(factory);
    let (listener, addr) = tcp_listener();
    for round in 0..4 {
        h.submit_pending(
            0,
            Op::Accept {
                fd: listener.as_raw_fd(),
            },
        );
        if round % 2 == 1 {
            h.wait_once(Duration::ZERO);
        }
        let client = connect_to(addr);
        let earlier = h.take(0);
        let answer = h.driver.cancel(0);
        let result = match (earlier, answer) {
            (Some(r), Cancel::Forgotten) => Some(r),
            (Some(r), Cancel::Pending) => panic!("cancel answered Pending after completion {r:?}"),
            (None, Cancel::Forgotten) => None,
            (None, Cancel::Pending) => Some(h.wait_for(0)),
        };
        h.expect_none(0, QUIET);
        let accepted = match result {
            Some(Ok(mut out)) => out.accepted.take().map(Socket::from),
            Some(Err(_)) | None => None,
        };
        let accepted = match accepted {
            Some(s) => s,
            None => {
                listener
                    .accept()
                    .expect("the connection stayed in the backlog")
                    .0
            }
        };
        assert_eq!(
            accepted.peer_addr().expect("peer_addr").as_socket(),
            Some(client.local_addr().expect("local_addr")),
            "round {round}: the connection accepted is the client's"
        );
        assert!(
            listener.accept().is_err(),
            "round {round}: one connection, accepted once"
        );
    }
    h.end();
}

/// Cancel: a pending `PollReadable` cancelled gives no completion or one.
pub fn cancel_of_a_pending_poll_gives_nothing_or_one_completion(factory: impl DriverFactory) {
    let mut h = Harness::new(factory);
    let (a, b) = stream_pair();
    h.submit_pending(0, Op::PollReadable { fd: a.as_raw_fd() });
    h.wait_once(Duration::ZERO);
    match h.driver.cancel(0) {
        Cancel::Forgotten => {}
        Cancel::Pending => {
            h.wait_for(0).ok();
        }
    }
    put(&b, b"x");
    h.expect_none(0, QUIET);
    assert_eq!(drain(&a), b"x");
    h.end();
}

// ---------------------------------------------------------------- ids

/// Ids: an id is reused as soon as its operation completed, or its cancel
/// answered `Forgotten`, and the new operation gets only its own result.
pub fn ids_are_reused_after_completion_and_after_forgotten(factory: impl DriverFactory) {
    let mut h = Harness::new(factory);
    let (a, b) = stream_pair();
    let (c, d) = stream_pair();
    put(&b, b"one");
    let buf = leak(16);
    let out = h.run(0, recv_op(a.as_raw_fd(), buf)).expect("recv");
    assert_eq!(&buf[..out.bytes], b"one");
    let out = h
        .run(0, send_op(a.as_raw_fd(), leak_bytes(b"two")))
        .expect("send under a reused id");
    assert_eq!(out.bytes, 3);
    assert_eq!(drain(&b), b"two");

    // Pending, cancelled, then the id again on another socket.
    let stale = leak(16);
    h.submit_pending(0, recv_op(a.as_raw_fd(), stale));
    if h.driver.cancel(0) == Cancel::Pending {
        h.wait_for(0).ok();
    }
    let buf = leak(16);
    h.submit_pending(0, recv_op(c.as_raw_fd(), buf));
    put(&b, b"stale");
    h.expect_none(0, QUIET);
    put(&d, b"fresh");
    let out = h.wait_for(0).expect("recv under a reused id");
    assert_eq!(&buf[..out.bytes], b"fresh");
    assert_eq!(drain(&a), b"stale", "the forgotten recv took nothing");
    h.end();
}

/// Many operations pending at once, each completed under its own id.
pub fn many_pending_ops_complete_by_id(factory: impl DriverFactory) {
    const N: usize = 64;
    let mut h = Harness::new(factory);
    let pairs: Vec<(OwnedFd, OwnedFd)> = (0..N).map(|_| stream_pair()).collect();
    let mut bufs: Vec<&'static mut [u8]> = (0..N).map(|_| leak(8)).collect();
    for (id, ((a, _), buf)) in pairs.iter().zip(bufs.iter_mut()).enumerate() {
        h.submit_pending(id, recv_op(a.as_raw_fd(), buf));
    }
    for (id, (_, b)) in pairs.iter().enumerate().rev() {
        put(b, &[id as u8; 3]);
    }
    for (id, buf) in bufs.iter().enumerate() {
        let out = h.wait_for(id).expect("recv");
        assert_eq!(&buf[..out.bytes], &[id as u8; 3], "id {id}");
    }
    h.end();
}

// ---------------------------------------------------------------- order

/// Submits `op` and, if it finished at once, files its result as if `wait`
/// had reported it (for tests that collect several results).
fn submit_collect(h: &mut Harness, id: OpId, op: Op) {
    // SAFETY: leaked buffers; the callers keep the descriptors open.
    if let Poll::Ready(result) = unsafe { h.submit(id, op) } {
        h.got.push(Completion { id, result });
    }
}

/// Completions: two `Recv`s on a socket with data queued take it in
/// submission order.
pub fn queued_recvs_complete_in_submission_order(factory: impl DriverFactory) {
    let mut h = Harness::new(factory);
    let (a, b) = stream_pair();
    put(&b, b"abcdefgh");
    let (b0, b1) = (leak(4), leak(4));
    submit_collect(&mut h, 0, recv_op(a.as_raw_fd(), b0));
    submit_collect(&mut h, 1, recv_op(a.as_raw_fd(), b1));
    let n0 = h.wait_for(0).expect("recv 0").bytes;
    let n1 = h.wait_for(1).expect("recv 1").bytes;
    assert_eq!((&b0[..n0], &b1[..n1]), (&b"abcd"[..], &b"efgh"[..]));
    h.end();
}

/// Completions: two `Send`s go out in submission order.
pub fn queued_sends_go_out_in_submission_order(factory: impl DriverFactory) {
    let mut h = Harness::new(factory);
    let (a, b) = stream_pair();
    submit_collect(&mut h, 0, send_op(a.as_raw_fd(), leak_bytes(b"abcd")));
    submit_collect(&mut h, 1, send_op(a.as_raw_fd(), leak_bytes(b"efgh")));
    assert_eq!(h.wait_for(0).expect("send 0").bytes, 4);
    assert_eq!(h.wait_for(1).expect("send 1").bytes, 4);
    assert_eq!(drain(&b), b"abcdefgh");
    h.end();
}

/// Fills `fd`'s send buffer until the kernel refuses more.
fn fill(fd: &OwnedFd) -> usize {
    let size: libc::c_int = 4096;
    // SAFETY: setsockopt with an int option.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    let chunk = [b'.'; 4096];
    let mut total = 0;
    loop {
        // SAFETY: `chunk` is readable.
        let n = unsafe {
            libc::send(
                fd.as_raw_fd(),
                chunk.as_ptr().cast(),
                chunk.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n <= 0 {
            return total;
        }
        total += n as usize;
    }
}

// ---------------------------------------------------------------- sockets

/// Checks an accepted connection: an `OwnedFd` in `accepted`, non-blocking
/// and close-on-exec, the peer's address in `addr`, and data flowing.
fn check_accepted(h: &mut Harness, mut out: OpOutput, client: &mut TcpStream) {
    use std::io::Write;
    let fd = out.accepted.take().expect("Accept hands back an OwnedFd");
    assert_eq!(
        flags(fd.as_raw_fd()),
        (true, true),
        "(O_NONBLOCK, FD_CLOEXEC)"
    );
    let peer = out.addr.take().expect("Accept reports the peer address");
    assert_eq!(
        peer.as_socket(),
        Some(client.local_addr().expect("local_addr"))
    );
    client.write_all(b"hi").expect("client write");
    let buf = leak(8);
    let got = h.run(7, recv_op(fd.as_raw_fd(), buf)).expect("recv");
    assert_eq!(&buf[..got.bytes], b"hi");
}

/// Descriptors: a pending `Accept` hands back the connection as an
/// `OwnedFd` in `OpOutput::accepted`, and the peer's address.
pub fn accept_hands_back_an_owned_descriptor_and_the_peer_address(factory: impl DriverFactory) {
    let mut h = Harness::new(factory);
    let (listener, addr) = tcp_listener();
    h.submit_pending(
        0,
        Op::Accept {
            fd: listener.as_raw_fd(),
        },
    );
    let mut client = connect_to(addr);
    let out = h.wait_for(0).expect("accept");
    check_accepted(&mut h, out, &mut client);
    h.end();
}

/// Descriptors: an `Accept` with a connection already queued, however it
/// finishes.
pub fn accept_with_a_connection_queued(factory: impl DriverFactory) {
    let mut h = Harness::new(factory);
    let (listener, addr) = tcp_listener();
    let mut client = connect_to(addr);
    let out = h
        .run(
            0,
            Op::Accept {
                fd: listener.as_raw_fd(),
            },
        )
        .expect("accept");
    check_accepted(&mut h, out, &mut client);
    h.end();
}

/// Completions: a `Connect` completes once the connection is established.
pub fn connect_completes(factory: impl DriverFactory) {
    let mut h = Harness::new(factory);
    let (listener, addr) = tcp_listener();
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    sock.set_nonblocking(true).expect("nonblocking");
    h.run(
        0,
        Op::Connect {
            fd: sock.as_raw_fd(),
            addr: Box::new(SockAddr::from(addr)),
        },
    )
    .expect("connect");
    assert_eq!(sock.peer_addr().expect("peer_addr").as_socket(), Some(addr));
    let (server, _) = listener.accept().expect("the connection is in the backlog");
    assert_eq!(
        server.peer_addr().expect("peer_addr").as_socket(),
        sock.local_addr().expect("local_addr").as_socket()
    );
    h.end();
}

/// Completions: a `Connect` to a port nobody listens on fails.
pub fn connect_to_a_closed_port_fails(factory: impl DriverFactory) {
    let mut h = Harness::new(factory);
    let addr = {
        let (listener, addr) = tcp_listener();
        drop(listener);
        addr
    };
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    sock.set_nonblocking(true).expect("nonblocking");
    let result = h.run(
        0,
        Op::Connect {
            fd: sock.as_raw_fd(),
            addr: Box::new(SockAddr::from(addr)),
        },
    );
    let err = result.expect_err("connect to a closed port");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    h.end();
}

/// Completions: `PollWritable` and `PollReadable` complete with 0 once the
/// descriptor is ready, and consume nothing.
pub fn poll_writable_and_poll_readable(factory: impl DriverFactory) {
    let mut h = Harness::new(factory);
    let (a, b) = stream_pair();
    let out = h
        .run(0, Op::PollWritable { fd: a.as_raw_fd() })
        .expect("poll writable");
    assert_eq!(out.bytes, 0);
    h.submit_pending(1, Op::PollReadable { fd: a.as_raw_fd() });
    h.expect_none(1, QUIET);
    put(&b, b"r");
    let out = h.wait_for(1).expect("poll readable");
    assert_eq!(out.bytes, 0);
    assert_eq!(drain(&a), b"r", "polling consumed nothing");
    h.end();
}

/// `connect` to `addr` must be refused at once: nothing listens there.
fn assert_refused(addr: SocketAddr) {
    let start = Instant::now();
    let err = TcpStream::connect(addr).expect_err("the listener is closed: connect must fail");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    // Refused, not left to time out (a connect to a backlog that nobody
    // accepts from would hang): generous for a loaded machine.
    assert!(start.elapsed() < Duration::from_secs(1));
}

/// Descriptors: after the last operation on a listener completed,
/// `release_fd` and `close` really close it: connecting is refused at once.
pub fn release_fd_after_a_completed_accept_lets_a_closed_listener_refuse(
    factory: impl DriverFactory,
) {
    let mut h = Harness::new(factory);
    let (listener, addr) = tcp_listener();
    h.submit_pending(
        0,
        Op::Accept {
            fd: listener.as_raw_fd(),
        },
    );
    let client = connect_to(addr);
    let out = h.wait_for(0).expect("accept");
    drop(out);
    drop(client);
    h.driver.release_fd(listener.as_raw_fd());
    drop(listener);
    assert_refused(addr);
    h.end();
}

/// Descriptors: after a pending `Accept` was cancelled (and its completion,
/// if the cancel answered `Pending`, came), `release_fd` and `close` really
/// close the listener.
pub fn release_fd_after_a_cancelled_accept_lets_a_closed_listener_refuse(
    factory: impl DriverFactory,
) {
    let mut h = Harness::new(factory);
    let (listener, addr) = tcp_listener();
    h.submit_pending(
        0,
        Op::Accept {
            fd: listener.as_raw_fd(),
        },
    );
    h.wait_once(Duration::ZERO);
    if h.driver.cancel(0) == Cancel::Pending {
        let r = h.wait_for(0);
        assert!(
            r.is_err(),
            "no connection was made, yet the accept gave {r:?}"
        );
    }
    h.driver.release_fd(listener.as_raw_fd());
    drop(listener);
    assert_refused(addr);
    h.end();
}

// ---------------------------------------------------------------- wait

/// Notify: the notifier wakes a `wait` blocked on another thread, with and
/// without operations pending.
pub fn the_notifier_wakes_a_blocked_wait_from_another_thread(factory: impl DriverFactory) {
    let mut h = Harness::new(factory);
    let (a, _b) = stream_pair();
    for round in 0..2 {
        if round == 1 {
            h.submit_pending(0, recv_op(a.as_raw_fd(), leak(4)));
        }
        let notifier = h.driver.notifier();
        let waker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            notifier.notify();
        });
        let start = Instant::now();
        let mut done = Vec::new();
        h.driver
            .wait(Some(LIMIT), &mut done)
            .expect("Driver::wait failed");
        let took = start.elapsed();
        waker.join().expect("waker thread");
        assert!(
            took < Duration::from_secs(1), // woken, not timed out (LIMIT is 2 s)
            "round {round}: woke after {took:?}"
        );
        assert!(done.is_empty(), "a wake-up is no completion: {done:?}");
    }
    if h.driver.cancel(0) == Cancel::Pending {
        h.wait_for(0).ok();
    }
    h.end();
}

/// Notify: a notify that comes before `wait` makes that `wait` return promptly.
pub fn a_notify_before_wait_makes_it_return(factory: impl DriverFactory) {
    let mut h = Harness::new(factory);
    h.driver.notifier().notify();
    let start = Instant::now();
    h.wait_once(LIMIT);
    let took = start.elapsed();
    // Woken, not timed out (LIMIT is 2 s); generous for a loaded machine.
    assert!(took < Duration::from_secs(1), "woke after {took:?}");
    h.end();
}

/// `wait` blocks for its timeout when nothing happens, also after a
/// wake-up was consumed: it does not keep returning at once.
pub fn wait_does_not_spin_after_a_wakeup(factory: impl DriverFactory) {
    let mut h = Harness::new(factory);
    let (a, _b) = stream_pair();
    h.submit_pending(0, recv_op(a.as_raw_fd(), leak(4)));
    h.driver.notifier().notify();
    h.wait_once(LIMIT);
    let start = Instant::now();
    let mut returns = 0;
    while start.elapsed() < Duration::from_millis(60) {
        h.wait_once(Duration::from_millis(60));
        returns += 1;
    }
    let took = start.elapsed();
    assert!(
        returns <= 3,
        "{returns} returns from wait(60 ms) in {took:?} with nothing to report"
    );
    assert!(took < Duration::from_millis(300), "took {took:?}");
    if h.driver.cancel(0) == Cancel::Pending {
        h.wait_for(0).ok();
    }
    h.end();
}

/// `wait(Some(ZERO))` returns promptly, with and without operations pending.
pub fn wait_zero_returns_promptly(factory: impl DriverFactory) {
    let mut h = Harness::new(factory);
    let (a, _b) = stream_pair();
    for round in 0..2 {
        if round == 1 {
            h.submit_pending(0, recv_op(a.as_raw_fd(), leak(4)));
        }
        let start = Instant::now();
        for _ in 0..100 {
            h.wait_once(Duration::ZERO);
        }
        let took = start.elapsed();
        assert!(
            took < Duration::from_millis(100),
            "round {round}: 100 waits of zero took {took:?}"
        );
    }
    if h.driver.cancel(0) == Cancel::Pending {
        h.wait_for(0).ok();
    }
    h.end();
}

// ---------------------------------------------------------------- drop

/// Drop: dropping a driver with operations pending returns promptly and
/// leaves the process's descriptor count where it was.
pub fn dropping_a_driver_with_pending_ops_closes_its_descriptors(factory: impl DriverFactory) {
    // Warm up anything lazily created once per process.
    drop(factory());
    let before = fd_count();
    for _ in 0..3 {
        drop(factory());
    }
    assert_eq!(fd_count(), before, "an idle driver left descriptors open");
    {
        let mut h = Harness::new(factory);
        let (a, _b) = stream_pair();
        let (c, _d) = stream_pair();
        let (r, _w) = pipe();
        let (listener, _addr) = tcp_listener();
        fill(&c);
        h.submit_pending(0, recv_op(a.as_raw_fd(), leak(16)));
        h.submit_pending(
            1,
            Op::Read {
                fd: r.as_raw_fd(),
                buf: leak(16).as_mut_ptr(),
                len: 16,
            },
        );
        h.submit_pending(
            2,
            Op::Accept {
                fd: listener.as_raw_fd(),
            },
        );
        h.submit_pending(3, Op::PollReadable { fd: a.as_raw_fd() });
        h.submit_pending(4, send_op(c.as_raw_fd(), leak_bytes(b"blocked")));
        h.wait_once(Duration::ZERO);
        let start = Instant::now();
        drop(h);
        let took = start.elapsed();
        // Let go, not stuck until a backend's own give-up bound (io_uring's
        // Drop waits at most 2 s); generous for a loaded machine.
        assert!(took < Duration::from_millis(1500), "drop took {took:?}");
    }
    assert_eq!(
        fd_count(),
        before,
        "a driver dropped with operations pending left descriptors open"
    );
}

/// Completions: `ChildExit` completes once the child has exited; if the
/// backend reaped it, its status says it exited with 0.
pub fn child_exit_completes(factory: impl DriverFactory) {
    let mut h = Harness::new(factory);
    let child = std::process::Command::new("true")
        .spawn()
        .expect("spawn `true`");
    let pid = child.id() as libc::pid_t;
    // SAFETY: pidfd_open takes a pid and flags.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    assert!(raw >= 0, "pidfd_open: {}", io::Error::last_os_error());
    // SAFETY: a fresh descriptor nobody else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw as RawFd) };
    let out = h
        .run(
            0,
            Op::ChildExit {
                pidfd: pidfd.as_raw_fd(),
            },
        )
        .expect("child exit");
    match out.child_status {
        Some(status) => {
            assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        }
        None => {
            let mut status = 0;
            // SAFETY: waitpid on our own child.
            let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
            assert_eq!(rc, pid);
            assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        }
    }
    drop(child);
    h.end();
}

// ---------------------------------------------------------------- bad input

/// A descriptor number this process does not have open.
const NO_SUCH_FD: RawFd = 100_000;

/// Every operation on an invalid descriptor (-1, or a number nothing has
/// open) gives one error, from `submit` or from `wait`, never a panic, and
/// the driver keeps working.
pub fn invalid_descriptors_give_errors_not_panics(factory: impl DriverFactory) {
    let mut h = Harness::new(factory);
    let target: SocketAddr = "127.0.0.1:9".parse().expect("address");
    for fd in [-1, NO_SUCH_FD] {
        let buf = leak(8);
        let data = leak_bytes(b"x");
        let ops = vec![
            recv_op(fd, buf),
            send_op(fd, data),
            Op::Read {
                fd,
                buf: buf.as_mut_ptr(),
                len: buf.len(),
            },
            Op::Write {
                fd,
                buf: data.as_ptr(),
                len: data.len(),
            },
            Op::RecvFrom {
                fd,
                buf: buf.as_mut_ptr(),
                len: buf.len(),
            },
            Op::SendTo {
                fd,
                buf: data.as_ptr(),
                len: data.len(),
                addr: Box::new(SockAddr::from(target)),
            },
            Op::Accept { fd },
            Op::Connect {
                fd,
                addr: Box::new(SockAddr::from(target)),
            },
            Op::PollReadable { fd },
            Op::PollWritable { fd },
        ];
        for (id, op) in ops.into_iter().enumerate() {
            let what = format!("{op:?}");
            let result = h.run(id, op);
            assert!(result.is_err(), "{what} on fd {fd} gave {result:?}");
        }
    }
    let (a, b) = stream_pair();
    put(&b, b"ok");
    let buf = leak(8);
    let out = h
        .run(0, recv_op(a.as_raw_fd(), buf))
        .expect("recv after bad input");
    assert_eq!(&buf[..out.bytes], b"ok");
    h.end();
}

/// Operations on the wrong kind of descriptor (accept on a connected
/// socket, connect or recv on a pipe, polls on a regular file) give exactly
/// one result each, never a panic; the ones the kernel refuses are errors.
pub fn wrong_kinds_of_descriptor_give_one_result_not_panics(factory: impl DriverFactory) {
    let mut h = Harness::new(factory);
    let (a, _b) = stream_pair();
    let (r, _w) = pipe();
    let target: SocketAddr = "127.0.0.1:9".parse().expect("address");
    let refused = vec![
        Op::Accept { fd: a.as_raw_fd() },
        Op::Connect {
            fd: r.as_raw_fd(),
            addr: Box::new(SockAddr::from(target)),
        },
        recv_op(r.as_raw_fd(), leak(8)),
    ];
    for (id, op) in refused.into_iter().enumerate() {
        let what = format!("{op:?}");
        let result = h.run(id, op);
        assert!(result.is_err(), "{what} gave {result:?}");
    }
    // A regular file (memfd): epoll refuses it, io_uring polls it; either
    // answer is fine, as long as there is exactly one.
    let name = c"driver-suite";
    // SAFETY: memfd_create with a NUL-terminated name.
    let raw = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    assert!(raw >= 0, "memfd_create: {}", io::Error::last_os_error());
    // SAFETY: a fresh descriptor nobody else owns.
    let file = unsafe { OwnedFd::from_raw_fd(raw) };
    let _ = h.run(
        0,
        Op::PollReadable {
            fd: file.as_raw_fd(),
        },
    );
    let _ = h.run(
        1,
        Op::PollWritable {
            fd: file.as_raw_fd(),
        },
    );
    let buf = leak(8);
    let out = h.run(
        2,
        Op::Read {
            fd: file.as_raw_fd(),
            buf: buf.as_mut_ptr(),
            len: buf.len(),
        },
    );
    assert_eq!(out.expect("read of an empty file").bytes, 0);
    h.driver.release_fd(file.as_raw_fd());
    h.end();
}
