//! TCP: [`TcpSocket`] (options before bind/connect), [`TcpListener`], [`TcpStream`].

use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::rc::Rc;

use socket2::{Domain, Protocol, Socket, Type};

use crate::io::fd::LoopFd;
use crate::io::net::dns::{connect_target, ConnectOptions};
use crate::io::net::socket::{new_socket, running_loop};
use crate::io::net::stream::{sock_fd_traits, stream_api, StreamCore};
use crate::io::net::{combine_errors, inet, resolve, ToSocketAddrs, DEFAULT_BACKLOG};
use crate::loop_core::error::{Error, Result};
use crate::loop_core::EventLoop;

/// A TCP socket not yet listening or connected, for setting options first
/// (like tokio's `TcpSocket`): `reuse_port`, `reuse_address`, a local
/// address to connect from, the listen backlog.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use evloop::net::TcpSocket;
/// let socket = TcpSocket::new_v4()?;
/// socket.set_reuseport(true)?;
/// socket.bind("127.0.0.1:8080".parse().unwrap())?;
/// let listener = socket.listen(128)?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TcpSocket {
    socket: Socket,
}

impl TcpSocket {
    /// A new IPv4 TCP socket.
    pub fn new_v4() -> Result<TcpSocket> {
        Ok(Self::new(Domain::IPV4)?)
    }

    /// A new IPv6 TCP socket.
    pub fn new_v6() -> Result<TcpSocket> {
        Ok(Self::new(Domain::IPV6)?)
    }

    /// A new TCP socket of the family of `addr`.
    pub fn new_for(addr: &SocketAddr) -> Result<TcpSocket> {
        Ok(Self::new(Domain::for_address(*addr))?)
    }

    fn new(domain: Domain) -> io::Result<TcpSocket> {
        Ok(TcpSocket {
            socket: new_socket(domain, Type::STREAM, Some(Protocol::TCP))?,
        })
    }

    /// `SO_REUSEADDR`: bind a port whose previous connections linger in
    /// TIME_WAIT. Off by default ([`TcpListener::bind`] turns it on).
    pub fn set_reuseaddr(&self, on: bool) -> Result<()> {
        Ok(self.socket.set_reuse_address(on)?)
    }

    /// Whether `SO_REUSEADDR` is on.
    pub fn reuseaddr(&self) -> Result<bool> {
        Ok(self.socket.reuse_address()?)
    }

    /// `SO_REUSEPORT`: several sockets (each with it on) may listen on one
    /// port, and the kernel spreads connections between them. Off by default.
    pub fn set_reuseport(&self, on: bool) -> Result<()> {
        Ok(self.socket.set_reuse_port(on)?)
    }

    /// Whether `SO_REUSEPORT` is on.
    pub fn reuseport(&self) -> Result<bool> {
        Ok(self.socket.reuse_port()?)
    }

    /// `TCP_NODELAY`: send small writes at once instead of coalescing them.
    pub fn set_nodelay(&self, on: bool) -> Result<()> {
        Ok(self.socket.set_tcp_nodelay(on)?)
    }

    /// `IPV6_V6ONLY` on an IPv6 socket: refuse IPv4-mapped peers.
    pub fn set_only_v6(&self, on: bool) -> Result<()> {
        Ok(self.socket.set_only_v6(on)?)
    }

    /// Binds to `addr`; an address taken by another socket is `AddrInUse`.
    pub fn bind(&self, addr: SocketAddr) -> Result<()> {
        Error::ctx(self.socket.bind(&addr.into()), || format!("bind {addr}"))
    }

    /// The address bound to.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(inet(self.socket.local_addr()?)?)
    }

    /// Starts listening with `backlog` pending connections at most, on the
    /// running loop.
    pub fn listen(self, backlog: u32) -> Result<TcpListener> {
        Ok(self.listen_on(&running_loop()?, backlog)?)
    }

    pub(crate) fn listen_on(self, lp: &EventLoop, backlog: u32) -> io::Result<TcpListener> {
        let backlog = backlog.min(i32::MAX as u32) as i32;
        self.socket.listen(backlog)?;
        Ok(TcpListener {
            sock: LoopFd::new(lp, self.socket),
        })
    }

    /// Connects to `addr` on the running loop (from the bound local
    /// address, if [`bind`](Self::bind) was called).
    pub async fn connect(self, addr: SocketAddr) -> Result<TcpStream> {
        let lp = running_loop()?;
        Error::ctx(self.connect_on(&lp, addr).await, || {
            format!("connect to {addr}")
        })
    }

    pub(crate) async fn connect_on(
        self,
        lp: &EventLoop,
        addr: SocketAddr,
    ) -> io::Result<TcpStream> {
        let sock = LoopFd::new(lp, self.socket);
        sock.connect(addr.into()).await?;
        Ok(TcpStream::from_sock(sock))
    }
}

