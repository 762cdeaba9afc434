//! Networking: TCP, UDP and Unix sockets owned by the loop, a server helper
//! in the spirit of asyncio's `create_server`, and `sock_*` operations on
//! sockets the user created.
//!
//! Every method that performs I/O takes its buffer by value and hands it
//! back with the result ([`BufResult`](crate::buf::BufResult)), so it is
//! sound on completion backends (the stream methods are named
//! `read_owned`/`write_owned`/`write_all_owned`, so they never hide
//! futures-io's `AsyncReadExt::read` or `AsyncWriteExt::write_all`). The streams also implement futures-io's
//! `AsyncRead`/`AsyncWrite` for runtime-agnostic crates: those traits lend a
//! slice for one poll only, so that path never hands it to the backend; it
//! tries the non-blocking syscall on the slice and waits for readiness with
//! a memory-free poll operation when it would block. No copy is made, and a
//! poll that returned `Pending` has transferred nothing.
//!
//! Constructors that are not methods of [`EventLoop`](crate::EventLoop)
//! (`TcpStream::connect`, `TcpListener::bind`, ...) use the loop running on
//! the calling thread and fail with
//! [`Error::NoRunningLoop`](crate::Error::NoRunningLoop) outside one.
//!
//! Every call returns [`crate::Result`] (`Result<T, evloop::Error>`), as
//! the rest of the API does; what the OS refused is an
//! [`Error::Io`](crate::Error::Io) naming the address or path concerned
//! (`connect to 127.0.0.1:9: Connection refused (os error 111)`) and
//! keeping its [`io::ErrorKind`](std::io::ErrorKind) ([`Error::kind`](crate::Error::kind)).
//! The owned-buffer methods are no exception: their
//! [`BufResult`](crate::buf::BufResult) is `(Result<T>, B)`, so an owned
//! read, `create_connection` and a file open mix in one `?` chain or
//! `futures::try_join!`. Only the futures-io trait impls return
//! `io::Error`, as those traits require (of the same kind; converting it
//! back gives the `evloop::Error` again). Address arguments are
//! this module's [`ToSocketAddrs`]: host names are resolved on the loop's
//! executor by the calls that can wait ([`EventLoop::getaddrinfo`](crate::EventLoop::getaddrinfo),
//! `connect`, `create_connection`); the synchronous ones (`bind`,
//! `create_server`) take addresses and `localhost` only (see [`dns`]).
//!
//! Sockets are non-blocking and close-on-exec, and are closed when the
//! object is dropped (after every operation on them has ended).

pub mod dns;
mod server;
pub(crate) mod socket;
mod stream;
mod tcp;
mod udp;
mod unix;
mod user_socket;

use std::io;
use std::net::SocketAddr;

use crate::loop_core::error::{Error, Result};

pub use dns::{
    ConnectError, ConnectOptions, ResolveError, Resolver, SystemResolver, Target, ToSocketAddrs,
};
pub use server::{any_host, Server, ServerOptions, WaitClosed};
pub use stream::{ReadHalf, WriteHalf};
pub use tcp::{TcpListener, TcpSocket, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixListener, UnixStream};

/// The listen backlog used unless one is given: large enough that a burst
/// of a thousand connects is not dropped while the loop is busy.
pub const DEFAULT_BACKLOG: u32 = 1024;

/// Resolves `addr` without waiting: addresses and `localhost` only (see [`dns`]).
pub(crate) fn resolve<A: ToSocketAddrs>(addr: A) -> Result<Vec<SocketAddr>> {
    Ok(dns::resolve_now(&addr)?)
}

/// The internet address inside `addr`.
pub(crate) fn inet(addr: socket2::SockAddr) -> io::Result<SocketAddr> {
    addr.as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an internet socket address"))
}

/// One error for several failed attempts (asyncio's "Multiple exceptions"),
/// each already naming what it tried (`bind 127.0.0.1:80`): the error
/// itself when there was one, or when all have the same text; otherwise an
/// [`Error::Io`] listing them all, of their common kind if they share one
/// (so "connection refused" on every address stays `ConnectionRefused`).
pub(crate) fn combine_errors(mut errors: Vec<Error>) -> Error {
    let Some(first) = errors.first() else {
        return io::Error::new(io::ErrorKind::InvalidInput, "no address to try").into();
    };
    let kind = first.kind();
    let text = first.to_string();
    if errors.len() == 1 || errors.iter().all(|e| e.to_string() == text) {
        return errors.swap_remove(0);
    }
    let same_kind = errors.iter().all(|e| e.kind() == kind);
    let list: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    let kind = if same_kind {
        kind
    } else {
        io::ErrorKind::Other
    };
    io::Error::new(kind, format!("Multiple exceptions: {}", list.join("; "))).into()
}
