//! Driver-level tests: each operation on the ring, cancellation, timed
//! waits, the cross-thread waker, Drop with operations in flight, and
//! descriptor hygiene.

use std::future::Future as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::task::Poll;
use std::time::{Duration, Instant};

use loop_driver::{Cancel, Completion, Driver, Op, OpOutput};
use socket2::SockAddr;

use crate::{UringBuilder, UringDriver};

/// Tests that count descriptors run alone; the others share.
static FDS: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    FDS.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    FDS.write().unwrap_or_else(|e| e.into_inner())
}

fn driver() -> UringDriver {
    match UringBuilder::new().build() {
        Ok(d) => d,
        Err(e) => panic!("io_uring must work on the test machine: {e}"),
    }
}

/// Waits until the completion for `id` arrives (at most 5 s).
fn wait_for(d: &mut UringDriver, id: usize) -> Completion {
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
fn submit(d: &mut UringDriver, id: usize, op: Op) {
    // SAFETY: every test keeps the memory and descriptors the op points to
    // alive until the op's completion was reported or the driver dropped.
    match unsafe { d.submit(id, op) } {
        Poll::Pending => {}
        Poll::Ready(r) => panic!("io_uring ops complete through wait, got {r:?}"),
    }
}

/// Submits a `Recv` into the whole of `buf`, which must not complete at once.
fn submit_recv(d: &mut UringDriver, id: usize, fd: RawFd, buf: &mut [u8]) {
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

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD takes no pointer.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

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
fn recv_and_send_on_a_socketpair() {
    let _g = shared();
    let mut d = driver();
    let (a, mut b) = UnixStream::pair().unwrap();
    let mut buf = vec![0u8; 64];
    submit_recv(&mut d, 0, a.as_raw_fd(), &mut buf);
    // Nothing yet: a zero wait does not block and reports nothing.
    let mut done = Vec::new();
    d.wait(Some(Duration::ZERO), &mut done).unwrap();
    assert!(done.is_empty());
    b.write_all(b"hello").unwrap();
    let c = wait_for(&mut d, 0);
    assert_eq!(c.result.unwrap().bytes, 5);
    assert_eq!(&buf[..5], b"hello");

    let msg = b"world".to_vec();
    submit(
        &mut d,
        1,
        Op::Send {
            fd: a.as_raw_fd(),
            buf: msg.as_ptr(),
            len: msg.len(),
        },
    );
    assert_eq!(wait_for(&mut d, 1).result.unwrap().bytes, 5);
    let mut got = [0u8; 5];
    b.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"world");
    assert_eq!(d.in_flight(), 0);
}

#[test]
fn send_to_a_closed_peer_is_epipe_not_sigpipe() {
    let _g = shared();
    let mut d = driver();
    let (a, b) = UnixStream::pair().unwrap();
    drop(b);
    let msg = [1u8; 16];
    submit(
        &mut d,
        0,
        Op::Send {
            fd: a.as_raw_fd(),
            buf: msg.as_ptr(),
            len: msg.len(),
        },
    );
    let err = wait_for(&mut d, 0).result.unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPIPE));
}

