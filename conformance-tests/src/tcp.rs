//! Section 10 — TCP (TCP-*): `create_server`, `create_connection`,
//! listeners and streams. asyncio's protocol callbacks map onto our stream
//! API: `connection_made` is the handler starting with the stream,
//! `data_received` a completed read, `eof_received` a read of 0,
//! `connection_lost` the handler returning (the stream dropped).

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use loop_api::net::{ServerOptions, TcpListener, TcpSocket, TcpStream};
use loop_api::{sleep, wait_for, Error, EventLoop};

use crate::net_support::{
    close_server, io_close, io_read_exact, io_read_to_end, io_write_all, join, pattern,
    raise_fd_limit, run_net,
};
use crate::support::{capture_exceptions, Log};
use crate::Factory;

#[doc(hidden)]
#[macro_export]
macro_rules! __tcp_tests {
    ($f:expr) => {
        $crate::__section!($f, tcp: [
            create_server_serves_a_connection,
            create_connection_round_trip,
            accepted_std_socket_can_be_adopted,
            server_address_in_use,
            connect_from_local_address_in_use,
            server_close_refuses_new_connections,
            wait_closed_waits_for_live_connections,
            abort_clients_ends_connections,
            serve_forever_runs_until_close,
            dropping_last_handle_closes_server,
            reuse_port_off_unless_requested,
            connect_refused,
            data_and_eof_in_one_wakeup,
            unread_data_does_not_busy_the_loop,
            reset_nobody_reads_does_not_busy_the_loop,
            many_connections_ready_at_once_are_all_served,
            transfer_1mb_both_directions_at_once,
            peer_closes_with_data_unread,
            cancelled_read_loses_no_byte,
            accept_dropped_after_completion_keeps_connection,
            futures_io_adapters,
            unpolled_read_decides_nothing,
            split_halves_in_two_tasks,
            handler_panic_keeps_server_serving,
            stream_addresses_and_nodelay,
            start_serving_false_defers_accepting,
            any_host_server_is_dual_stack,
        ] exclusive [
            thousand_concurrent_connections,
        ]);
    };
}

const LOCAL: &str = "127.0.0.1:0";

async fn read_all(s: &TcpStream) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        let (res, b) = s.read_owned(buf).await;
        buf = b;
        match res? {
            0 => return Ok(out),
            n => out.extend_from_slice(&buf[..n]),
        }
    }
}

async fn read_exact(s: &TcpStream, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < n {
        let (res, buf) = s.read_owned(Vec::with_capacity(n - out.len())).await;
        assert!(res.unwrap() > 0, "early EOF");
        out.extend_from_slice(&buf);
    }
    out
}

/// An echo server and a client connected to it.
async fn echo_pair(lp: &EventLoop) -> (loop_api::net::Server, TcpStream) {
    let server = echo_server(lp);
    let c = TcpStream::connect(server.local_addr().unwrap())
        .await
        .unwrap();
    (server, c)
}

/// An echo server on 127.0.0.1: every connection gets its bytes back.
fn echo_server(lp: &EventLoop) -> loop_api::net::Server {
    lp.create_server(LOCAL, |s: TcpStream| async move {
        let mut buf = Vec::with_capacity(16 * 1024);
        loop {
            let (res, b) = s.read_owned(buf).await;
            match res {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let (res, b) = s.write_all_owned(b).await;
            if res.is_err() {
                return;
            }
            buf = b;
        }
    })
    .unwrap()
}

/// TCP-1: one listening socket; the handler sees 3 bytes from 127.0.0.1;
/// the stages happen once each, in order.
pub fn create_server_serves_a_connection(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let log = Log::new();
        let l = log.clone();
        let server = lp
            .create_server(("127.0.0.1", 0), move |s: TcpStream| {
                let l = l.clone();
                async move {
                    l.push(format!("made {}", s.peer_addr().unwrap().ip()));
                    let data = read_all(&s).await.unwrap();
                    l.push(format!("eof after {}", data.len()));
                    drop(s);
                    l.push("lost".to_owned());
                }
            })
            .unwrap();
        assert_eq!(server.local_addrs().len(), 1, "one listening socket");
        let addr = server.local_addr().unwrap();
        let c = TcpStream::connect(addr).await.unwrap();
        let (res, _) = c.write_all_owned(b"xxx".as_slice()).await;
        res.unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_all(&c).await.unwrap(), b"", "server closed its side");
        close_server(&server).await;
        assert_eq!(log.get(), ["made 127.0.0.1", "eof after 3", "lost"]);
    });
}

