"""Cooperative multitasking: a task that blocks starves the others.

After the talk's starvation demo. A hungry task goes to get food (an
``await asyncio.sleep`` of ``--food`` seconds); meanwhile a sleepy task naps
for ``--nap`` seconds. If the nap is ``time.sleep`` (``--mode greedy``), the
whole loop naps with it and the hungry task waits the full nap; if the nap is
``await asyncio.sleep`` (``--mode polite``), the hungry task eats on time.

    python starvation.py --mode greedy
    python starvation.py --mode polite
"""

import argparse
import asyncio
import time

import evloop


async def hungry(food):
    start = time.monotonic()
    print("getting food", flush=True)
    await asyncio.sleep(food)
    print(f"full now, took {time.monotonic() - start:.2f}s", flush=True)


async def sleepy(nap, greedy):
    print("nap time", flush=True)
    if greedy:
        time.sleep(nap)  # blocks the loop's only thread: nobody else runs
    else:
        await asyncio.sleep(nap)  # gives the thread back to the loop
    print("nap over", flush=True)


async def main(args):
    await asyncio.gather(hungry(args.food), sleepy(args.nap, args.mode == "greedy"))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=("greedy", "polite"), default="greedy")
    p.add_argument("--food", type=float, default=0.1, help="seconds to get food")
    p.add_argument("--nap", type=float, default=2.0, help="seconds of nap")
    return p.parse_args()


if __name__ == "__main__":
    evloop.run(main(parse_args()))
