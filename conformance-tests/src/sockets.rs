//! Section 8 — low-level socket operations (SOC-*): `sock_*` on sockets the
//! test creates itself with socket2, as asyncio's `sock_*` take user sockets.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Duration;

use loop_api::{wait_for, Error};
use socket2::{Domain, SockAddr, Socket, Type};

use crate::net_support::{close_server, join, pattern, run_net, temp_socket_path};
use crate::support::fd_count;
use crate::Factory;

#[doc(hidden)]
#[macro_export]
macro_rules! __sockets_tests {
    ($f:expr) => {
        $crate::__section!($f, sockets: [
            sock_client_ops_tcp,
            sock_client_ops_unix,
            sock_accept_gives_nonblocking_conn_and_client_addr,
            sock_huge_content_both_directions,
            sock_huge_content_recv_into,
            sock_connect_refused,
            sock_accept_cancelled_by_timeout_then_works,
            cancelled_sock_recv_loses_no_byte,
            sock_datagram_round_trip,
            sock_recvfrom_into_fills_capacity,
            sock_sendto_waits_for_room,
            user_fd_released_after_ops,
        ] exclusive [
            networking_leaves_fd_count_unchanged,
        ]);
    };
}

/// A non-blocking listening TCP socket on 127.0.0.1 and its address.
fn tcp_listener() -> (Socket, SocketAddr) {
    let l = Socket::new(Domain::IPV4, Type::STREAM.nonblocking(), None).unwrap();
    l.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    l.listen(16).unwrap();
    let addr = l.local_addr().unwrap().as_socket().unwrap();
    (l, addr)
}

fn nonblocking(domain: Domain, ty: Type) -> Socket {
    Socket::new(domain, ty.nonblocking(), None).unwrap()
}

/// SOC-1: connect, sendall, recv (at most n bytes), b'' forever after the peer closed,
/// sendall(b'') completes at once.
pub fn sock_client_ops_tcp(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let (l, addr) = tcp_listener();
        let client = nonblocking(Domain::IPV4, Type::STREAM);
        let (accepted, connected) = join(lp.sock_accept(&l), lp.sock_connect(&client, addr)).await;
        connected.unwrap();
        let (server, _) = accepted.unwrap();

        let (res, _) = lp.sock_sendall(&client, b"hello world".as_slice()).await;
        res.unwrap();
        let got = lp.sock_recv(&server, 5).await.unwrap();
        assert_eq!(got, b"hello", "sock_recv returns at most n bytes");
        let got = lp.sock_recv(&server, 100).await.unwrap();
        assert_eq!(got, b" world");

        let (res, _) = lp.sock_sendall(&client, Vec::new()).await;
        res.unwrap();
        drop(client);
        for _ in 0..3 {
            assert!(
                lp.sock_recv(&server, 100).await.unwrap().is_empty(),
                "EOF on every call"
            );
        }
    });
}

/// SOC-1 over AF_UNIX.
pub fn sock_client_ops_unix(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let path = temp_socket_path("sockops");
        let l = nonblocking(Domain::UNIX, Type::STREAM);
        l.bind(&SockAddr::unix(&path).unwrap()).unwrap();
        l.listen(4).unwrap();
        let client = nonblocking(Domain::UNIX, Type::STREAM);
        let (accepted, connected) = join(
            lp.sock_accept(&l),
            lp.sock_connect(&client, SockAddr::unix(&path).unwrap()),
        )
        .await;
        connected.unwrap();
        let (server, _) = accepted.unwrap();
        let (res, _) = lp.sock_sendall(&server, b"ping".as_slice()).await;
        res.unwrap();
        assert_eq!(lp.sock_recv(&client, 64).await.unwrap(), b"ping");
        drop(server);
        assert!(lp.sock_recv(&client, 64).await.unwrap().is_empty());
        std::fs::remove_file(&path).unwrap();
    });
}

