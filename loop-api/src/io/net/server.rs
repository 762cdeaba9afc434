//! [`Server`]: asyncio's `create_server` for our streams.
//!
//! A server owns one or more listening sockets. Each has an accept task
//! that spawns one task per connection running the user's handler on the
//! stream; the server counts those tasks so that
//! [`wait_closed`](Server::wait_closed) can wait for them.
//!
//! [`close`](Server::close) stops listening *synchronously*: it shuts the
//! listening sockets down (on Linux `shutdown` makes a listening socket
//! refuse connections at once and fail pending accepts, even while an
//! accept holds its descriptor) and wakes the accept tasks, which end and
//! close the descriptors. Connections already accepted keep running;
//! [`abort_clients`](Server::abort_clients) cancels them.
//!
//! Ownership: only the user's [`Server`] handles own the server state. The
//! accept and connection tasks (and `wait_closed` futures) hold weak
//! references, so no task keeps the server alive through its own waker:
//! closing the loop, or dropping the last handle, releases everything.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use slab::Slab;
use socket2::SockAddr;

use crate::io::net::{
    resolve, ConnectOptions, TcpListener, TcpStream, ToSocketAddrs, UnixListener, UnixStream,
};
use crate::loop_core::error::{panic_message, Result};
use crate::loop_core::exception::ExceptionContext;
use crate::loop_core::task::Task;
use crate::loop_core::{EventLoop, LoopInner};

/// How long accepting pauses after the process ran out of descriptors or
/// memory (asyncio's `ACCEPT_RETRY_DELAY`).
const ACCEPT_RETRY_DELAY: Duration = Duration::from_secs(1);

/// A listening socket a server can serve.
pub(crate) trait Listener: 'static {
    /// The connection type handed to the handler.
    type Conn: 'static;
    /// Accepts one connection.
    fn accept_conn(&self) -> impl Future<Output = Result<Self::Conn>>;
    /// Refuses new connections at once.
    fn stop(&self);
    /// The address listened on.
    fn sock_addr(&self) -> Option<SockAddr>;
}

impl Listener for TcpListener {
    type Conn = TcpStream;
    async fn accept_conn(&self) -> Result<TcpStream> {
        self.accept().await.map(|(stream, _)| stream)
    }
    fn stop(&self) {
        TcpListener::stop(self)
    }
    fn sock_addr(&self) -> Option<SockAddr> {
        self.local_addr().ok().map(SockAddr::from)
    }
}

impl Listener for UnixListener {
    type Conn = UnixStream;
    async fn accept_conn(&self) -> Result<UnixStream> {
        self.accept().await.map(|(stream, _)| stream)
    }
    fn stop(&self) {
        UnixListener::stop(self)
    }
    fn sock_addr(&self) -> Option<SockAddr> {
        self.local_addr().ok()
    }
}

/// What a server needs of its listeners after starting them.
trait Stop {
    fn stop(&self);
}

impl<L: Listener> Stop for L {
    fn stop(&self) {
        Listener::stop(self)
    }
}

/// Starts the accept tasks of a server created with
/// `start_serving: false`, when [`Server::start_serving`] is called.
type PendingStart = Box<dyn FnOnce(&Rc<ServerInner>) -> io::Result<()>>;

struct ServerInner {
    lp: Weak<LoopInner>,
    closed: Cell<bool>,
    /// Whether the accept tasks run (see [`ServerOptions::start_serving`]).
    started: Cell<bool>,
    /// What starts them, until started or closed.
    pending: RefCell<Option<PendingStart>>,
    listeners: RefCell<Vec<Rc<dyn Stop>>>,
    addrs: RefCell<Vec<SockAddr>>,
    /// One slot per live connection; the task handle once spawned.
    conns: RefCell<Slab<Option<Task<()>>>>,
    /// Accept tasks, `wait_closed` and `serve_forever`, woken on close and
    /// when the last connection ends.
    waiters: RefCell<Vec<Waker>>,
}

impl ServerInner {
    fn event_loop(&self) -> Option<EventLoop> {
        self.lp.upgrade().map(|inner| EventLoop { inner })
    }

    fn is_done(&self) -> bool {
        self.closed.get() && self.conns.borrow().is_empty()
    }