#[test]
fn read_and_write_on_a_nonblocking_pipe_wait_for_data() {
    let _g = shared();
    let mut d = driver();
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for two descriptors.
    assert_eq!(
        unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) },
        0
    );
    // SAFETY: pipe2 just created both descriptors; we own them.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let mut buf = vec![0u8; 16];
    submit(
        &mut d,
        3,
        Op::Read {
            fd: r.as_raw_fd(),
            buf: buf.as_mut_ptr(),
            len: buf.len(),
        },
    );
    // An empty O_NONBLOCK pipe must not complete with EAGAIN: the read waits.
    let mut done = Vec::new();
    d.wait(Some(Duration::from_millis(20)), &mut done).unwrap();
    assert!(
        done.is_empty(),
        "read completed early: {:?}",
        done[0].result
    );
    let data = b"pipe!".to_vec();
    submit(
        &mut d,
        4,
        Op::Write {
            fd: w.as_raw_fd(),
            buf: data.as_ptr(),
            len: data.len(),
        },
    );
    let mut results = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while results.len() < 2 && Instant::now() < deadline {
        d.wait(Some(Duration::from_millis(100)), &mut results)
            .unwrap();
    }
    results.sort_by_key(|c| c.id);
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].result.as_ref().unwrap().bytes, 5);
    assert_eq!(results[1].result.as_ref().unwrap().bytes, 5);
    assert_eq!(&buf[..5], b"pipe!");
    // End of stream reads 0.
    drop(w);
    submit(
        &mut d,
        5,
        Op::Read {
            fd: r.as_raw_fd(),
            buf: buf.as_mut_ptr(),
            len: buf.len(),
        },
    );
    assert_eq!(wait_for(&mut d, 5).result.unwrap().bytes, 0);
}

#[test]
fn accept_and_connect_report_addresses() {
    let _g = shared();
    let mut d = driver();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    submit(
        &mut d,
        0,
        Op::Accept {
            fd: listener.as_raw_fd(),
        },
    );

    let client = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    client.set_nonblocking(true).unwrap();
    submit(
        &mut d,
        1,
        Op::Connect {
            fd: client.as_raw_fd(),
            addr: Box::new(SockAddr::from(addr)),
        },
    );

    let mut done = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while done.len() < 2 && Instant::now() < deadline {
        d.wait(Some(Duration::from_millis(100)), &mut done).unwrap();
    }
    done.sort_by_key(|c| c.id);
    let accepted = done[0].result.as_ref().unwrap();
    assert!(done[1].result.is_ok(), "connect: {:?}", done[1].result);
    let server_side = accepted.accepted.as_ref().expect("an accepted descriptor");
    let peer = accepted.addr.as_ref().unwrap().as_socket().unwrap();
    assert_eq!(peer, client.local_addr().unwrap().as_socket().unwrap());
    // accept4 flags: non-blocking and close-on-exec.
    // SAFETY: fcntl queries on a descriptor we own.
    let (fl, fdfl) = unsafe {
        (
            libc::fcntl(server_side.as_raw_fd(), libc::F_GETFL),
            libc::fcntl(server_side.as_raw_fd(), libc::F_GETFD),
        )
    };
    assert!(fl & libc::O_NONBLOCK != 0);
    assert!(fdfl & libc::FD_CLOEXEC != 0);
}

#[test]
fn connect_refused_is_an_error() {
    let _g = shared();
    let mut d = driver();
    // A port nobody listens on: bind, note the port, close.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let client = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    client.set_nonblocking(true).unwrap();
    submit(
        &mut d,
        0,
        Op::Connect {
            fd: client.as_raw_fd(),
            addr: Box::new(SockAddr::from(port)),
        },
    );
    let err = wait_for(&mut d, 0).result.unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED));
}

#[test]
fn recvfrom_and_sendto_carry_addresses() {
    let _g = shared();
    let mut d = driver();
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut buf = vec![0u8; 32];
    submit(
        &mut d,
        0,
        Op::RecvFrom {
            fd: server.as_raw_fd(),
            buf: buf.as_mut_ptr(),
            len: buf.len(),
        },
    );
    let msg = b"xxx".to_vec();
    submit(
        &mut d,
        1,
        Op::SendTo {
            fd: client.as_raw_fd(),
            buf: msg.as_ptr(),
            len: msg.len(),
            addr: Box::new(SockAddr::from(server.local_addr().unwrap())),
        },
    );
    let mut done = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while done.len() < 2 && Instant::now() < deadline {
        d.wait(Some(Duration::from_millis(100)), &mut done).unwrap();
    }
    done.sort_by_key(|c| c.id);
    let got = done[0].result.as_ref().unwrap();
    assert_eq!(got.bytes, 3);
    assert_eq!(&buf[..3], b"xxx");
    assert_eq!(
        got.addr.as_ref().unwrap().as_socket().unwrap(),
        client.local_addr().unwrap()
    );
    assert_eq!(done[1].result.as_ref().unwrap().bytes, 3);
}

