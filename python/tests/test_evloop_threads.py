"""Threads and fork with an evloop loop.

- A loop created on one thread runs on another (and back).
- call_soon_threadsafe from many threads at once: nothing lost, and each
  thread's callbacks run in the order that thread scheduled them.
- A loop garbage-collected on a thread other than its own does not crash
  (checked in a child process, so a crash fails the test instead of pytest).
- A forked child that runs its parent's loop gets a clear RuntimeError (one
  that says "fork"); call_soon / call_later there may raise it too, or be
  accepted, but never crash. The parent's loop is unharmed, and the child can
  make a loop of its own.
"""

import asyncio
import os
import signal
import socket
import threading
import time

import pytest

from evloop_helpers import new_loop, run_python, skip_on_asyncio_baseline

skip_on_asyncio_baseline()


def run_in_thread(fn):
    box = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as exc:  # carried back to the test's thread
            box["error"] = exc

    t = threading.Thread(target=target)
    t.start()
    t.join(60)
    assert not t.is_alive(), "the thread did not finish in 60 s"
    if "error" in box:
        raise box["error"]
    return box["result"]


async def some_io():
    """A timer, a task and a socket round trip: the loop's main paths."""
    lp = asyncio.get_running_loop()
    await asyncio.sleep(0.01)
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    try:
        await lp.sock_sendall(a, b"ping")
        data = await lp.sock_recv(b, 4)
    finally:
        a.close()
        b.close()
    task = lp.create_task(asyncio.sleep(0, result=data))
    return await task, threading.get_ident()


def test_created_here_run_on_another_thread():
    lp = new_loop()
    try:
        data, ident = run_in_thread(lambda: lp.run_until_complete(some_io()))
        assert data == b"ping" and ident != threading.get_ident()
        # And back on the creating thread.
        data, ident = lp.run_until_complete(some_io())
        assert data == b"ping" and ident == threading.get_ident()
    finally:
        lp.close()


def test_created_on_another_thread_run_here():
    lp = run_in_thread(new_loop)
    try:
        data, ident = lp.run_until_complete(some_io())
        assert data == b"ping" and ident == threading.get_ident()
    finally:
        lp.close()


def test_closed_on_another_thread():
    lp = new_loop()
    lp.run_until_complete(asyncio.sleep(0))
    run_in_thread(lp.close)
    assert lp.is_closed()


