//! Unix-domain sockets: [`UnixListener`], [`UnixStream`], [`UnixDatagram`].
//!
//! Binding to a path follows asyncio: a socket file already at the path
//! (left by a process that did not clean up) is removed and the path
//! rebound; any other file there is an `AddrInUse` error. A listener or
//! datagram socket removes its socket file when it is closed, unless the
//! path meanwhile names another file. Paths starting with a NUL byte are
//! Linux abstract addresses: no file is involved.
//!
//! Addresses are `socket2::SockAddr` (`as_pathname()`, `is_unnamed()`,
//! `as_abstract_namespace()`), since std cannot build a Unix address of
//! every kind; the peer of a socketpair is unnamed.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use socket2::{Domain, SockAddr, Socket, Type};

use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::io::fd::LoopFd;
use crate::io::net::socket::{new_pair, new_socket, running_loop};
use crate::io::net::stream::{sock_fd_traits, stream_api, StreamCore};
use crate::io::net::DEFAULT_BACKLOG;
use crate::loop_core::error::{Error, Result};
use crate::loop_core::EventLoop;

/// The first pause before retrying a connect refused for a full backlog.
const BACKLOG_RETRY_MIN: std::time::Duration = std::time::Duration::from_millis(1);
/// The longest pause between such retries.
const BACKLOG_RETRY_MAX: std::time::Duration = std::time::Duration::from_millis(50);

/// The socket file a socket bound, identified by device and inode so that
/// a file someone else put at the same path later is left alone.
#[derive(Debug)]
struct BoundPath {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl BoundPath {
    /// Removes the file if it is still the one we bound.
    fn remove(self) {
        if let Ok(meta) = std::fs::symlink_metadata(&self.path) {
            if meta.file_type().is_socket() && meta.dev() == self.dev && meta.ino() == self.ino {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

fn is_abstract(path: &Path) -> bool {
    path.as_os_str().as_bytes().first() == Some(&0)
}

/// Binds `socket` to `path`, replacing a stale socket file and refusing any
/// other kind of file; returns what to remove on close.
fn bind_path(socket: &Socket, path: &Path) -> io::Result<Option<BoundPath>> {
    let addr = SockAddr::unix(path)?;
    if is_abstract(path) {
        socket.bind(&addr)?;
        return Ok(None);
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        },
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "address {} is already in use (not a socket)",
                    path.display()
                ),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    socket.bind(&addr)?;
    let meta = std::fs::symlink_metadata(path)?;
    Ok(Some(BoundPath {
        path: path.to_owned(),
        dev: meta.dev(),
        ino: meta.ino(),
    }))
}

/// A listening Unix stream socket.
///
/// Dropping it closes the socket and removes its socket file.
///
/// ```
/// use evloop::net::{UnixListener, UnixStream};
/// use futures::io::{AsyncReadExt, AsyncWriteExt};
///
/// let path = std::env::temp_dir().join(format!("evloop-doc-{}.sock", std::process::id()));
/// evloop::run({
///     let path = path.clone();
///     async move {
///         let listener = UnixListener::bind(&path)?;
///         let mut client = UnixStream::connect(&path).await?;
///         let (mut conn, _peer) = listener.accept().await?; // peer: unnamed
///         client.write_all(b"over a socket file").await?;
///         client.close().await?; // end of stream for `conn`
///         let mut got = String::new();
///         conn.read_to_string(&mut got).await?;
///         assert_eq!(got, "over a socket file");
///         Ok::<_, evloop::Error>(())
///     }
/// })??;
/// assert!(!path.exists()); // the listener removed its socket file
/// # Ok::<_, evloop::Error>(())
/// ```
pub struct UnixListener {
    pub(crate) sock: Rc<LoopFd>,
    bound: RefCell<Option<BoundPath>>,
}

impl UnixListener {
    /// Binds to `path` (see the module docs for an existing file there)
    /// and listens, on the running loop.
    pub fn bind(path: impl AsRef<Path>) -> Result<UnixListener> {
        Self::bind_on(&running_loop()?, path.as_ref())
    }

    pub(crate) fn bind_on(lp: &EventLoop, path: &Path) -> Result<UnixListener> {
        let socket = new_socket(Domain::UNIX, Type::STREAM, None)?;
        let bound = Error::ctx(bind_path(&socket, path), || {
            format!("bind {}", path.display())
        })?;
        let listener = UnixListener {
            sock: LoopFd::new(lp, socket),
            bound: RefCell::new(bound),
        };
        listener.sock.sock_ref().listen(DEFAULT_BACKLOG as i32)?;
        Ok(listener)
    }

    /// Takes over a listening std socket (made non-blocking) on the running
    /// loop; its socket file, if it has one, is removed on close.
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> Result<UnixListener> {
        let sock = LoopFd::adopt(&running_loop()?, OwnedFd::from(listener))?;
        let bound = sock
            .sock_ref()
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(Path::to_owned))
            .and_then(|path| {
                let meta = std::fs::symlink_metadata(&path).ok()?;
                Some(BoundPath {
                    path,
                    dev: meta.dev(),
                    ino: meta.ino(),
                })
            });
        Ok(UnixListener {
            sock,
            bound: RefCell::new(bound),
        })
    }

    /// Waits for a connection: the stream and the peer's (usually unnamed) address.
    pub async fn accept(&self) -> Result<(UnixStream, SockAddr)> {
        let (sock, addr) = self.sock.accept().await?;
        Ok((UnixStream::from_sock(sock), addr))
    }

    /// The address listened on.
    pub fn local_addr(&self) -> Result<SockAddr> {
        Ok(self.sock.sock_ref().local_addr()?)
    }

    /// Refuses new connections at once and removes the socket file.
    pub(crate) fn stop(&self) {
        let _ = self.sock.sock_ref().shutdown(std::net::Shutdown::Both);
        if let Some(bound) = self.bound.borrow_mut().take() {
            bound.remove();
        }
    }
}

impl Drop for UnixListener {
    fn drop(&mut self) {
        self.sock.stop_listening_if_held();
        if let Some(bound) = self.bound.get_mut().take() {
            bound.remove();
        }
    }
}

impl std::fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnixListener")
            .field("fd", &self.sock.fd())
            .field(
                "path",
                &self.bound.borrow().as_ref().map(|b| b.path.clone()),
            )
            .finish()
    }
}

sock_fd_traits!(UnixListener);

/// A Unix stream connection.
///
/// Besides the owned-buffer methods it implements futures-io's
/// `AsyncRead`/`AsyncWrite`. Dropping it closes the connection.
/// [`UnixListener`]'s example connects one by path; a connected pair
/// (asyncio's `socket.socketpair()` made async) needs no file:
///
/// ```
/// use evloop::net::UnixStream;
///
/// evloop::run(async {
///     let (a, b) = UnixStream::pair()?;
///     let (res, _) = a.write_all_owned(b"ping".as_slice()).await;
///     res?;
///     let (res, buf) = b.read_owned(Vec::with_capacity(16)).await;
///     assert_eq!(res?, 4);
///     assert_eq!(buf, b"ping");
///     Ok::<_, evloop::Error>(())
/// })??;
/// # Ok::<_, evloop::Error>(())
/// ```
pub struct UnixStream {
    core: StreamCore,
}

stream_api!(UnixStream);

impl UnixStream {
    pub(crate) fn from_sock(sock: Rc<LoopFd>) -> UnixStream {
        UnixStream {
            core: StreamCore::new(sock),
        }
    }

