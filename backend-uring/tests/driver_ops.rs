//! Each operation on the ring: what it reports, how it fails, and a full
//! submission queue.
//
// Where the driver tests live: those that need only the public API (and
// `loop_driver`, `loop_api`) under `tests/`, by topic, with the helpers in
// `tests/common/mod.rs`; those that need the driver's internals (forcing a
// fallback by clearing a probed flag, faking cancels that miss, counting
// targets in transit) in `src/driver/tests.rs`, which includes the same
// helpers. Not a public testing hook: it would put test-only fields and
// branches into every build of the driver.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::task::Poll;
use std::time::{Duration, Instant};

use backend_uring::UringBuilder;
use loop_driver::{Cancel, Driver, Op};
use socket2::SockAddr;

use common::*;

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
    assert_eq!(
        // SAFETY: `fds` has room for two descriptors.
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
    assert!(matches!(
        // SAFETY: no memory is referenced by a rejected op.
        unsafe { d.submit(2, Op::PollReadable { fd: 0 }) },
        Poll::Ready(Err(_))
    ));
    assert!(matches!(
        // SAFETY: as above.
        unsafe { d.submit(usize::MAX, Op::PollReadable { fd: 0 }) },
        Poll::Ready(Err(_))
    ));
    let _ = wait_for(&mut d, 2);
    // Unknown ids cancel as done.
    assert_eq!(d.cancel(12345), Cancel::Forgotten);
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
