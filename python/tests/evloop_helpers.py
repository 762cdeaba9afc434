"""Shared helpers of the evloop pytest files (test_evloop_*.py).

The backend under test comes from ``EVLOOP_BACKEND`` (``run-tests.sh`` runs the
suite once per backend); ``new_loop()`` makes a loop on it, like the package's
users do, with no argument.
"""

import os
import subprocess
import sys
import time

import pytest

import evloop

HERE = os.path.dirname(os.path.abspath(__file__))
DEMOS = os.path.join(os.path.dirname(HERE), "demos")
BACKENDS = ("mio", "polling", "uring")


def skip_on_asyncio_baseline():
    """Skips the calling module under ``EVLOOP_BACKEND=asyncio``.

    ``run-tests.sh`` uses that value to run CPython's mixins on asyncio's own
    loop for comparison; these files test evloop's own promises, which
    asyncio's loop does not make (fork refusal, backend names...).
    """
    if os.environ.get("EVLOOP_BACKEND", "").strip().lower() == "asyncio":
        pytest.skip("evloop's own tests: not run on the asyncio baseline", allow_module_level=True)


def backend():
    """The backend the suite runs on: EVLOOP_BACKEND, or None for the default."""
    return os.environ.get("EVLOOP_BACKEND") or None


def new_loop():
    """A fresh evloop loop on the backend under test."""
    return evloop.new_event_loop()


def uring_usable():
    """True when an io_uring loop can be made here (the default then is uring)."""
    try:
        lp = evloop.new_event_loop("uring")
    except (OSError, RuntimeError):
        return False
    lp.close()
    return True


def open_fds():
    """The process's open file descriptors (from /proc/self/fd)."""
    return set(int(n) for n in os.listdir("/proc/self/fd"))


def run_python(code_or_args, *, timeout=60, env=None, **kw):
    """Runs a Python child with the test's interpreter and environment."""
    args = ["-c", code_or_args] if isinstance(code_or_args, str) else list(code_or_args)
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        **kw,
    )


def run_demo(name, *args, timeout=60):
    """Runs python/demos/NAME with ARGS; returns (completed process, wall seconds)."""
    start = time.monotonic()
    proc = run_python([os.path.join(DEMOS, name), *map(str, args)], timeout=timeout)
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, f"{name} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc, elapsed