/// A listening TCP socket.
///
/// Dropping it closes the socket: connects then get `ConnectionRefused`.
///
/// ```
/// use evloop::net::{TcpListener, TcpStream};
///
/// evloop::run(async {
///     let listener = TcpListener::bind("127.0.0.1:0")?; // port 0: any free port
///     let addr = listener.local_addr()?;
///     let client = TcpStream::connect(addr).await?;
///     let (conn, peer) = listener.accept().await?;
///     assert_eq!(peer, client.local_addr()?);
///     let (res, _) = client.write_all_owned(b"hi".to_vec()).await;
///     res?;
///     let (n, buf) = conn.read_owned(Vec::with_capacity(8)).await;
///     assert_eq!(&buf[..n?], b"hi");
///     // The address is taken now: the error names it.
///     let err = TcpListener::bind(addr).unwrap_err();
///     assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
///     assert!(err.to_string().starts_with(&format!("bind {addr}: ")));
///     Ok::<_, evloop::Error>(())
/// })??;
/// # Ok::<_, evloop::Error>(())
/// ```
pub struct TcpListener {
    pub(crate) sock: Rc<LoopFd>,
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        self.sock.stop_listening_if_held();
    }
}

impl TcpListener {
    /// Binds to the first address of `addr` that works (with `SO_REUSEADDR`
    /// on and a backlog of [`DEFAULT_BACKLOG`]) and listens, on the running
    /// loop. Port 0 picks a free port: see [`local_addr`](Self::local_addr).
    /// An address in use is an `AddrInUse` error. Being synchronous, it
    /// takes addresses and `localhost` (`127.0.0.1`, then `::1`) only: any
    /// other host name is an `InvalidInput` error naming it
    /// ([`ResolveError`](crate::net::ResolveError)); resolve it first with
    /// [`EventLoop::getaddrinfo`].
    pub fn bind(addr: impl ToSocketAddrs) -> Result<TcpListener> {
        Self::bind_on(&running_loop()?, addr)
    }

    pub(crate) fn bind_on(lp: &EventLoop, addr: impl ToSocketAddrs) -> Result<TcpListener> {
        let mut errors = Vec::new();
        for addr in resolve(addr)? {
            match Self::bind_one(lp, addr) {
                Ok(listener) => return Ok(listener),
                Err(e) => errors.push(e),
            }
        }
        Err(combine_errors(errors))
    }

    /// Binds and listens on `addr`; a failure names the address.
    pub(crate) fn bind_one(lp: &EventLoop, addr: SocketAddr) -> Result<TcpListener> {
        Error::ctx(Self::bind_one_io(lp, addr), || format!("bind {addr}"))
    }

    fn bind_one_io(lp: &EventLoop, addr: SocketAddr) -> io::Result<TcpListener> {
        let socket = TcpSocket::new_for(&addr)?;
        socket.socket.set_reuse_address(true)?;
        if addr.is_ipv6() {
            // One family per socket, as asyncio does: `::` does not also take IPv4.
            socket.socket.set_only_v6(true)?;
        }
        socket.socket.bind(&addr.into())?;
        socket.listen_on(lp, DEFAULT_BACKLOG)
    }

    /// Takes over a listening std socket (made non-blocking) on the running loop.
    pub fn from_std(listener: std::net::TcpListener) -> Result<TcpListener> {
        Ok(TcpListener {
            sock: LoopFd::adopt(&running_loop()?, OwnedFd::from(listener))?,
        })
    }

    /// Waits for a connection: the stream (non-blocking, close-on-exec) and
    /// the peer's address. Dropping the future cancels the accept; a
    /// connection accepted just before that is closed, never leaked.
    pub async fn accept(&self) -> Result<(TcpStream, SocketAddr)> {
        let (sock, addr) = self.sock.accept().await?;
        Ok((TcpStream::from_sock(sock), inet(addr)?))
    }

    /// The address listened on.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(inet(self.sock.sock_ref().local_addr()?)?)
    }

    /// Refuses new connections at once (`shutdown` on a listening socket
    /// stops it listening; pending accepts fail), even while an accept is
    /// still in flight and holds the descriptor open.
    pub(crate) fn stop(&self) {
        let _ = self.sock.sock_ref().shutdown(std::net::Shutdown::Both);
    }
}