/// TCP-2: create_connection resolves to a connected stream; data flows both ways.
pub fn create_connection_round_trip(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let server = echo_server(&lp);
        let addr = server.local_addr().unwrap();
        let c = lp.create_connection(addr).await.unwrap();
        assert_eq!(c.peer_addr().unwrap(), addr);
        assert_eq!(c.local_addr().unwrap().ip(), addr.ip());
        let (res, _) = c.write_all_owned(b"hello".as_slice()).await;
        res.unwrap();
        assert_eq!(read_exact(&c, 5).await, b"hello");
        drop(c);
        close_server(&server).await;
    });
}

/// TCP-2: a socket accepted by other means (std) is adopted (connect_accepted_socket).
pub fn accepted_std_socket_can_be_adopted(factory: impl Factory) {
    run_net(factory, |_lp| async move {
        let l = std::net::TcpListener::bind(LOCAL).unwrap();
        let client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (accepted, _) = l.accept().unwrap();
        let s = TcpStream::from_std(accepted).unwrap();
        let c = TcpStream::from_std(client).unwrap();
        let (res, _) = c.write_all_owned(b"adopted".as_slice()).await;
        res.unwrap();
        assert_eq!(read_exact(&s, 7).await, b"adopted");
    });
}

/// TCP-3: binding a port in use is AddrInUse, and nothing stays bound.
pub fn server_address_in_use(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let first = echo_server(&lp);
        let addr = first.local_addr().unwrap();
        let err = lp.create_server(addr, |_s| async {}).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
        let err = TcpListener::bind(addr).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        close_server(&first).await;
    });
}

/// TCP-3: connecting from a local address already in use is AddrInUse.
pub fn connect_from_local_address_in_use(factory: impl Factory) {
    run_net(factory, |_lp| async move {
        let taken = TcpListener::bind(LOCAL).unwrap();
        let local = taken.local_addr().unwrap();
        let socket = TcpSocket::new_v4().unwrap();
        let err = socket.bind(local).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    });
}

/// TCP-4: after close(), connects are refused, no address is listed, and
/// the server is not serving; serve_forever is an error.
pub fn server_close_refuses_new_connections(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let server = echo_server(&lp);
        let addr = server.local_addr().unwrap();
        // Let the accept task park on the listening socket first.
        let c = TcpStream::connect(addr).await.unwrap();
        drop(c);
        assert!(server.is_serving());
        server.close();
        assert!(!server.is_serving());
        assert!(server.local_addrs().is_empty());
        // Immediately, without another iteration: refused.
        let err = TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
        assert!(server.serve_forever().await.is_err());
        server.wait_closed().await;
        let err = TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    });
}

/// TCP-5: wait_closed blocks while the server is open or a connection lives.
pub fn wait_closed_waits_for_live_connections(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let server = echo_server(&lp);
        let addr = server.local_addr().unwrap();
        let c = TcpStream::connect(addr).await.unwrap();
        let (res, _) = c.write_all_owned(b"hi".as_slice()).await;
        res.unwrap();
        assert_eq!(read_exact(&c, 2).await, b"hi");
        assert_eq!(server.connection_count(), 1);
        let waiter = lp.create_task(server.wait_closed()).unwrap();
        lp.sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "the server is open");
        server.close();
        lp.sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "a connection is alive");
        let (res, _) = c.write_all_owned(b"still".as_slice()).await;
        res.unwrap();
        assert_eq!(
            read_exact(&c, 5).await,
            b"still",
            "live connections keep working"
        );
        drop(c);
        wait_for(waiter, Duration::from_secs(10))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(server.connection_count(), 0);
    });
}

