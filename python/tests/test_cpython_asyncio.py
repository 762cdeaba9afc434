"""CPython's own loop-agnostic test_asyncio mixins, run on an evloop loop.

Each class below subclasses the concrete Unix test class that CPython runs
for its own selector loop (so the per-version set-up, such as child
watchers on 3.10 and 3.11, is CPython's), changing only the loop factory.
The backend is ``EVLOOP_BACKEND``; ``EVLOOP_BACKEND=asyncio`` runs the same
classes on asyncio's own ``SelectorEventLoop`` (epoll) for comparison.
"""

import asyncio
import os

from test.test_asyncio import test_buffered_proto, test_events, test_server
from test.test_asyncio import test_sock_lowlevel, test_subprocess

import evloop

BACKEND = os.environ.get("EVLOOP_BACKEND", "").strip().lower()
BASELINE = BACKEND == "asyncio"


def make_loop():
    if BASELINE:
        return asyncio.SelectorEventLoop()
    return evloop.new_event_loop()


class _Policy(asyncio.DefaultEventLoopPolicy):
    """The policy the subprocess tests take their loop from."""

    def _loop_factory(self):
        return make_loop()


def teardown_module():
    asyncio.set_event_loop_policy(None)


class TestEvents(test_events.SelectEventLoopTests):
    def create_event_loop(self):
        return make_loop()


class TestSockLowlevel(test_sock_lowlevel.SelectEventLoopTests):
    def create_event_loop(self):
        return make_loop()


class TestStartServer(test_server.SelectorStartServerTests):
    def new_loop(self):
        return make_loop()


class TestBufferedProtocol(test_buffered_proto.BufferedProtocolSelectorTests):
    def new_loop(self):
        return make_loop()


class TestSubprocess(test_subprocess.SubprocessThreadedWatcherTests):
    def setUp(self):
        self._old_policy = asyncio.get_event_loop_policy()
        asyncio.set_event_loop_policy(_Policy())
        super().setUp()
        if not BASELINE:
            assert isinstance(self.loop, evloop.EventLoop), self.loop

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            asyncio.set_event_loop_policy(self._old_policy)


def test_loops_are_evloop():
    """The harness really runs evloop (not asyncio's loop) unless told to."""
    loop = make_loop()
    try:
        if BASELINE:
            assert not isinstance(loop, evloop.EventLoop)
        else:
            assert isinstance(loop, evloop.EventLoop)
            if BACKEND:
                assert loop.backend_name() == BACKEND
    finally:
        loop.close()