    fn wake_waiters(&self) {
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for w in waiters {
            w.wake();
        }
    }

    /// Stops listening (see [`Server::close`]); idempotent.
    fn close(&self) {
        if self.closed.replace(true) {
            return;
        }
        let listeners = std::mem::take(&mut *self.listeners.borrow_mut());
        for listener in &listeners {
            listener.stop();
        }
        drop(listeners);
        // A server never started drops its listeners here.
        let pending = self.pending.borrow_mut().take();
        drop(pending);
        self.addrs.borrow_mut().clear();
        self.wake_waiters();
    }

    /// Runs `fut` as a connection task counted by the server.
    fn spawn_conn<F: Future + 'static>(self: &Rc<Self>, lp: &EventLoop, fut: F) {
        let key = self.conns.borrow_mut().insert(None);
        let guard = ConnGuard {
            server: Rc::downgrade(self),
            key,
        };
        let task = lp.create_task(async move {
            let _guard = guard;
            fut.await;
        });
        // On error the loop is closed and the future (with its guard) is gone.
        if let Ok(task) = task {
            if let Some(slot) = self.conns.borrow_mut().get_mut(key) {
                *slot = Some(task);
            }
        }
    }
}

impl Drop for ServerInner {
    fn drop(&mut self) {
        // The last handle is gone: stop listening. Live connections go on
        // (dropping their task handles detaches them).
        self.close();
    }
}

/// Uncounts a connection when its task ends, however it ends.
struct ConnGuard {
    server: Weak<ServerInner>,
    key: usize,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let Some(server) = self.server.upgrade() else {
            return;
        };
        let task = server.conns.borrow_mut().try_remove(self.key);
        // Dropping the handle detaches the (finishing) task.
        drop(task);
        if server.is_done() {
            server.wake_waiters();
        }
    }
}

async fn accept_loop<L, H, F>(server: Weak<ServerInner>, listener: Rc<L>, handler: Rc<H>)
where
    L: Listener,
    H: Fn(L::Conn) -> F + 'static,
    F: Future + 'static,
{
    let stopped = || server.upgrade().is_none_or(|s| s.closed.get());
    loop {
        let result = {
            let mut accept = std::pin::pin!(listener.accept_conn());
            std::future::poll_fn(|cx| {
                let Some(inner) = server.upgrade().filter(|s| !s.closed.get()) else {
                    return Poll::Ready(None);
                };
                if let Poll::Ready(result) = accept.as_mut().poll(cx) {
                    return Poll::Ready(Some(result));
                }
                register(&inner.waiters, cx.waker());
                Poll::Pending
            })
            .await
        };
        let (Some(result), Some(inner)) = (result, server.upgrade()) else {
            return;
        };
        let Some(lp) = inner.event_loop() else { return };
        if stopped() {
            return;
        }
        let err = match result {
            Ok(conn) => {
                match catch_unwind(AssertUnwindSafe(|| handler(conn))) {
                    Ok(fut) => inner.spawn_conn(&lp, fut),
                    Err(payload) => lp.call_exception_handler(ExceptionContext {
                        message: "Exception in server connection handler".to_owned(),
                        payload: Some(panic_message(&*payload)),
                        ..ExceptionContext::default()
                    }),
                }
                continue;
            }
            Err(e) => e,
        };
        drop(inner);
        let delay = match err.raw_os_error() {
            // The peer gave up before we accepted, or a signal: try again.
            Some(libc::ECONNABORTED | libc::EPROTO | libc::EINTR | libc::EAGAIN) => continue,
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => ACCEPT_RETRY_DELAY,
            _ => Duration::from_millis(100),
        };
        lp.call_exception_handler(ExceptionContext {
            message: format!(
                "server socket failed to accept a connection: {err}; retrying in {delay:?}"
            ),
            ..ExceptionContext::default()
        });
        lp.sleep(delay).await;
    }
}

