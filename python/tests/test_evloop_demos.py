"""The talks' demos (python/demos) run on evloop as subprocesses.

Each demo is run with the test's interpreter and environment (so on the
backend named by EVLOOP_BACKEND); its output is checked line by line and its
timing loosely: a bound tells "ran concurrently" from "ran one after the
other" with room to spare on a loaded machine.
"""

import http.server
import os
import re
import signal
import subprocess
import sys
import threading
import time
import zlib

import pytest

from evloop_helpers import DEMOS, run_demo, skip_on_asyncio_baseline

skip_on_asyncio_baseline()


def taken(stdout):
    return float(re.search(r"Time taken: ([0-9.]+)s", stdout).group(1))


def test_countdowns_run_concurrently():
    tick = 0.2
    proc, _ = run_demo("countdown.py", "--tick", tick, "--counts", 3, 3)
    lines = proc.stdout.splitlines()
    # The two countdowns interleave: each tick of A is followed by B's.
    assert lines[:6] == [
        "T-minus 3 (A)", "T-minus 3 (B)",
        "T-minus 2 (A)", "T-minus 2 (B)",
        "T-minus 1 (A)", "T-minus 1 (B)",
    ]
    longer, total = 3 * tick, 6 * tick
    elapsed = taken(proc.stdout)
    assert elapsed >= longer * 0.95, "the sleeps did not sleep"
    assert elapsed < 1.8 * longer < total, f"took {elapsed}s: the countdowns ran one after the other"


def test_countdowns_uneven_like_the_talk():
    tick = 0.2
    proc, _ = run_demo("countdown.py", "--tick", tick)  # A counts 2, B counts 3
    assert proc.stdout.splitlines()[:5] == [
        "T-minus 2 (A)", "T-minus 3 (B)", "T-minus 1 (A)", "T-minus 2 (B)", "T-minus 1 (B)",
    ]
    elapsed = taken(proc.stdout)
    assert 3 * tick * 0.95 <= elapsed < 3 * tick + 1.5 * tick  # the sum would be 5 ticks


def test_countdowns_blocking_take_the_sum():
    tick = 0.1
    proc, _ = run_demo("countdown.py", "--tick", tick, "--blocking")
    assert proc.stdout.splitlines()[:5] == [
        "T-minus 2 (A)", "T-minus 1 (A)", "T-minus 3 (B)", "T-minus 2 (B)", "T-minus 1 (B)",
    ]
    assert taken(proc.stdout) >= 5 * tick * 0.95


def full_after(stdout):
    return float(re.search(r"full now, took ([0-9.]+)s", stdout).group(1))


def test_starvation_greedy_task_starves_the_other():
    nap = 0.6
    proc, _ = run_demo("starvation.py", "--mode", "greedy", "--nap", nap, "--food", 0.05)
    lines = proc.stdout.splitlines()
    assert [l.split(",")[0] for l in lines] == ["getting food", "nap time", "nap over", "full now"]
    assert full_after(proc.stdout) >= nap * 0.95


def test_starvation_fixed_with_await():
    nap = 0.6
    proc, _ = run_demo("starvation.py", "--mode", "polite", "--nap", nap, "--food", 0.05)
    lines = proc.stdout.splitlines()
    assert [l.split(",")[0] for l in lines] == ["getting food", "nap time", "full now", "nap over"]
    assert full_after(proc.stdout) < nap / 2


def stamps(stdout):
    out = {}
    for line in stdout.splitlines():
        m = re.match(r"\[\s*([0-9.]+)\] (.*)", line)
        if m:
            out[m.group(2)] = float(m.group(1))
    return out


def test_executor_direct_blocking_call_holds_the_loop():
    proc, _ = run_demo("executor.py", "--mode", "direct", "--blocking", 0.6, "--sleep", 0.2)
    t = stamps(proc.stdout)
    order = sorted(t, key=t.get)
    assert order.index("Blocking done") < order.index("Nonblocking done")
    assert t["Nonblocking done"] >= 0.6 * 0.95  # woke only after the blocking call


def test_executor_moves_the_blocking_call_off_the_loop():
    proc, _ = run_demo("executor.py", "--mode", "executor", "--blocking", 0.8, "--sleep", 0.2)
    t = stamps(proc.stdout)
    assert [k for k in sorted(t, key=t.get)] == [
        "Nonblocking started", "Blocking started", "Nonblocking done", "Blocking done", "all done",
    ]
    assert 0.2 * 0.95 <= t["Nonblocking done"] < 0.6
    assert 0.8 * 0.95 <= t["Blocking done"] < 0.8 + 1.0


