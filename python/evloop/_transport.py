"""evloop's socket transports: asyncio's own, with a cheaper read.

asyncio's ``_SelectorSocketTransport`` reads with ``sock.recv(max_size)``,
which allocates (and, with glibc, maps and unmaps) a 256 KiB ``bytes`` per
read. This subclass reads through ``evloop._core.recv``, which receives
straight into a heap ``bytes`` of at most ``_core.READ_CAP`` bytes (below
glibc's mmap threshold) and shrinks it to what arrived. Everything else
(writes, flow control, EOF, closing, buffered protocols,
``get_extra_info``) is asyncio's code, unchanged.

The datagram transport has the same problem with ``recvfrom(max_size)``;
it receives with ``recvfrom_into`` into a buffer the loop keeps (CPython
still converts the address, exactly as for ``recvfrom``) and hands the
protocol a ``bytes`` copy of the datagram.
"""

from asyncio import selector_events

from . import _core


def _checks_fd_has_no_transport(method):
    # 3.12+ asyncio refuses a second transport on a descriptor that already
    # has one; whatever the patch release, do what this Python's loop does.
    return "_ensure_fd_no_transport" in method.__code__.co_names


_BASE = selector_events.BaseSelectorEventLoop
CHECKS_FD_HAS_NO_TRANSPORT = _checks_fd_has_no_transport(_BASE._make_socket_transport)
DATAGRAM_CHECKS_FD_HAS_NO_TRANSPORT = _checks_fd_has_no_transport(_BASE._make_datagram_transport)


class SocketTransport(selector_events._SelectorSocketTransport):
    """asyncio's selector socket transport, reading through ``_core.recv``."""

    def _read_ready__data_received(self):
        # The same steps as asyncio's, but for the read itself.
        if self._conn_lost:
            return
        try:
            # fileno(), not the cached _sock_fd: a socket closed under the
            # transport reads as -1 (EBADF, as asyncio's recv would raise),
            # never as a descriptor number reused by another socket.
            data = _core.recv(self._sock.fileno(), self.max_size)
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal read error on socket transport")
            return

        if not data:
            self._read_ready__on_eof()
            return

        try:
            self._protocol.data_received(data)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.data_received() call failed.")


class DatagramTransport(selector_events._SelectorDatagramTransport):
    """asyncio's selector datagram transport, receiving into the loop's buffer."""

    def _read_ready(self):
        # The same steps as asyncio's, but for the read itself.
        if self._conn_lost:
            return
        try:
            buf = self._loop._evloop_recv_buffer(self.max_size)
            nbytes, addr = self._sock.recvfrom_into(buf, self.max_size)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            self._protocol.error_received(exc)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal read error on datagram transport")
        else:
            self._protocol.datagram_received(bytes(buf[:nbytes]), addr)