/// SOC-2: the accepted socket is non-blocking and `addr` is the client's sockname.
pub fn sock_accept_gives_nonblocking_conn_and_client_addr(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let (l, addr) = tcp_listener();
        let client = nonblocking(Domain::IPV4, Type::STREAM);
        let (accepted, connected) = join(lp.sock_accept(&l), lp.sock_connect(&client, addr)).await;
        connected.unwrap();
        let (conn, peer) = accepted.unwrap();
        assert!(
            conn.nonblocking().unwrap(),
            "accepted socket must be non-blocking"
        );
        assert_eq!(peer.as_socket(), client.local_addr().unwrap().as_socket());
    });
}

async fn recv_exactly(
    lp: &loop_api::EventLoop,
    sock: &Socket,
    size: usize,
    use_into: bool,
) -> Vec<u8> {
    let mut got = Vec::with_capacity(size);
    let mut buf = Vec::with_capacity(64 * 1024);
    while got.len() < size {
        if use_into {
            let (res, b) = lp.sock_recv_into(sock, buf).await;
            buf = b;
            let n = res.unwrap();
            assert!(n > 0, "early EOF");
            got.extend_from_slice(&buf[..n]);
        } else {
            let chunk = lp.sock_recv(sock, 64 * 1024).await.unwrap();
            assert!(!chunk.is_empty(), "early EOF");
            got.extend_from_slice(&chunk);
        }
    }
    got
}

async fn huge_both_ways(lp: loop_api::EventLoop, use_into: bool) {
    const SIZE: usize = 1024 * 1024;
    let (l, addr) = tcp_listener();
    let client = nonblocking(Domain::IPV4, Type::STREAM);
    let (accepted, connected) = join(lp.sock_accept(&l), lp.sock_connect(&client, addr)).await;
    connected.unwrap();
    let (server, _) = accepted.unwrap();

    let up = pattern(SIZE, 0x11);
    let down = pattern(SIZE, 0x77);
    let sends = join(
        lp.sock_sendall(&client, up.clone()),
        lp.sock_sendall(&server, down.clone()),
    );
    let recvs = join(
        recv_exactly(&lp, &server, SIZE, use_into),
        recv_exactly(&lp, &client, SIZE, use_into),
    );
    let ((r1, r2), (got_up, got_down)) = join(sends, recvs).await;
    r1.0.unwrap();
    r2.0.unwrap();
    assert!(got_up == up, "client->server bytes differ");
    assert!(got_down == down, "server->client bytes differ");
}

/// SOC-3: 1 MB sendall alongside recv on the same sockets, both directions at once.
pub fn sock_huge_content_both_directions(factory: impl Factory) {
    run_net(factory, |lp| huge_both_ways(lp, false));
}

/// SOC-3 with sock_recv_into.
pub fn sock_huge_content_recv_into(factory: impl Factory) {
    run_net(factory, |lp| huge_both_ways(lp, true));
}

/// SOC-5: connecting to a port nobody listens on is ConnectionRefused.
pub fn sock_connect_refused(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let (l, addr) = tcp_listener();
        drop(l);
        let client = nonblocking(Domain::IPV4, Type::STREAM);
        let err = lp.sock_connect(&client, addr).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    });
}

/// SOC-5: wait_for(sock_accept, 0.1 s) times out; the listener keeps working.
pub fn sock_accept_cancelled_by_timeout_then_works(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let (l, addr) = tcp_listener();
        let res = wait_for(lp.sock_accept(&l), Duration::from_millis(100)).await;
        assert!(matches!(res, Err(Error::TimedOut)));
        // Let the cancellation reach the kernel before the next connection
        // arrives: on io_uring a cancel still in flight can lose the race
        // and accept it (the loop then closes it, as for any accept that
        // completes after cancellation).
        lp.sleep(Duration::from_millis(10)).await;
        let client = nonblocking(Domain::IPV4, Type::STREAM);
        let (accepted, connected) = join(lp.sock_accept(&l), lp.sock_connect(&client, addr)).await;
        connected.unwrap();
        accepted.unwrap();
    });
}