/// A running server, from [`EventLoop::create_server`] and friends.
///
/// A cheap handle (clones share one server). The server stops listening
/// when [`close`](Self::close) is called, when the last handle is dropped
/// (keep one for as long as it should serve), or when the loop is closed;
/// in every case connections already accepted run on until their handlers
/// return.
///
/// ```
/// use evloop::net::TcpStream;
/// use futures::io::{AsyncReadExt, AsyncWriteExt};
///
/// evloop::run(async {
///     let lp = evloop::get_running_loop()?;
///     // One task per connection: an echo of one message.
///     let server = lp.create_server("127.0.0.1:0", |mut stream: TcpStream| async move {
///         let mut buf = [0u8; 64];
///         if let Ok(n) = stream.read(&mut buf).await {
///             let _ = stream.write_all(&buf[..n]).await;
///         }
///     })?;
///     let addr = server.local_addr().expect("an internet address");
///     let mut client = TcpStream::connect(addr).await?;
///     client.write_all(b"echo").await?;
///     let mut back = [0u8; 4];
///     client.read_exact(&mut back).await?;
///     assert_eq!(&back, b"echo");
///     // Graceful shutdown: stop listening, then wait for the handlers.
///     server.close();
///     server.wait_closed().await;
///     Ok::<_, evloop::Error>(())
/// })??;
/// # Ok::<_, evloop::Error>(())
/// ```
#[derive(Clone)]
pub struct Server {
    inner: Rc<ServerInner>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("serving", &self.is_serving())
            .field("connections", &self.connection_count())
            .finish()
    }
}

/// Options for [`EventLoop::create_server_with`].
///
/// Listen first, serve later (asyncio's `start_serving=False`):
///
/// ```
/// use evloop::net::{ServerOptions, TcpStream};
///
/// evloop::run(async {
///     let lp = evloop::get_running_loop()?;
///     let options = ServerOptions { start_serving: false };
///     let server = lp.create_server_with("127.0.0.1:0", |_conn: TcpStream| async {}, options)?;
///     assert!(!server.is_serving()); // bound and listening; nothing accepted yet
///     let addr = server.local_addr().expect("an internet address");
///     let early = TcpStream::connect(addr).await?; // waits in the backlog
///     server.start_serving()?;
///     assert!(server.is_serving());
///     drop(early);
///     server.close();
///     server.wait_closed().await;
///     Ok::<_, evloop::Error>(())
/// })??;
/// # Ok::<_, evloop::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerOptions {
    /// Accept connections at once (the default, `true`). With `false` the
    /// sockets listen (connects queue in the backlog) but nothing is
    /// accepted until [`Server::start_serving`] or [`Server::serve_forever`],
    /// and [`Server::is_serving`] is `false` until then (asyncio's
    /// `start_serving=False`).
    pub start_serving: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            start_serving: true,
        }
    }
}

impl Server {
    fn start<L, H, F>(lp: &EventLoop, listeners: Vec<L>, handler: H) -> io::Result<Server>
    where
        L: Listener,
        H: Fn(L::Conn) -> F + 'static,
        F: Future + 'static,
    {
        Self::create(lp, listeners, handler, ServerOptions::default())
    }

    fn create<L, H, F>(
        lp: &EventLoop,
        listeners: Vec<L>,
        handler: H,
        options: ServerOptions,
    ) -> io::Result<Server>
    where
        L: Listener,
        H: Fn(L::Conn) -> F + 'static,
        F: Future + 'static,
    {
        let inner = Rc::new(ServerInner {
            lp: lp.downgrade(),
            closed: Cell::new(false),
            started: Cell::new(false),
            pending: RefCell::new(None),
            listeners: RefCell::new(Vec::new()),
            addrs: RefCell::new(Vec::new()),
            conns: RefCell::new(Slab::new()),
            waiters: RefCell::new(Vec::new()),
        });
        let server = Server { inner };
        let handler = Rc::new(handler);
        let listeners: Vec<Rc<L>> = listeners.into_iter().map(Rc::new).collect();
        for listener in &listeners {
            if let Some(addr) = listener.sock_addr() {
                server.inner.addrs.borrow_mut().push(addr);
            }
            server.inner.listeners.borrow_mut().push(listener.clone());
        }
        let start: PendingStart = Box::new(move |inner: &Rc<ServerInner>| {
            let lp = inner
                .event_loop()
                .ok_or_else(|| io::Error::from(crate::Error::Closed))?;
            for listener in listeners {
                let accept = accept_loop(Rc::downgrade(inner), listener, handler.clone());
                // The accept task is detached: it ends when the server closes.
                lp.create_task(accept)?.detach();
            }
            Ok(())
        });
        *server.inner.pending.borrow_mut() = Some(start);
        if options.start_serving {
            server.start_serving()?;
        }
        Ok(server)
    }

