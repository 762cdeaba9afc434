//! Section 11 — UDP (UDP-*): `UdpSocket` and `UnixDatagram`.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use loop_api::net::{UdpSocket, UnixDatagram};
use loop_api::{wait_for, Error};

use crate::net_support::{join, run_net};
use crate::Factory;

#[doc(hidden)]
#[macro_export]
macro_rules! __udp_tests {
    ($f:expr) => {
        $crate::__section!($f, udp: [
            datagram_echo,
            send_to_non_listening_port_then_receive,
            connected_socket_survives_port_unreachable,
            options_off_unless_requested,
            unix_datagram_pair_peer_is_unnamed,
            cancelled_recv_from_loses_no_datagram,
            queued_datagrams_all_arrive_after_a_short_recv,
        ]);
    };
}

const LOCAL: &str = "127.0.0.1:0";

/// UDP-1: b'xxx' arrives as 3 bytes; the echo b'resp:xxx' comes back as 8.
pub fn datagram_echo(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let server = UdpSocket::bind(LOCAL).unwrap();
        let server_addr = server.local_addr().unwrap();
        let echo = lp
            .create_task(async move {
                let (res, buf) = server.recv_from(Vec::with_capacity(64)).await;
                let (n, from) = res.unwrap();
                assert_eq!(n, 3);
                let mut reply = b"resp:".to_vec();
                reply.extend_from_slice(&buf);
                let (res, _) = server.send_to(reply, from).await;
                res.unwrap();
            })
            .unwrap();
        let client = UdpSocket::bind(LOCAL).unwrap();
        client.connect(server_addr).unwrap();
        assert_eq!(client.peer_addr().unwrap(), server_addr);
        let (res, _) = client.send(b"xxx".as_slice()).await;
        assert_eq!(res.unwrap(), 3);
        let (res, buf) = client.recv(Vec::with_capacity(64)).await;
        assert_eq!(res.unwrap(), 8);
        assert_eq!(buf, b"resp:xxx");
        echo.await.unwrap();
    });
}

fn dead_port() -> SocketAddr {
    let s = std::net::UdpSocket::bind(LOCAL).unwrap();
    s.local_addr().unwrap()
}

/// UDP-2: after sending to a port nobody listens on, later datagrams still arrive.
pub fn send_to_non_listening_port_then_receive(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let sock = UdpSocket::bind(LOCAL).unwrap();
        let me = sock.local_addr().unwrap();
        for _ in 0..3 {
            let (res, _) = sock.send_to(b"into the void".as_slice(), dead_port()).await;
            res.unwrap();
        }
        lp.sleep(Duration::from_millis(10)).await;
        let peer = UdpSocket::bind(LOCAL).unwrap();
        for i in 0..3u8 {
            let (res, _) = peer.send_to(vec![i; 4], me).await;
            res.unwrap();
            let (res, buf) = sock.recv_from(Vec::with_capacity(16)).await;
            let (n, from) = res.unwrap();
            assert_eq!((n, from), (4, peer.local_addr().unwrap()));
            assert_eq!(buf, vec![i; 4]);
        }
    });
}

/// UDP-2: a connected socket may see ConnectionRefused for an earlier
/// datagram, but stays usable: later datagrams from its peer arrive.
pub fn connected_socket_survives_port_unreachable(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let target = dead_port();
        let sock = UdpSocket::bind(LOCAL).unwrap();
        sock.connect(target).unwrap();
        let (res, _) = sock.send(b"lost".as_slice()).await;
        res.unwrap();
        lp.sleep(Duration::from_millis(10)).await;
        // Now someone listens there and answers.
        let peer = UdpSocket::bind(target).unwrap();
        let me = sock.local_addr().unwrap();
        let (res, _) = peer.send_to(b"hello".as_slice(), me).await;
        res.unwrap();
        let mut refusals = 0;
        let data = loop {
            let (res, buf) = sock.recv(Vec::with_capacity(16)).await;
            match res {
                Ok(_) => break buf,
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused && refusals < 3 => {
                    refusals += 1
                }
                Err(e) => panic!("unexpected error: {e}"),
            }
        };
        assert_eq!(data, b"hello");
    });
}

