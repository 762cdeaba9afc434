//! # evloop-compat
//!
//! hyper 1.x (HTTP/1.1 and HTTP/2) and crates written for tokio's I/O
//! traits, on evloop, without a tokio runtime.
//!
//! | feature | what you get | for |
//! |---|---|---|
//! | `hyper-server` | [`HyperIo`], [`EvloopExecutor`], [`EvloopTimer`] + hyper's `server`, `http1`, `http2` | hyper servers (and hyper-util's `auto` builder) |
//! | `hyper-client` | the same three + hyper's `client`, `http1`, `http2` | hyper's connection-level clients |
//! | `tokio-io` | [`TokioIo`] (tokio's `AsyncRead`/`AsyncWrite` over evloop streams) | h2, tokio-util codecs, other tokio-io crates |
//!
//! All three are on by default; a server-only build says
//! `default-features = false, features = ["hyper-server"]` and compiles
//! without hyper's client (and the other way round).
//!
//! What hyper asks for, and what answers it here:
//!
//! | hyper needs | here | on evloop |
//! |---|---|---|
//! | `rt::Read` + `rt::Write` | [`HyperIo`] (`vectored` for evloop's sockets: head and body in one `sendmsg`) | any futures-io stream: `TcpStream`, `UnixStream`, pipes |
//! | `rt::Executor` (HTTP/2 streams, client connections) | [`EvloopExecutor`] (futures need not be `Send`), [`EvloopSendExecutor`] | `create_task` |
//! | `rt::Timer` (`header_read_timeout`, HTTP/2 keep-alive) | [`EvloopTimer`] | loop timers (`call_at`), one per millisecond shared by that millisecond's sleeps: no task, no channel |
//!
//! A server speaking HTTP/1.1 and HTTP/2 (prior knowledge) on one port,
//! with hyper-util's `auto` builder (runtime-agnostic: it needs no tokio):
//!
//! ```no_run
//! use std::convert::Infallible;
//! use std::time::Duration;
//!
//! use bytes::Bytes;
//! use evloop_compat::{EvloopExecutor, EvloopTimer, HyperIo};
//! use http_body_util::Full;
//! use hyper::{service::service_fn, Request, Response};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//!     evloop::run(async {
//!         let lp = evloop::get_running_loop()?;
//!         let mut http = hyper_util::server::conn::auto::Builder::new(EvloopExecutor::new(&lp));
//!         http.http1()
//!             .timer(EvloopTimer::new(&lp))
//!             .header_read_timeout(Duration::from_secs(10));
//!         http.http2().timer(EvloopTimer::new(&lp));
//!         let server = lp.create_server("127.0.0.1:8080", move |stream| {
//!             let http = http.clone();
//!             async move {
//!                 let hello = service_fn(|_req: Request<hyper::body::Incoming>| async {
//!                     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("hello\n"))))
//!                 });
//!                 // A client that goes away mid-request ends its connection with an error.
//!                 let _ = http.serve_connection(HyperIo::new(stream), hello).await;
//!             }
//!         })?;
//!         server.serve_forever().await?;
//!         Ok(())
//!     })?
//! }
//! ```
//!
//! A client (feature `hyper-client`) does the handshake over [`HyperIo`]
//! and runs the connection future as a task:
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Empty};
//!
//! let lp = evloop::get_running_loop()?;
//! let stream = evloop::net::TcpStream::connect("127.0.0.1:8080").await?;
//! let (mut sender, conn) = hyper::client::conn::http2::handshake::<_, _, Empty<Bytes>>(
//!     evloop_compat::EvloopExecutor::new(&lp),
//!     evloop_compat::HyperIo::new(stream),
//! )
//! .await?;
//! lp.create_task(conn)?.detach();
//! let req = hyper::Request::get("http://localhost/").body(Empty::new())?;
//! let body = sender.send_request(req).await?.into_body().collect().await?.to_bytes();
//! assert_eq!(body, "hello\n");
//! # Ok(()) }
//! ```
//!
//! ## Limits
//!
//! - hyper 1.x depends on tokio unconditionally (its `sync` feature; with
//!   HTTP/2, h2 adds tokio's `io-util` and tokio-util's codecs): tokio is in
//!   `cargo tree`, but no tokio runtime, reactor, timer or thread is built
//!   or run.
//! - [`TokioIo`] adapts I/O traits only. A tokio crate that needs tokio's
//!   reactor or timers (`tokio::net`, `tokio::time`, `tokio::spawn`) needs a
//!   tokio runtime: wrap its futures in `async_compat::Compat`.
//! - [`HyperIo`] copies each read once from its scratch buffer into hyper's
//!   (filling hyper's buffer in place would need `unsafe`); on a socket
//!   known drained, evloop's read is an owned-buffer receive copied into
//!   that scratch buffer, a second copy of the request's bytes.
//! - [`HyperIo::new`] tells hyper writes are not vectored (hyper then
//!   copies head and body into one buffer); [`HyperIo::vectored`] says they
//!   are, for evloop's sockets. For small responses the copy measured no
//!   slower (wrk, mio, 13-byte body: 1.040 of tokio's req/s with `new`,
//!   0.996 with `vectored`, one paired run), so the examples use `new`;
//!   `vectored` saves copying large bodies.

#[cfg(any(feature = "hyper-server", feature = "hyper-client"))]
mod executor;
#[cfg(any(feature = "hyper-server", feature = "hyper-client"))]
mod hyper_io;
#[cfg(any(feature = "hyper-server", feature = "hyper-client"))]
mod timer;
#[cfg(feature = "tokio-io")]
mod tokio_io;

#[cfg(any(feature = "hyper-server", feature = "hyper-client"))]
pub use executor::{EvloopExecutor, EvloopSendExecutor};
#[cfg(any(feature = "hyper-server", feature = "hyper-client"))]
pub use hyper_io::HyperIo;
#[cfg(any(feature = "hyper-server", feature = "hyper-client"))]
pub use timer::{EvloopSleep, EvloopTimer};
#[cfg(feature = "tokio-io")]
pub use tokio_io::TokioIo;