/// TCP-5: abort_clients ends live connections, which lets wait_closed finish.
pub fn abort_clients_ends_connections(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let server = echo_server(&lp);
        let addr = server.local_addr().unwrap();
        let c = TcpStream::connect(addr).await.unwrap();
        let (res, _) = c.write_all_owned(b"x".as_slice()).await;
        res.unwrap();
        read_exact(&c, 1).await;
        server.close();
        server.abort_clients();
        server.wait_closed().await;
        assert_eq!(
            read_all(&c).await.unwrap_or_default(),
            b"",
            "the server side closed"
        );
    });
}

/// TCP-4: serve_forever returns once the server is closed; dropping it closes the server.
pub fn serve_forever_runs_until_close(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let server = echo_server(&lp);
        let s2 = server.clone();
        let forever = lp
            .create_task(async move { s2.serve_forever().await })
            .unwrap();
        lp.sleep(Duration::from_millis(10)).await;
        assert!(!forever.is_finished());
        server.close();
        forever.await.unwrap().unwrap();

        let server = echo_server(&lp);
        let s2 = server.clone();
        let forever = lp
            .create_task(async move { s2.serve_forever().await })
            .unwrap();
        lp.sleep(Duration::from_millis(10)).await;
        forever.cancel();
        assert!(forever.await.unwrap_err().is_cancelled());
        assert!(
            !server.is_serving(),
            "cancelling serve_forever closes the server"
        );
    });
}

/// Dropping the last Server handle stops listening; live connections go on.
pub fn dropping_last_handle_closes_server(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let (server, c) = echo_pair(&lp).await;
        let addr = server.local_addr().unwrap();
        let clone = server.clone();
        drop(server);
        TcpStream::connect(addr).await.unwrap();
        drop(clone);
        let err = TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
        let (res, _) = c.write_all_owned(b"alive".as_slice()).await;
        res.unwrap();
        assert_eq!(
            read_exact(&c, 5).await,
            b"alive",
            "the connection outlives the server"
        );
    });
}

/// TCP-6: SO_REUSEPORT is off unless asked; with it two listeners share a port.
pub fn reuse_port_off_unless_requested(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let plain = TcpListener::bind(LOCAL).unwrap();
        assert!(!socket2::SockRef::from(&plain).reuse_port().unwrap());

        let a = TcpSocket::new_v4().unwrap();
        a.set_reuseport(true).unwrap();
        a.bind(LOCAL.parse().unwrap()).unwrap();
        let addr = a.local_addr().unwrap();
        let a = a.listen(16).unwrap();
        let b = TcpSocket::new_v4().unwrap();
        b.set_reuseport(true).unwrap();
        b.bind(addr).unwrap();
        let b = b.listen(16).unwrap();
        let server_a = lp.serve_tcp(a, |_s| async {}).unwrap();
        let server_b = lp.serve_tcp(b, |_s| async {}).unwrap();
        for _ in 0..4 {
            TcpStream::connect(addr).await.unwrap();
        }
        server_a.close();
        server_b.close();
        server_a.wait_closed().await;
        server_b.wait_closed().await;
    });
}

/// A port nobody listens on: ConnectionRefused, from every entry point.
pub fn connect_refused(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let l = TcpListener::bind(LOCAL).unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let err = TcpStream::connect(("127.0.0.1", port)).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
        let err = lp.create_connection(("127.0.0.1", port)).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
        // Several addresses, all refused: still ConnectionRefused.
        let two: [SocketAddr; 2] = [
            SocketAddr::from(([127, 0, 0, 1], port)),
            SocketAddr::from(([127, 0, 0, 1], port)),
        ];
        let err = TcpStream::connect(&two[..]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    });
}

/// 1 MB each way at the same time on one connection, every byte in order.
pub fn transfer_1mb_both_directions_at_once(factory: impl Factory) {
    const SIZE: usize = 1024 * 1024;
    run_net(factory, |lp| async move {
        let server = lp
            .create_server(LOCAL, |s: TcpStream| async move {
                let down = pattern(SIZE, 0x5a);
                let (sent, got) = join(s.write_all_owned(down), read_exact(&s, SIZE)).await;
                sent.0.unwrap();
                assert!(got == pattern(SIZE, 0xa5), "server received wrong bytes");
                s.shutdown(Shutdown::Write).unwrap();
                assert!(read_all(&s).await.unwrap().is_empty());
            })
            .unwrap();
        let c = TcpStream::connect(server.local_addr().unwrap())
            .await
            .unwrap();
        let up = pattern(SIZE, 0xa5);
        let (sent, got) = join(c.write_all_owned(up), read_exact(&c, SIZE)).await;
        sent.0.unwrap();
        assert!(got == pattern(SIZE, 0x5a), "client received wrong bytes");
        c.shutdown(Shutdown::Write).unwrap();
        assert!(read_all(&c).await.unwrap().is_empty());
        close_server(&server).await;
    });
}

