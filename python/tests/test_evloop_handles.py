"""The native handles (evloop._core.Handle / TimerHandle) behave as asyncio's.

Outside debug mode ``call_soon``, ``call_at`` and ``call_later`` return the
core's handles; these tests pin what they keep of ``asyncio.Handle`` and
``asyncio.TimerHandle``: cancel before the run and from inside a callback,
exceptions reaching the exception handler with asyncio's context dict,
``contextvars`` seen by the callback, timer order, comparisons, hash and repr
(checked against asyncio's own classes built with the same arguments).
Debug mode keeps asyncio's own handle classes.
"""

import asyncio
import contextvars
import functools
import sys

import pytest

from evloop import _core
from evloop_helpers import new_loop, skip_on_asyncio_baseline

skip_on_asyncio_baseline()

VAR = contextvars.ContextVar("VAR", default="unset")


@pytest.fixture
def loop():
    lp = new_loop()
    yield lp
    lp.close()


def noop(*args):
    pass


def test_call_soon_returns_a_native_handle(loop):
    h = loop.call_soon(noop, 1, 2)
    assert type(h) is _core.Handle
    assert not h.cancelled() and h._cancelled is False
    assert h._callback is noop and h._args == (1, 2)
    assert h._loop is loop
    assert isinstance(h.get_context(), contextvars.Context)
    assert h._source_traceback is None
    t = loop.call_later(10, noop)
    assert type(t) is _core.TimerHandle and isinstance(t, _core.Handle)
    t.cancel()


def test_handles_run_in_fifo_order_with_their_args(loop):
    seen = []
    for i in range(5):
        loop.call_soon(seen.append, i)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == [0, 1, 2, 3, 4]


def test_cancel_before_run(loop):
    seen = []
    h = loop.call_soon(seen.append, "cancelled")
    loop.call_soon(seen.append, "kept")
    h.cancel()
    assert h.cancelled()
    assert h._callback is None and h._args is None
    h.cancel()  # a second cancel is harmless
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == ["kept"]


def test_cancel_from_inside_a_callback(loop):
    seen = []
    handles = {}

    def first():
        seen.append("first")
        handles["later"].cancel()
        handles["self"].cancel()  # cancelling the running handle itself
        handles["timer"].cancel()

    handles["self"] = loop.call_soon(first)
    handles["later"] = loop.call_soon(seen.append, "later")
    handles["timer"] = loop.call_later(0, seen.append, "timer")
    loop.call_later(0.05, loop.stop)
    loop.run_forever()
    assert seen == ["first"]
    assert all(h.cancelled() for h in handles.values())
    assert loop._core_timer_count() == 0


def _message_for(loop, callback, args):
    # The message asyncio's Handle._run builds for the same callback.
    ref = asyncio.Handle(callback, args, loop)
    from asyncio import format_helpers

    if sys.version_info >= (3, 13):
        src = format_helpers._format_callback_source(callback, args, debug=False)
    else:
        src = format_helpers._format_callback_source(callback, args)
    del ref
    return f"Exception in callback {src}"


@pytest.mark.parametrize("kind", ["call_soon", "call_later", "call_at"])
def test_exception_reaches_the_handler_with_asyncio_context(loop, kind):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    err = ValueError("boom")

    def bad(x, y):
        raise err

    if kind == "call_soon":
        h = loop.call_soon(bad, 1, "two")
    elif kind == "call_later":
        h = loop.call_later(0, bad, 1, "two")
    else:
        h = loop.call_at(loop.time(), bad, 1, "two")
    ran_after = []
    loop.call_later(0.01, ran_after.append, True)
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert ran_after == [True], "the loop kept running after the exception"
    assert len(contexts) == 1
    ctx = contexts[0]
    assert set(ctx) == {"message", "exception", "handle"}
    assert ctx["exception"] is err
    assert ctx["handle"] is h
    assert ctx["message"] == _message_for(loop, bad, (1, "two"))


def test_cancelled_error_goes_to_the_handler_as_in_asyncio(loop):
    # Handle._run lets only SystemExit and KeyboardInterrupt through.
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    def cancelled():
        raise asyncio.CancelledError()

    loop.call_soon(cancelled)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert len(contexts) == 1
    assert isinstance(contexts[0]["exception"], asyncio.CancelledError)


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_base_exceptions_propagate_and_leave_the_loop_usable(loop, exc):
    seen = []

    def raiser():
        raise exc()

    loop.call_soon(raiser)
    loop.call_soon(seen.append, "after")
    with pytest.raises(exc):
        loop.run_forever()
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == ["after"]


def test_exception_handler_sees_the_direct_run_too(loop):
    # Handle._run called directly (as debug mode and some libraries do).
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    h = _core.Handle(functools.partial(int, "x"), (), loop)
    h._run()
    assert isinstance(contexts[0]["exception"], ValueError)
    assert contexts[0]["handle"] is h


def test_context_vars_seen_by_the_callback(loop):
    seen = []

    def read(tag):
        seen.append((tag, VAR.get()))
        VAR.set("changed by " + tag)

    token = VAR.set("at call_soon")
    try:
        loop.call_soon(read, "default")  # a copy of the current context
        loop.call_later(0, read, "timer")
    finally:
        VAR.reset(token)
    ctx = contextvars.copy_context()
    ctx.run(VAR.set, "in ctx")
    h = loop.call_soon(read, "explicit", context=ctx)
    assert h.get_context() is ctx
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert seen == [
        ("default", "at call_soon"),
        ("explicit", "in ctx"),
        ("timer", "at call_soon"),
    ]
    # The callback ran inside ctx (Context.run semantics), not in a copy.
    assert ctx[VAR] == "changed by explicit"
    # And not in the loop's caller's context.
    assert VAR.get() == "unset"