    /// Connects to the socket at `path` on the running loop. A missing path
    /// is `NotFound`; a path nobody listens on is `ConnectionRefused`. While
    /// the listener's backlog is full, the connect is retried (the kernel
    /// gives no readiness signal for that), pausing 1 ms, doubling up to 50 ms.
    pub async fn connect(path: impl AsRef<Path>) -> Result<UnixStream> {
        Self::connect_on(&running_loop()?, path.as_ref()).await
    }

    pub(crate) async fn connect_on(lp: &EventLoop, path: &Path) -> Result<UnixStream> {
        Error::ctx(Self::connect_io(lp, path).await, || {
            format!("connect to {}", path.display())
        })
    }

    async fn connect_io(lp: &EventLoop, path: &Path) -> io::Result<UnixStream> {
        let addr = SockAddr::unix(path)?;
        let sock = LoopFd::new(lp, new_socket(Domain::UNIX, Type::STREAM, None)?);
        // A listener with a full backlog answers EAGAIN, and nothing
        // signals when it has room again: retry with a growing pause, as a
        // blocking connect would wait (bound it with `wait_for`).
        let mut pause = BACKLOG_RETRY_MIN;
        loop {
            match sock.connect(addr.clone()).await {
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                    lp.sleep(pause).await;
                    pause = (pause * 2).min(BACKLOG_RETRY_MAX);
                }
                Err(e) => return Err(e),
                Ok(()) => return Ok(UnixStream::from_sock(sock)),
            }
        }
    }

    /// A connected pair of streams on the running loop.
    pub fn pair() -> Result<(UnixStream, UnixStream)> {
        let lp = running_loop()?;
        let (a, b) = new_pair(Type::STREAM)?;
        Ok((
            UnixStream::from_sock(LoopFd::new(&lp, a)),
            UnixStream::from_sock(LoopFd::new(&lp, b)),
        ))
    }

