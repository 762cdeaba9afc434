//! hyper on evloop: the three runtime pieces hyper 1.x asks for, written
//! against hyper's own traits (`hyper::rt::{Read, Write, Executor, Timer}`),
//! with no tokio runtime and no hyper-util.
//!
//! | hyper needs | evloop gives it | here |
//! |---|---|---|
//! | I/O: `rt::Read` + `rt::Write` | any futures-io stream (`TcpStream`, `UnixStream`, pipes) | [`HyperIo`] |
//! | somewhere to run connection futures: `rt::Executor` | [`EventLoop::create_task`] (futures need not be `Send`) | [`EvloopExecutor`] |
//! | timeouts: `rt::Timer` (e.g. `header_read_timeout`) | the loop's timers ([`EventLoop::sleep`]) | [`EvloopTimer`] |
//!
//! Two helpers put them together: [`serve_http1`] (asyncio's
//! `create_server` with hyper as the protocol) and [`connect_http1`] (a TCP
//! connection, hyper's handshake, and the connection's task). Written out by
//! hand, a server and a client on the running loop look like this:
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use examples_hyper::hyper_rt::{EvloopExecutor, EvloopTimer, HyperIo};
//! use http_body_util::{BodyExt, Empty, Full};
//! use hyper::{service::service_fn, Request, Response};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! evloop::run(async {
//!     let lp = evloop::get_running_loop()?;
//!     let timer = EvloopTimer::new(&lp);
//!     // Server: one hyper connection per accepted stream.
//!     let server = lp.create_server("127.0.0.1:0", move |stream| {
//!         let timer = timer.clone();
//!         async move {
//!             let hello = service_fn(|_req: Request<hyper::body::Incoming>| async {
//!                 Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("hello"))))
//!             });
//!             let _ = hyper::server::conn::http1::Builder::new()
//!                 .timer(timer)
//!                 .serve_connection(HyperIo::new(stream), hello)
//!                 .await;
//!         }
//!     })?;
//!     let addr = server.local_addr().expect("an internet address");
//!
//!     // Client: the connection future runs as a task of its own.
//!     let stream = evloop::net::TcpStream::connect(addr).await?;
//!     let (mut sender, conn) =
//!         hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(HyperIo::new(stream)).await?;
//!     hyper::rt::Executor::execute(&EvloopExecutor::new(&lp), conn);
//!     let req = Request::get("/").header("host", "localhost").body(Empty::new())?;
//!     let body = sender.send_request(req).await?.into_body().collect().await?.to_bytes();
//!     assert_eq!(body, "hello");
//!     server.close();
//!     Ok(())
//! })?
//! # }
//! ```
//!
//! HTTP/2 is not enabled here: hyper's `http2` feature pulls in `h2`, which
//! depends on tokio's I/O traits. HTTP/1.1 needs nothing of tokio's
//! runtime, but hyper 1.x still depends on tokio unconditionally, with only
//! its `sync` feature (its HTTP/1 client uses the `tokio::pin!` macro): no
//! runtime, reactor, timer or thread is compiled in.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use evloop::{EventLoop, LoopHandle};
use futures::channel::oneshot;
use futures_io::{AsyncRead, AsyncWrite};
use hyper::rt::ReadBufCursor;

/// The most [`HyperIo`] reads in one call (the size of its scratch buffer).
const MAX_READ: usize = 64 * 1024;

/// A futures-io stream (evloop's `TcpStream`, `UnixStream`, `PipeReader`,
/// ...) as hyper I/O: implements [`hyper::rt::Read`] and [`hyper::rt::Write`].
///
/// Writes go straight through. Reads go through a scratch buffer owned by
/// the adapter (grown on demand up to 64 KiB) and are copied into hyper's
/// buffer: hyper hands out possibly-uninitialised memory, and filling it in
/// place needs an `unsafe` call (`ReadBufCursor::advance`, which
/// hyper-util's `TokioIo` makes). This crate keeps to safe code; the copy is
/// small next to the system call behind it.
///
/// evloop's futures-io adapters never hand the caller's slice to the kernel
/// asynchronously (they try the non-blocking call, and wait for readiness
/// otherwise), so this is sound on io_uring too.
pub struct HyperIo<T> {
    inner: T,
    scratch: Vec<u8>,
}