def test_a_context_already_entered_is_reported_not_fatal(loop, caplog):
    ctx = contextvars.copy_context()
    seen = []

    def outer():
        # ctx is entered (this callback runs in it): a second handle in the
        # same context cannot enter it, as with Context.run; the error goes to
        # the (default) exception handler.
        _core.Handle(seen.append, ("inner",), loop, ctx)._run()
        seen.append("outer")

    loop.call_soon(outer, context=ctx)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == ["outer"]
    assert "cannot enter context" in caplog.text


def test_timers_fire_in_deadline_order(loop):
    seen = []
    base = loop.time() + 0.02
    for offset in [0.03, 0.0, 0.02, 0.01, 0.04]:
        loop.call_at(base + offset, seen.append, offset)
    loop.call_later(0.01, seen.append, "first")
    loop.call_at(base + 0.1, loop.stop)
    loop.run_forever()
    assert seen == ["first", 0.0, 0.01, 0.02, 0.03, 0.04]


def test_timer_handle_ordering_equality_hash(loop):
    a = loop.call_at(100.0, noop, 1)
    b = loop.call_at(200, noop, 1)
    c = loop.call_at(100.0, noop, 1)
    try:
        assert a.when() == 100.0 and a._when == 100.0 and b.when() == 200
        assert a < b and a <= b and b > a and b >= a
        assert not (b < a) and not (a > b)
        assert a == c and a <= c and a >= c and not (a != c)
        assert hash(a) == hash(100.0) == hash(c)
        assert a != b
        assert (a == 100.0) is False  # NotImplemented both ways
        with pytest.raises(TypeError):
            a < 1
        assert sorted([b, a]) == [a, b]
        assert a._scheduled is True
    finally:
        for h in (a, b, c):
            h.cancel()
    assert a._scheduled is False
    assert a == c  # both cancelled: same when, no callback, no args
    assert loop._core_timer_count() == 0


def test_timer_cancel_drops_the_rust_timer(loop):
    handles = [loop.call_later(60, noop) for _ in range(100)]
    assert loop._core_timer_count() == 100
    for h in handles[:60]:
        h.cancel()
    assert loop._core_timer_count() == 40
    for h in handles[60:]:
        loop._timer_handle_cancelled(h)  # asyncio's hook works on native handles
    assert loop._core_timer_count() == 0


@pytest.mark.parametrize("cancelled", [False, True])
def test_repr_matches_asyncio(loop, cancelled):
    native = loop.call_soon(noop, 1, 2)
    timer = loop.call_at(123, noop)
    ref = asyncio.Handle(noop, (1, 2), loop)
    ref_timer = asyncio.TimerHandle(123, noop, (), loop)
    if cancelled:
        native.cancel()
        timer.cancel()
        ref.cancel()
        ref_timer.cancel()
    assert repr(native) == repr(ref)
    assert repr(timer) == repr(ref_timer)
    assert native._repr_info() == ref._repr_info()
    timer.cancel()


def test_debug_mode_uses_asyncio_handles_and_keeps_reprs(loop):
    loop.set_debug(True)
    h = loop.call_soon(noop, 1)
    t = loop.call_later(10, noop)
    assert type(h) is asyncio.Handle and type(t) is asyncio.TimerHandle
    assert h._source_traceback  # debug mode records where it was made
    # The last frame recorded is this test (the loop's own frames dropped).
    assert h._source_traceback[-1].name == "test_debug_mode_uses_asyncio_handles_and_keeps_reprs"
    t.cancel()
    h.cancel()
    assert "cancelled" in repr(h)
    assert loop._core_timer_count() == 0
    loop.set_debug(False)


def test_cancel_in_debug_mode_keeps_the_repr(loop):
    h = loop.call_soon(noop, 1, 2)  # made outside debug mode: native
    loop.set_debug(True)
    h.cancel()
    loop.set_debug(False)
    assert h._repr is not None and "cancelled" in h._repr and "noop(1, 2)" in h._repr
    assert repr(h) == h._repr


def test_call_soon_on_a_closed_loop_is_refused():
    lp = new_loop()
    lp.close()
    with pytest.raises(RuntimeError, match="closed"):
        lp.call_soon(noop)


def test_futures_and_tasks_run_on_native_handles(loop):
    async def child(x):
        await asyncio.sleep(0)
        return x * 2

    async def main():
        results = await asyncio.gather(*(child(i) for i in range(10)))
        fut = loop.create_future()
        loop.call_later(0.001, fut.set_result, "late")
        return results, await fut

    assert loop.run_until_complete(main()) == ([i * 2 for i in range(10)], "late")


@pytest.mark.parametrize("kind", ["call_soon", "call_later"])
def test_a_cycle_through_a_handle_is_collected(loop, kind):
    # obj -> handle -> bound method -> obj: only the cycle collector can free
    # it, so the handles must take part in garbage collection.
    import gc
    import weakref

    class Holder:
        def fire(self):
            pass

    obj = Holder()
    if kind == "call_soon":
        obj.handle = loop.call_soon(obj.fire)
    else:
        obj.handle = loop.call_later(0, obj.fire)
    loop.call_later(0.01, loop.stop)
    loop.run_forever()  # the loop has run and dropped the handle
    ref = weakref.ref(obj)
    del obj
    gc.collect()
    assert ref() is None
