"""Randint-as-a-service, the client: one request at a time, then all at once.

After the talk's asyncio client. Asks the server of ``randint_server.py`` for
``--requests`` random integers, first one after another, then all
concurrently (one connection each, ``asyncio.gather``), checks every answer
is in ``[0, k]`` and prints how long each way took. Against a server that
thinks for T seconds, the first way takes about ``requests x T``, the second
about ``T``.

    python randint_client.py --port 8080 --requests 100
"""

import argparse
import asyncio
import random
import sys
import time

import evloop


async def get_random(host, port, k):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"{k}\n".encode())
        await writer.drain()
        answer = int(await reader.readline())
    finally:
        writer.close()
        await writer.wait_closed()
    if not 0 <= answer <= k:
        raise ValueError(f"asked for [0, {k}], got {answer}")
    return answer


async def main(args):
    bounds = [random.randint(0, 10_000) for _ in range(args.requests)]

    start = time.monotonic()
    sequential = [await get_random(args.host, args.port, k) for k in bounds[: args.sequential]]
    seq_time = time.monotonic() - start
    print(f"{len(sequential)} requests one at a time: {seq_time:.3f}s", flush=True)

    start = time.monotonic()
    answers = await asyncio.gather(*(get_random(args.host, args.port, k) for k in bounds))
    conc_time = time.monotonic() - start
    print(f"{len(answers)} requests all at once: {conc_time:.3f}s", flush=True)
    print(f"answers in range: {len(sequential) + len(answers)}")
    print(f"first answers: {answers[:5]}")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--requests", type=int, default=100, help="concurrent requests")
    p.add_argument(
        "--sequential", type=int, default=10, help="requests made one at a time first"
    )
    return p.parse_args()


if __name__ == "__main__":
    try:
        evloop.run(main(parse_args()))
    except (OSError, ValueError) as exc:
        sys.exit(f"randint client failed: {exc}")
