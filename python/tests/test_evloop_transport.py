"""evloop's stream transport: asyncio's, reading through ``_core.recv``.

What the protocol sees must be what asyncio's transport gives it (``bytes``,
every byte in order, EOF, errors with their errno), for TCP and Unix
sockets, on the client and the server side.
"""

import asyncio
import errno
import os
import socket
import struct

import pytest

from evloop import _core, _transport
from evloop_helpers import new_loop, skip_on_asyncio_baseline

skip_on_asyncio_baseline()


class Collect(asyncio.Protocol):
    def __init__(self):
        self.chunks = []
        self.eof = False
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.chunks.append(data)

    def eof_received(self):
        self.eof = True
        return True  # keep the transport open: the server side still writes

    def connection_lost(self, exc):
        self.lost.set_result(exc)


def test_recv_returns_bytes_and_honours_max_size():
    a, b = socket.socketpair()
    with a, b:
        a.setblocking(False)
        b.sendall(b"x" * 100)
        first = _core.recv(a.fileno(), 10)
        assert type(first) is bytes and first == b"x" * 10
        assert _core.recv(a.fileno(), 1000) == b"x" * 90
        b.shutdown(socket.SHUT_WR)
        assert _core.recv(a.fileno(), 1000) == b""


def test_recv_reads_at_most_read_cap_and_loses_nothing():
    # Reads go straight into a heap bytes of at most READ_CAP (below glibc's
    # mmap threshold); what is left waits for the next read.
    assert 64 * 1024 <= _core.READ_CAP < 128 * 1024
    a, b = socket.socketpair()
    with a, b:
        for s in (a, b):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        payload = os.urandom(_core.READ_CAP + 4321)
        b.sendall(payload)
        first = _core.recv(a.fileno(), 256 * 1024)
        assert len(first) == _core.READ_CAP
        rest = _core.recv(a.fileno(), 256 * 1024)
        assert first + rest == payload


def test_recv_errors_carry_errno_and_subclass():
    a, b = socket.socketpair()
    with a, b:
        with pytest.raises(BlockingIOError) as e:
            _core.recv(a.fileno(), 10)  # no data: never blocks, even on a blocking socket
        assert e.value.errno in (errno.EAGAIN, errno.EWOULDBLOCK)
    with pytest.raises(OSError) as e:
        _core.recv(-1, 10)
    assert e.value.errno == errno.EBADF
    assert "os error" not in str(e.value)


def test_recv_reset_is_connection_reset_error():
    srv = socket.create_server(("127.0.0.1", 0))
    with srv:
        c = socket.create_connection(srv.getsockname())
        s, _ = srv.accept()
        with s:
            # SO_LINGER 0: close() sends RST.
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
            with pytest.raises(ConnectionResetError) as e:
                for _ in range(100):
                    try:
                        _core.recv(s.fileno(), 10)
                    except BlockingIOError:
                        continue
            assert e.value.errno == errno.ECONNRESET


@pytest.mark.parametrize("family", ["tcp", "unix"])
def test_every_byte_arrives_in_order_both_sides(family, tmp_path):
    payload = os.urandom(3 * 1024 * 1024 + 17)

    async def main():
        lp = asyncio.get_running_loop()
        server_side = []

        def factory():
            p = Collect()
            server_side.append(p)
            return p

        if family == "tcp":
            server = await lp.create_server(factory, "127.0.0.1", 0)
            addr = server.sockets[0].getsockname()
            tr, proto = await lp.create_connection(Collect, *addr)
        else:
            path = str(tmp_path / "s.sock")
            server = await lp.create_unix_server(factory, path)
            tr, proto = await lp.create_unix_connection(Collect, path)
        assert isinstance(tr, _transport.SocketTransport)
        assert isinstance(tr, asyncio.Transport)
        # client -> server, then server echoes it back, then both close.
        tr.write(payload)
        tr.write_eof()
        while not server_side or not server_side[0].eof:
            await asyncio.sleep(0.01)
        srv_proto = server_side[0]
        assert isinstance(srv_proto.transport, _transport.SocketTransport)
        received = b"".join(srv_proto.chunks)
        assert all(type(c) is bytes for c in srv_proto.chunks)
        assert received == payload
        srv_proto.transport.write(received)
        srv_proto.transport.close()
        while not proto.eof:
            await asyncio.sleep(0.01)
        tr.close()
        assert await proto.lost is None
        assert b"".join(proto.chunks) == payload
        server.close()
        await server.wait_closed()

    lp = new_loop()
    try:
        lp.run_until_complete(asyncio.wait_for(main(), 60))
    finally:
        lp.close()