/// A peer that closes with data still unread resets the connection: our
/// reads and writes fail (reset or broken pipe) and never hang or kill the
/// process with SIGPIPE.
pub fn peer_closes_with_data_unread(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let received = Rc::new(Cell::new(false));
        let r = received.clone();
        let server = lp
            .create_server(LOCAL, move |s: TcpStream| {
                let r = r.clone();
                async move {
                    // Wait until data is pending, then close without reading it.
                    let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
                    while !matches!(socket2::SockRef::from(&s).peek(&mut probe), Ok(n) if n > 0) {
                        sleep(Duration::from_millis(1)).await;
                    }
                    r.set(true);
                }
            })
            .unwrap();
        let c = TcpStream::connect(server.local_addr().unwrap())
            .await
            .unwrap();
        let (res, _) = c.write_all_owned(vec![1u8; 10_000]).await;
        res.unwrap();
        let (res, _) = c.read_owned(Vec::with_capacity(16)).await;
        assert!(received.get());
        match res {
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}"),
            Ok(n) => assert_eq!(n, 0, "nothing was ever sent to us"),
        }
        // Writes after the reset fail within a few attempts.
        let mut failed = None;
        for _ in 0..100 {
            let (res, _) = c.write_all_owned(vec![2u8; 1000]).await;
            if let Err(e) = res {
                failed = Some(e);
                break;
            }
            lp.sleep(Duration::from_millis(1)).await;
        }
        let e = failed.expect("writing to a reset connection fails");
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "{e}"
        );
        close_server(&server).await;
    });
}

/// Dropping an in-flight read cancels it; the next read still gets every byte.
pub fn cancelled_read_loses_no_byte(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let (server, c) = echo_pair(&lp).await;
        for round in 0..5u8 {
            let res = wait_for(
                c.read_owned(Vec::with_capacity(64)),
                Duration::from_millis(10),
            )
            .await;
            assert!(matches!(res, Err(Error::TimedOut)));
            let (res, _) = c.write_all_owned(vec![round; 40]).await;
            res.unwrap();
            assert_eq!(read_exact(&c, 40).await, vec![round; 40]);
        }
        drop(c);
        close_server(&server).await;
    });
}

/// An accept that completed while nobody polled it, then dropped with its
/// result uncollected, loses nothing: the next accept on the listener
/// returns that connection.
pub fn accept_dropped_after_completion_keeps_connection(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let l = TcpListener::bind(LOCAL).unwrap();
        let mut client = {
            let mut accept = std::pin::pin!(l.accept());
            // Poll once: the accept parks, nothing to accept yet.
            std::future::poll_fn(|cx| {
                assert!(accept.as_mut().poll(cx).is_pending());
                std::task::Poll::Ready(())
            })
            .await;
            let client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
            // The loop completes the accept while nobody polls it ...
            lp.sleep(Duration::from_millis(20)).await;
            client
            // ... and here the future is dropped with its result uncollected.
        };
        let (server_side, peer) = wait_for(l.accept(), Duration::from_secs(10))
            .await
            .expect("the next accept returns the kept connection")
            .unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        std::io::Write::write_all(&mut client, b"ping").unwrap();
        let (res, buf) = server_side.read_owned(Vec::with_capacity(8)).await;
        assert_eq!(res.unwrap(), 4);
        assert_eq!(&buf[..], b"ping");
        drop(server_side);
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 8];
        let n = std::io::Read::read(&mut client, &mut buf).expect("EOF, not a timeout");
        assert_eq!(n, 0, "the accepted connection was closed with its stream");
        drop(l);
    });
}

