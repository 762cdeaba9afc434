"""Scheduling on an evloop loop: odd delays, FIFO order, readers removed at once.

- inf / NaN / huge / negative delays never panic (PyO3 would raise
  pyo3_runtime.PanicException, a BaseException) and never hang or disturb
  the other timers: a delay too far away is simply never reached; NaN is
  either refused with ValueError or treated as some deadline, not a crash.
- call_soon and call_soon_threadsafe share one FIFO.
- remove_reader / remove_writer take effect at once, even for an event the
  backend already reported in the same iteration; a closed and reused fd
  number never reaches the old callback.
"""

import asyncio
import math
import socket
import sys
import threading
import time

import pytest

from evloop_helpers import new_loop, skip_on_asyncio_baseline

skip_on_asyncio_baseline()


@pytest.fixture
def loop():
    lp = new_loop()
    yield lp
    lp.close()


def run_bounded(lp, seconds=30):
    """run_forever, stopped from outside after SECONDS if nothing stops it first."""
    fired = []

    def rescue():
        fired.append(True)
        lp.call_soon_threadsafe(lp.stop)

    guard = threading.Timer(seconds, rescue)
    guard.start()
    try:
        lp.run_forever()
    finally:
        guard.cancel()
    assert not fired, f"the loop did not stop by itself in {seconds} s"


FAR = [math.inf, 1e300, sys.float_info.max, 2.0**64, 1e18, 10.0**10]


@pytest.mark.parametrize("delay", FAR)
def test_far_call_later_is_pending_not_a_panic(loop, delay):
    fired = []
    far = loop.call_later(delay, fired.append, "far")
    near = loop.call_later(0.01, fired.append, "near")
    loop.call_later(0.05, loop.stop)
    start = time.monotonic()
    run_bounded(loop)
    assert fired == ["near"]
    assert time.monotonic() - start < 10
    assert not far.cancelled() and not near.cancelled()
    far.cancel()
    assert far.cancelled()
    # The loop is fine after: timers still fire.
    assert loop.run_until_complete(asyncio.sleep(0.01, result=1)) == 1


@pytest.mark.parametrize("when", [math.inf, 1e300, sys.float_info.max])
def test_far_call_at(loop, when):
    fired = []
    h = loop.call_at(when, fired.append, "far")
    loop.call_at(loop.time() + 0.01, loop.stop)
    run_bounded(loop)
    assert fired == []
    h.cancel()


@pytest.mark.parametrize("delay", [-math.inf, -1e300, -1.0, 0.0, -0.0])
def test_past_delays_run_soon(loop, delay):
    fired = []
    loop.call_later(delay, fired.append, "past")
    loop.call_at(loop.time() + delay if math.isfinite(delay) else delay, fired.append, "past-at")
    loop.call_later(0.02, loop.stop)
    run_bounded(loop)
    assert sorted(fired) == ["past", "past-at"]


@pytest.mark.parametrize("how", ["call_later", "call_at"])
def test_nan_delay_is_refused_or_harmless(loop, how):
    fired = []
    try:
        if how == "call_later":
            h = loop.call_later(math.nan, fired.append, "nan")
        else:
            h = loop.call_at(math.nan, fired.append, "nan")
    except ValueError:
        h = None
    # Whatever NaN did, the other timers keep their order and the loop ends.
    for i, d in enumerate([0.03, 0.01, 0.02]):
        loop.call_later(d, fired.append, i)
    loop.call_later(0.1, loop.stop)
    run_bounded(loop)
    assert [x for x in fired if x != "nan"] == [1, 2, 0]
    assert fired.count("nan") <= 1
    if h is not None:
        h.cancel()


@pytest.mark.parametrize("delay", [math.inf, 1e300])
def test_sleeping_forever_is_cancellable(loop, delay):
    async def main():
        task = asyncio.ensure_future(asyncio.sleep(delay))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # And a timeout that will never come does not get in the way.
        return await asyncio.wait_for(asyncio.sleep(0.01, result="done"), timeout=delay)

    assert loop.run_until_complete(main()) == "done"


def test_wrong_delay_types_are_type_errors(loop):
    for bad in ("1", None, object(), [1]):
        with pytest.raises(TypeError):
            loop.call_later(bad, print)
    coro = asyncio.sleep(0)
    coro.close()


def test_timers_fire_in_deadline_order(loop):
    fired = []
    base = loop.time()
    for i in range(100):
        v = i * 7919 % 100  # 0..99, shuffled
        loop.call_at(base + v / 10000, fired.append, ("t", v))
    for i in range(5):
        loop.call_at(base + 0.02, fired.append, ("same", i))
    loop.call_later(0.1, loop.stop)
    run_bounded(loop)
    ts = [v for k, v in fired if k == "t"]
    assert ts == sorted(ts) and len(ts) == 100
    # Equal deadlines: asyncio's heap promises no order among them; all fire.
    assert sorted(v for k, v in fired if k == "same") == [0, 1, 2, 3, 4]


