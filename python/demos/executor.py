"""run_in_executor: a blocking call moved off the loop's thread.

After the talk's run_in_executor demos. A coroutine makes a blocking call of
``--blocking`` seconds while another awaits ``asyncio.sleep`` of
``--sleep`` seconds. Called directly (``--mode direct``) the blocking call
holds the loop, and the sleeper finishes late, after it; handed to
``loop.run_in_executor`` (``--mode executor``) it runs on a worker thread
and the sleeper finishes on time.

    python executor.py --mode direct
    python executor.py --mode executor
"""

import argparse
import asyncio
import time

import evloop

START = time.monotonic()


def say(what):
    print(f"[{time.monotonic() - START:6.3f}] {what}", flush=True)


async def blocking_work(seconds, in_executor):
    say("Blocking started")
    if in_executor:
        await asyncio.get_running_loop().run_in_executor(None, time.sleep, seconds)
    else:
        time.sleep(seconds)
    say("Blocking done")


async def nonblocking_work(seconds):
    say("Nonblocking started")
    await asyncio.sleep(seconds)
    say("Nonblocking done")


async def main(args):
    await asyncio.gather(
        nonblocking_work(args.sleep),
        blocking_work(args.blocking, args.mode == "executor"),
    )


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=("direct", "executor"), default="executor")
    p.add_argument("--blocking", type=float, default=4.0, help="seconds of blocking call")
    p.add_argument("--sleep", type=float, default=2.0, help="seconds of asyncio.sleep")
    return p.parse_args()


if __name__ == "__main__":
    args = parse_args()
    START = time.monotonic()
    evloop.run(main(args))
    say("all done")
