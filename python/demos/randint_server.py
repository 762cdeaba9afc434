"""Randint-as-a-service: a TCP server that thinks, then answers.

After the talk's demo server. Each line a client sends is an upper bound
``k``; the server "thinks about it" for ``--think`` seconds (an
``asyncio.sleep``, so it keeps serving everyone else meanwhile), then answers
one line with a random integer in ``[0, k]``. A line that is not a
non-negative integer gets ``error: ...``. One connection may ask many times.

    python randint_server.py --port 8080
    python randint_client.py --port 8080

It prints ``listening on HOST:PORT`` once it accepts connections (``--port 0``
picks a free port) and, on Ctrl-C, how many answers it gave.
"""

import argparse
import asyncio
import random

import evloop


class Stats:
    answers = 0


async def serve_client(reader, writer, think):
    try:
        while line := await reader.readline():
            text = line.decode("ascii", "replace").strip()
            if not text.isdigit():
                writer.write(f"error: not a non-negative integer: {text[:40]!r}\n".encode())
            else:
                await asyncio.sleep(think)  # "thinking about it"
                writer.write(f"{random.randint(0, int(text))}\n".encode())
                Stats.answers += 1
            await writer.drain()
    except ConnectionError:
        pass  # the client went away mid-answer: nothing to tell it
    finally:
        writer.close()


async def main(args):
    server = await asyncio.start_server(
        lambda r, w: serve_client(r, w, args.think), args.host, args.port, backlog=1024
    )
    host, port = server.sockets[0].getsockname()[:2]
    print(f"listening on {host}:{port}", flush=True)
    async with server:
        await server.serve_forever()


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--think", type=float, default=0.05, help="seconds of thinking per answer")
    return p.parse_args()


if __name__ == "__main__":
    try:
        evloop.run(main(parse_args()))
    except KeyboardInterrupt:
        print(f"stopped after {Stats.answers} answers", flush=True)
