//! Section 12 — Unix sockets (UNX-*): servers, connections and socket files.

use std::io;
use std::os::unix::fs::FileTypeExt;
use std::time::Duration;

use loop_api::net::{UnixDatagram, UnixListener, UnixStream};

use crate::net_support::{close_server, join, run_net, temp_socket_path};
use crate::support::Log;
use crate::Factory;

#[doc(hidden)]
#[macro_export]
macro_rules! __unix_tests {
    ($f:expr) => {
        $crate::__section!($f, unix: [
            unix_server_and_connection,
            stale_socket_file_is_replaced,
            regular_file_is_address_in_use,
            missing_path_is_not_found,
            nobody_listening_is_refused,
            server_close_removes_socket_file,
            listener_drop_removes_only_its_own_file,
            write_after_peer_closed_fails_once,
            unix_datagram_by_path,
            stream_pair_and_futures_io,
            owned_reads_then_futures_io_reads_lose_nothing,
            connect_waits_while_backlog_is_full,
        ]);
    };
}

fn is_socket_file(path: &std::path::Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

async fn read_all(s: &UnixStream) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let (res, buf) = s.read_owned(Vec::with_capacity(4096)).await;
        if res? == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf);
    }
}

/// UNX-1: a client connects and sends 3 bytes; they arrive; closing ends the connection.
pub fn unix_server_and_connection(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let path = temp_socket_path("server");
        let log = Log::new();
        let l = log.clone();
        let server = lp
            .create_unix_server(&path, move |s: UnixStream| {
                let l = l.clone();
                async move {
                    let data = read_all(&s).await.unwrap();
                    l.push(data.len());
                    let (res, _) = s.write_all_owned(b"bye".as_slice()).await;
                    res.unwrap();
                }
            })
            .unwrap();
        assert!(is_socket_file(&path));
        assert_eq!(server.local_addrs()[0].as_pathname(), Some(path.as_path()));
        let c = lp.create_unix_connection(&path).await.unwrap();
        let (res, _) = c.write_all_owned(b"abc".as_slice()).await;
        res.unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(read_all(&c).await.unwrap(), b"bye");
        close_server(&server).await;
        assert_eq!(log.get(), vec![3]);
    });
}

/// UNX-2: a stale socket file at the path is removed and the path rebound.
pub fn stale_socket_file_is_replaced(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let path = temp_socket_path("stale");
        // std leaves its socket file behind when dropped: a stale file.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(is_socket_file(&path));
        let server = lp.create_unix_server(&path, |_s| async {}).unwrap();
        UnixStream::connect(&path).await.unwrap();
        close_server(&server).await;
        // The same for a plain listener.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let l = UnixListener::bind(&path).unwrap();
        let (c, a) = join(UnixStream::connect(&path), l.accept()).await;
        c.unwrap();
        a.unwrap();
    });
}

/// UNX-2: a regular file at the path is AddrInUse, and is left alone.
pub fn regular_file_is_address_in_use(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let path = temp_socket_path("regular");
        std::fs::write(&path, b"not a socket").unwrap();
        let err = lp.create_unix_server(&path, |_s| async {}).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
        let err = UnixListener::bind(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        let err = UnixDatagram::bind(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        assert_eq!(std::fs::read(&path).unwrap(), b"not a socket");
        std::fs::remove_file(&path).unwrap();
    });
}

/// UNX-2: connecting to a missing path is NotFound.
pub fn missing_path_is_not_found(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let path = temp_socket_path("missing");
        let err = lp.create_unix_connection(&path).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
        let err = UnixStream::connect(&path).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
    });
}

/// A socket file nobody listens on is ConnectionRefused.
pub fn nobody_listening_is_refused(factory: impl Factory) {
    run_net(factory, |_lp| async move {
        let path = temp_socket_path("refused");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let err = UnixStream::connect(&path).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
        std::fs::remove_file(&path).unwrap();
    });
}

/// UNX-3: server.close() removes the socket file at once, also for a
/// listener the user bound; new connects are refused or find nothing.
pub fn server_close_removes_socket_file(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let path = temp_socket_path("close");
        let server = lp.create_unix_server(&path, |_s| async {}).unwrap();
        server.close();
        assert!(!path.exists(), "close() removes the socket file");
        assert!(UnixStream::connect(&path).await.is_err());
        server.wait_closed().await;

        let user = temp_socket_path("user");
        let listener =
            UnixListener::from_std(std::os::unix::net::UnixListener::bind(&user).unwrap()).unwrap();
        let server = lp.serve_unix(listener, |_s| async {}).unwrap();
        UnixStream::connect(&user).await.unwrap();
        server.close();
        assert!(
            !user.exists(),
            "a user-bound listener's file is removed too"
        );
        server.wait_closed().await;
    });
}

/// Dropping a listener removes its file, but not a file someone else put there since.
pub fn listener_drop_removes_only_its_own_file(factory: impl Factory) {
    run_net(factory, |_lp| async move {
        let path = temp_socket_path("own");
        let l = UnixListener::bind(&path).unwrap();
        drop(l);
        assert!(!path.exists());

        let l = UnixListener::bind(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"someone else's").unwrap();
        drop(l);
        assert_eq!(std::fs::read(&path).unwrap(), b"someone else's");
        std::fs::remove_file(&path).unwrap();
    });
}