#[test]
fn poll_readable_and_writable() {
    let _g = shared();
    let mut d = driver();
    let (a, mut b) = UnixStream::pair().unwrap();
    submit(&mut d, 0, Op::PollWritable { fd: a.as_raw_fd() });
    assert_eq!(wait_for(&mut d, 0).result.unwrap().bytes, 0);
    submit(&mut d, 1, Op::PollReadable { fd: a.as_raw_fd() });
    let mut done = Vec::new();
    d.wait(Some(Duration::from_millis(20)), &mut done).unwrap();
    assert!(done.is_empty());
    b.write_all(b"!").unwrap();
    assert_eq!(wait_for(&mut d, 1).result.unwrap().bytes, 0);
}

#[test]
fn close_op_closes_the_descriptor() {
    // Alone: another test's new descriptor could take the closed number.
    let _g = exclusive();
    let mut d = driver();
    let (a, _b) = UnixStream::pair().unwrap();
    let fd = a.as_raw_fd();
    std::mem::forget(a); // the Close op owns it now
                         // SAFETY: Close points into no memory.
    let result = match unsafe { d.submit(0, Op::Close { fd }) } {
        Poll::Ready(r) => r,
        Poll::Pending => wait_for(&mut d, 0).result,
    };
    assert_eq!(result.unwrap().bytes, 0);
    assert!(!is_open(fd));
}

#[test]
fn bad_descriptors_fail_without_panicking() {
    let _g = shared();
    let mut d = driver();
    let mut buf = vec![0u8; 8];
    submit(
        &mut d,
        0,
        Op::Recv {
            fd: -1,
            buf: buf.as_mut_ptr(),
            len: buf.len(),
        },
    );
    assert_eq!(
        wait_for(&mut d, 0).result.unwrap_err().raw_os_error(),
        Some(libc::EBADF)
    );
    submit(&mut d, 1, Op::PollReadable { fd: 1_000_000 });
    assert_eq!(
        wait_for(&mut d, 1).result.unwrap_err().raw_os_error(),
        Some(libc::EBADF)
    );
    // Ids out of range or already in use are refused, not a panic.
    submit(
        &mut d,
        2,
        Op::Recv {
            fd: -1,
            buf: buf.as_mut_ptr(),
            len: 0,
        },
    );
    // SAFETY: no memory is referenced by a rejected op.
    assert!(matches!(
        unsafe { d.submit(2, Op::PollReadable { fd: 0 }) },
        Poll::Ready(Err(_))
    ));
    // SAFETY: as above.
    assert!(matches!(
        unsafe { d.submit(usize::MAX, Op::PollReadable { fd: 0 }) },
        Poll::Ready(Err(_))
    ));
    let _ = wait_for(&mut d, 2);
    // Unknown ids cancel as done.
    assert_eq!(d.cancel(12345), Cancel::Forgotten);
}

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
fn accept_that_completes_despite_cancel_reports_its_descriptor() {
    let _g = shared();
    let mut d = driver();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    // The connection is already queued, so the accept succeeds as it is
    // issued, before the AsyncCancel behind it in the same batch.
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    submit(
        &mut d,
        0,
        Op::Accept {
            fd: listener.as_raw_fd(),
        },
    );
    assert_eq!(d.cancel(0), Cancel::Pending);
    let out: OpOutput = wait_for(&mut d, 0).result.expect("the accept won the race");
    let fd = out
        .accepted
        .as_ref()
        .expect("an accepted descriptor")
        .as_raw_fd();
    assert!(is_open(fd));
    // Dropping the output closes the descriptor; the client sees the
    // connection end.
    drop(out);
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(client.read(&mut byte).unwrap(), 0);
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

#[test]
fn full_submission_queue_is_flushed() {
    let _g = shared();
    let mut d = UringBuilder::new().entries(4).build().unwrap();
    let (a, _b) = UnixStream::pair().unwrap();
    for id in 0..200 {
        submit(&mut d, id, Op::PollWritable { fd: a.as_raw_fd() });
    }
    let mut done = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while done.len() < 200 && Instant::now() < deadline {
        d.wait(Some(Duration::from_millis(100)), &mut done).unwrap();
    }
    assert_eq!(done.len(), 200);
    assert!(done
        .iter()
        .all(|c| c.result.as_ref().is_ok_and(|o| o.bytes == 0)));
    assert_eq!(d.in_flight(), 0);
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
        let lp = crate::new_event_loop().unwrap();
        lp.run_until_complete(loop_api::sleep(Duration::from_millis(1)))
            .unwrap();
        lp.close().unwrap();
        drop(lp);
    }
    assert_eq!(fd_count(), before);
}