/// futures-io: AsyncRead/AsyncWrite on streams, written against the traits alone.
pub fn futures_io_adapters(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let server = lp
            .create_server(LOCAL, |mut s: TcpStream| async move {
                let all = io_read_to_end(&mut s).await.unwrap();
                io_write_all(&mut s, &all).await.unwrap();
                io_close(&mut s).await.unwrap();
            })
            .unwrap();
        let mut c = TcpStream::connect(server.local_addr().unwrap())
            .await
            .unwrap();
        let data = pattern(300_000, 9);
        io_write_all(&mut c, &data[..1]).await.unwrap();
        io_write_all(&mut c, &data[1..]).await.unwrap();
        io_close(&mut c).await.unwrap();
        let mut first = [0u8; 7];
        io_read_exact(&mut c, &mut first).await.unwrap();
        assert_eq!(first, data[..7]);
        let rest = io_read_to_end(&mut c).await.unwrap();
        assert!(rest == data[7..], "echo differs");
        close_server(&server).await;
    });
}

/// An owned-buffer read future that is made and dropped without being
/// polled (a disabled `select!` branch) changes nothing: when the stream's
/// first real read is a futures-io one, the backend holds none of its bytes
/// (no receive ahead), so `recv(2)` on the descriptor still finds what
/// arrives later.
pub fn unpolled_read_decides_nothing(factory: impl Factory) {
    run_net(factory, |_lp| async move {
        let l = std::net::TcpListener::bind(LOCAL).unwrap();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (mut peer, _) = l.accept().unwrap();
        drop(c.read_owned(Vec::with_capacity(64)));
        std::io::Write::write_all(&mut peer, b"hello").unwrap();
        let mut first = [0u8; 5];
        io_read_exact(&mut c, &mut first).await.unwrap();
        assert_eq!(&first, b"hello");
        std::io::Write::write_all(&mut peer, b"world").unwrap();
        // Time for a receive ahead, if one were armed, to take the bytes.
        sleep(Duration::from_millis(50)).await;
        let mut buf = [0u8; 16];
        // SAFETY: `buf` is valid for writes of its length; the descriptor
        // is the stream's, open while `c` lives.
        let n = unsafe {
            libc::recv(
                std::os::fd::AsRawFd::as_raw_fd(&c),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        assert_eq!(n, 5, "recv(2): {}", io::Error::last_os_error());
        assert_eq!(&buf[..5], b"world");
    });
}

/// into_split: the halves work from two tasks at once.
pub fn split_halves_in_two_tasks(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let (server, c) = echo_pair(&lp).await;
        let (rd, wr) = c.into_split();
        let writer = lp
            .create_task(async move {
                for i in 0..100u8 {
                    let (res, _) = wr.write_all_owned(vec![i; 100]).await;
                    res.unwrap();
                }
                wr.shutdown().unwrap();
            })
            .unwrap();
        let reader = lp
            .create_task(async move {
                let mut got = Vec::new();
                loop {
                    let (res, buf) = rd.read_owned(Vec::with_capacity(4096)).await;
                    if res.unwrap() == 0 {
                        return got;
                    }
                    got.extend_from_slice(&buf);
                }
            })
            .unwrap();
        writer.await.unwrap();
        let got = reader.await.unwrap();
        let want: Vec<u8> = (0..100u8).flat_map(|i| vec![i; 100]).collect();
        assert!(got == want);
        close_server(&server).await;
    });
}

/// A handler that panics is reported; its connection closes; the server goes on.
pub fn handler_panic_keeps_server_serving(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let errors = capture_exceptions(&lp);
        let count = Rc::new(Cell::new(0));
        let n = count.clone();
        let server = lp
            .create_server(LOCAL, move |s: TcpStream| {
                n.set(n.get() + 1);
                let first = n.get() == 1;
                async move {
                    if first {
                        panic!("handler failed");
                    }
                    let (res, _) = s.write_all_owned(b"ok".as_slice()).await;
                    res.unwrap();
                }
            })
            .unwrap();
        let addr = server.local_addr().unwrap();
        let c1 = TcpStream::connect(addr).await.unwrap();
        assert!(
            read_all(&c1).await.unwrap_or_default().is_empty(),
            "closed by the panic"
        );
        let c2 = TcpStream::connect(addr).await.unwrap();
        assert_eq!(read_all(&c2).await.unwrap(), b"ok");
        assert!(errors
            .get()
            .iter()
            .any(|e| e.payload.as_deref() == Some("handler failed")));
        close_server(&server).await;
    });
}