def test_peer_reset_reaches_connection_lost():
    async def main():
        lp = asyncio.get_running_loop()
        srv = socket.create_server(("127.0.0.1", 0))
        srv.setblocking(False)
        with srv:
            connecting = asyncio.ensure_future(lp.create_connection(Collect, *srv.getsockname()))
            peer, _ = await lp.sock_accept(srv)
            tr, proto = await connecting
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            peer.close()
            exc = await asyncio.wait_for(proto.lost, 10)
            assert isinstance(exc, ConnectionResetError)
            assert exc.errno == errno.ECONNRESET
            assert tr.is_closing()

    lp = new_loop()
    try:
        lp.run_until_complete(main())
    finally:
        lp.close()


def test_socket_closed_under_the_transport_is_a_fatal_read_error():
    # asyncio's recv on a closed socket raises EBADF; evloop's read must too,
    # and must never read from whatever reuses the descriptor number.
    async def main():
        lp = asyncio.get_running_loop()
        errors = []
        lp.set_exception_handler(lambda _lp, ctx: errors.append(ctx))
        a, b = socket.socketpair()
        tr, proto = await lp.connect_accepted_socket(Collect, a)
        old_fd = tr._sock_fd
        tr._sock.close()  # behind the transport's back
        c, d = socket.socketpair()  # likely reuses the old number
        with c, d:
            d.sendall(b"not yours")
            tr._read_ready()  # as if the poll reported the old descriptor readable
            exc = await asyncio.wait_for(proto.lost, 10)
            assert isinstance(exc, OSError) and exc.errno == errno.EBADF
            assert proto.chunks == []
            # asyncio reports an OSError read failure only through
            # connection_lost (it logs it in debug mode), never the handler.
            assert errors == []
            if c.fileno() == old_fd:
                assert c.recv(100) == b"not yours"
        b.close()

    lp = new_loop()
    try:
        lp.run_until_complete(main())
    finally:
        lp.close()


class Datagrams(asyncio.DatagramProtocol):
    def __init__(self):
        self.got = asyncio.Queue()
        self.errors = asyncio.Queue()

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.got.put_nowait((data, addr))

    def error_received(self, exc):
        self.errors.put_nowait(exc)


def _run(coro):
    lp = new_loop()
    try:
        return lp.run_until_complete(asyncio.wait_for(coro, 30))
    finally:
        lp.close()


@pytest.mark.parametrize("family", ["ipv4", "ipv6", "unix"])
def test_datagrams_arrive_whole_with_their_sender(family, tmp_path):
    if family == "ipv6" and not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")

    async def main():
        lp = asyncio.get_running_loop()
        if family == "unix":
            a_addr, b_addr = str(tmp_path / "a.sock"), str(tmp_path / "b.sock")
            ta, pa = await lp.create_datagram_endpoint(Datagrams, local_addr=a_addr, family=socket.AF_UNIX)
            tb, pb = await lp.create_datagram_endpoint(Datagrams, local_addr=b_addr, family=socket.AF_UNIX)
        else:
            host = "127.0.0.1" if family == "ipv4" else "::1"
            try:
                ta, pa = await lp.create_datagram_endpoint(Datagrams, local_addr=(host, 0))
            except OSError as exc:
                pytest.skip(f"{host} not usable: {exc}")
            tb, pb = await lp.create_datagram_endpoint(Datagrams, local_addr=(host, 0))
            a_addr = ta.get_extra_info("sockname")
            b_addr = tb.get_extra_info("sockname")
        assert isinstance(ta, _transport.DatagramTransport)
        sizes = [1, 1500, 9000, 60000] if family != "unix" else [1, 1500, 9000, 100000]
        sent = [os.urandom(n) for n in sizes]
        for d in sent:
            ta.sendto(d, b_addr)
        for d in sent:
            data, addr = await pb.got.get()
            assert type(data) is bytes
            assert data == d
            # The sender's address as CPython's socket module spells it.
            if family == "unix":
                assert addr == a_addr
            else:
                assert addr[:2] == a_addr[:2]
        ta.close()
        tb.close()

    _run(main())


def test_datagram_error_reaches_error_received():
    async def main():
        lp = asyncio.get_running_loop()
        # A port nobody listens on: the kernel answers with ICMP port
        # unreachable, which a connected UDP socket reports as ECONNREFUSED.
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()
        probe.close()
        tr, proto = await lp.create_datagram_endpoint(Datagrams, remote_addr=dead)
        tr.sendto(b"anyone?")
        exc = await proto.errors.get()
        assert isinstance(exc, ConnectionRefusedError)
        assert proto.got.empty()
        tr.close()

    _run(main())
