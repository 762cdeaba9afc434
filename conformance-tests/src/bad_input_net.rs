//! Section 18, networking parts (BAD-3, BAD-4, BAD-5 and friends): bad
//! descriptors, blocking sockets and bad addresses give typed errors, never
//! a panic or a hang.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};

use loop_api::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};
use loop_api::Error;
use socket2::{Domain, Socket, Type};

use crate::net_support::run_net;
use crate::support::new_loop;
use crate::Factory;

#[doc(hidden)]
#[macro_export]
macro_rules! __bad_input_net_tests {
    ($f:expr) => {
        $crate::__section!($f, bad_input_net: [
            blocking_socket_is_invalid_argument,
            closed_fd_is_ebadf_not_hang,
            negative_fd_is_invalid_argument,
            sock_ops_on_closed_loop_fail,
            constructors_need_a_running_loop,
            bad_addresses_are_errors,
            unix_path_too_long_is_invalid_input,
            watcher_on_loop_socket_fd_is_refused,
            os_errors_name_what_they_concern,
        ]);
    };
}

/// A descriptor number that is certainly not open in this process (above
/// the descriptor limit), so parallel tests cannot race for it.
const NEVER_OPEN: RawFd = 1 << 24;

/// `e` (from any call, owned-buffer results included: they carry the
/// same `evloop::Error`) is an `InvalidArgument`.
fn invalid_argument(e: &Error) -> bool {
    matches!(e, Error::InvalidArgument(_)) && e.kind() == io::ErrorKind::InvalidInput
}

/// BAD-5: a blocking socket passed to sock_* is an InvalidArgument error.
pub fn blocking_socket_is_invalid_argument(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let blocking = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let e = lp.sock_connect(&blocking, addr).await.unwrap_err();
        assert!(invalid_argument(&e), "sock_connect: {e:?}");
        let e = lp.sock_recv(&blocking, 10).await.unwrap_err();
        assert!(invalid_argument(&e), "sock_recv: {e:?}");
        let (res, _) = lp.sock_sendall(&blocking, b"x".as_slice()).await;
        assert!(invalid_argument(&res.unwrap_err()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let e = lp.sock_accept(&listener).await.unwrap_err();
        assert!(invalid_argument(&e), "sock_accept: {e:?}");
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let e = lp.sock_recvfrom(&udp, 10).await.unwrap_err();
        assert!(invalid_argument(&e));
        let (res, _) = lp.sock_sendto(&udp, b"x".as_slice(), addr).await;
        assert!(invalid_argument(&res.unwrap_err()));
    });
}

/// BAD-4: sock_* and add_reader on a descriptor that is not open fail with EBADF at once.
pub fn closed_fd_is_ebadf_not_hang(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let ebadf = |e: &Error| e.raw_os_error() == Some(libc::EBADF);
        let e = lp.sock_recv(&NEVER_OPEN, 10).await.unwrap_err();
        assert!(ebadf(&e), "{e:?}");
        let (res, _) = lp.sock_sendall(&NEVER_OPEN, b"x".as_slice()).await;
        assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EBADF));
        let e = lp.sock_accept(&NEVER_OPEN).await.unwrap_err();
        assert!(ebadf(&e));
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert!(ebadf(
            &lp.sock_connect(&NEVER_OPEN, addr).await.unwrap_err()
        ));
        match lp.add_reader(NEVER_OPEN, || {}) {
            Err(e @ Error::Io { .. }) => assert!(ebadf(&e)),
            other => panic!("add_reader on a closed fd: {other:?}"),
        }
        assert!(matches!(
            lp.add_writer(NEVER_OPEN, || {}),
            Err(Error::Io { .. })
        ));
        assert!(!lp.remove_reader(NEVER_OPEN));
    });
}

