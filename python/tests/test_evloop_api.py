"""Backend selection, evloop.run, evloop.install and the policy, on each Python.

Backend: the argument, else EVLOOP_BACKEND, else "uring" with a fallback to
"mio" where io_uring cannot be used; an unknown name is a ValueError. These
tests set EVLOOP_BACKEND themselves (or run a child with it set or unset), so
they check the same thing whichever backend the suite runs on.
"""

import asyncio
import os
import sys
import warnings

import pytest

import evloop
from evloop_helpers import BACKENDS, backend, run_python, skip_on_asyncio_baseline, uring_usable

skip_on_asyncio_baseline()


@pytest.mark.parametrize("name", BACKENDS)
def test_backend_from_argument(name):
    if name == "uring" and not uring_usable():
        # A known backend that cannot run here is a RuntimeError saying why;
        # where io_uring must work (CI sets EVLOOP_REQUIRE_URING), a failure.
        assert not os.environ.get("EVLOOP_REQUIRE_URING"), "io_uring must work on this machine"
        with pytest.raises(RuntimeError, match="uring"):
            evloop.new_event_loop(name)
        return
    lp = evloop.new_event_loop(name)
    try:
        assert lp.backend_name() == name
        assert isinstance(lp, evloop.EventLoop)
        assert isinstance(lp, asyncio.AbstractEventLoop)
        assert lp.run_until_complete(asyncio.sleep(0.001, result=name)) == name
    finally:
        lp.close()


@pytest.mark.parametrize("name", BACKENDS)
def test_argument_wins_over_env(monkeypatch, name):
    other = "polling" if name != "polling" else "mio"
    monkeypatch.setenv("EVLOOP_BACKEND", other)
    lp = evloop.new_event_loop(name)
    try:
        assert lp.backend_name() == name
    finally:
        lp.close()


@pytest.mark.parametrize("name", ["mio", "polling"])
def test_backend_from_env(monkeypatch, name):
    monkeypatch.setenv("EVLOOP_BACKEND", name)
    lp = evloop.new_event_loop()
    try:
        assert lp.backend_name() == name
    finally:
        lp.close()
    # The class itself reads it too, and so does the policy's loop.
    lp = evloop.EventLoop()
    try:
        assert lp.backend_name() == name
    finally:
        lp.close()
    lp = evloop.EventLoopPolicy().new_event_loop()
    try:
        assert lp.backend_name() == name
    finally:
        lp.close()


def test_default_is_uring_else_mio():
    env = {k: v for k, v in os.environ.items() if k != "EVLOOP_BACKEND"}
    code = "import evloop; lp = evloop.new_event_loop(); print(lp.backend_name()); lp.close()"
    import subprocess

    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("uring" if uring_usable() else "mio")


def test_empty_env_means_default(monkeypatch):
    monkeypatch.setenv("EVLOOP_BACKEND", "")
    lp = evloop.new_event_loop()
    try:
        assert lp.backend_name() == ("uring" if uring_usable() else "mio")
    finally:
        lp.close()


@pytest.mark.parametrize("bad", ["epoll", "mio2", "libuv", "uring\0"])
def test_unknown_backend_argument_is_value_error(bad):
    with pytest.raises(ValueError) as info:
        evloop.new_event_loop(bad)
    assert "backend" in str(info.value).lower()


def test_unknown_backend_env_is_value_error(monkeypatch):
    monkeypatch.setenv("EVLOOP_BACKEND", "kqueue")
    with pytest.raises(ValueError, match="kqueue"):
        evloop.new_event_loop()


def test_backend_of_wrong_type_is_a_typed_error():
    with pytest.raises((TypeError, ValueError)):
        evloop.new_event_loop(3)


def test_loop_under_test_names_its_backend():
    lp = evloop.new_event_loop()
    try:
        if backend():
            assert lp.backend_name() == backend()
        else:
            assert lp.backend_name() in BACKENDS
    finally:
        lp.close()


def test_run_returns_the_result_on_an_evloop_loop():
    async def main():
        lp = asyncio.get_running_loop()
        await asyncio.sleep(0.001)
        return type(lp), lp.backend_name(), lp.get_debug()

    cls, name, debug = evloop.run(main())
    assert issubclass(cls, evloop.EventLoop)
    assert name == (backend() or name)
    assert debug is False or debug == bool(os.environ.get("PYTHONASYNCIODEBUG"))
    assert evloop.run(main(), debug=True)[2] is True


def test_run_propagates_the_exception():
    async def main():
        await asyncio.sleep(0)
        raise LookupError("from main")

    with pytest.raises(LookupError, match="from main"):
        evloop.run(main())


def test_run_cancels_leftover_tasks_and_closes_the_loop():
    seen = {}

    async def forever():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            seen["cancelled"] = True
            raise

    async def main():
        asyncio.get_running_loop().create_task(forever())
        await asyncio.sleep(0.01)
        seen["loop"] = asyncio.get_running_loop()

    evloop.run(main())
    assert seen["cancelled"] is True
    assert seen["loop"].is_closed()


def test_run_refuses_inside_a_running_loop():
    async def inner():
        return 1

    async def main():
        coro = inner()
        try:
            with pytest.raises(RuntimeError):
                evloop.run(coro)
        finally:
            coro.close()

    evloop.run(main())


def test_install_sets_the_policy_and_warns_on_312():
    code = r"""
import asyncio, sys, warnings
import evloop
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    evloop.install()
dep = [x for x in w if issubclass(x.category, DeprecationWarning)]
print("warned", bool(dep))
# asyncio.get_event_loop_policy itself warns on 3.14+; not on these Pythons.
print("policy", type(asyncio.get_event_loop_policy()).__name__,
      isinstance(asyncio.get_event_loop_policy(), evloop.EventLoopPolicy))
async def main():
    return type(asyncio.get_running_loop()).__mro__
mro = asyncio.run(main())
print("loop", any(c is evloop.EventLoop for c in mro))
lp = asyncio.new_event_loop()
print("new", isinstance(lp, evloop.EventLoop))
lp.close()
"""
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"warned {sys.version_info >= (3, 12)}"
    assert lines[1].endswith("True")
    assert lines[2:] == ["loop True", "new True"]


def test_policy_get_event_loop_gives_evloop_loop():
    policy = evloop.EventLoopPolicy()
    assert isinstance(policy, asyncio.AbstractEventLoopPolicy)
    lp = policy.new_event_loop()
    try:
        assert isinstance(lp, evloop.EventLoop)
        assert lp.run_until_complete(asyncio.sleep(0, result=7)) == 7
    finally:
        lp.close()


@pytest.mark.skipif(sys.version_info < (3, 12), reason="loop_factory is new in 3.12")
def test_asyncio_run_with_loop_factory():
    async def main():
        return isinstance(asyncio.get_running_loop(), evloop.EventLoop)

    assert asyncio.run(main(), loop_factory=evloop.new_event_loop) is True


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.Runner is new in 3.11")
def test_asyncio_runner_with_loop_factory():
    async def main():
        return asyncio.get_running_loop().backend_name()

    with asyncio.Runner(loop_factory=evloop.new_event_loop) as runner:
        first = runner.run(main())
        assert runner.run(main()) == first


def test_closed_loop_refuses_work():
    lp = evloop.new_event_loop()
    lp.close()
    lp.close()  # closing twice is fine, as in asyncio
    assert lp.is_closed()
    with pytest.raises(RuntimeError):
        lp.call_soon(print)
    coro = asyncio.sleep(0)
    with pytest.raises(RuntimeError):
        lp.run_until_complete(coro)
    coro.close()