/// Addresses and TCP_NODELAY on a stream.
pub fn stream_addresses_and_nodelay(factory: impl Factory) {
    run_net(factory, |_lp| async move {
        let l = TcpListener::bind(LOCAL).unwrap();
        let addr = l.local_addr().unwrap();
        let (c, accepted) = join(TcpStream::connect(addr), l.accept()).await;
        let c = c.unwrap();
        let (s, peer) = accepted.unwrap();
        assert_eq!(peer, c.local_addr().unwrap());
        assert_eq!(s.peer_addr().unwrap(), c.local_addr().unwrap());
        assert_eq!(c.peer_addr().unwrap(), addr);
        c.set_nodelay(true).unwrap();
        assert!(c.nodelay().unwrap());
        c.set_nodelay(false).unwrap();
        assert!(!c.nodelay().unwrap());
    });
}

/// 1,000 concurrent connections to one server, each echoing its own message.
pub fn thousand_concurrent_connections(factory: impl Factory) {
    const N: usize = 1000;
    let limit = raise_fd_limit(3 * N as u64 + 200);
    assert!(
        limit >= 2 * N as u64 + 100,
        "RLIMIT_NOFILE too low for the test: {limit}"
    );
    run_net(factory, |lp| async move {
        let server = echo_server(&lp);
        let addr = server.local_addr().unwrap();
        let mut clients = Vec::new();
        for i in 0..N {
            let client = lp
                .create_task(async move {
                    let c = TcpStream::connect(addr).await?;
                    let msg = format!("client {i}\n").into_bytes();
                    let (res, msg) = c.write_all_owned(msg).await;
                    res?;
                    let mut got = Vec::new();
                    while got.len() < msg.len() {
                        let (res, buf) = c.read_owned(Vec::with_capacity(64)).await;
                        if res? == 0 {
                            return Err(io::ErrorKind::UnexpectedEof.into());
                        }
                        got.extend_from_slice(&buf);
                    }
                    assert_eq!(got, msg);
                    io::Result::Ok(c)
                })
                .unwrap();
            clients.push(client);
        }
        let mut streams = Vec::new();
        for client in clients {
            streams.push(client.await.unwrap().unwrap());
        }
        // All 1,000 are connected at once.
        assert_eq!(server.connection_count(), N);
        drop(streams);
        close_server(&server).await;
    });
}

/// Data and the peer's FIN that arrive together (one readiness edge): a
/// short read of the data, then end-of-stream, never a hang.
pub fn data_and_eof_in_one_wakeup(factory: impl Factory) {
    run_net(factory, |_lp| async move {
        // The stream waited for data once, so it is registered.
        let (c, mut peer) = served_once().await;
        std::io::Write::write_all(&mut peer, b"abc").unwrap();
        peer.shutdown(Shutdown::Write).unwrap();
        sleep(Duration::from_millis(20)).await;
        for (expect, what) in [
            (b"abc".as_slice(), "read must not hang after data + EOF"),
            (b"", "end of stream after data + EOF"),
            (b"", "end of stream repeats"),
        ] {
            let (res, buf) = wait_for(
                c.read_owned(Vec::with_capacity(1024)),
                Duration::from_secs(5),
            )
            .await
            .expect(what);
            let n = res.unwrap();
            assert_eq!(&buf[..n], expect);
        }
    });
}

/// A loop-side connection and its std peer, after one read on the loop
/// side that waited (registering the socket with the backend) and was
/// served.
async fn served_once() -> (TcpStream, std::net::TcpStream) {
    let l = std::net::TcpListener::bind(LOCAL).unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    let (mut peer, _) = l.accept().unwrap();
    let reader = async {
        let (res, buf) = c.read_owned(Vec::with_capacity(64)).await;
        (res.unwrap(), buf)
    };
    let writer = async {
        sleep(Duration::from_millis(10)).await;
        std::io::Write::write_all(&mut peer, b"first").unwrap();
    };
    let ((n, _), ()) = join(reader, writer).await;
    assert_eq!(n, 5);
    (c, peer)
}

