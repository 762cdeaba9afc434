"""evloop.EventLoop: asyncio's Unix selector loop with the Rust core underneath.

The core (``evloop._core.LoopCore``) owns the ready queue, the timers, the
poll and the readiness callbacks; this class adds the few Python pieces
around them (building handles as asyncio does, the selector stand-in, the
wake-up fd for signals, fork refusal) and inherits everything else from
``asyncio.unix_events._UnixSelectorEventLoop``.
"""

import os
import selectors
import signal
import threading
import weakref
from asyncio import base_events, events, unix_events

from . import _core, _transport

__all__ = ("EventLoop",)


def _fileobj_to_fd(fileobj):
    """The descriptor of an int or an object with ``fileno()`` (as selectors)."""
    if isinstance(fileobj, int):
        fd = fileobj
    else:
        try:
            fd = int(fileobj.fileno())
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"Invalid file object: {fileobj!r}") from None
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    return fd


class _FdTable:
    """What asyncio reads from ``loop._selector``: the watched descriptors.

    The watching itself is the core's; this keeps asyncio's view of it
    (``get_key``/``get_map`` for transports' reprs and ``_add_reader``).
    """

    def __init__(self):
        self._keys = {}

    def get_key(self, fileobj):
        return self._keys[_fileobj_to_fd(fileobj)]

    def get_map(self):
        return self._keys

    def _set(self, fileobj, fd, events_mask, data):
        if events_mask:
            self._keys[fd] = selectors.SelectorKey(fileobj, fd, events_mask, data)
        else:
            self._keys.pop(fd, None)

    def select(self, timeout=None):
        raise RuntimeError("evloop polls in its core; _selector.select() is not used")

    def close(self):
        self._keys.clear()


_live_loops = weakref.WeakSet()


def _after_fork_in_child():
    for lp in list(_live_loops):
        lp._core_mark_forked()
    _live_loops.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


class EventLoop(_core.LoopCore, unix_events._UnixSelectorEventLoop):
    """An asyncio event loop on one of evloop's backends.

    ``EventLoop(backend=None)``: ``"mio"``, ``"polling"`` or ``"uring"``;
    ``None`` means ``EVLOOP_BACKEND``, else the default backend (io_uring,
    falling back to mio where it cannot run).
    """

    def __init__(self, backend=None):
        self._evloop_rbuf = None
        super().__init__(selector=_FdTable())
        _live_loops.add(self)

    def __repr__(self):
        return (
            f"<{self.__class__.__name__} backend={self.backend_name()} "
            f"running={self.is_running()} closed={self.is_closed()} "
            f"debug={self.get_debug()}>"
        )

    # --- scheduling -----------------------------------------------------

    # call_soon, call_at and call_later are the core's (Rust); debug mode
    # comes here and builds asyncio's own handles.

    def _evloop_call_soon_debug(self, callback, args, context):
        return base_events.BaseEventLoop.call_soon(self, callback, *args, context=context)

    def _evloop_call_at_debug(self, when, callback, args, context):
        self._check_thread()
        self._check_callback(callback, "call_at")
        timer = events.TimerHandle(when, callback, args, self, context)
        if timer._source_traceback:
            del timer._source_traceback[-1]  # this frame
        self._core_add_timer(timer)
        return timer

    def _evloop_run_debug(self, handle):
        # asyncio's debug-mode step: time the callback, log slow ones.
        try:
            self._current_handle = handle
            t0 = self.time()
            handle._run()
            dt = self.time() - t0
            if dt >= self.slow_callback_duration:
                base_events.logger.warning(
                    "Executing %s took %.3f seconds", base_events._format_handle(handle), dt
                )
        finally:
            self._current_handle = None

    # --- readiness ------------------------------------------------------

    def _watch(self, fd, write, callback, args):
        self._check_closed()
        fileobj = fd
        fd = _fileobj_to_fd(fd)
        handle = events.Handle(callback, args, self, None)
        key = self._selector._keys.get(fd)
        mask, (reader, writer) = (key.events, key.data) if key else (0, (None, None))
        self._core_watch(fd, write, handle)
        if write:
            old, data, bit = writer, (reader, handle), selectors.EVENT_WRITE
        else:
            old, data, bit = reader, (handle, writer), selectors.EVENT_READ
        self._selector._set(fileobj, fd, mask | bit, data)
        if old is not None:
            old.cancel()
        return handle

    def _unwatch(self, fd, write):
        if self.is_closed():
            return False
        fd = _fileobj_to_fd(fd)
        key = self._selector._keys.get(fd)
        if key is None:
            return False
        reader, writer = key.data
        old = writer if write else reader
        if old is None:
            return False
        self._core_unwatch(fd, write)
        if write:
            mask, data = key.events & ~selectors.EVENT_WRITE, (reader, None)
        else:
            mask, data = key.events & ~selectors.EVENT_READ, (None, writer)
        self._selector._set(key.fileobj, fd, mask, data)
        old.cancel()
        return True

    def _add_reader(self, fd, callback, *args):
        return self._watch(fd, False, callback, args)

    def _remove_reader(self, fd):
        return self._unwatch(fd, False)

    def _add_writer(self, fd, callback, *args):
        return self._watch(fd, True, callback, args)

    def _remove_writer(self, fd):
        return self._unwatch(fd, True)

    # --- transports -----------------------------------------------------

    def _make_socket_transport(self, sock, protocol, waiter=None, *, extra=None, server=None):
        # asyncio's transport with evloop's read (see _transport.py).
        if _transport.CHECKS_FD_HAS_NO_TRANSPORT:
            self._ensure_fd_no_transport(sock)
        return _transport.SocketTransport(self, sock, protocol, waiter, extra, server)

    def _make_datagram_transport(self, sock, protocol, address=None, waiter=None, extra=None):
        if _transport.DATAGRAM_CHECKS_FD_HAS_NO_TRANSPORT:
            self._ensure_fd_no_transport(sock)
        return _transport.DatagramTransport(self, sock, protocol, address, waiter, extra)

    def _evloop_recv_buffer(self, size):
        # One receive buffer per loop for its datagram transports (a
        # memoryview, so slicing it copies nothing until bytes() does).
        buf = self._evloop_rbuf
        if buf is None or len(buf) < size:
            buf = self._evloop_rbuf = memoryview(bytearray(size))
        return buf

    # --- running --------------------------------------------------------

    def run_forever(self):
        # On the main thread, signals wake the loop through the self-pipe
        # (the C handler writes the signal number there); the core runs
        # Python's handlers after each wait.
        old_fd = None
        if threading.current_thread() is threading.main_thread() and self._csock is not None:
            try:
                old_fd = signal.set_wakeup_fd(self._csock.fileno(), warn_on_full_buffer=False)
            except (ValueError, OSError):
                old_fd = None
        try:
            super().run_forever()
        finally:
            if old_fd is not None and not self._signal_handlers:
                try:
                    signal.set_wakeup_fd(old_fd)
                except (ValueError, OSError):
                    pass

    def close(self):
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self.is_closed():
            return
        try:
            super().close()
        finally:
            self._core_close()