def test_call_soon_threadsafe_from_many_threads_keeps_each_threads_order():
    threads, per_thread = 8, 2000
    lp = new_loop()
    seen = []
    done = []

    def record(tid, i):
        seen.append((tid, i))
        if len(seen) == threads * per_thread:
            lp.stop()

    start_gate = threading.Barrier(threads + 1)

    def producer(tid):
        start_gate.wait()
        for i in range(per_thread):
            lp.call_soon_threadsafe(record, tid, i)
        done.append(tid)

    workers = [threading.Thread(target=producer, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    guard = threading.Timer(60, lambda: lp.call_soon_threadsafe(lp.stop))
    guard.start()
    try:
        lp.call_soon(start_gate.wait)  # producers start once the loop runs
        lp.run_forever()
    finally:
        guard.cancel()
        for w in workers:
            w.join(30)
        lp.close()
    assert sorted(done) == list(range(threads))
    assert len(seen) == threads * per_thread, "callbacks were lost"
    for tid in range(threads):
        assert [i for t, i in seen if t == tid] == list(range(per_thread))


def test_call_soon_threadsafe_wakes_an_idle_loop():
    lp = new_loop()
    try:
        fut = lp.create_future()
        waker = threading.Timer(0.1, lambda: lp.call_soon_threadsafe(fut.set_result, "woken"))
        waker.start()
        start = time.monotonic()
        assert lp.run_until_complete(asyncio.wait_for(fut, 30)) == "woken"
        assert time.monotonic() - start < 5
        waker.join()
    finally:
        lp.close()


def test_run_coroutine_threadsafe_from_another_thread():
    lp = new_loop()
    t = threading.Thread(target=lp.run_forever)
    t.start()
    try:
        futs = [asyncio.run_coroutine_threadsafe(asyncio.sleep(0.01, result=i), lp) for i in range(50)]
        assert [f.result(30) for f in futs] == list(range(50))
    finally:
        lp.call_soon_threadsafe(lp.stop)
        t.join(30)
        lp.close()
    assert not t.is_alive()


GC_CHILD = r"""
import asyncio, gc, sys, threading, warnings
import evloop
warnings.simplefilter("ignore", ResourceWarning)
case = sys.argv[1]

def on_thread(fn):
    t = threading.Thread(target=fn)
    t.start()
    t.join()

if case == "unclosed_made_here_dropped_there":
    box = [evloop.new_event_loop()]
    box[0].run_until_complete(asyncio.sleep(0.001))
    def drop():
        box.clear()
        gc.collect()
    on_thread(drop)
elif case == "made_there_dropped_here":
    box = []
    def make():
        lp = evloop.new_event_loop()
        lp.run_until_complete(asyncio.sleep(0.001))
        lp.call_later(3600, print)     # a pending timer and a pending callback
        lp.call_soon(print)
        box.append(lp)
    on_thread(make)
    box.clear()
    gc.collect()
elif case == "ran_there_dropped_there_in_a_cycle":
    def run():
        lp = evloop.new_event_loop()
        lp.cycle = lp                  # only the cycle collector frees it
        lp.run_until_complete(asyncio.sleep(0.001))
    on_thread(run)
    def collect():
        gc.collect()
    on_thread(collect)
elif case == "closed_dropped_there":
    box = [evloop.new_event_loop()]
    box[0].close()
    def drop():
        box.clear()
        gc.collect()
    on_thread(drop)
gc.collect()
print("ok", flush=True)
"""


@pytest.mark.parametrize(
    "case",
    [
        "unclosed_made_here_dropped_there",
        "made_there_dropped_here",
        "ran_there_dropped_there_in_a_cycle",
        "closed_dropped_there",
    ],
)
def test_loop_garbage_collected_on_a_foreign_thread(case):
    out = run_python(["-X", "dev", "-c", GC_CHILD, case])
    assert out.returncode == 0 and out.stdout == "ok\n", (out.returncode, out.stdout, out.stderr)
    assert "panicked" not in out.stderr and "Fatal Python error" not in out.stderr


# In this order, so that a loop that wrongly accepts them still ends: the stop
# that call_soon queues ends run_forever.
FORK_CHILD_CHECKS = (
    ("call_soon", lambda lp: lp.call_soon(lp.stop)),
    ("call_later", lambda lp: lp.call_later(1, print)),
    ("run_forever", lambda lp: lp.run_forever()),
    ("run_until_complete", lambda lp: lp.run_until_complete(asyncio.sleep(0))),
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_forked_child_cannot_use_the_parents_loop():
    lp = new_loop()
    try:
        lp.run_until_complete(asyncio.sleep(0.001))
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report what each use did, then leave at once
            try:
                signal.alarm(20)  # a child that hangs dies, and the test fails
                os.close(r)
                lines = []
                for name, use in FORK_CHILD_CHECKS:
                    try:
                        use(lp)
                        lines.append(f"{name}: no error")
                    except RuntimeError as exc:
                        lines.append(f"{name}: RuntimeError: {exc}")
                    except BaseException as exc:
                        lines.append(f"{name}: {type(exc).__name__}: {exc}")
                # A new loop in the child works.
                try:
                    import evloop

                    own = evloop.new_event_loop(lp.backend_name())
                    lines.append(f"own loop: {own.run_until_complete(asyncio.sleep(0.001, result='ok'))}")
                    own.close()
                except BaseException as exc:
                    lines.append(f"own loop: {type(exc).__name__}: {exc}")
                os.write(w, "\n".join(lines).encode())
            finally:
                os._exit(0)
        os.close(w)
        with os.fdopen(r) as f:
            report = f.read().splitlines()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert len(report) == len(FORK_CHILD_CHECKS) + 1, report
        for (name, _), line in zip(FORK_CHILD_CHECKS, report):
            if name.startswith("call_") and line == f"{name}: no error":
                continue  # scheduling may be accepted; running the loop may not
            assert line.startswith(f"{name}: RuntimeError: "), report
            assert "fork" in line.lower(), f"the error should say why: {line}"
        assert report[-1] == "own loop: ok", report
        # The parent's loop is unharmed by what the child did.
        assert lp.run_until_complete(asyncio.sleep(0.01, result="parent")) == "parent"
        data, _ = lp.run_until_complete(some_io())
        assert data == b"ping"
    finally:
        lp.close()