/// Sleeps 300 ms on the loop and checks the loop thread stayed idle: a
/// spinning loop would use about 300 ms of CPU, a sleeping one almost none
/// (the bound is generous).
async fn sleep_is_idle() {
    let before = thread_cpu_time();
    sleep(Duration::from_millis(300)).await;
    let used = thread_cpu_time() - before;
    assert!(
        used < Duration::from_millis(150),
        "the loop used {used:?} of CPU while sleeping 300 ms"
    );
}

/// CPU time this thread has used so far.
fn thread_cpu_time() -> Duration {
    // SAFETY: `getrusage` writes one `rusage` into the zeroed value it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut usage);
        usage
    };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

/// Data that arrives on a connection nobody is reading (its last reader
/// was served) does not keep the loop busy: the loop sleeps as if the
/// connection were silent. (A level-triggered backend that kept reporting
/// the readable socket would spin here.)
pub fn unread_data_does_not_busy_the_loop(factory: impl Factory) {
    run_net(factory, |_lp| async move {
        let (c, mut peer) = served_once().await;
        // Now data nobody reads.
        std::io::Write::write_all(&mut peer, b"unread").unwrap();
        sleep_is_idle().await;
        // The data is still there for the next reader.
        let (res, buf) = wait_for(c.read_owned(Vec::with_capacity(64)), Duration::from_secs(5))
            .await
            .expect("the unread data is delivered");
        assert_eq!(&buf[..res.unwrap()], b"unread");
    });
}

/// A connection reset by its peer while nobody reads it (error and
/// hang-up, which epoll reports whatever the interest) does not keep the
/// loop busy either; the next read reports the reset.
pub fn reset_nobody_reads_does_not_busy_the_loop(factory: impl Factory) {
    run_net(factory, |_lp| async move {
        let (c, peer) = served_once().await;
        // Reset: linger 0 and close.
        socket2::SockRef::from(&peer)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(peer);
        sleep_is_idle().await;
        let (res, _) = wait_for(c.read_owned(Vec::with_capacity(64)), Duration::from_secs(5))
            .await
            .expect("the reset is reported");
        assert!(
            res.is_err() || res.as_ref().is_ok_and(|n| *n == 0),
            "a reset connection reads an error or end of stream, got {res:?}"
        );
    });
}

/// Many parked readers whose data all arrives between two waits, more
/// bytes than a readiness backend receives per slice of a batch (it keeps
/// the rest of the batch for its next wait): every reader gets all its
/// bytes, in order.
pub fn many_connections_ready_at_once_are_all_served(factory: impl Factory) {
    const CONNS: usize = 48;
    const EACH: usize = 8 * 1024;
    run_net(factory, |lp| async move {
        let l = std::net::TcpListener::bind(LOCAL).unwrap();
        let mut peers = Vec::new();
        let mut readers = Vec::new();
        for i in 0..CONNS {
            let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
            peers.push(l.accept().unwrap().0);
            readers.push(
                lp.create_task(async move {
                    let mut got = Vec::new();
                    while got.len() < EACH {
                        let (res, buf) = c.read_owned(Vec::with_capacity(64 * 1024)).await;
                        match res.unwrap() {
                            0 => break,
                            _ => got.extend_from_slice(&buf),
                        }
                    }
                    assert_eq!(got, pattern(EACH, i as u8), "connection {i}");
                })
                .unwrap(),
            );
        }
        // Every reader parks; then all the data comes at once, from this
        // thread, before the loop waits again.
        sleep(Duration::from_millis(20)).await;
        for (i, peer) in peers.iter_mut().enumerate() {
            std::io::Write::write_all(peer, &pattern(EACH, i as u8)).unwrap();
        }
        for r in readers {
            wait_for(r, Duration::from_secs(10))
                .await
                .expect("every reader is served")
                .unwrap();
        }
    });
}

