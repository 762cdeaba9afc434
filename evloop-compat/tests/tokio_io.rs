//! tokio-util's `Framed<_, LinesCodec>` (a tokio-io crate) over evloop TCP
//! streams through `TokioIo`, on every backend, with no tokio runtime.

mod common;
use common::*;

use evloop_compat::TokioIo;
use futures::{SinkExt, StreamExt};
use tokio_util::codec::{Framed, LinesCodec};

#[test]
fn lines_codec_round_trips_over_evloop_tcp() {
    on_every_loop(|lp| async move {
        // Server: shouts every line back, "bye" ends the connection.
        let server = lp
            .create_server("127.0.0.1:0", |stream| async move {
                let mut lines = Framed::new(TokioIo::new(stream), LinesCodec::new());
                while let Some(line) = lines.next().await {
                    let line = line.unwrap();
                    if line == "bye" {
                        break;
                    }
                    lines.send(line.to_uppercase()).await.unwrap();
                }
            })
            .unwrap();
        let addr = server.local_addr().unwrap();

        let stream = evloop::net::TcpStream::connect(addr).await.unwrap();
        let mut lines = Framed::new(TokioIo::new(stream), LinesCodec::new());
        // Many lines in one go, then one long line (several reads).
        let long = "x".repeat(200_000);
        for i in 0..100 {
            lines.feed(format!("line {i}")).await.unwrap();
        }
        lines.send(long.clone()).await.unwrap();
        for i in 0..100 {
            assert_eq!(lines.next().await.unwrap().unwrap(), format!("LINE {i}"));
        }
        assert_eq!(lines.next().await.unwrap().unwrap(), long.to_uppercase());
        lines.send("bye".to_owned()).await.unwrap();
        // The server closed: end of stream.
        assert!(lines.next().await.is_none());
        server.close();
        server.wait_closed().await;
    });
}

#[test]
fn vectored_writes_every_slice_in_one_call() {
    use std::io::IoSlice;
    use std::pin::Pin;
    use tokio::io::AsyncWrite;

    on_every_loop(|lp| async move {
        let (tx, rx) = futures::channel::oneshot::channel();
        let tx = std::cell::RefCell::new(Some(tx));
        let server = lp
            .create_server("127.0.0.1:0", move |stream| {
                let tx = tx.borrow_mut().take();
                async move {
                    use futures::AsyncReadExt;
                    let mut stream = stream;
                    let mut got = Vec::new();
                    stream.read_to_end(&mut got).await.unwrap();
                    if let Some(tx) = tx {
                        let _ = tx.send(got);
                    }
                }
            })
            .unwrap();
        let stream = evloop::net::TcpStream::connect(server.local_addr().unwrap())
            .await
            .unwrap();

        let plain = TokioIo::new(stream);
        assert!(!plain.is_write_vectored());
        let mut io = TokioIo::vectored(plain.into_inner());
        assert!(io.is_write_vectored());
        let head = b"head:".to_vec();
        let body = vec![7u8; 3000];
        let n = futures::future::poll_fn(|cx| {
            Pin::new(&mut io).poll_write_vectored(cx, &[IoSlice::new(&head), IoSlice::new(&body)])
        })
        .await
        .unwrap();
        // Small slices on a fresh connection: both go out in one sendmsg.
        assert_eq!(n, head.len() + body.len());
        futures::future::poll_fn(|cx| Pin::new(&mut io).poll_shutdown(cx))
            .await
            .unwrap();
        let got = rx.await.unwrap();
        assert_eq!(&got[..head.len()], &head[..]);
        assert_eq!(&got[head.len()..], &body[..]);
        server.close();
        server.wait_closed().await;
    });
}
