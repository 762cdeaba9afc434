//! The futures-io paths hyper uses on evloop's streams, on every backend:
//! vectored writes (one `sendmsg` for all the slices) and the reads of a
//! stream known drained (an owned-buffer receive kept by the stream, so a
//! read future dropped while waiting loses nothing).

mod common;
use common::*;

use std::convert::Infallible;
use std::io::IoSlice;
use std::time::Duration;

use bytes::Bytes;
use evloop::net::{TcpListener, TcpStream, UnixStream};
use evloop_compat::HyperIo;
use futures::io::{AsyncReadExt, AsyncWriteExt};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};

async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (client, server)
}

#[test]
fn a_vectored_write_sends_every_slice_at_once() {
    on_every_loop(|_lp| async move {
        let (mut client, mut server) = tcp_pair().await;
        let slices = [
            IoSlice::new(b"head "),
            IoSlice::new(b""),
            IoSlice::new(b"and "),
            IoSlice::new(b"body"),
        ];
        let n = client.write_vectored(&slices).await.unwrap();
        assert_eq!(
            n, 13,
            "futures-io's default would stop after the first slice"
        );
        let mut got = [0u8; 13];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"head and body");

        // The halves and Unix sockets too; nothing but empty slices is a no-op.
        let (_rd, mut wr) = server.into_split();
        assert_eq!(wr.write_vectored(&[IoSlice::new(b"")]).await.unwrap(), 0);
        let n = wr
            .write_vectored(&[IoSlice::new(b"ab"), IoSlice::new(b"cd")])
            .await
            .unwrap();
        assert_eq!(n, 4);
        let mut four = [0u8; 4];
        client.read_exact(&mut four).await.unwrap();
        assert_eq!(&four, b"abcd");
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let n = a
            .write_vectored(&[IoSlice::new(b"x"), IoSlice::new(b"yz")])
            .await
            .unwrap();
        assert_eq!(n, 3);
        let mut three = [0u8; 3];
        b.read_exact(&mut three).await.unwrap();
        assert_eq!(&three, b"xyz");
    });
}

#[test]
fn short_reads_then_waits_lose_and_reorder_nothing() {
    on_every_loop(|lp| async move {
        let (mut client, mut server) = tcp_pair().await;
        // Ping-pong of short messages: every read after the first finds the
        // socket drained and waits through the backend's receive.
        for i in 0..200u32 {
            let msg = format!("message {i}");
            client.write_all(msg.as_bytes()).await.unwrap();
            let mut buf = [0u8; 100];
            let n = server.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], msg.as_bytes());
        }
        // A read that is waiting when its future is dropped: the bytes
        // that come later go to the next read, whatever its size.
        let mut buf = [0u8; 64];
        {
            let mut read = server.read(&mut buf);
            assert!(!poll_once(&mut read).await);
        }
        client.write_all(b"0123456789").await.unwrap();
        lp.sleep(Duration::from_millis(20)).await;
        let mut small = [0u8; 4];
        server.read_exact(&mut small).await.unwrap();
        assert_eq!(&small, b"0123");
        let mut rest = [0u8; 6];
        server.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"456789");
        // A bulk transfer read through odd-sized slices arrives whole, in order.
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let writer = lp
            .create_task(async move {
                client.write_all(&sent).await.unwrap();
                client.close().await.unwrap();
            })
            .unwrap();
        let mut got = Vec::new();
        let mut chunk = vec![0u8; 5_000];
        let mut size = 1;
        loop {
            size = (size + 777) % 4_999 + 1;
            let n = server.read(&mut chunk[..size]).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&chunk[..n]);
        }
        writer.await.unwrap();
        assert_eq!(got.len(), data.len());
        assert!(got == data, "bytes reordered or changed");
    });
}

#[test]
fn hyper_over_vectored_io_serves_a_large_body_whole() {
    on_every_loop(|lp| async move {
        let body: Bytes = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        let served = body.clone();
        let server = lp
            .create_server("127.0.0.1:0", move |stream| {
                let served = served.clone();
                async move {
                    let service = service_fn(move |_req: Request<Incoming>| {
                        let served = served.clone();
                        async move { Ok::<_, Infallible>(Response::new(Full::new(served))) }
                    });
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(HyperIo::vectored(stream), service)
                        .await
                        .expect("the connection ends cleanly");
                }
            })
            .unwrap();
        let addr = server.local_addr().unwrap();
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(HyperIo::vectored(stream))
                .await
                .unwrap();
        lp.create_task(conn).unwrap().detach();
        for _ in 0..3 {
            sender.ready().await.unwrap();
            let req = Request::get("/")
                .header("host", "localhost")
                .body(Empty::new())
                .unwrap();
            let res = sender.send_request(req).await.unwrap();
            let got = res.into_body().collect().await.unwrap().to_bytes();
            assert!(got == body, "{} bytes of {}", got.len(), body.len());
        }
        drop(sender);
        server.close();
    });
}
