"""evloop: an asyncio event loop on Rust backends (mio, polling, io_uring).

The one-line swap::

    evloop.run(main())                      # or, on 3.12+:
    asyncio.run(main(), loop_factory=evloop.new_event_loop)

The backend is the ``backend`` argument, else the ``EVLOOP_BACKEND``
environment variable, else io_uring with a fallback to mio where io_uring
cannot run. ``loop.backend_name()`` tells which one a loop uses.
"""

import asyncio
import sys
import warnings

from ._core import default_backend, known_backends
from ._loop import EventLoop

__all__ = (
    "EventLoop",
    "EventLoopPolicy",
    "default_backend",
    "install",
    "known_backends",
    "new_event_loop",
    "run",
)

__version__ = "0.1.0"


def new_event_loop(backend=None):
    """A new evloop event loop (see the module docs for ``backend``).

    An unknown backend name is a ``ValueError``; a known backend that cannot
    run here (io_uring disabled by the kernel, say) is a ``RuntimeError``
    saying why.
    """
    return EventLoop(backend=backend)


class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """asyncio's default policy, making evloop loops."""

    def _loop_factory(self):
        return new_event_loop()

    def __repr__(self):
        return "<evloop.EventLoopPolicy>"


def install():
    """Makes evloop the loop of ``asyncio.new_event_loop()`` (sets the policy).

    On Python 3.12+ prefer ``evloop.run()`` or
    ``asyncio.run(main, loop_factory=evloop.new_event_loop)``.
    """
    if sys.version_info >= (3, 12):
        warnings.warn(
            "evloop.install() is deprecated in favor of evloop.run() "
            "(or asyncio.run(..., loop_factory=evloop.new_event_loop)) "
            "starting with Python 3.12.",
            DeprecationWarning,
            stacklevel=2,
        )
    asyncio.set_event_loop_policy(EventLoopPolicy())


def run(main, *, debug=None):
    """Runs the coroutine ``main`` on a new evloop loop, as ``asyncio.run``."""
    if sys.version_info >= (3, 12):
        return asyncio.run(main, debug=debug, loop_factory=new_event_loop)
    if sys.version_info >= (3, 11):
        with asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
            return runner.run(main)
    return _run_310(main, debug=debug)


def _run_310(main, *, debug=None):
    # asyncio.run of 3.10, with the loop made by evloop.
    from asyncio import coroutines, events

    if events._get_running_loop() is not None:
        raise RuntimeError("asyncio.run() cannot be called from a running event loop")
    if not coroutines.iscoroutine(main):
        raise ValueError(f"a coroutine was expected, got {main!r}")
    loop = new_event_loop()
    try:
        events.set_event_loop(loop)
        if debug is not None:
            loop.set_debug(debug)
        return loop.run_until_complete(main)
    finally:
        try:
            _cancel_all_tasks(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            events.set_event_loop(None)
            loop.close()


def _cancel_all_tasks(loop):
    to_cancel = asyncio.all_tasks(loop)
    if not to_cancel:
        return
    for task in to_cancel:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*to_cancel, return_exceptions=True))
    for task in to_cancel:
        if task.cancelled():
            continue
        if task.exception() is not None:
            loop.call_exception_handler(
                {
                    "message": "unhandled exception during asyncio.run() shutdown",
                    "exception": task.exception(),
                    "task": task,
                }
            )