impl std::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpListener")
            .field("fd", &self.sock.fd())
            .field("addr", &self.local_addr().ok())
            .finish()
    }
}

sock_fd_traits!(TcpListener);

/// A TCP connection. Dropping it closes the connection.
///
/// Two ways to read and write, on the same stream, in any order:
/// - **owned buffers** ([`read_owned`](Self::read_owned),
///   [`write_owned`](Self::write_owned),
///   [`write_all_owned`](Self::write_all_owned)): the buffer is moved in
///   and handed back with the result, so there is no copy, io_uring does
///   the transfer as a real completion, and a read cancelled midway loses
///   nothing (the next read gets what the kernel had delivered). Use these
///   in your own protocol code.
/// - **futures-io** (`AsyncRead`/`AsyncWrite`, so `AsyncReadExt::read(&mut
///   buf)`, `read_exact`, `write_all(bytes)`, `BufReader`, codecs): for
///   crates written against those traits. The slice is only lent for one
///   poll, so these try the syscall on it directly and wait for readiness.
///
/// Their names differ, so importing `futures::io::AsyncReadExt` or
/// `AsyncWriteExt` needs no disambiguation:
///
/// ```
/// use evloop::net::{TcpListener, TcpStream};
/// use futures::io::{AsyncReadExt, AsyncWriteExt};
///
/// evloop::run(async {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let addr = listener.local_addr()?;
///     let server = evloop::spawn(async move {
///         let (mut conn, _peer) = listener.accept().await?;
///         let mut buf = [0u8; 5];
///         conn.read_exact(&mut buf).await?; // futures-io
///         let (res, _) = conn.write_all_owned(buf.to_vec()).await; // owned
///         res?;
///         Ok::<_, evloop::Error>(())
///     })?;
///     let mut client = TcpStream::connect(addr).await?;
///     client.write_all(b"hello").await?; // futures-io
///     let mut buf = [0u8; 16];
///     let n = client.read(&mut buf).await?; // futures-io
///     assert_eq!(&buf[..n], b"hello");
///     server.await??;
///     Ok::<_, evloop::Error>(())
/// })??;
/// # Ok::<_, evloop::Error>(())
/// ```
pub struct TcpStream {
    core: StreamCore,
}

stream_api!(TcpStream);

impl TcpStream {
    pub(crate) fn from_sock(sock: Rc<LoopFd>) -> TcpStream {
        TcpStream {
            core: StreamCore::new(sock),
        }
    }

    /// Connects to `addr` on the running loop, trying each address in turn
    /// (a host name is resolved on the loop's executor first, see
    /// [`EventLoop::getaddrinfo`]). A single address nobody listens on is
    /// its own `ConnectionRefused`; with a host name or several addresses,
    /// a failure is a [`ConnectError`](crate::net::ConnectError) naming the
    /// host and every address tried (of their common kind), and a name
    /// that does not resolve a [`ResolveError`](crate::net::ResolveError).
    /// For happy eyeballs, see [`EventLoop::create_connection_with`].
    pub async fn connect(addr: impl ToSocketAddrs) -> Result<TcpStream> {
        Self::connect_on(&running_loop()?, addr, ConnectOptions::default()).await
    }

    pub(crate) async fn connect_on(
        lp: &EventLoop,
        addr: impl ToSocketAddrs,
        options: ConnectOptions,
    ) -> Result<TcpStream> {
        connect_target(lp, addr.to_target()?, options).await
    }

    /// Takes over a connected std stream (made non-blocking) on the running loop.
    pub fn from_std(stream: std::net::TcpStream) -> Result<TcpStream> {
        let sock = LoopFd::adopt(&running_loop()?, OwnedFd::from(stream))?;
        Ok(TcpStream::from_sock(sock))
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> Result<SocketAddr> {
        Ok(inet(self.core.sock.sock_ref().peer_addr()?)?)
    }

    /// The local address.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(inet(self.core.sock.sock_ref().local_addr()?)?)
    }

    /// `TCP_NODELAY`: send small writes at once instead of coalescing them.
    pub fn set_nodelay(&self, on: bool) -> Result<()> {
        Ok(self.core.sock.sock_ref().set_tcp_nodelay(on)?)
    }

    /// Whether `TCP_NODELAY` is on.
    pub fn nodelay(&self) -> Result<bool> {
        Ok(self.core.sock.sock_ref().tcp_nodelay()?)
    }
}