/// A negative descriptor is a typed InvalidArgument error.
pub fn negative_fd_is_invalid_argument(factory: impl Factory) {
    run_net(factory, |lp| async move {
        assert!(matches!(
            lp.add_reader(-1, || {}),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            lp.add_writer(-5, || {}),
            Err(Error::InvalidArgument(_))
        ));
        assert!(!lp.remove_reader(-1));
        assert!(!lp.remove_writer(-1));
        let e = lp.sock_recv(&-1, 4).await.unwrap_err();
        assert!(invalid_argument(&e), "{e:?}");
    });
}

/// sock_* on a closed loop fail with Closed instead of hanging.
pub fn sock_ops_on_closed_loop_fail(factory: impl Factory) {
    let lp = new_loop(factory);
    lp.close().unwrap();
    let (a, _b) = Socket::pair(Domain::UNIX, Type::STREAM.nonblocking(), None).unwrap();
    let fut = lp.sock_recv(&a, 4);
    // Poll it by hand: a closed loop cannot run anything.
    let mut fut = std::pin::pin!(fut);
    let waker = std::task::Waker::noop();
    match fut
        .as_mut()
        .poll(&mut std::task::Context::from_waker(waker))
    {
        std::task::Poll::Ready(Err(e)) => assert!(matches!(e, Error::Closed), "{e:?}"),
        other => panic!("expected an immediate error, got {other:?}"),
    }
    assert!(a.as_raw_fd() >= 0);
}

/// Socket constructors outside a running loop are NoRunningLoop errors, not panics.
pub fn constructors_need_a_running_loop(_factory: impl Factory) {
    let no_loop = |e: Error| assert!(matches!(e, Error::NoRunningLoop), "{e:?}");
    no_loop(TcpListener::bind("127.0.0.1:0").unwrap_err());
    no_loop(UdpSocket::bind("127.0.0.1:0").unwrap_err());
    no_loop(UnixStream::pair().unwrap_err());
    no_loop(UnixListener::bind(crate::net_support::temp_socket_path("noloop")).unwrap_err());
}

/// Addresses that resolve to nothing or do not parse are errors.
pub fn bad_addresses_are_errors(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let none: &[SocketAddr] = &[];
        let e = TcpStream::connect(none).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(TcpListener::bind(none).is_err());
        assert!(lp.create_server(none, |_s| async {}).is_err());
        assert!(TcpStream::connect("no port here").await.is_err());
        assert!(UdpSocket::bind("127.0.0.1:99999").is_err());
    });
}

/// A Unix path longer than the kernel accepts is InvalidInput.
pub fn unix_path_too_long_is_invalid_input(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let long = std::env::temp_dir().join("x".repeat(200));
        assert_eq!(
            UnixListener::bind(&long).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        let e = UnixStream::connect(&long).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(lp.create_unix_server(&long, |_s| async {}).is_err());
    });
}