    /// Starts accepting connections on a server created with
    /// [`ServerOptions::start_serving`] `false` (connects made meanwhile
    /// waited in the backlog and are served now). Does nothing if it is
    /// already serving; an error once closed.
    pub fn start_serving(&self) -> Result<()> {
        if self.inner.closed.get() {
            return Err(io::Error::other("the server is closed").into());
        }
        let pending = self.inner.pending.borrow_mut().take();
        if let Some(start) = pending {
            self.inner.started.set(true);
            if let Err(e) = start(&self.inner) {
                self.inner.close();
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Stops listening now: new connects are refused (`ConnectionRefused`),
    /// the listening sockets close (a Unix server's socket file is removed)
    /// and [`local_addrs`](Self::local_addrs) becomes empty. Live connections
    /// keep running. Idempotent.
    pub fn close(&self) {
        self.inner.close();
    }

    /// `true` from [`start_serving`](Self::start_serving) (at creation,
    /// by default) until [`close`](Self::close).
    pub fn is_serving(&self) -> bool {
        self.inner.started.get() && !self.inner.closed.get()
    }

    /// The addresses listened on (empty once closed).
    pub fn local_addrs(&self) -> Vec<SockAddr> {
        self.inner.addrs.borrow().clone()
    }

    /// The first internet address listened on (`None` for a Unix server or
    /// once closed): handy with port 0.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.inner
            .addrs
            .borrow()
            .iter()
            .find_map(SockAddr::as_socket)
    }

    /// Number of connections whose handler has not finished.
    pub fn connection_count(&self) -> usize {
        self.inner.conns.borrow().len()
    }

    /// Cancels every live connection's handler (each connection is closed
    /// as its task unwinds, on the next iteration).
    pub fn abort_clients(&self) {
        let tasks: Vec<Task<()>> = self
            .inner
            .conns
            .borrow_mut()
            .iter_mut()
            .filter_map(|(_, slot)| slot.take())
            .collect();
        for task in &tasks {
            task.cancel();
        }
    }

    /// Completes once the server is closed and every connection has ended
    /// (asyncio's `wait_closed`).
    ///
    /// If every handle to the server is dropped meanwhile, it completes
    /// then (the server is closed and no longer tracks its connections).
    pub fn wait_closed(&self) -> WaitClosed {
        WaitClosed {
            inner: Rc::downgrade(&self.inner),
        }
    }

    /// Starts serving if not yet started (see
    /// [`start_serving`](Self::start_serving)) and serves until
    /// [`close`](Self::close) is called; if this future is dropped first
    /// (its task cancelled), the server is closed. An error if the server
    /// is already closed.
    pub async fn serve_forever(&self) -> Result<()> {
        self.start_serving()?;
        struct CloseOnDrop<'a>(&'a Server);
        impl Drop for CloseOnDrop<'_> {
            fn drop(&mut self) {
                self.0.close();
            }
        }
        let _close = CloseOnDrop(self);
        std::future::poll_fn(|cx| {
            if self.inner.closed.get() {
                return Poll::Ready(());
            }
            register(&self.inner.waiters, cx.waker());
            Poll::Pending
        })
        .await;
        Ok(())
    }
}

/// The wildcard addresses of both families, `0.0.0.0:port` and
/// `[::]:port`: what [`EventLoop::create_server_any_host`] binds.
pub fn any_host(port: u16) -> [SocketAddr; 2] {
    [
        SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, port)),
        SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)),
    ]
}

