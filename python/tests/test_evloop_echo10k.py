"""10,000 connections at once to an asyncio.start_server echo server on evloop.

The server runs in the test's process on an evloop loop (the backend under
test); the 10,000 clients run in a child process on asyncio's own loop, so a
fault shows on the server's side. Every client connects first (all 10,000
open at once on the server), then all send a framed message of their own
(4-byte length, then a body that names the client), the server echoes the
whole frame and closes; each client reads to end of stream and checks every
byte. The server counts connections and bytes; after the loop closes, the
process has the same file descriptors open as before it began.

RLIMIT_NOFILE is raised in both processes (10,000 sockets each, and more).
"""

import asyncio
import gc
import resource
import struct
import sys

from evloop_helpers import new_loop, open_fds, skip_on_asyncio_baseline

skip_on_asyncio_baseline()

N = 10_000
NEED_FDS = N + 1_000

CLIENT = r"""
import asyncio, resource, struct, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, n + 1000), max(hard, n + 1000)))

def frame(i):
    body = (b"client %d " % i) * (1 + i % 97)
    return struct.pack(">I", len(body)) + body

async def main():
    gate = asyncio.Semaphore(500)   # connects in flight at once
    async def connect(i):
        async with gate:
            for attempt in range(5):
                try:
                    return await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.2)
    conns = await asyncio.gather(*(connect(i) for i in range(n)))
    print("connected", len(conns), flush=True)
    # The server reports every connection open at once before anyone writes.
    sys.stdin.readline()
    async def talk(i, reader, writer):
        msg = frame(i)
        writer.write(msg)
        await writer.drain()
        got = await reader.read(-1)          # to end of stream: the server closes
        writer.close()
        await writer.wait_closed()
        return got == msg, len(got)
    results = await asyncio.gather(*(talk(i, r, w) for i, (r, w) in enumerate(conns)))
    good = sum(ok for ok, _ in results)
    print("echoed", good, sum(size for _, size in results), flush=True)

asyncio.run(main())
"""


def frame_total(n):
    return sum(4 + len(b"client %d " % i) * (1 + i % 97) for i in range(n))


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, max(hard, need)))


async def serve_and_drive(n):
    stats = {"open": 0, "max_open": 0, "closed": 0, "bytes": 0, "errors": []}
    all_open = asyncio.Event()

    async def echo(reader, writer):
        stats["open"] += 1
        stats["max_open"] = max(stats["max_open"], stats["open"])
        if stats["open"] == n:
            all_open.set()
        try:
            header = await reader.readexactly(4)
            body = await reader.readexactly(struct.unpack(">I", header)[0])
            writer.write(header + body)
            await writer.drain()
            stats["bytes"] += 4 + len(body)
        except Exception as exc:  # noqa: BLE001 - counted, and the test fails on it
            stats["errors"].append(repr(exc))
        finally:
            writer.close()
            await writer.wait_closed()
            stats["open"] -= 1
            stats["closed"] += 1

    server = await asyncio.start_server(echo, "127.0.0.1", 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLIENT, str(port), str(n),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        first = await asyncio.wait_for(child.stdout.readline(), 120)
        assert first == f"connected {n}\n".encode(), (first, await child.stderr.read())
        await asyncio.wait_for(all_open.wait(), 60)
        child.stdin.write(b"go\n")
        await child.stdin.drain()
        out, err = await asyncio.wait_for(child.communicate(), 120)
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    server.close()
    await server.wait_closed()
    return stats, child.returncode, out.decode(), err.decode()


def test_ten_thousand_connections_echoed_and_closed():
    raise_nofile(NEED_FDS)
    gc.collect()
    before = open_fds()
    lp = new_loop()
    try:
        stats, rc, out, err = lp.run_until_complete(serve_and_drive(N))
        lp.run_until_complete(lp.shutdown_default_executor())
    finally:
        lp.close()
    gc.collect()
    assert rc == 0, err
    assert stats["errors"] == []
    assert stats["max_open"] == N, "not every connection was open at once"
    assert stats["closed"] == N and stats["open"] == 0
    total = frame_total(N)
    assert stats["bytes"] == total
    assert out.strip() == f"echoed {N} {total}"
    assert open_fds() == before, "file descriptors leaked"