def test_producer_consumer_processes_every_item_once():
    items = 30
    proc, _ = run_demo(
        "producer_consumer.py", "--items", items, "--consumers", 3, "--interval", 0.02, "--work", 0.03
    )
    generated = re.findall(r"^-- generated item (\d+)$", proc.stdout, re.M)
    processed = re.findall(r"^\+\+\+ consumer-\d processed value (\d+) after ([0-9.]+)s$", proc.stdout, re.M)
    assert [int(g) for g in generated] == list(range(1, items + 1))
    assert sorted(int(v) for v, _ in processed) == [i * i for i in range(1, items + 1)]
    # Three consumers keep up with the producer: no item waits for a backlog.
    assert max(float(lat) for _, lat in processed) < 0.03 + 0.5
    m = re.search(r"Processed (\d+) items. Total time: ([0-9.]+)s", proc.stdout)
    assert int(m.group(1)) == items
    # Producer sleeps are uniform in [0, 0.02]: total at most ~0.6 s, plus the last item's work.
    assert float(m.group(2)) < items * 0.02 + 0.03 + 1.5


def start_demo_server(*args):
    proc = subprocess.Popen(
        [sys.executable, os.path.join(DEMOS, "randint_server.py"), "--port", "0", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    m = re.match(r"listening on 127\.0\.0\.1:(\d+)", line)
    if not m:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"randint server did not start: {line!r}{out}{err}")
    return proc, int(m.group(1))


def stop_demo_server(proc):
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("randint server ignored Ctrl-C for 10 s")
    assert proc.returncode == 0, err
    return out


def test_randint_service_answers_concurrent_clients():
    think = 0.05
    server, port = start_demo_server("--think", think)
    try:
        requests, sequential = 300, 10
        proc, _ = run_demo(
            "randint_client.py", "--port", port, "--requests", requests, "--sequential", sequential
        )
    finally:
        out = stop_demo_server(server)
    seq = float(re.search(r"10 requests one at a time: ([0-9.]+)s", proc.stdout).group(1))
    conc = float(re.search(r"300 requests all at once: ([0-9.]+)s", proc.stdout).group(1))
    assert f"answers in range: {requests + sequential}" in proc.stdout
    assert seq >= sequential * think * 0.95
    # One at a time, 300 answers would take 300 x 50 ms = 15 s.
    assert conc < requests * think / 5, f"{requests} concurrent requests took {conc}s"
    assert f"stopped after {requests + sequential} answers" in out


def test_randint_server_rejects_bad_input():
    server, port = start_demo_server("--think", 0.01)
    try:
        import socket

        # Both closed before Ctrl-C: on 3.12+ the server's shutdown waits for
        # its open connections, and the makefile object keeps the fd open.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s, s.makefile("rb") as f:
            s.sendall(b"banana\n7\n")
            assert f.readline().startswith(b"error: not a non-negative integer")
            assert 0 <= int(f.readline()) <= 7
    finally:
        stop_demo_server(server)


def body_for(path):
    """The local server's body for PATH: its length and bytes follow from the path."""
    n = zlib.crc32(path.encode()) % 5000
    return (path.encode() * (n // max(1, len(path)) + 1))[:n]


class SlowHandler(http.server.BaseHTTPRequestHandler):
    """Answers after DELAY seconds, like a remote site would (one thread a request)."""

    delay = 0.1
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        time.sleep(self.delay)
        body = body_for(self.path)
        self.send_response(200)
        if self.path.endswith("/chunked"):
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(body), 700):
                piece = body[i : i + 700]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 512  # many connections arrive at once
    daemon_threads = True


@pytest.fixture
def http_server():
    srv = Server(("127.0.0.1", 0), SlowHandler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()
    t.join(10)


def test_fetcher_fetches_concurrently(http_server, tmp_path):
    n = 100
    paths = [f"/page/{i}" for i in range(n)] + ["/page/x/chunked", "/page/y/chunked"]
    urls = tmp_path / "urls.txt"
    urls.write_text("".join(f"http://127.0.0.1:{http_server}{p}\n" for p in paths))
    proc, _ = run_demo("fetcher.py", "--url-file", urls, "--concurrency", 50)
    got = dict(
        (url, (int(status), int(size)))
        for status, size, url in re.findall(r"^got \((\d+), (\d+)\) (\S+)$", proc.stdout, re.M)
    )
    assert len(got) == len(paths)
    for p in paths:
        assert got[f"http://127.0.0.1:{http_server}{p}"] == (200, len(body_for(p)))
    m = re.search(r"fetched (\d+) of (\d+) URLs, (\d+) bytes in ([0-9.]+)s", proc.stdout)
    assert m.group(1) == m.group(2) == str(len(paths))
    assert int(m.group(3)) == sum(len(body_for(p)) for p in paths)
    # 102 requests of 100 ms each, 50 at a time: ~0.3 s; one at a time: 10 s.
    assert float(m.group(4)) < 3.0


def test_fetcher_reports_a_refused_connection():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, os.path.join(DEMOS, "fetcher.py"), f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1
    assert f"failed http://127.0.0.1:{port}/: ConnectionRefusedError" in proc.stdout
    assert "fetched 0 of 1 URLs" in proc.stdout
    assert time.monotonic() - start < 30