def test_call_soon_and_threadsafe_share_one_fifo(loop):
    seen = []
    for i in range(1000):
        if i % 3 == 0:
            loop.call_soon_threadsafe(seen.append, i)
        else:
            loop.call_soon(seen.append, i)
    loop.call_soon(loop.stop)
    run_bounded(loop)
    assert seen == list(range(1000))


def test_fifo_from_inside_callbacks(loop):
    seen = []

    def first():
        seen.append("first")
        loop.call_soon(seen.append, "a")
        loop.call_soon_threadsafe(seen.append, "b")
        loop.call_soon(seen.append, "c")
        loop.call_soon(loop.stop)

    loop.call_soon(first)
    loop.call_soon(seen.append, "second")  # queued before first() ran: runs before a, b, c
    run_bounded(loop)
    assert seen == ["first", "second", "a", "b", "c"]


def test_cancelled_handle_does_not_run(loop):
    seen = []
    h = loop.call_soon(seen.append, "cancelled")
    loop.call_soon(seen.append, "kept")
    h.cancel()
    t = loop.call_later(0.01, seen.append, "timer-cancelled")
    t.cancel()
    loop.call_later(0.03, loop.stop)
    run_bounded(loop)
    assert seen == ["kept"]


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def test_remove_reader_takes_effect_in_the_same_iteration(loop, pair):
    a, b = pair
    calls = []
    b.send(b"x")  # readable before the loop even polls
    loop.add_reader(a, calls.append, "reader")
    # Runs before the event is dispatched (queued first), and must win over it.
    loop.call_soon(loop.remove_reader, a)
    loop.call_later(0.05, loop.stop)
    run_bounded(loop)
    assert calls == []
    assert loop.remove_reader(a) is False


def test_remove_reader_from_a_sibling_callback(loop):
    # Two sockets readable in the same poll: whichever runs first removes the
    # other's reader; the other must not run.
    (a1, b1), (a2, b2) = socket.socketpair(), socket.socketpair()
    try:
        for s in (a1, a2):
            s.setblocking(False)
        calls = []

        def on(me, other):
            calls.append(me)
            loop.remove_reader(other)
            loop.remove_reader(me)

        loop.add_reader(a1, on, a1, a2)
        loop.add_reader(a2, on, a2, a1)
        b1.send(b"1")
        b2.send(b"2")
        loop.call_later(0.05, loop.stop)
        run_bounded(loop)
        assert len(calls) == 1
    finally:
        for s in (a1, b1, a2, b2):
            s.close()


def test_remove_writer_takes_effect_at_once(loop, pair):
    a, _ = pair
    calls = []
    loop.add_writer(a, calls.append, "writer")  # writable at once
    loop.call_soon(loop.remove_writer, a)
    loop.call_later(0.05, loop.stop)
    run_bounded(loop)
    assert calls == []
    assert loop.remove_writer(a) is False


def test_reader_fires_level_triggered_until_removed(loop, pair):
    a, b = pair
    calls = []

    def on_readable():
        calls.append(len(calls))
        if len(calls) == 3:
            loop.remove_reader(a)
            loop.call_later(0.05, loop.stop)

    b.send(b"data")  # never read: stays readable
    loop.add_reader(a, on_readable)
    run_bounded(loop)
    assert calls == [0, 1, 2]


def test_closed_fd_number_reused_never_reaches_the_old_callback(loop):
    old_calls, new_calls = [], []
    a, b = socket.socketpair()
    a.setblocking(False)
    old_fd = a.fileno()
    loop.add_reader(a, old_calls.append, "old")
    loop.run_until_complete(asyncio.sleep(0.01))  # registered with the backend
    assert loop.remove_reader(a) is True
    a.close()
    b.close()
    c, d = socket.socketpair()
    try:
        c.setblocking(False)
        if c.fileno() != old_fd and d.fileno() == old_fd:
            c, d = d, c
        loop.add_reader(c, lambda: (new_calls.append(c.recv(10)), loop.stop()))
        d.send(b"new")
        run_bounded(loop, 30)
        assert new_calls == [b"new"]
        assert old_calls == []
        assert loop.remove_reader(c) is True
    finally:
        c.close()
        d.close()


def test_add_reader_replaces_the_callback(loop, pair):
    a, b = pair
    calls = []
    loop.add_reader(a, calls.append, "first")
    loop.add_reader(a, lambda: (calls.append("second"), loop.remove_reader(a), loop.stop()))
    b.send(b"x")
    run_bounded(loop)
    assert calls == ["second"]


def test_bad_fd_is_a_typed_error(loop):
    with pytest.raises((ValueError, TypeError, OSError)):
        loop.add_reader(-1, print)
    with pytest.raises((ValueError, TypeError)):
        loop.add_reader("not a file", print)
    with pytest.raises((ValueError, TypeError)):
        loop.add_writer(object(), print)