/// Dropping an in-flight sock_recv cancels it: the next one gets every byte.
pub fn cancelled_sock_recv_loses_no_byte(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let (a, b) = Socket::pair(Domain::UNIX, Type::STREAM.nonblocking(), None).unwrap();
        let res = wait_for(lp.sock_recv(&a, 100), Duration::from_millis(30)).await;
        assert!(matches!(res, Err(Error::TimedOut)));
        let (res, _) = lp.sock_sendall(&b, b"every byte".as_slice()).await;
        res.unwrap();
        assert_eq!(lp.sock_recv(&a, 100).await.unwrap(), b"every byte");
    });
}

/// SOC-6: a 4096-byte datagram round trip; from_addr is the server's address.
pub fn sock_datagram_round_trip(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let server = nonblocking(Domain::IPV4, Type::DGRAM);
        server
            .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        let server_addr = server.local_addr().unwrap();
        let client = nonblocking(Domain::IPV4, Type::DGRAM);
        client
            .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();

        let data = pattern(4096, 3);
        let (res, _) = lp
            .sock_sendto(&client, data.clone(), server_addr.clone())
            .await;
        assert_eq!(res.unwrap(), 4096);
        let (got, from) = lp.sock_recvfrom(&server, 8192).await.unwrap();
        assert_eq!(got, data);
        assert_eq!(from.as_socket(), client.local_addr().unwrap().as_socket());
        let (res, _) = lp.sock_sendto(&server, got, from).await;
        res.unwrap();
        let (echo, from) = lp.sock_recvfrom(&client, 8192).await.unwrap();
        assert_eq!(echo, data);
        assert_eq!(from.as_socket(), server_addr.as_socket());
    });
}

/// SOC-6: recvfrom_into with a 4096-byte buffer returns 4096 of a larger datagram.
pub fn sock_recvfrom_into_fills_capacity(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let server = nonblocking(Domain::IPV4, Type::DGRAM);
        server
            .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        let client = nonblocking(Domain::IPV4, Type::DGRAM);
        let (res, _) = lp
            .sock_sendto(&client, pattern(8192, 1), server.local_addr().unwrap())
            .await;
        res.unwrap();
        let (res, buf) = lp
            .sock_recvfrom_into(&server, Vec::with_capacity(4096))
            .await;
        let (n, _) = res.unwrap();
        assert_eq!(n, 4096);
        assert_eq!(buf, pattern(8192, 1)[..4096]);
    });
}

/// SOC-6: sock_sendto waits (rather than failing) while the peer's queue is
/// full, and completes once the receiver drains it.
pub fn sock_sendto_waits_for_room(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let path = temp_socket_path("dgram-full");
        let receiver = nonblocking(Domain::UNIX, Type::DGRAM);
        receiver.bind(&SockAddr::unix(&path).unwrap()).unwrap();
        let sender = nonblocking(Domain::UNIX, Type::DGRAM);
        let to = SockAddr::unix(&path).unwrap();
        let mut queued = 0usize;
        loop {
            match sender.send_to(&[7u8; 512], &to) {
                Ok(_) => queued += 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("filling the queue: {e}"),
            }
            assert!(queued < 1_000_000, "the queue never filled");
        }
        let drain = {
            let lp = lp.clone();
            let receiver = &receiver;
            async move {
                let mut n = 0;
                while n < queued + 1 {
                    let (data, _) = lp.sock_recvfrom(receiver, 1024).await.unwrap();
                    assert_eq!(data.len(), 512);
                    n += 1;
                }
            }
        };
        let send = lp.sock_sendto(&sender, vec![7u8; 512], to.clone());
        let ((res, _), ()) = join(send, drain).await;
        assert_eq!(res.unwrap(), 512);
        std::fs::remove_file(&path).unwrap();
    });
}

/// After its operations end, a user's descriptor is forgotten by the loop:
/// closing it and getting the same number for a new socket works.
pub fn user_fd_released_after_ops(factory: impl Factory) {
    run_net(factory, |lp| async move {
        for round in 0..20u8 {
            let (a, b) = Socket::pair(Domain::UNIX, Type::STREAM.nonblocking(), None).unwrap();
            let (res, _) = lp.sock_sendall(&a, vec![round; 3]).await;
            res.unwrap();
            assert_eq!(lp.sock_recv(&b, 10).await.unwrap(), vec![round; 3]);
            // A pending recv, then the data arrives: the op had to wait for readiness.
            let (got, sent) = join(lp.sock_recv(&a, 10), async {
                loop_api::yield_now().await;
                lp.sock_sendall(&b, vec![round; 2]).await
            })
            .await;
            sent.0.unwrap();
            assert_eq!(got.unwrap(), vec![round; 2]);
        }
    });
}