/// UDP-3: SO_REUSEADDR, SO_REUSEPORT and SO_BROADCAST are off unless requested.
pub fn options_off_unless_requested(factory: impl Factory) {
    run_net(factory, |_lp| async move {
        let s = UdpSocket::bind(LOCAL).unwrap();
        let r = socket2::SockRef::from(&s);
        assert!(!r.reuse_address().unwrap());
        assert!(!r.reuse_port().unwrap());
        assert!(!s.broadcast().unwrap());
        s.set_broadcast(true).unwrap();
        assert!(s.broadcast().unwrap());
    });
}

/// UDP-3: the peer of an AF_UNIX datagram socketpair has no address.
pub fn unix_datagram_pair_peer_is_unnamed(factory: impl Factory) {
    run_net(factory, |_lp| async move {
        let (a, b) = UnixDatagram::pair().unwrap();
        let (res, _) = a.send(b"ping".as_slice()).await;
        res.unwrap();
        let (res, buf) = b.recv_from(Vec::with_capacity(16)).await;
        let (n, from) = res.unwrap();
        assert_eq!(n, 4);
        assert_eq!(buf, b"ping");
        assert!(from.is_unnamed(), "socketpair peer must be unnamed");
        assert!(from.as_pathname().is_none());
    });
}

/// Dropping an in-flight recv_from cancels it; the next one gets the datagram.
pub fn cancelled_recv_from_loses_no_datagram(factory: impl Factory) {
    run_net(factory, |_lp| async move {
        let a = UdpSocket::bind(LOCAL).unwrap();
        let b = UdpSocket::bind(LOCAL).unwrap();
        let res = wait_for(
            a.recv_from(Vec::with_capacity(16)),
            Duration::from_millis(20),
        )
        .await;
        assert!(matches!(res, Err(Error::TimedOut)));
        let a_addr = a.local_addr().unwrap();
        let (got, sent) = join(
            a.recv_from(Vec::with_capacity(16)),
            b.send_to(b"kept".as_slice(), a_addr),
        )
        .await;
        sent.0.unwrap();
        assert_eq!(got.1, b"kept");
    });
}

/// A datagram shorter than the buffer says nothing about the queue: with
/// several datagrams queued at once (one readiness edge), each `recv` on a
/// connected UDP socket and on a Unix datagram pair returns the next one at
/// once instead of waiting for an edge that never comes.
pub fn queued_datagrams_all_arrive_after_a_short_recv(factory: impl Factory) {
    run_net(factory, |_lp| async move {
        let a = UdpSocket::bind(LOCAL).unwrap();
        let b = UdpSocket::bind(LOCAL).unwrap();
        a.connect(b.local_addr().unwrap()).unwrap();
        b.connect(a.local_addr().unwrap()).unwrap();
        let (ua, ub) = UnixDatagram::pair().unwrap();
        // A first recv that waits registers each socket with the backend.
        let (first, sent) = join(a.recv(Vec::with_capacity(64)), b.send(b"0".as_slice())).await;
        sent.0.unwrap();
        assert_eq!(first.0.unwrap(), 1);
        let (first, sent) = join(ua.recv(Vec::with_capacity(64)), ub.send(b"0".as_slice())).await;
        sent.0.unwrap();
        assert_eq!(first.0.unwrap(), 1);
        for msg in [b"one".as_slice(), b"two", b"three"] {
            b.send(msg).await.0.unwrap();
            ub.send(msg).await.0.unwrap();
        }
        // Give the datagrams time to be queued, as one burst, before reading.
        loop_api::sleep(Duration::from_millis(20)).await;
        for want in [b"one".as_slice(), b"two", b"three"] {
            let (res, buf) = wait_for(a.recv(Vec::with_capacity(64)), Duration::from_secs(5))
                .await
                .expect("a queued UDP datagram must arrive without a new edge");
            assert_eq!(res.unwrap(), want.len());
            assert_eq!(buf, want);
            let (res, buf) = wait_for(ua.recv(Vec::with_capacity(64)), Duration::from_secs(5))
                .await
                .expect("a queued Unix datagram must arrive without a new edge");
            assert_eq!(res.unwrap(), want.len());
            assert_eq!(buf, want);
        }
    });
}
