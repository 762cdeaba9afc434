"""A concurrent web fetcher on plain asyncio streams.

After the talk's web-scraper demo, without a third-party HTTP client: each
URL is fetched with an HTTP/1.1 GET over ``asyncio.open_connection``
(``Connection: close``; the body read by ``Content-Length``, chunked
transfer coding or to end of stream), at most ``--concurrency`` at a time.
Only ``http://`` URLs. Prints one line per URL, ``got (STATUS, BYTES) URL``,
then a summary; exits non-zero if any fetch failed.

    python fetcher.py http://127.0.0.1:8000/a http://127.0.0.1:8000/b
    python fetcher.py --url-file urls.txt --concurrency 50
"""

import argparse
import asyncio
import sys
import time
from urllib.parse import urlsplit

import evloop


class FetchError(Exception):
    """A URL that could not be fetched, with the reason."""


async def read_chunked(reader):
    body = bytearray()
    while True:
        size_line = await reader.readline()
        try:
            size = int(size_line.split(b";")[0].strip(), 16)
        except ValueError:
            raise FetchError(f"bad chunk size line {size_line[:40]!r}") from None
        if size == 0:
            # trailers, up to the empty line
            while (await reader.readline()).strip():
                pass
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)  # CRLF after each chunk


async def fetch(url, timeout):
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise FetchError(f"not an http:// URL: {url}")
    port = parts.port or 80
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    async with asyncio.timeout(timeout) if hasattr(asyncio, "timeout") else _NoTimeout():
        reader, writer = await asyncio.open_connection(parts.hostname, port)
        try:
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                "User-Agent: evloop-fetcher\r\nConnection: close\r\n\r\n".encode("latin-1")
            )
            await writer.drain()
            status_line = await reader.readline()
            fields = status_line.split(None, 2)
            if len(fields) < 2 or not fields[0].startswith(b"HTTP/"):
                raise FetchError(f"bad status line {status_line[:60]!r}")
            status = int(fields[1])
            headers = {}
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            if headers.get("transfer-encoding", "").lower() == "chunked":
                body = await read_chunked(reader)
            elif "content-length" in headers:
                body = await reader.readexactly(int(headers["content-length"]))
            else:
                body = await reader.read()
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass
    return status, body


class _NoTimeout:
    """Python 3.10 has no asyncio.timeout: no bound there (the test bounds the run)."""

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return False


async def main(args):
    urls = list(args.urls)
    if args.url_file:
        with open(args.url_file) as f:
            urls += [line.strip() for line in f if line.strip()]
    limit = asyncio.Semaphore(args.concurrency)

    async def one(url):
        async with limit:
            try:
                status, body = await fetch(url, args.timeout)
            except (OSError, asyncio.IncompleteReadError, FetchError, TimeoutError) as exc:
                print(f"failed {url}: {type(exc).__name__}: {exc}", flush=True)
                return None
            print(f"got ({status}, {len(body)}) {url}", flush=True)
            return len(body)

    start = time.monotonic()
    sizes = await asyncio.gather(*(one(u) for u in urls))
    ok = [s for s in sizes if s is not None]
    print(
        f"fetched {len(ok)} of {len(urls)} URLs, {sum(ok)} bytes "
        f"in {time.monotonic() - start:.3f}s"
    )
    return len(ok) == len(urls)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("urls", nargs="*")
    p.add_argument("--url-file", help="a file with one URL a line")
    p.add_argument("--concurrency", type=int, default=20)
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per URL")
    return p.parse_args()


if __name__ == "__main__":
    sys.exit(0 if evloop.run(main(parse_args())) else 1)