#[test]
fn orphaned_accept_through_the_loop_closes_its_descriptor() {
    let _g = shared();
    let lp = crate::new_event_loop().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let lfd = listener.as_raw_fd();
    let lp2 = lp.clone();
    lp.run_until_complete(async move {
        // SAFETY: Accept points into no memory; the listener outlives the loop run.
        let mut fut = unsafe { loop_api::OpFuture::new(&lp2, Op::Accept { fd: lfd }, ()) };
        // Poll once (submitting it), then drop it: the accept is orphaned.
        std::future::poll_fn(|cx| {
            let _ = std::pin::Pin::new(&mut fut).poll(cx);
            Poll::Ready(())
        })
        .await;
        drop(fut);
        loop_api::sleep(Duration::from_millis(20)).await;
    })
    .unwrap();
    // The accept won against its cancellation; the loop closed the new
    // descriptor, so the client sees end of stream.
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(client.read(&mut byte).unwrap(), 0);
    lp.close().unwrap();
}

/// Runs the stress tasks to the end, stops the writer thread, and checks
/// that `close()` does not wait for an operation the kernel kept.
fn finish_cancel_stress(
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

#[test]
fn cancelling_recvs_under_traffic_is_sound() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let _g = shared();
    let lp = crate::new_event_loop().unwrap();
    let pairs: Vec<(UnixStream, UnixStream)> =
        (0..8).map(|_| UnixStream::pair().unwrap()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<UnixStream> = pairs.iter().map(|(_, b)| b.try_clone().unwrap()).collect();
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            for w in &writers {
                w.set_nonblocking(true).unwrap();
            }
            let chunk = [0xa5u8; 300];
            while !stop.load(Ordering::Relaxed) {
                for mut w in &writers {
                    let _ = w.write(&chunk);
                }
                std::thread::sleep(Duration::from_micros(50));
            }
        })
    };
    let received = std::rc::Rc::new(std::cell::Cell::new(0usize));
    let cancelled = std::rc::Rc::new(std::cell::Cell::new(0usize));
    let mut tasks = Vec::new();
    for (i, (a, _)) in pairs.iter().enumerate() {
        let fd = a.as_raw_fd();
        let (lp2, received, cancelled) = (lp.clone(), received.clone(), cancelled.clone());
        tasks.push(
            lp.create_task(async move {
                let end = Instant::now() + Duration::from_millis(300);
                let mut round = 0u64;
                while Instant::now() < end {
                    round += 1;
                    let mut buf = vec![0u8; 512];
                    let op = Op::Recv {
                        fd,
                        buf: buf.as_mut_ptr(),
                        len: buf.capacity(),
                    };
                    // SAFETY: the op points into `buf`'s heap memory, owned by the future.
                    let fut = unsafe { loop_api::OpFuture::new(&lp2, op, buf) };
                    // Timeouts from 0 to ~70 µs: many recvs are cancelled in
                    // flight, some just as they complete.
                    let timeout = Duration::from_micros((round * 7 + i as u64 * 13) % 70);
                    match loop_api::wait_for(fut, timeout).await {
                        Ok((Ok(out), buf)) => {
                            assert!(buf[..out.bytes].iter().all(|&b| b == 0xa5));
                            received.set(received.get() + out.bytes);
                        }
                        Ok((Err(e), _)) => panic!("recv failed: {e}"),
                        Err(_) => cancelled.set(cancelled.get() + 1),
                    }
                }
            })
            .unwrap(),
        );
    }
    finish_cancel_stress(&lp, tasks, &stop, writer);
    assert!(received.get() > 0, "no data received");
    assert!(cancelled.get() > 0, "nothing was cancelled");
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
fn close_frees_orphaned_buffers_only_after_their_final_completion() {
    use std::cell::Cell;
    use std::rc::Rc;

    /// Records when the buffer's owner is dropped.
    struct Freed(Rc<Cell<bool>>);
    impl Drop for Freed {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }

    let _g = shared();
    let lp = crate::new_event_loop().unwrap();
    let (a, _b) = UnixStream::pair().unwrap();
    let freed = Rc::new(Cell::new(false));
    let mut buf = vec![0u8; 256];
    let op = Op::Recv {
        fd: a.as_raw_fd(),
        buf: buf.as_mut_ptr(),
        len: buf.len(),
    };
    // SAFETY: the op points into `buf`'s heap memory, owned by the future.
    let fut = unsafe { loop_api::OpFuture::new(&lp, op, (buf, Freed(freed.clone()))) };
    let task = lp
        .create_task(async move {
            let _ = fut.await;
        })
        .unwrap();
    // One iteration: the task submits the recv, which then waits in the kernel.
    lp.stop();
    lp.run_forever().unwrap();
    drop(task); // detached: still pending
    assert!(!freed.get());
    // close() destroys the pending task: the recv is orphaned and cancelled,
    // and its buffer is freed once the kernel has returned it.
    lp.close().unwrap();
    assert!(
        freed.get(),
        "the orphan's memory was leaked instead of drained"
    );
}