/// Binds a listener on each of `addrs` (duplicates once). Addresses with
/// port 0 share the port picked for the first of them (retried a few times
/// if another socket holds it in another family); an address family the
/// host lacks (`EAFNOSUPPORT`) is skipped when there are other addresses.
fn bind_all(lp: &EventLoop, addrs: &[SocketAddr]) -> Result<Vec<TcpListener>> {
    const ATTEMPTS: usize = 8;
    let mut attempt = 0;
    'retry: loop {
        attempt += 1;
        let mut listeners: Vec<TcpListener> = Vec::new();
        let mut picked: Option<u16> = None;
        let mut skipped = None;
        for &requested in addrs {
            let mut addr = requested;
            if let (0, Some(port)) = (addr.port(), picked) {
                addr.set_port(port);
            }
            if addr.port() != 0 && listeners.iter().any(|l| l.local_addr().ok() == Some(addr)) {
                continue;
            }
            match TcpListener::bind_one(lp, addr) {
                Ok(listener) => {
                    if requested.port() == 0 && picked.is_none() {
                        picked = Some(listener.local_addr()?.port());
                    }
                    listeners.push(listener);
                }
                Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) && addrs.len() > 1 => {
                    skipped = Some(e);
                }
                Err(e)
                    if e.kind() == io::ErrorKind::AddrInUse
                        && requested.port() == 0
                        && attempt < ATTEMPTS =>
                {
                    continue 'retry;
                }
                Err(e) => return Err(e),
            }
        }
        if listeners.is_empty() {
            return Err(skipped.unwrap_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "no address").into()
            }));
        }
        return Ok(listeners);
    }
}

fn register(waiters: &RefCell<Vec<Waker>>, waker: &Waker) {
    let mut waiters = waiters.borrow_mut();
    if !waiters.iter().any(|w| w.will_wake(waker)) {
        waiters.push(waker.clone());
    }
}

/// The future returned by [`Server::wait_closed`].
pub struct WaitClosed {
    inner: Weak<ServerInner>,
}

impl fmt::Debug for WaitClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitClosed").finish_non_exhaustive()
    }
}

impl Future for WaitClosed {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.inner.upgrade() {
            Some(inner) if !inner.is_done() => {
                register(&inner.waiters, cx.waker());
                Poll::Pending
            }
            _ => Poll::Ready(()),
        }
    }
}

impl EventLoop {
    /// Binds every address `addr` resolves to (with `SO_REUSEADDR`, IPv6
    /// sockets IPv6-only) and serves each accepted connection with
    /// `handler(stream)` as a task of its own (asyncio's `create_server`).
    ///
    /// An address in use is an `AddrInUse` error (and nothing is left
    /// bound). A handler that panics is reported to the exception handler
    /// and its connection closed; the server keeps serving. For options
    /// (`reuse_port`, the backlog), build a listener with
    /// [`TcpSocket`](crate::io::net::TcpSocket) and use [`serve_tcp`](Self::serve_tcp).
    ///
    /// When `addr` resolves to several addresses with port 0 (such as
    /// `("localhost", 0)`), they all listen on one port, picked for the
    /// first. An address whose family the host does not support (no IPv6
    /// at all) is skipped if another one works.
    ///
    /// Being synchronous, it takes addresses and `localhost` (`127.0.0.1`
    /// and `::1`) only; any other host name is an `InvalidInput` error
    /// naming it ([`ResolveError`](crate::net::ResolveError)). Resolve it
    /// first without blocking the loop:
    /// `lp.create_server(&lp.getaddrinfo(host, port).await?[..], handler)`.
    pub fn create_server<A, H, F>(&self, addr: A, handler: H) -> Result<Server>
    where
        A: ToSocketAddrs,
        H: Fn(TcpStream) -> F + 'static,
        F: Future + 'static,
    {
        self.create_server_with(addr, handler, ServerOptions::default())
    }

    /// [`create_server`](Self::create_server) with [`ServerOptions`], e.g.
    /// a server that does not accept until [`Server::start_serving`]:
    ///
    /// ```no_run
    /// # fn demo(lp: &evloop::EventLoop) -> evloop::Result<()> {
    /// use evloop::net::ServerOptions;
    /// let options = ServerOptions { start_serving: false, ..Default::default() };
    /// let server = lp.create_server_with("127.0.0.1:0", |_s| async {}, options)?;
    /// assert!(!server.is_serving());
    /// server.start_serving()?;
    /// # Ok(()) }
    /// ```
    pub fn create_server_with<A, H, F>(
        &self,
        addr: A,
        handler: H,
        options: ServerOptions,
    ) -> Result<Server>
    where
        A: ToSocketAddrs,
        H: Fn(TcpStream) -> F + 'static,
        F: Future + 'static,
    {
        let listeners = bind_all(self, &resolve(addr)?)?;
        Ok(Server::create(self, listeners, handler, options)?)
    }

