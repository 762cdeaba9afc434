"""The core's own contract, beyond CPython's mixins: backend choice and its
errors, timers at the extremes, KeyboardInterrupt, Ctrl-C while idle,
threads and fork."""

import asyncio
import gc
import math
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import evloop

BACKEND = os.environ.get("EVLOOP_BACKEND", "").strip().lower()
if BACKEND == "asyncio":
    pytest.skip("evloop's own tests do not apply to asyncio's loop", allow_module_level=True)


@pytest.fixture
def loop():
    lp = evloop.new_event_loop()
    yield lp
    lp.close()


def test_backend_from_env_and_argument():
    lp = evloop.new_event_loop()
    try:
        if BACKEND:
            assert lp.backend_name() == BACKEND
        else:
            assert lp.backend_name() in ("uring", "mio")
    finally:
        lp.close()
    lp = evloop.new_event_loop("polling")
    try:
        assert lp.backend_name() == "polling"
    finally:
        lp.close()


def test_unknown_backend_is_value_error():
    with pytest.raises(ValueError, match="known backends: mio, polling, uring"):
        evloop.new_event_loop("kqueue")


def test_timers_at_the_extremes(loop):
    fired = []
    never = loop.call_later(math.inf, fired.append, "inf")
    huge = loop.call_later(1e300, fired.append, "huge")
    past = loop.call_at(-1e300, fired.append, "past")
    with pytest.raises(ValueError):
        loop.call_later(math.nan, fired.append, "nan")
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert fired == ["past"]
    assert loop._core_timer_count() == 2
    never.cancel()
    huge.cancel()
    assert past.cancelled() is False
    assert loop._core_timer_count() == 0


def test_timer_order_and_cancel(loop):
    out = []
    loop.call_later(0.02, out.append, 2)
    h = loop.call_later(0.01, out.append, "cancelled")
    loop.call_later(0.01, out.append, 1)
    h.cancel()
    loop.call_later(0.03, loop.stop)
    t0 = loop.time()
    loop.run_forever()
    assert out == [1, 2]
    assert loop.time() - t0 >= 0.03
    assert loop._core_timer_count() == 0


def test_keyboard_interrupt_stops_and_leaves_loop_usable(loop):
    out = []

    def boom():
        raise KeyboardInterrupt

    loop.call_soon(out.append, 1)
    loop.call_soon(boom)
    loop.call_soon(out.append, 2)
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    assert out == [1]
    assert not loop.is_running()
    # The rest of the batch is still queued and runs next time.
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert out == [1, 2]
    assert loop.run_until_complete(asyncio.sleep(0, "again")) == "again"


def test_system_exit_propagates_from_run_until_complete(loop):
    async def main():
        raise SystemExit(3)

    with pytest.raises(SystemExit):
        loop.run_until_complete(main())
    assert loop.run_until_complete(asyncio.sleep(0, 5)) == 5


def test_call_soon_threadsafe_from_threads_wakes_the_loop(loop):
    got = []
    done = loop.create_future()

    def worker(i):
        time.sleep(0.05)
        loop.call_soon_threadsafe(got.append, i)
        if i == 3:
            loop.call_soon_threadsafe(done.set_result, None)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    t0 = time.monotonic()
    loop.run_until_complete(asyncio.wait_for(done, 10))
    for t in threads:
        t.join()
    assert 3 in got
    assert time.monotonic() - t0 < 5


def test_wrong_thread_is_refused_while_running(loop):
    errors = []

    def other():
        try:
            loop.call_later(1, print)
        except RuntimeError as e:
            errors.append(str(e))
        # call_soon from another thread takes the thread-safe path.
        loop.call_soon(loop.stop)

    loop.call_soon(threading.Thread(target=other).start)
    loop.run_forever()
    assert errors and "other than the current one" in errors[0]


def test_created_on_one_thread_run_on_another():
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("loop", evloop.new_event_loop()))
    t.start()
    t.join()
    lp = box.pop("loop")
    try:
        assert lp.run_until_complete(asyncio.sleep(0.01, "ok")) == "ok"
    finally:
        lp.close()


def test_garbage_collected_on_a_foreign_thread():
    lp = evloop.new_event_loop()
    lp.run_until_complete(asyncio.sleep(0))
    lp.call_later(100, print)
    box = [lp]
    del lp

    def drop():
        box.clear()
        gc.collect()

    t = threading.Thread(target=drop)
    t.start()
    t.join()
    gc.collect()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_child_refuses_the_loop(loop):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            loop.run_until_complete(asyncio.sleep(0))
        except RuntimeError as e:
            code = 0 if "fork" in str(e) else 2
        except BaseException:
            code = 3
        os.write(w, bytes([code]))
        os._exit(0)
    os.close(w)
    code = os.read(r, 1)
    os.close(r)
    os.waitpid(pid, 0)
    assert code == b"\x00"
    assert loop.run_until_complete(asyncio.sleep(0, 1)) == 1


CTRL_C = r"""
import asyncio, os, sys, time, evloop
async def main():
    print("ready", flush=True)
    await asyncio.sleep(30)
t0 = None
try:
    evloop.run(main())
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


def test_ctrl_c_while_idle_interrupts_quickly():
    p = subprocess.Popen(
        [sys.executable, "-c", CTRL_C], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    try:
        assert p.stdout.readline().strip() == "ready"
        time.sleep(0.2)
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=10)
        elapsed = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert out.strip() == "interrupted"
    assert elapsed < 2.0, elapsed


def test_run_and_install():
    async def main():
        return asyncio.get_running_loop()

    lp = evloop.run(main())
    assert isinstance(lp, evloop.EventLoop) and lp.is_closed()
    old = asyncio.get_event_loop_policy()
    try:
        if sys.version_info >= (3, 12):
            with pytest.warns(DeprecationWarning, match="evloop.run"):
                evloop.install()
        else:
            evloop.install()
        new = asyncio.new_event_loop()
        assert isinstance(new, evloop.EventLoop)
        new.close()
    finally:
        asyncio.set_event_loop_policy(old)