/// A pidfd for the child `pid`.
fn pidfd_open(pid: libc::pid_t) -> OwnedFd {
    // SAFETY: pidfd_open takes two integers and returns a new descriptor or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    assert!(raw >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh descriptor owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(raw as RawFd) }
}

/// Submits a `ChildExit` on `pidfd` under `id`.
fn submit_waitpid(d: &mut UringDriver, id: usize, pidfd: &OwnedFd) {
    submit(
        d,
        id,
        Op::ChildExit {
            pidfd: pidfd.as_raw_fd(),
        },
    );
}

/// `waitpid(pid, WNOHANG)`: its return value and the status it stored.
fn waitpid_now(pid: libc::pid_t) -> (libc::pid_t, libc::c_int) {
    let mut st = 0;
    // SAFETY: waitpid on one pid with a valid status pointer.
    let ret = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
    (ret, st)
}

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

// ---- Multishot receive into the provided-buffer ring ----

fn mshot_driver() -> UringDriver {
    let d = UringBuilder::new().multishot_recv(true).build().unwrap();
    assert!(d.multishot_recv(), "a 6.x kernel has multishot receive");
    d
}

/// A connected TCP pair (both non-blocking: the ring never blocks on them).
fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    server.set_nonblocking(true).unwrap();
    (server, client)
}