impl<T> HyperIo<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        HyperIo {
            inner,
            scratch: Vec::new(),
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The wrapped stream, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Unwraps the stream.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: fmt::Debug> fmt::Debug for HyperIo<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("HyperIo").field(&self.inner).finish()
    }
}

impl<T: AsyncRead + Unpin> hyper::rt::Read for HyperIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let want = buf.remaining().min(MAX_READ);
        if want == 0 {
            return Poll::Ready(Ok(()));
        }
        if this.scratch.len() < want {
            this.scratch.resize(want, 0);
        }
        let n = ready!(Pin::new(&mut this.inner).poll_read(cx, &mut this.scratch[..want]))?;
        // 0 bytes put means end of stream, as hyper expects.
        buf.put_slice(&this.scratch[..n]);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> hyper::rt::Write for HyperIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    /// futures-io's `poll_close`: on evloop's sockets, shuts the write
    /// direction down (the peer reads end-of-stream).
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

/// Runs the futures hyper hands it (client connection drivers, HTTP/2
/// streams, upgrades) as detached tasks on an evloop loop.
///
/// The futures need not be `Send`: the loop is single-threaded, like
/// asyncio's. A future handed over after the loop closed is dropped, as
/// asyncio drops callbacks scheduled on a closed loop.
#[derive(Clone, Debug)]
pub struct EvloopExecutor {
    lp: EventLoop,
}

impl EvloopExecutor {
    /// An executor spawning onto `lp`.
    pub fn new(lp: &EventLoop) -> Self {
        EvloopExecutor { lp: lp.clone() }
    }

    /// An executor spawning onto the loop running on this thread.
    pub fn current() -> evloop::Result<Self> {
        Ok(EvloopExecutor {
            lp: evloop::get_running_loop()?,
        })
    }
}

impl<F> hyper::rt::Executor<F> for EvloopExecutor
where
    F: Future + 'static,
    F::Output: 'static,
{
    fn execute(&self, fut: F) {
        if let Ok(task) = self.lp.create_task(fut) {
            task.detach();
        }
    }
}

/// hyper's [`Timer`](hyper::rt::Timer) on an evloop loop: what makes
/// timeouts such as the server's `header_read_timeout` work (without a
/// timer hyper silently ignores them).
///
/// hyper requires its timer and sleeps to be `Send + Sync`, while evloop's
/// timers belong to their loop's thread. So the timer holds a [`LoopHandle`]
/// and each sleep is a small task on the loop: it sleeps on the loop's clock
/// and then completes a oneshot channel that the hyper-side [`EvloopSleep`]
/// waits on. Dropping the `EvloopSleep` (hyper does on `reset` or when the
/// request went through in time) closes the other channel, which ends the
/// task and cancels its loop timer: no dead timers pile up on a keep-alive
/// connection.
#[derive(Clone, Debug)]
pub struct EvloopTimer {
    handle: LoopHandle,
}

impl EvloopTimer {
    /// A timer on `lp`.
    pub fn new(lp: &EventLoop) -> Self {
        EvloopTimer {
            handle: lp.handle(),
        }
    }

    /// A timer on the loop running on this thread.
    pub fn current() -> evloop::Result<Self> {
        Ok(EvloopTimer::new(&evloop::get_running_loop()?))
    }
}

impl hyper::rt::Timer for EvloopTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(deadline_after(duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(EvloopSleep::new(&self.handle, deadline))
    }
}

/// `now + d`, or a century ahead if that does not fit the clock (as the
/// loop treats huge delays).
fn deadline_after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(now)
}

