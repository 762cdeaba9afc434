"""Producer and consumers on an asyncio.Queue.

After the talk's producer/consumer demo. A producer generates ``--items``
numbers at random intervals and puts each, stamped with its creation time,
on an ``asyncio.Queue``; ``--consumers`` consumers take them, "process" each
(square it, after an ``asyncio.sleep`` of ``--work`` seconds) and report how
long the item waited. The producer never waits for the consumers, so the
latency stays about ``--work`` instead of growing with the backlog.
``queue.join()`` tells when all is processed; then the consumers are
cancelled.

    python producer_consumer.py --items 20
"""

import argparse
import asyncio
import random
import time

import evloop


async def produce(queue, items, interval):
    for value in range(1, items + 1):
        await asyncio.sleep(random.uniform(0, interval))
        print(f"-- generated item {value}", flush=True)
        await queue.put((value, time.monotonic()))


async def consume(name, queue, work, latencies):
    while True:
        value, made = await queue.get()
        try:
            await asyncio.sleep(work)
            latency = time.monotonic() - made
            latencies.append(latency)
            print(f"+++ {name} processed value {value * value} after {latency:.3f}s", flush=True)
        finally:
            queue.task_done()


async def main(args):
    start = time.monotonic()
    queue = asyncio.Queue()
    latencies = []
    consumers = [
        asyncio.create_task(consume(f"consumer-{i}", queue, args.work, latencies))
        for i in range(args.consumers)
    ]
    await produce(queue, args.items, args.interval)
    await queue.join()
    for task in consumers:
        task.cancel()
    results = await asyncio.gather(*consumers, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    total = time.monotonic() - start
    avg = sum(latencies) / len(latencies) if latencies else 0.0
    print(f"Processed {len(latencies)} items. Total time: {total:.3f}s, avg latency: {avg:.3f}s")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=20)
    p.add_argument("--consumers", type=int, default=3)
    p.add_argument("--interval", type=float, default=0.2, help="max seconds between items")
    p.add_argument("--work", type=float, default=0.1, help="seconds of work per item")
    return p.parse_args()


if __name__ == "__main__":
    evloop.run(main(parse_args()))