/// TCP-4: with `start_serving: false` the server listens but accepts
/// nothing (connects wait in the backlog, is_serving() is false) until
/// start_serving() or serve_forever(); a server closed before starting
/// cannot be started and refuses connects.
pub fn start_serving_false_defers_accepting(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let options = ServerOptions {
            start_serving: false,
        };
        let served = Rc::new(Cell::new(0));
        let s = served.clone();
        let server = lp
            .create_server_with(
                LOCAL,
                move |c: TcpStream| {
                    let s = s.clone();
                    async move {
                        s.set(s.get() + 1);
                        let (res, _) = c.write_all_owned(b"hi".as_slice()).await;
                        res.unwrap();
                    }
                },
                options,
            )
            .unwrap();
        assert!(!server.is_serving(), "not serving before start_serving()");
        let addr = server.local_addr().expect("listening before start");
        let c = TcpStream::connect(addr).await.unwrap();
        lp.sleep(Duration::from_millis(50)).await;
        assert_eq!(served.get(), 0, "nothing accepted before start_serving()");
        assert_eq!(server.connection_count(), 0);
        server.start_serving().unwrap();
        assert!(server.is_serving());
        server.start_serving().unwrap();
        assert_eq!(
            read_exact(&c, 2).await,
            b"hi",
            "the queued connect is served"
        );
        assert_eq!(served.get(), 1);
        close_server(&server).await;

        // serve_forever() starts a server that was not started.
        let server = lp
            .create_server_with(
                LOCAL,
                |c: TcpStream| async move {
                    let (res, _) = c.write_all_owned(b"ok".as_slice()).await;
                    res.unwrap();
                },
                options,
            )
            .unwrap();
        let c = TcpStream::connect(server.local_addr().unwrap())
            .await
            .unwrap();
        let s2 = server.clone();
        let forever = lp
            .create_task(async move { s2.serve_forever().await })
            .unwrap();
        assert_eq!(read_exact(&c, 2).await, b"ok");
        assert!(server.is_serving());
        server.close();
        forever.await.unwrap().unwrap();

        // Closed before starting: no start, connects refused.
        let server = lp
            .create_server_with(LOCAL, |_c: TcpStream| async {}, options)
            .unwrap();
        let addr = server.local_addr().unwrap();
        server.close();
        assert!(!server.is_serving());
        assert!(server.start_serving().is_err());
        let err = TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
        server.wait_closed().await;
    });
}

/// TCP-6: the host=None server (create_server_any_host) listens on IPv4
/// and IPv6 on one port: both 127.0.0.1 and ::1 reach it, and local_addrs()
/// lists both. IPv6 is left out only on a host with no IPv6 loopback.
pub fn any_host_server_is_dual_stack(factory: impl Factory) {
    let has_v6 = std::net::TcpListener::bind("[::1]:0").is_ok();
    run_net(factory, move |lp| async move {
        let server = lp
            .create_server_any_host(0, |c: TcpStream| async move {
                let family: &[u8] = if c.local_addr().unwrap().is_ipv4() {
                    b"4"
                } else {
                    b"6"
                };
                let (res, _) = c.write_all_owned(family).await;
                res.unwrap();
            })
            .unwrap();
        let addrs: Vec<SocketAddr> = server
            .local_addrs()
            .iter()
            .filter_map(|a| a.as_socket())
            .collect();
        assert_eq!(addrs.len(), 1 + usize::from(has_v6), "{addrs:?}");
        let port = addrs[0].port();
        assert_ne!(port, 0);
        assert!(
            addrs.iter().all(|a| a.port() == port),
            "one port: {addrs:?}"
        );
        assert!(addrs.iter().any(|a| a.is_ipv4()), "{addrs:?}");
        assert_eq!(addrs.iter().any(|a| a.is_ipv6()), has_v6, "{addrs:?}");
        assert_eq!(server.local_addr().map(|a| a.port()), Some(port));

        let mut targets: Vec<(std::net::IpAddr, &[u8])> =
            vec![(std::net::Ipv4Addr::LOCALHOST.into(), b"4")];
        if has_v6 {
            targets.push((std::net::Ipv6Addr::LOCALHOST.into(), b"6"));
        }
        for (ip, family) in targets {
            let c = TcpStream::connect((ip, port)).await.unwrap();
            assert_eq!(read_exact(&c, 1).await, family, "served over {ip}");
        }
        close_server(&server).await;
        let err = TcpStream::connect(("127.0.0.1", port)).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    });
}