/// A sleep of an [`EvloopTimer`]: completes at its deadline, measured by
/// the loop's timers. If the loop is closed (or its timer task cancelled)
/// first, it completes at once rather than never.
pub struct EvloopSleep {
    deadline: Instant,
    fired: oneshot::Receiver<()>,
    /// Dropped with the sleep: wakes the timer task, which then ends.
    _cancel: oneshot::Sender<()>,
}

impl EvloopSleep {
    fn new(handle: &LoopHandle, deadline: Instant) -> Self {
        let (fire, fired) = oneshot::channel();
        let (cancel, cancelled) = oneshot::channel::<()>();
        // The timer task is created on the loop's thread (at once when this
        // runs there: `call_soon_threadsafe` then joins the ready queue).
        // If the loop is closed the closure is dropped, and with it `fire`:
        // the sleep completes at once.
        let _ = handle.call_soon_threadsafe(move || {
            let Ok(lp) = evloop::get_running_loop() else {
                return;
            };
            let sleep = lp.sleep(deadline.saturating_duration_since(Instant::now()));
            let timer = async move {
                // Either the deadline passes or the EvloopSleep was dropped.
                if let futures::future::Either::Left(_) =
                    futures::future::select(sleep, cancelled).await
                {
                    let _ = fire.send(());
                }
            };
            if let Ok(task) = lp.create_task(timer) {
                task.detach();
            }
        });
        EvloopSleep {
            deadline,
            fired,
            _cancel: cancel,
        }
    }

    /// When the sleep completes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

impl fmt::Debug for EvloopSleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EvloopSleep")
            .field("deadline", &self.deadline)
            .finish()
    }
}

impl Future for EvloopSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // Fired (`Ok`) or the timer task is gone (`Err(Canceled)`): done either way.
        Pin::new(&mut self.get_mut().fired).poll(cx).map(|_| ())
    }
}

impl hyper::rt::Sleep for EvloopSleep {}

/// The error of [`connect_http1`]: connecting (I/O) or hyper's handshake.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Serves HTTP/1.1 on `addr` (asyncio's `create_server` with hyper as the
/// protocol): every accepted connection runs
/// `builder.serve_connection(HyperIo::new(stream), service.clone())` as a
/// task on `lp`. Configure timeouts on `builder` together with
/// [`EvloopTimer`] (`builder.timer(EvloopTimer::new(lp))`).
///
/// A connection that ends in an error (the client went away mid-request,
/// a header read timeout) is closed silently, as any web server does; to
/// see those errors, write the same few lines with
/// [`EventLoop::create_server`] and look at `serve_connection`'s result.
///
/// Returns evloop's [`Server`](evloop::net::Server): `local_addr()`,
/// `close()`, `wait_closed()`, `connection_count()`.
pub fn serve_http1<S, B>(
    lp: &EventLoop,
    addr: impl evloop::net::ToSocketAddrs,
    builder: hyper::server::conn::http1::Builder,
    service: S,
) -> io::Result<evloop::net::Server>
where
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = hyper::Response<B>,
        > + Clone
        + 'static,
    S::Error: Into<BoxError>,
    B: hyper::body::Body + 'static,
    B::Error: Into<BoxError>,
{
    Ok(lp.create_server(addr, move |stream| {
        let conn = builder.serve_connection(HyperIo::new(stream), service.clone());
        async move {
            let _ = conn.await;
        }
    })?)
}

/// Opens an HTTP/1.1 client connection to `addr` on the running loop: a
/// TCP connection, hyper's handshake, and the connection's driver future
/// spawned as a task. Send requests with the returned
/// [`SendRequest`](hyper::client::conn::http1::SendRequest) (one at a time
/// per connection: `ready().await` first, or open several connections for
/// concurrency). The connection closes when the `SendRequest` is dropped.
pub async fn connect_http1<B>(
    addr: impl evloop::net::ToSocketAddrs,
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
    hyper::rt::Executor::execute(&EvloopExecutor::new(&lp), async move {
        let _ = conn.await;
    });
    Ok(sender)
}