    /// Takes over a connected std stream (made non-blocking) on the running loop.
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> Result<UnixStream> {
        let sock = LoopFd::adopt(&running_loop()?, OwnedFd::from(stream))?;
        Ok(UnixStream::from_sock(sock))
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> Result<SockAddr> {
        Ok(self.core.sock.sock_ref().peer_addr()?)
    }

    /// The local address.
    pub fn local_addr(&self) -> Result<SockAddr> {
        Ok(self.core.sock.sock_ref().local_addr()?)
    }
}

/// A Unix datagram socket.
///
/// One bound to a path removes its socket file when dropped.
///
/// ```
/// use evloop::net::UnixDatagram;
///
/// let path = std::env::temp_dir().join(format!("evloop-doc-dgram-{}.sock", std::process::id()));
/// evloop::run({
///     let path = path.clone();
///     async move {
///         let server = UnixDatagram::bind(&path)?;
///         let client = UnixDatagram::unbound()?;
///         let (res, _) = client.send_to(b"one datagram".as_slice(), &path).await;
///         res?;
///         let (res, buf) = server.recv_from(Vec::with_capacity(64)).await;
///         let (n, _from) = res?; // an unbound sender is unnamed
///         assert_eq!(&buf[..n], b"one datagram");
///         Ok::<_, evloop::Error>(())
///     }
/// })??;
/// assert!(!path.exists());
/// # Ok::<_, evloop::Error>(())
/// ```
pub struct UnixDatagram {
    sock: Rc<LoopFd>,
    bound: Option<BoundPath>,
}

impl UnixDatagram {
    fn new(sock: Rc<LoopFd>, bound: Option<BoundPath>) -> UnixDatagram {
        UnixDatagram { sock, bound }
    }

    /// A socket bound to `path` (see the module docs for an existing file
    /// there), on the running loop.
    pub fn bind(path: impl AsRef<Path>) -> Result<UnixDatagram> {
        let lp = running_loop()?;
        let socket = new_socket(Domain::UNIX, Type::DGRAM, None)?;
        let path = path.as_ref();
        let bound = Error::ctx(bind_path(&socket, path), || {
            format!("bind {}", path.display())
        })?;
        Ok(UnixDatagram::new(LoopFd::new(&lp, socket), bound))
    }

    /// A socket bound to no address, on the running loop.
    pub fn unbound() -> Result<UnixDatagram> {
        let lp = running_loop()?;
        let socket = new_socket(Domain::UNIX, Type::DGRAM, None)?;
        Ok(UnixDatagram::new(LoopFd::new(&lp, socket), None))
    }

    /// A connected pair of unnamed datagram sockets on the running loop.
    pub fn pair() -> Result<(UnixDatagram, UnixDatagram)> {
        let lp = running_loop()?;
        let (a, b) = new_pair(Type::DGRAM)?;
        Ok((
            UnixDatagram::new(LoopFd::new(&lp, a), None),
            UnixDatagram::new(LoopFd::new(&lp, b), None),
        ))
    }

    /// Takes over a std socket (made non-blocking) on the running loop.
    pub fn from_std(socket: std::os::unix::net::UnixDatagram) -> Result<UnixDatagram> {
        let sock = LoopFd::adopt(&running_loop()?, OwnedFd::from(socket))?;
        Ok(UnixDatagram::new(sock, None))
    }

    /// Sets the default destination to the socket at `path`.
    pub fn connect(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let connected = SockAddr::unix(path).and_then(|a| self.sock.sock_ref().connect(&a));
        Error::ctx(connected, || format!("connect to {}", path.display()))
    }

    /// Sends `buf` as one datagram to the socket at `path`.
    pub async fn send_to<B: IoBuf>(&self, buf: B, path: impl AsRef<Path>) -> BufResult<usize, B> {
        match SockAddr::unix(path) {
            Ok(addr) => self.sock.send_to(buf, addr).await,
            Err(e) => (Err(e.into()), buf),
        }
    }

    /// Receives one datagram into `buf`: the count and the sender (unnamed
    /// for an unbound sender or a socketpair peer).
    pub fn recv_from<B: IoBufMut>(
        &self,
        buf: B,
    ) -> impl Future<Output = BufResult<(usize, SockAddr), B>> + '_ {
        self.sock.recv_from(buf)
    }

    /// Sends `buf` as one datagram to the connected socket.
    pub fn send<B: IoBuf>(&self, buf: B) -> impl Future<Output = BufResult<usize, B>> + '_ {
        self.sock.send(buf)
    }

    /// Receives one datagram from the connected socket into `buf`.
    pub fn recv<B: IoBufMut>(&self, buf: B) -> impl Future<Output = BufResult<usize, B>> + '_ {
        self.sock.recv(buf)
    }

    /// The local address.
    pub fn local_addr(&self) -> Result<SockAddr> {
        Ok(self.sock.sock_ref().local_addr()?)
    }

    /// The connected address.
    pub fn peer_addr(&self) -> Result<SockAddr> {
        Ok(self.sock.sock_ref().peer_addr()?)
    }
}

impl Drop for UnixDatagram {
    fn drop(&mut self) {
        if let Some(bound) = self.bound.take() {
            bound.remove();
        }
    }
}

impl std::fmt::Debug for UnixDatagram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnixDatagram")
            .field("fd", &self.sock.fd())
            .field("path", &self.bound.as_ref().map(|b| &b.path))
            .finish()
    }
}

sock_fd_traits!(UnixDatagram);