/// UNX-5: writing after the peer closed fails with BrokenPipe or
/// ConnectionReset (no SIGPIPE), and the next read reports the end.
pub fn write_after_peer_closed_fails_once(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let (a, b) = UnixStream::pair().unwrap();
        drop(b);
        let mut err = None;
        for _ in 0..100 {
            let (res, _) = a.write_all_owned(vec![0u8; 1000]).await;
            if let Err(e) = res {
                err = Some(e);
                break;
            }
            lp.sleep(Duration::from_millis(1)).await;
        }
        let e = err.expect("writing to a closed peer fails");
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "{e}"
        );
        let (res, _) = a.read_owned(Vec::with_capacity(8)).await;
        assert!(matches!(res, Ok(0)) || res.is_err());
    });
}

/// Unix datagrams by path: the sender's bound path is reported; files are removed on drop.
pub fn unix_datagram_by_path(factory: impl Factory) {
    run_net(factory, |_lp| async move {
        let (pa, pb) = (temp_socket_path("dga"), temp_socket_path("dgb"));
        let a = UnixDatagram::bind(&pa).unwrap();
        let b = UnixDatagram::bind(&pb).unwrap();
        let (res, _) = a.send_to(b"to b".as_slice(), &pb).await;
        res.unwrap();
        let (res, buf) = b.recv_from(Vec::with_capacity(16)).await;
        let (_, from) = res.unwrap();
        assert_eq!(buf, b"to b");
        assert_eq!(from.as_pathname(), Some(pa.as_path()));
        b.connect(&pa).unwrap();
        let (res, _) = b.send(b"back".as_slice()).await;
        res.unwrap();
        let (res, buf) = a.recv(Vec::with_capacity(16)).await;
        res.unwrap();
        assert_eq!(buf, b"back");
        drop((a, b));
        assert!(!pa.exists() && !pb.exists());
        let u = UnixDatagram::unbound().unwrap();
        assert!(u.local_addr().unwrap().is_unnamed());
    });
}

/// A stream pair, driven through the futures-io traits.
pub fn stream_pair_and_futures_io(factory: impl Factory) {
    use crate::net_support::{io_close, io_read_to_end, io_write_all};
    run_net(factory, |_lp| async move {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        assert!(a.peer_addr().unwrap().is_unnamed());
        let data = vec![42u8; 200_000];
        let (w, r) = join(
            async {
                io_write_all(&mut a, &data).await.unwrap();
                io_close(&mut a).await.unwrap();
            },
            io_read_to_end(&mut b),
        )
        .await;
        let () = w;
        assert!(r.unwrap() == data);
    });
}

/// An owned-buffer read, then futures-io reads of the same stream (with
/// slices smaller than what arrived): every byte, in order. (A backend that
/// receives ahead holds bytes the socket no longer has.)
pub fn owned_reads_then_futures_io_reads_lose_nothing(factory: impl Factory) {
    use crate::net_support::{io_close, io_read_exact, io_read_to_end, io_write_all, pattern};
    run_net(factory, |_lp| async move {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let data = pattern(150_000, 5);
        let (w, r) = join(
            async {
                io_write_all(&mut a, &data).await.unwrap();
                io_close(&mut a).await.unwrap();
            },
            async {
                let (res, mut got) = b.read_owned(Vec::with_capacity(1000)).await;
                assert!(res.unwrap() > 0);
                let mut small = [0u8; 7];
                io_read_exact(&mut b, &mut small).await.unwrap();
                got.extend_from_slice(&small);
                got.extend(io_read_to_end(&mut b).await.unwrap());
                got
            },
        )
        .await;
        let () = w;
        assert!(r == data, "bytes lost or reordered");
    });
}

/// A listener with a full backlog: connects wait (no hang once there is
/// room), and a low-level sock_connect reports EAGAIN instead of hanging.
pub fn connect_waits_while_backlog_is_full(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let path = temp_socket_path("backlog");
        let s = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None).unwrap();
        s.bind(&socket2::SockAddr::unix(&path).unwrap()).unwrap();
        s.listen(1).unwrap();
        let listener = UnixListener::from_std(std::os::unix::net::UnixListener::from(
            std::os::fd::OwnedFd::from(s),
        ))
        .unwrap();
        let mut clients = Vec::new();
        for _ in 0..5 {
            let p = path.clone();
            clients.push(
                lp.create_task(async move { UnixStream::connect(&p).await })
                    .unwrap(),
            );
        }
        lp.sleep(Duration::from_millis(30)).await;
        // The backlog is full now: a raw non-blocking connect says so at once.
        let raw = socket2::Socket::new(
            socket2::Domain::UNIX,
            socket2::Type::STREAM.nonblocking(),
            None,
        )
        .unwrap();
        let err = lp
            .sock_connect(&raw, socket2::SockAddr::unix(&path).unwrap())
            .await
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EAGAIN), "{err}");
        let mut accepted = Vec::new();
        for _ in 0..5 {
            accepted.push(listener.accept().await.unwrap());
        }
        for client in clients {
            client.await.unwrap().unwrap();
        }
    });
}
