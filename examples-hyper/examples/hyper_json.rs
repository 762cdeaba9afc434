//! A real HTTP stack on evloop: hyper 1.x's HTTP/1.1 server and client,
//! plugged in through `evloop_compat` (an I/O adapter over evloop's
//! `TcpStream`, an executor over `create_task`, a timer over the loop's
//! timers). No tokio runtime is involved.
//!
//! - The server answers `GET /add?a=1&b=2` with `{"sum":3}` (JSON), 400 for
//!   bad numbers and 404 elsewhere.
//! - The client sends 50 requests over 5 keep-alive connections, the
//!   connections concurrently, and prints every result.
//! - A second server sets a 100 ms `header_read_timeout` (which needs the
//!   timer): a client that sends half a request head is cut off.
//!
//! ```text
//! cargo run -p examples-hyper --example hyper_json
//! EVLOOP_BACKEND=mio cargo run -p examples-hyper --example hyper_json
//! curl 'http://127.0.0.1:PORT/add?a=1&b=2'   # while it runs with --serve
//! ```

use std::cell::Cell;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use evloop::EventLoop;
use evloop_compat::{EvloopTimer, HyperIo};
use examples_hyper::{connect_http1, http_builder, serve};
use futures::{AsyncReadExt, AsyncWriteExt};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const CONNECTIONS: u64 = 5;
const PER_CONNECTION: u64 = 10;

/// The value of `key` in a query string like `a=1&b=2`.
fn query_param<'q>(query: &'q str, key: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find_map(|(k, v)| (k == key).then_some(v))
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(value.to_string())))
        .expect("a valid response")
}

/// The service: `GET /add?a=..&b=..`.
async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::GET || req.uri().path() != "/add" {
        return Ok(json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "try GET /add?a=1&b=2"}),
        ));
    }
    let query = req.uri().query().unwrap_or("");
    let number = |key| query_param(query, key).and_then(|v| v.parse::<i64>().ok());
    Ok(match (number("a"), number("b")) {
        (Some(a), Some(b)) => match a.checked_add(b) {
            Some(sum) => json(StatusCode::OK, serde_json::json!({ "sum": sum })),
            None => json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": "overflow"}),
            ),
        },
        _ => json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": "a and b must be integers"}),
        ),
    })
}

/// `GET path` on `sender`'s connection: the status and the parsed JSON body.
async fn get(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    path: &str,
) -> Result<(StatusCode, serde_json::Value), BoxError> {
    sender.ready().await?;
    let req = Request::get(path)
        .header("host", "localhost")
        .body(Empty::new())?;
    let res = sender.send_request(req).await?;
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    Ok((status, serde_json::from_slice(&body)?))
}

/// 50 requests: 5 connections at once, 10 requests one after another on each.
async fn client(lp: &EventLoop, addr: SocketAddr) -> Result<(), BoxError> {
    let mut connections = Vec::new();
    for c in 0..CONNECTIONS {
        connections.push(lp.create_task(async move {
            let mut sender = connect_http1::<Empty<Bytes>>(addr).await?;
            let mut results = Vec::new();
            for i in 0..PER_CONNECTION {
                let n = c * PER_CONNECTION + i;
                let (a, b) = (n, 2 * n);
                let (status, body) = get(&mut sender, &format!("/add?a={a}&b={b}")).await?;
                results.push((n, a, b, status, body));
            }
            Ok::<_, BoxError>(results)
        })?);
    }
    let mut results = Vec::new();
    for conn in evloop::gather(connections).await {
        results.extend(conn??);
    }
    results.sort_by_key(|r| r.0);
    let mut correct = 0;
    for (n, a, b, status, body) in &results {
        let ok = *status == StatusCode::OK && body["sum"] == a + b;
        correct += u32::from(ok);
        println!("request {n:2}: GET /add?a={a}&b={b} -> {status} {body}");
    }
    println!(
        "client: {correct}/{} correct sums over {CONNECTIONS} connections",
        results.len()
    );

    let mut sender = connect_http1::<Empty<Bytes>>(addr).await?;
    for path in ["/add?a=one&b=2", "/sub?a=1&b=2"] {
        let (status, body) = get(&mut sender, path).await?;
        println!("client: GET {path} -> {status} {body}");
    }
    Ok(())
}

/// A server with a 100 ms `header_read_timeout`, written out in full to see
/// how each connection ended; a client that never finishes its request head.
async fn stalled_client(lp: &EventLoop) -> Result<(), BoxError> {
    let timer = EvloopTimer::new(lp);
    let ended = Rc::new(Cell::new(None::<bool>));
    let server = lp.create_server("127.0.0.1:0", {
        let ended = ended.clone();
        move |stream| {
            let (timer, ended) = (timer.clone(), ended.clone());
            async move {
                let result = http1::Builder::new()
                    .timer(timer)
                    .header_read_timeout(Duration::from_millis(100))
                    .serve_connection(HyperIo::new(stream), service_fn(handle))
                    .await;
                ended.set(Some(result.is_err_and(|e| e.is_timeout())));
            }
        }
    })?;
    let addr = server.local_addr().ok_or("no internet address")?;
    let start = Instant::now();
    let mut stream = lp.create_connection(addr).await?;
    // Half a request head, then nothing (futures-io's traits).
    stream
        .write_all(b"GET /add?a=1&b=2 HTTP/1.1\r\nhost: local")
        .await?;
    let mut buf = [0u8; 1024];
    let n = stream.read(&mut buf).await?;
    println!(
        "stalled client: the server closed the connection ({}) after {:.0?}",
        if n == 0 {
            "end of stream".to_owned()
        } else {
            format!("{n} bytes")
        },
        start.elapsed()
    );
    server.close();
    server.wait_closed().await;
    println!(
        "stalled client: server side ended with a header read timeout: {}",
        ended.get().unwrap_or(false)
    );
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let serve_only = std::env::args().any(|a| a == "--serve");
    evloop::run(async move {
        examples_ecosystem::print_backend();
        let lp = evloop::get_running_loop()?;
        let requests = Rc::new(Cell::new(0u32));
        let service = {
            let requests = requests.clone();
            service_fn(move |req| {
                requests.set(requests.get() + 1);
                handle(req)
            })
        };
        let http = http_builder(&lp, Duration::from_secs(10));
        let server = serve(&lp, "127.0.0.1:0", http, service)?;
        let addr = server.local_addr().ok_or("no internet address")?;
        println!("server: hyper HTTP/1.1 and h2c on evloop at http://{addr}/add?a=1&b=2");
        if serve_only {
            server.serve_forever().await?;
            return Ok(());
        }

        client(&lp, addr).await?;
        server.close();
        server.wait_closed().await;
        println!("server: answered {} requests", requests.get());

        stalled_client(&lp).await
    })?
}