/// BAD-3: add_reader/add_writer on a descriptor owned by one of the loop's
/// sockets is InvalidArgument ("used by" a socket) and registers nothing;
/// remove_* on it returns false. Once the socket is closed the number is
/// the user's again.
pub fn watcher_on_loop_socket_fd_is_refused(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (u1, u2) = UnixStream::pair().unwrap();
        let adopted =
            TcpListener::from_std(std::net::TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
        let fds = [
            listener.as_raw_fd(),
            stream.as_raw_fd(),
            accepted.as_raw_fd(),
            udp.as_raw_fd(),
            u1.as_raw_fd(),
            u2.as_raw_fd(),
            adopted.as_raw_fd(),
        ];
        for fd in fds {
            match lp.add_reader(fd, || panic!("reader on a loop socket ran")) {
                Err(Error::InvalidArgument(msg)) => {
                    assert!(msg.contains("used by"), "{msg}");
                }
                other => panic!("add_reader on loop socket fd {fd}: {other:?}"),
            }
            match lp.add_writer(fd, || panic!("writer on a loop socket ran")) {
                Err(Error::InvalidArgument(msg)) => {
                    assert!(msg.contains("used by"), "{msg}");
                }
                other => panic!("add_writer on loop socket fd {fd}: {other:?}"),
            }
            assert!(!lp.remove_reader(fd), "nothing was registered on {fd}");
            assert!(!lp.remove_writer(fd), "nothing was registered on {fd}");
        }
        // The sockets still work.
        let (res, _) = stream.write_all_owned(b"ok".as_slice()).await;
        res.unwrap();
        let (res, buf) = accepted.read_owned(Vec::with_capacity(8)).await;
        assert!(res.unwrap() > 0);
        assert_eq!(&buf[..1], b"o");

        // A closed socket's number is no longer refused. The kernel hands out
        // the lowest free number, which is usually the one just closed; other
        // tests may take it first, so check only when we got it back.
        let fd = udp.as_raw_fd();
        drop(udp);
        let user = Socket::new(Domain::IPV4, Type::DGRAM.nonblocking(), None).unwrap();
        if user.as_raw_fd() == fd {
            lp.add_reader(fd, || {}).unwrap();
            assert!(lp.remove_reader(fd));
        }
        // A user socket is not refused.
        lp.add_writer(user.as_raw_fd(), || {}).unwrap();
        assert!(lp.remove_writer(user.as_raw_fd()));
    });
}

/// An OS error says what it concerns, as asyncio's do, and keeps its kind:
/// connect names the address (TCP) or path (Unix), bind the address, open
/// the path, spawn the program; converted to an `io::Error` and back, it
/// keeps both.
pub fn os_errors_name_what_they_concern(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let expect = |e: &Error, kind: io::ErrorKind, context: &str| {
            assert_eq!(e.kind(), kind, "{e}");
            assert_eq!(e.context(), Some(context), "{e:?}");
            let text = e.to_string();
            assert!(text.starts_with(&format!("{context}: ")), "{text}");
            assert!(
                e.io_error().is_some() && e.raw_os_error().is_some(),
                "{e:?}"
            );
        };
        // A port nobody listens on: bound, then closed.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let e = TcpStream::connect(closed).await.unwrap_err();
        expect(
            &e,
            io::ErrorKind::ConnectionRefused,
            &format!("connect to {closed}"),
        );
        let e = lp.create_connection(closed).await.unwrap_err();
        expect(
            &e,
            io::ErrorKind::ConnectionRefused,
            &format!("connect to {closed}"),
        );

        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let e = TcpListener::bind(addr).unwrap_err();
        expect(&e, io::ErrorKind::AddrInUse, &format!("bind {addr}"));
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = udp.local_addr().unwrap();
        let e = UdpSocket::bind(addr).unwrap_err();
        expect(&e, io::ErrorKind::AddrInUse, &format!("bind {addr}"));

        let path = crate::net_support::temp_socket_path("nobody-listens");
        let e = UnixStream::connect(&path).await.unwrap_err();
        expect(
            &e,
            io::ErrorKind::NotFound,
            &format!("connect to {}", path.display()),
        );

        let e = loop_api::fs::File::open("/no/such/evloop-file")
            .await
            .unwrap_err();
        expect(&e, io::ErrorKind::NotFound, "open /no/such/evloop-file");

        let e = lp
            .subprocess_exec("evloop-no-such-program", ["x"])
            .unwrap_err();
        expect(
            &e,
            io::ErrorKind::NotFound,
            "spawn `evloop-no-such-program`",
        );

        // Through io::Error (as futures-io and tokio traits need) and back.
        let as_io = io::Error::from(e);
        assert_eq!(as_io.kind(), io::ErrorKind::NotFound);
        assert!(
            as_io
                .to_string()
                .starts_with("spawn `evloop-no-such-program`: "),
            "{as_io}"
        );
        let back = Error::from(as_io);
        expect(
            &back,
            io::ErrorKind::NotFound,
            "spawn `evloop-no-such-program`",
        );
    });
}