    /// Serves `port` on every interface, IPv4 and IPv6 alike (asyncio's
    /// `create_server(host=None)`): one socket bound to `0.0.0.0` and one
    /// (IPv6-only) to `::`, so both `127.0.0.1` and `::1` reach it. With
    /// port 0 both share the port picked. On a host without IPv6 only the
    /// IPv4 socket is made. See [`any_host`] for the addresses, to use with
    /// [`create_server_with`](Self::create_server_with).
    pub fn create_server_any_host<H, F>(&self, port: u16, handler: H) -> Result<Server>
    where
        H: Fn(TcpStream) -> F + 'static,
        F: Future + 'static,
    {
        self.create_server(&any_host(port)[..], handler)
    }

    /// Serves connections accepted on `listener` (asyncio's `create_server(sock=...)`).
    pub fn serve_tcp<H, F>(&self, listener: TcpListener, handler: H) -> Result<Server>
    where
        H: Fn(TcpStream) -> F + 'static,
        F: Future + 'static,
    {
        Ok(Server::start(self, vec![listener], handler)?)
    }

    /// Binds a Unix socket at `path` (replacing a stale socket file; any
    /// other file there is `AddrInUse`) and serves it like
    /// [`create_server`](Self::create_server). Closing the server removes
    /// the socket file.
    pub fn create_unix_server<P, H, F>(&self, path: P, handler: H) -> Result<Server>
    where
        P: AsRef<Path>,
        H: Fn(UnixStream) -> F + 'static,
        F: Future + 'static,
    {
        let listener = UnixListener::bind_on(self, path.as_ref())?;
        Ok(Server::start(self, vec![listener], handler)?)
    }

    /// Serves connections accepted on a Unix `listener`; closing the server
    /// removes its socket file.
    pub fn serve_unix<H, F>(&self, listener: UnixListener, handler: H) -> Result<Server>
    where
        H: Fn(UnixStream) -> F + 'static,
        F: Future + 'static,
    {
        Ok(Server::start(self, vec![listener], handler)?)
    }

    /// Connects to `addr`, trying each resolved address in turn (asyncio's
    /// `create_connection`); a host name is resolved on the executor
    /// ([`getaddrinfo`](Self::getaddrinfo)). See [`TcpStream::connect`]
    /// for the errors, and [`create_connection_with`](Self::create_connection_with)
    /// for happy eyeballs.
    pub async fn create_connection(&self, addr: impl ToSocketAddrs) -> Result<TcpStream> {
        TcpStream::connect_on(self, addr, ConnectOptions::default()).await
    }

    /// [`create_connection`](Self::create_connection) with asyncio's
    /// `happy_eyeballs_delay` and `interleave` ([`ConnectOptions`]): with a
    /// delay, the addresses are raced with staggered starts, the first
    /// connected wins and the attempts still running are cancelled (their
    /// sockets closed); when all fail, the [`ConnectError`](crate::net::ConnectError)
    /// names the host and every address tried, in order.
    ///
    /// ```no_run
    /// # async fn demo(lp: &evloop::EventLoop) -> evloop::Result<()> {
    /// use evloop::net::ConnectOptions;
    /// use std::time::Duration;
    /// let options = ConnectOptions {
    ///     happy_eyeballs_delay: Some(Duration::from_millis(250)),
    ///     ..Default::default()
    /// };
    /// let stream = lp.create_connection_with(("example.com", 80), options).await?;
    /// # Ok(()) }
    /// ```
    pub async fn create_connection_with(
        &self,
        addr: impl ToSocketAddrs,
        options: ConnectOptions,
    ) -> Result<TcpStream> {
        TcpStream::connect_on(self, addr, options).await
    }

    /// Connects to the Unix socket at `path` (asyncio's `create_unix_connection`).
    pub async fn create_unix_connection(&self, path: impl AsRef<Path>) -> Result<UnixStream> {
        UnixStream::connect_on(self, path.as_ref()).await
    }
}
