//! # examples-hyper
//!
//! hyper 1.x on evloop through [`evloop_compat`] (hyper's runtime traits
//! over evloop's streams, tasks and timers). The examples (`hello_server`,
//! `hyper_json`, `web_scraper`) run on every backend; `tests/` runs them and
//! points `curl` at them. `bench.sh` races the `hello_server` example
//! against `tokio_hello` (tokio current_thread + hyper-util) with `wrk`
//! and `h2load`.
//!
//! This is a separate crate from `examples-ecosystem` because hyper 1.x
//! depends on tokio, and the smol-rs examples promise a tree without tokio.
//!
//! The helpers below are the few lines every example would otherwise repeat.

use std::time::Duration;

use evloop::EventLoop;
use evloop_compat::{EvloopExecutor, EvloopTimer, HyperIo};

/// The error of the helpers: connecting (I/O), binding, or hyper.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// hyper-util's `auto` server builder on `lp`: HTTP/1.1 and HTTP/2 (h2c
/// prior knowledge, and TLS-less upgrades are not attempted) on one
/// connection type, with hyper's timer on and a `header_read_timeout` of
/// `header_timeout`.
pub fn http_builder(
    lp: &EventLoop,
    header_timeout: Duration,
) -> hyper_util::server::conn::auto::Builder<EvloopExecutor> {
    let mut http = hyper_util::server::conn::auto::Builder::new(EvloopExecutor::new(lp));
    http.http1()
        .timer(EvloopTimer::new(lp))
        .header_read_timeout(header_timeout);
    http.http2().timer(EvloopTimer::new(lp));
    http
}

/// Serves `service` on `addr` over HTTP/1.1 and h2c (asyncio's
/// `create_server` with hyper as the protocol): each accepted connection
/// runs `http.serve_connection(HyperIo::new(stream), service.clone())` as a
/// task on `lp`. A connection that ends in an error (the client went away
/// mid-request, a header read timeout) is closed silently, as web servers
/// do.
pub fn serve<S, B>(
    lp: &EventLoop,
    addr: &str,
    http: hyper_util::server::conn::auto::Builder<EvloopExecutor>,
    service: S,
) -> Result<evloop::net::Server, BoxError>
where
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = hyper::Response<B>,
        > + Clone
        + 'static,
    S::Future: 'static,
    S::Error: Into<BoxError>,
    B: hyper::body::Body + 'static,
    B::Error: Into<BoxError>,
{
    let server = lp.create_server(addr, move |stream| {
        let (http, service) = (http.clone(), service.clone());
        async move {
            let _ = stream.set_nodelay(true);
            let _ = http.serve_connection(HyperIo::new(stream), service).await;
        }
    })?;
    Ok(server)
}

/// Opens an HTTP/1.1 client connection to `addr` on the running loop: a
/// TCP connection, hyper's handshake, and the connection's driver future
/// spawned as a task. Send requests with the returned
/// [`SendRequest`](hyper::client::conn::http1::SendRequest) (one at a time
/// per connection: `ready().await` first). The connection closes when the
/// `SendRequest` is dropped.
pub async fn connect_http1<B>(
    addr: std::net::SocketAddr,
) -> Result<hyper::client::conn::http1::SendRequest<B>, BoxError>
where
    B: hyper::body::Body + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let lp = evloop::get_running_loop()?;
    let stream = lp.create_connection(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(HyperIo::new(stream)).await?;
    lp.create_task(async move {
        let _ = conn.await;
    })?
    .detach();
    Ok(sender)
}