/// Submits a `Recv` into `buf`, waiting for its completion if it does not
/// finish at once; returns the result and whether it finished at once.
fn recv_now_or_later(d: &mut UringDriver, id: usize, fd: RawFd, buf: &mut [u8]) -> (usize, bool) {
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
fn settle(d: &mut UringDriver) {
    let mut done = Vec::new();
    for _ in 0..5 {
        d.wait(Some(Duration::from_millis(10)), &mut done).unwrap();
    }
    assert!(done.is_empty(), "unexpected completions: {done:?}");
}

#[test]
fn multishot_data_arriving_before_the_recv_is_delivered_at_submit() {
    let _g = shared();
    let mut d = mshot_driver();
    assert!(d.multishot_recv(), "a 6.x kernel has multishot receive");
    let (server, mut client) = tcp_pair();
    let fd = server.as_raw_fd();
    assert!(d.promise_recv_only(fd));
    client.write_all(b"first").unwrap();
    let mut buf = vec![0u8; 64];
    // The first Recv arms the multishot and waits for its CQE.
    let (n, _) = recv_now_or_later(&mut d, 0, fd, &mut buf);
    assert_eq!(&buf[..n], b"first");
    // Data arriving with no Recv waiting is queued by the multishot ...
    client.write_all(b"second").unwrap();
    settle(&mut d);
    assert_eq!(d.in_flight(), 0);
    // ... and the next Recv completes at submission, without the kernel.
    let (n, at_once) = recv_now_or_later(&mut d, 1, fd, &mut buf);
    assert!(at_once, "queued data completes the Recv at submit");
    assert_eq!(&buf[..n], b"second");
    d.release_fd(fd);
}

#[test]
fn multishot_recv_smaller_than_a_chunk_leaves_the_rest_for_the_next() {
    let _g = shared();
    let mut d = mshot_driver();
    let (server, mut client) = tcp_pair();
    let fd = server.as_raw_fd();
    assert!(d.promise_recv_only(fd));
    let data: Vec<u8> = (0..100u8).collect();
    let mut buf = vec![0u8; 64];
    // Arm it first, then send 100 bytes: one CQE of 100 bytes.
    let (n, _) = {
        let mut tiny = [0u8; 1];
        client.write_all(&data[..1]).unwrap();
        recv_now_or_later(&mut d, 0, fd, &mut tiny)
    };
    assert_eq!(n, 1);
    client.write_all(&data[1..]).unwrap();
    settle(&mut d);
    let mut got = Vec::new();
    let mut small = [0u8; 7];
    while got.len() < 99 {
        let (n, at_once) = recv_now_or_later(&mut d, 1, fd, &mut small);
        assert!(at_once);
        got.extend_from_slice(&small[..n]);
    }
    assert_eq!(&got[..], &data[1..]);
    // Nothing is queued any more: the next Recv waits.
    client.write_all(b"z").unwrap();
    let (n, _) = recv_now_or_later(&mut d, 2, fd, &mut buf);
    assert_eq!(&buf[..n], b"z");
}

#[test]
fn multishot_end_of_stream_comes_after_the_data_and_sticks() {
    let _g = shared();
    let mut d = mshot_driver();
    let (server, mut client) = tcp_pair();
    let fd = server.as_raw_fd();
    assert!(d.promise_recv_only(fd));
    let mut buf = vec![0u8; 64];
    client.write_all(b"x").unwrap();
    let (n, _) = recv_now_or_later(&mut d, 0, fd, &mut buf);
    assert_eq!(n, 1);
    client.write_all(b"tail").unwrap();
    drop(client);
    settle(&mut d);
    let (n, at_once) = recv_now_or_later(&mut d, 1, fd, &mut buf);
    assert!(at_once);
    assert_eq!(&buf[..n], b"tail");
    for id in 2..5 {
        assert_eq!(recv_now_or_later(&mut d, id, fd, &mut buf), (0, true));
    }
}

#[test]
fn multishot_a_dropped_recv_loses_no_bytes() {
    let _g = shared();
    let mut d = mshot_driver();
    let (server, mut client) = tcp_pair();
    let fd = server.as_raw_fd();
    assert!(d.promise_recv_only(fd));
    let mut buf = vec![0u8; 64];
    submit_recv(&mut d, 0, fd, &mut buf);
    settle(&mut d);
    // A waiting Recv never lent its buffer to the kernel: forgotten at once.
    assert_eq!(d.cancel(0), Cancel::Forgotten);
    assert_eq!(d.in_flight(), 0);
    drop(buf);
    client.write_all(b"kept").unwrap();
    settle(&mut d);
    let mut buf = vec![0u8; 64];
    let (n, at_once) = recv_now_or_later(&mut d, 0, fd, &mut buf);
    assert!(at_once);
    assert_eq!(&buf[..n], b"kept");
}

#[test]
fn multishot_recovers_when_the_buffers_run_out() {
    let _g = shared();
    // Two buffers of 64 bytes: the multishot stops (ENOBUFS) after 128.
    let mut d = UringBuilder::new()
        .multishot_recv(true)
        .recv_buffers(2, 64)
        .build()
        .unwrap();
    let (server, mut client) = tcp_pair();
    let (other, mut other_client) = tcp_pair();
    let fd = server.as_raw_fd();
    assert!(d.promise_recv_only(fd));
    assert!(d.promise_recv_only(other.as_raw_fd()));
    let data: Vec<u8> = (0..4000u32).map(|i| (i % 251) as u8).collect();
    let mut buf = vec![0u8; 16];
    client.write_all(&data[..1]).unwrap();
    assert_eq!(recv_now_or_later(&mut d, 0, fd, &mut buf).0, 1);
    client.write_all(&data[1..]).unwrap();
    settle(&mut d);
    // Both buffers are queued for `fd`: the other socket's Recv is a
    // one-shot into its own buffer and still works.
    other_client.write_all(b"other").unwrap();
    let mut obuf = vec![0u8; 16];
    let (n, _) = recv_now_or_later(&mut d, 1, other.as_raw_fd(), &mut obuf);
    assert_eq!(&obuf[..n], b"other");
    // Reading `fd` frees the buffers and re-arms: every byte, in order.
    let mut got = data[..1].to_vec();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < data.len() {
        assert!(Instant::now() < deadline, "stuck at {} bytes", got.len());
        let (n, _) = recv_now_or_later(&mut d, 2, fd, &mut buf);
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, data);
}

#[test]
fn multishot_release_and_close_leak_no_descriptor_and_do_not_hang() {
    let _g = exclusive();
    let before = fd_count();
    {
        let mut d = mshot_driver();
        let mut peers = Vec::new();
        for i in 0..4 {
            let (server, mut client) = tcp_pair();
            let fd = server.as_raw_fd();
            assert!(d.promise_recv_only(fd));
            client.write_all(b"q").unwrap();
            let mut buf = [0u8; 8];
            assert_eq!(recv_now_or_later(&mut d, i, fd, &mut buf).0, 1);
            // Armed, with bytes queued on some of them.
            if i % 2 == 0 {
                client.write_all(b"queued").unwrap();
            }
            settle(&mut d);
            // The loop's order: release, then close.
            d.release_fd(fd);
            drop(server);
            peers.push(client);
        }
        // The next iteration submits the cancels: the sockets really close.
        settle(&mut d);
        for mut client in peers {
            client
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut byte = [0u8; 1];
            // End of stream (or a reset, if our queued bytes went unread).
            assert!(matches!(client.read(&mut byte), Ok(0) | Err(_)));
        }
        // A multishot left armed at Drop is cancelled there too.
        let (server, mut client) = tcp_pair();
        assert!(d.promise_recv_only(server.as_raw_fd()));
        client.write_all(b"y").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(
            recv_now_or_later(&mut d, 9, server.as_raw_fd(), &mut buf).0,
            1
        );
        let t = Instant::now();
        drop(d);
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "drop took {:?}",
            t.elapsed()
        );
    }
    assert_eq!(fd_count(), before);
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
fn multishot_cancelled_stream_reads_under_traffic_lose_and_reorder_nothing() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let _g = shared();
    let lp = UringBuilder::new()
        .multishot_recv(true)
        .new_event_loop()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    let mut tasks = Vec::new();
    let received = std::rc::Rc::new(std::cell::Cell::new(0usize));
    let cancelled = std::rc::Rc::new(std::cell::Cell::new(0usize));
    for i in 0..6u64 {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        theirs.set_nonblocking(true).unwrap();
        writers.push(theirs);
        let (received, cancelled) = (received.clone(), cancelled.clone());
        tasks.push(
            lp.create_task(async move {
                // Built inside the loop: the stream reads ahead (multishot).
                let stream = loop_api::net::UnixStream::from_std(ours).unwrap();
                let end = Instant::now() + Duration::from_millis(300);
                let (mut next, mut round) = (0u8, 0u64);
                while Instant::now() < end {
                    round += 1;
                    let timeout = Duration::from_micros((round * 7 + i * 13) % 70);
                    match loop_api::wait_for(stream.read(Vec::with_capacity(300)), timeout).await {
                        Ok((Ok(n), buf)) => {
                            // The writer sends 0, 1, ..., 250, 0, 1, ...:
                            // a lost or reordered byte breaks the sequence.
                            for &b in &buf[..n] {
                                assert_eq!(b, next, "byte lost or reordered");
                                next = if next == 250 { 0 } else { next + 1 };
                            }
                            received.set(received.get() + n);
                        }
                        Ok((Err(e), _)) => panic!("read failed: {e}"),
                        Err(_) => cancelled.set(cancelled.get() + 1),
                    }
                }
            })
            .unwrap(),
        );
    }
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let pattern: Vec<u8> = (0..251u8).collect();
            let mut pos = vec![0usize; writers.len()];
            while !stop.load(Ordering::Relaxed) {
                for (w, p) in writers.iter_mut().zip(pos.iter_mut()) {
                    let chunk: Vec<u8> = (0..97).map(|k| pattern[(*p + k) % 251]).collect();
                    if let Ok(n) = w.write(&chunk) {
                        *p = (*p + n) % 251;
                    }
                }
                std::thread::sleep(Duration::from_micros(50));
            }
        })
    };
    finish_cancel_stress(&lp, tasks, &stop, writer);
    assert!(received.get() > 0, "no data received");
    assert!(cancelled.get() > 0, "nothing was cancelled");
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

