"""Two countdowns that share one thread.

After the talk's first demo: ``countdown("A", 2)`` and ``countdown("B", 3)``
run one after the other take the sum of their ticks when each tick blocks
(``time.sleep``), and only the longer one's when each tick awaits
``asyncio.sleep``, because the loop runs the other countdown meanwhile.

    python countdown.py                 # concurrent, on evloop
    python countdown.py --blocking      # the blocking version, for contrast
    python countdown.py --tick 0.2 --counts 3 3
"""

import argparse
import asyncio
import time

import evloop


async def countdown(name, n, tick):
    while n > 0:
        print(f"T-minus {n} ({name})", flush=True)
        await asyncio.sleep(tick)
        n -= 1


def countdown_blocking(name, n, tick):
    while n > 0:
        print(f"T-minus {n} ({name})", flush=True)
        time.sleep(tick)
        n -= 1


async def main(args):
    await asyncio.gather(
        countdown("A", args.counts[0], args.tick),
        countdown("B", args.counts[1], args.tick),
    )


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tick", type=float, default=1.0, help="seconds per tick")
    p.add_argument("--counts", type=int, nargs=2, default=[2, 3], metavar=("A", "B"))
    p.add_argument("--blocking", action="store_true", help="tick with time.sleep, no loop")
    return p.parse_args()


if __name__ == "__main__":
    args = parse_args()
    start = time.monotonic()
    if args.blocking:
        countdown_blocking("A", args.counts[0], args.tick)
        countdown_blocking("B", args.counts[1], args.tick)
    else:
        evloop.run(main(args))
    print(f"Time taken: {time.monotonic() - start:.3f}s")
