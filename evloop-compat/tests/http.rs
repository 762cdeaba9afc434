//! hyper's server (hyper-util's `auto` builder: HTTP/1.1 and h2c on one
//! port) and hyper's clients (HTTP/1.1 and HTTP/2) on evloop, every backend.

mod common;
use common::*;

use std::cell::Cell;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use evloop::EventLoop;
use evloop_compat::{EvloopExecutor, EvloopTimer, HyperIo};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, Version};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Answers `hello <path> over <version>`.
async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = format!("hello {} over {:?}", req.uri().path(), req.version());
    Ok(Response::new(Full::new(Bytes::from(body))))
}

/// An HTTP/1.1 + h2c server on `lp`, hyper's timer on.
fn serve(lp: &EventLoop) -> evloop::net::Server {
    let mut http = hyper_util::server::conn::auto::Builder::new(EvloopExecutor::new(lp));
    http.http1()
        .timer(EvloopTimer::new(lp))
        .header_read_timeout(Duration::from_secs(10));
    http.http2().timer(EvloopTimer::new(lp));
    lp.create_server("127.0.0.1:0", move |stream| {
        let http = http.clone();
        async move {
            http.serve_connection(HyperIo::new(stream), service_fn(hello))
                .await
                .expect("the connection ends cleanly");
        }
    })
    .unwrap()
}

async fn body_of(res: Response<Incoming>) -> String {
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

async fn http1_requests(lp: &EventLoop, addr: SocketAddr) -> Result<(), BoxError> {
    let stream = evloop::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(HyperIo::new(stream)).await?;
    lp.create_task(conn)?.detach();
    // Keep-alive: several requests on one connection.
    for i in 0..5 {
        sender.ready().await?;
        let req = Request::get(format!("/one/{i}"))
            .header("host", "localhost")
            .body(Empty::new())?;
        let res = sender.send_request(req).await?;
        assert_eq!(res.version(), Version::HTTP_11);
        assert_eq!(body_of(res).await, format!("hello /one/{i} over HTTP/1.1"));
    }
    Ok(())
}

async fn http2_requests(lp: &EventLoop, addr: SocketAddr) -> Result<(), BoxError> {
    let stream = evloop::net::TcpStream::connect(addr).await?;
    let (sender, conn) = hyper::client::conn::http2::Builder::new(EvloopExecutor::new(lp))
        .timer(EvloopTimer::new(lp))
        .handshake::<_, Empty<Bytes>>(HyperIo::new(stream))
        .await?;
    lp.create_task(conn)?.detach();
    // Concurrent streams on one connection.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let mut sender = sender.clone();
        tasks.push(lp.create_task(async move {
            let req = Request::get(format!("http://localhost/two/{i}")).body(Empty::new())?;
            let res = sender.send_request(req).await?;
            assert_eq!(res.version(), Version::HTTP_2);
            Ok::<_, BoxError>((i, body_of(res).await))
        })?);
    }
    for t in evloop::gather(tasks).await {
        let (i, body) = t??;
        assert_eq!(body, format!("hello /two/{i} over HTTP/2.0"));
    }
    Ok(())
}

#[test]
fn hyper_clients_talk_http1_and_http2_to_one_server() {
    on_every_loop(|lp| async move {
        let server = serve(&lp);
        let addr = server.local_addr().unwrap();
        http1_requests(&lp, addr).await.unwrap();
        http2_requests(&lp, addr).await.unwrap();
        // Both clients dropped their connections; the server's end cleanly.
        settle(&lp).await;
        server.close();
        server.wait_closed().await;
    });
}

#[test]
fn header_read_timeout_cuts_off_a_stalled_client() {
    use futures::{AsyncReadExt, AsyncWriteExt};
    on_every_loop(|lp| async move {
        let timer = EvloopTimer::new(&lp);
        let ended = Rc::new(Cell::new(None::<bool>));
        let server = lp
            .create_server("127.0.0.1:0", {
                let ended = ended.clone();
                move |stream| {
                    let (timer, ended) = (timer.clone(), ended.clone());
                    async move {
                        let result = hyper::server::conn::http1::Builder::new()
                            .timer(timer)
                            .header_read_timeout(Duration::from_millis(100))
                            .serve_connection(HyperIo::new(stream), service_fn(hello))
                            .await;
                        ended.set(Some(result.is_err_and(|e| e.is_timeout())));
                    }
                }
            })
            .unwrap();
        let addr = server.local_addr().unwrap();
        let start = Instant::now();
        let mut stream = evloop::net::TcpStream::connect(addr).await.unwrap();
        // Half a request head, then nothing.
        AsyncWriteExt::write_all(&mut stream, b"GET / HTTP/1.1\r\nhost: local")
            .await
            .unwrap();
        let mut rest = Vec::new();
        AsyncReadExt::read_to_end(&mut stream, &mut rest)
            .await
            .unwrap();
        let waited = start.elapsed();
        assert!(rest.is_empty(), "{rest:?}");
        assert!(waited >= Duration::from_millis(100), "{waited:?}");
        assert!(waited < Duration::from_secs(8), "{waited:?}");
        settle(&lp).await;
        assert_eq!(ended.get(), Some(true), "not ended by a header timeout");
        server.close();
        server.wait_closed().await;
    });
}