/// A completion the driver queued outside `wait` (here: a waiting receive
/// failed by `release_fd`) belongs to its operation only: once that
/// operation is cancelled, the next operation given the same id must not
/// receive it.
#[test]
fn a_cancelled_ops_queued_completion_never_reaches_its_ids_next_op() {
    let _g = shared();
    let mut d = mshot_driver();
    let (server, _client) = tcp_pair();
    let fd = server.as_raw_fd();
    assert!(d.promise_recv_only(fd));
    let mut buf = vec![0u8; 64];
    submit_recv(&mut d, 4, fd, &mut buf);
    d.release_fd(fd);
    assert_eq!(d.cancel(4), Cancel::Forgotten);

    let (other, mut peer) = tcp_pair();
    peer.write_all(b"fresh").unwrap();
    let mut buf2 = vec![0u8; 64];
    let (n, _) = recv_now_or_later(&mut d, 4, other.as_raw_fd(), &mut buf2);
    assert_eq!(&buf2[..n], b"fresh");
    drop(server);
}

// ---- Synchronous cancellation (IORING_REGISTER_SYNC_CANCEL) ----

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
        d.fake_misses = super::driver::SYNC_CANCEL_ATTEMPTS - 1;
        assert_eq!(d.cancel(0), Cancel::Forgotten);
        assert_eq!(d.in_transit, super::driver::SYNC_CANCEL_ATTEMPTS - 1);
        assert_eq!(d.in_flight(), 0);
        // Missed every time: an AsyncCancel, `Pending`, the final
        // completion from the next wait.
        d.in_transit = 0;
        submit_recv(&mut d, 0, a.as_raw_fd(), &mut buf);
        d.fake_misses = super::driver::SYNC_CANCEL_ATTEMPTS;
        assert_eq!(d.cancel(0), Cancel::Pending);
        assert_eq!(d.in_transit, super::driver::SYNC_CANCEL_ATTEMPTS);
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

// ---- Synchronous release of read-ahead streams ----

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
            _ => d.fake_misses = super::driver::SYNC_CANCEL_ATTEMPTS,
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
        d.fake_misses = super::driver::SYNC_CANCEL_ATTEMPTS;
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
