//! UDP: [`UdpSocket`].

use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::rc::Rc;

use socket2::{Domain, Protocol, Type};

use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::io::fd::LoopFd;
use crate::io::net::socket::{new_socket, running_loop};
use crate::io::net::stream::sock_fd_traits;
use crate::io::net::{combine_errors, inet, resolve, ToSocketAddrs};
use crate::loop_core::error::{Error, Result};

/// A UDP socket.
///
/// `SO_REUSEADDR`, `SO_REUSEPORT` and `SO_BROADCAST` stay off unless
/// requested (broadcast with [`set_broadcast`](Self::set_broadcast); the
/// reuse options on a `socket2::Socket` handed to [`from_std`](Self::from_std)).
///
/// An ICMP "port unreachable" for an earlier datagram shows up on a
/// *connected* socket as one `ConnectionRefused` error from the next
/// receive (or send); the socket stays usable and later datagrams arrive.
/// An unconnected socket never sees these errors on Linux.
///
/// Datagrams travel in owned buffers, handed back with the result:
///
/// ```
/// use evloop::net::UdpSocket;
///
/// evloop::run(async {
///     let a = UdpSocket::bind("127.0.0.1:0")?;
///     let b = UdpSocket::bind("127.0.0.1:0")?;
///     let (sent, _) = a.send_to(b"ping".to_vec(), b.local_addr()?).await;
///     assert_eq!(sent?, 4);
///     let (got, buf) = b.recv_from(Vec::with_capacity(64)).await;
///     let (n, from) = got?;
///     assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr()?));
///     Ok::<_, evloop::Error>(())
/// })??;
/// # Ok::<_, evloop::Error>(())
/// ```
pub struct UdpSocket {
    sock: Rc<LoopFd>,
}

impl UdpSocket {
    /// Binds to the first address of `addr` that works, on the running loop.
    /// Synchronous: addresses and `localhost` only (see [`crate::net::dns`]).
    pub fn bind(addr: impl ToSocketAddrs) -> Result<UdpSocket> {
        let lp = running_loop()?;
        let mut errors = Vec::new();
        for addr in resolve(addr)? {
            let attempt = new_socket(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
                .and_then(|s| s.bind(&addr.into()).map(|()| s))
                .map_err(|e| Error::io(format!("bind {addr}"), e));
            match attempt {
                Ok(socket) => {
                    return Ok(UdpSocket {
                        sock: LoopFd::new(&lp, socket),
                    })
                }
                Err(e) => errors.push(e),
            }
        }
        Err(combine_errors(errors))
    }

    /// Takes over a std socket (made non-blocking) on the running loop.
    /// Any socket with `AsFd` converts: `std::net::UdpSocket::from(socket2_socket)`.
    pub fn from_std(socket: std::net::UdpSocket) -> Result<UdpSocket> {
        Ok(UdpSocket {
            sock: LoopFd::adopt(&running_loop()?, OwnedFd::from(socket))?,
        })
    }

    /// Sets the default destination (the first resolved address that works)
    /// and accepts datagrams from it only. Does not block: UDP has no
    /// handshake. Synchronous: addresses and `localhost` only (see
    /// [`crate::net::dns`]; resolve names with `EventLoop::getaddrinfo`).
    pub fn connect(&self, addr: impl ToSocketAddrs) -> Result<()> {
        let mut errors = Vec::new();
        for addr in resolve(addr)? {
            match self.sock.sock_ref().connect(&addr.into()) {
                Ok(()) => return Ok(()),
                Err(e) => errors.push(Error::io(format!("connect to {addr}"), e)),
            }
        }
        Err(combine_errors(errors))
    }

    /// Sends `buf` as one datagram to `addr`; returns the count sent.
    pub fn send_to<B: IoBuf>(
        &self,
        buf: B,
        addr: SocketAddr,
    ) -> impl Future<Output = BufResult<usize, B>> + '_ {
        self.sock.send_to_inet(buf, addr.into())
    }

    /// Receives one datagram into `buf` (up to its capacity; the rest of a
    /// longer datagram is discarded): the count and the sender.
    pub async fn recv_from<B: IoBufMut>(&self, buf: B) -> BufResult<(usize, SocketAddr), B> {
        let (res, buf) = self.sock.recv_from(buf).await;
        (res.and_then(|(n, addr)| Ok((n, inet(addr)?))), buf)
    }

    /// Sends `buf` as one datagram to the connected address.
    pub fn send<B: IoBuf>(&self, buf: B) -> impl Future<Output = BufResult<usize, B>> + '_ {
        self.sock.send(buf)
    }

    /// Receives one datagram from the connected address into `buf`.
    pub fn recv<B: IoBufMut>(&self, buf: B) -> impl Future<Output = BufResult<usize, B>> + '_ {
        self.sock.recv(buf)
    }

    /// The local address.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(inet(self.sock.sock_ref().local_addr()?)?)
    }

    /// The connected address.
    pub fn peer_addr(&self) -> Result<SocketAddr> {
        Ok(inet(self.sock.sock_ref().peer_addr()?)?)
    }

    /// `SO_BROADCAST`: allow sending to broadcast addresses.
    pub fn set_broadcast(&self, on: bool) -> Result<()> {
        Ok(self.sock.sock_ref().set_broadcast(on)?)
    }

    /// Whether `SO_BROADCAST` is on.
    pub fn broadcast(&self) -> Result<bool> {
        Ok(self.sock.sock_ref().broadcast()?)
    }
}

impl std::fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpSocket")
            .field("fd", &self.sock.fd())
            .field("addr", &self.local_addr().ok())
            .finish()
    }
}

sock_fd_traits!(UdpSocket);