/// The networking suite leaves the process's descriptor count as it found it:
/// sockets of every kind, servers, cancelled operations, watchers.
pub fn networking_leaves_fd_count_unchanged(factory: impl Factory) {
    // Warm up anything opened lazily once per process.
    run_net(factory, |_| async {});
    let before = fd_count();
    for _ in 0..3 {
        let left_open = run_net(factory, fd_workload);
        // The loop closed with a reader still registered on a socket, and a
        // server (with a live connection) that was never closed.
        drop(left_open);
    }
    let after = fd_count();
    assert_eq!(before, after, "descriptors leaked by networking");
}

async fn fd_workload(
    lp: loop_api::EventLoop,
) -> (
    loop_api::net::UnixStream,
    (Socket, Socket),
    loop_api::net::Server,
    loop_api::net::TcpStream,
) {
    use loop_api::net::{TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixStream};
    // A TCP server with live connections, closed and waited for.
    let server = lp
        .create_server("127.0.0.1:0", |s| async move {
            let (_, buf) = s.read_owned(Vec::with_capacity(16)).await;
            let _ = s.write_all_owned(buf).await;
        })
        .unwrap();
    let addr = server.local_addr().unwrap();
    for _ in 0..5 {
        let c = TcpStream::connect(addr).await.unwrap();
        let (r, _) = c.write_all_owned(b"x".as_slice()).await;
        r.unwrap();
        let (r, _) = c.read_owned(Vec::with_capacity(4)).await;
        r.unwrap();
    }
    close_server(&server).await;
    // A cancelled accept, and an accept dropped after it completed.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let _ = wait_for(l.accept(), Duration::from_millis(5)).await;
    let c = {
        let mut acc = std::pin::pin!(l.accept());
        std::future::poll_fn(|cx| {
            assert!(acc.as_mut().poll(cx).is_pending());
            std::task::Poll::Ready(())
        })
        .await;
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        lp.sleep(Duration::from_millis(5)).await;
        c
    };
    drop(c);
    drop(l);
    // UDP, Unix streams and datagrams, a refused connect, a user socket.
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    let _ = wait_for(u.recv_from(Vec::with_capacity(8)), Duration::from_millis(5)).await;
    let (a, b) = UnixStream::pair().unwrap();
    let (r, _) = a.write_all_owned(b"z".as_slice()).await;
    r.unwrap();
    let _ = b.read_owned(Vec::with_capacity(8)).await;
    let (d1, d2) = UnixDatagram::pair().unwrap();
    let (r, _) = d1.send(b"d".as_slice()).await;
    r.unwrap();
    let _ = d2.recv(Vec::with_capacity(8)).await;
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    assert!(TcpStream::connect(dead_addr).await.is_err());
    let (x, y) = Socket::pair(Domain::UNIX, Type::STREAM.nonblocking(), None).unwrap();
    let _ = wait_for(lp.sock_recv(&x, 8), Duration::from_millis(5)).await;
    drop((x, y));
    // A reader left registered (on a user socket: the loop's own sockets
    // refuse watchers), and a server left open with a connection whose
    // handler is still running, when the loop closes.
    let user = Socket::pair(Domain::UNIX, Type::STREAM.nonblocking(), None).unwrap();
    lp.add_reader(user.0.as_raw_fd(), || {}).unwrap();
    let open = lp
        .create_server("127.0.0.1:0", |s| async move {
            let _ = s.read_owned(Vec::with_capacity(8)).await;
        })
        .unwrap();
    let live = TcpStream::connect(open.local_addr().unwrap())
        .await
        .unwrap();
    while open.connection_count() == 0 {
        loop_api::yield_now().await;
    }
    (a, user, open, live)
}
