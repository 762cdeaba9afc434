//! Making sockets: always non-blocking and close-on-exec.

use std::io;

use socket2::{Domain, Protocol, Socket, Type};

use crate::loop_core::EventLoop;

/// A new non-blocking, close-on-exec socket.
pub(crate) fn new_socket(domain: Domain, ty: Type, proto: Option<Protocol>) -> io::Result<Socket> {
    Socket::new(domain, ty.nonblocking().cloexec(), proto)
}

/// A connected pair of non-blocking, close-on-exec Unix sockets.
pub(crate) fn new_pair(ty: Type) -> io::Result<(Socket, Socket)> {
    Socket::pair(Domain::UNIX, ty.nonblocking().cloexec(), None)
}

/// The loop running on this thread, as an I/O error when there is none.
pub(crate) fn running_loop() -> io::Result<EventLoop> {
    crate::get_running_loop().map_err(io::Error::from)
}
