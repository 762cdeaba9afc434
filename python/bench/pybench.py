"""Races evloop (each backend) against asyncio's own loop and uvloop.

    python python/bench/pybench.py                 # full run: echo matrix + micro-benchmarks
    python python/bench/pybench.py --quick         # a smoke run: tiny windows, one round
    python python/bench/pybench.py --only micro    # or --only echo

Method (the Rust loop-bench's): every server and every micro-benchmark runs
pinned to core 0, the echo load client (echo_client.c, compiled here with
``cc``) pinned to core 1; rounds are interleaved (each round runs every
contender once per cell, in a rotating order); the headline is the paired
ratio to asyncio, the median over rounds of (contender / asyncio) measured
in the same round. Echo reports requests/s and requests per server
CPU-second (the server's utime + stime from /proc/PID/stat over the measured
window). Prints a table and writes JSON (``--json``).

Contenders: ``asyncio`` (asyncio.SelectorEventLoop), ``uvloop`` (if
installed), ``evloop-mio``, ``evloop-polling``, ``evloop-uring``.
"""

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# --------------------------------------------------------------------------
# Loops


# A contender suffix, asked for by name only (`--contenders
# evloop-mio,evloop-mio+asyncio-read`): evloop with asyncio's socket transport.
ASYNCIO_READ = "+asyncio-read"


def loop_factory(name):
    if name == "asyncio":
        return asyncio.SelectorEventLoop
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    if name.startswith("evloop-") and name.endswith(ASYNCIO_READ):
        # Before/after for evloop's transport read (python/evloop/_transport.py):
        # the same loop with asyncio's own socket transport.
        from asyncio import selector_events

        base = loop_factory(name[: -len(ASYNCIO_READ)])

        def with_asyncio_read():
            lp = base()
            lp._make_socket_transport = selector_events.BaseSelectorEventLoop._make_socket_transport.__get__(lp)
            return lp

        return with_asyncio_read
    if name.startswith("evloop-"):
        import evloop

        backend = name.split("-", 1)[1]
        return lambda: evloop.new_event_loop(backend)
    raise ValueError(f"unknown contender {name!r}")


def available_contenders():
    names = ["asyncio"]
    try:
        import uvloop  # noqa: F401

        names.append("uvloop")
    except ImportError:
        print("uvloop is not installed: racing without it (pip install uvloop)", file=sys.stderr)
    import evloop

    for backend in ("mio", "polling", "uring"):
        try:
            evloop.new_event_loop(backend).close()
            names.append(f"evloop-{backend}")
        except (OSError, RuntimeError) as exc:
            print(f"evloop {backend} is not usable here: {exc}", file=sys.stderr)
    return names


# --------------------------------------------------------------------------
# Echo server (a child process; vmbench's servers in our own code)


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

    def connection_lost(self, exc):
        self.transport = None


async def echo_streams(reader, writer):
    try:
        while data := await reader.read(102400):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass  # the load client closes with bytes in flight: a reset, expected
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass


def serve(contender, mode):
    os.sched_setaffinity(0, {0})
    lp = loop_factory(contender)()
    asyncio.set_event_loop(lp)

    async def main():
        if mode == "proto":
            server = await lp.create_server(EchoProtocol, "127.0.0.1", 0, backlog=1024)
        else:
            server = await asyncio.start_server(echo_streams, "127.0.0.1", 0, backlog=1024)
        print(server.sockets[0].getsockname()[1], flush=True)
        # Until the driver closes our stdin.
        await lp.run_in_executor(None, sys.stdin.read)
        server.close()
        # Let the connection handlers end before the loop closes (no
        # "Task was destroyed but it is pending!" at exit).
        # The client has closed its connections, so they end by themselves.
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if rest:
            await asyncio.wait(rest, timeout=5)

    lp.run_until_complete(main())
    lp.close()


def start_server(contender, mode):
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", contender, mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    port = int(proc.stdout.readline())
    return proc, port


def build_client():
    out_dir = os.path.join(ROOT, "target", "py", "bench")
    os.makedirs(out_dir, exist_ok=True)
    exe = os.path.join(out_dir, "echo_client")
    src = os.path.join(HERE, "echo_client.c")
    if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(src):
        subprocess.run(["cc", "-O2", "-Wall", "-o", exe, src], check=True)
    return exe


def run_client(exe, port, conns, size, warmup, measure, server_pid):
    out = subprocess.run(
        ["taskset", "-c", "1", exe, str(port), str(conns), str(size), str(warmup), str(measure),
         str(server_pid)],
        capture_output=True,
        text=True,
        timeout=warmup + measure + 60,
    )
    if out.returncode != 0:
        raise RuntimeError(f"echo client failed: {out.stderr.strip()}")
    return json.loads(out.stdout)


# --------------------------------------------------------------------------
# Micro-benchmarks (a child process per contender per round)


async def call_soon_chain(n):
    lp = asyncio.get_running_loop()
    done = lp.create_future()
    left = [n]

    def step():
        left[0] -= 1
        if left[0]:
            lp.call_soon(step)
        else:
            done.set_result(None)

    lp.call_soon(step)
    await done


async def timer_schedule_cancel(n):
    lp = asyncio.get_running_loop()
    cb = int
    for _ in range(n // 1000):
        handles = [lp.call_later(10.0, cb) for _ in range(1000)]
        for h in handles:
            h.cancel()
        await asyncio.sleep(0)  # the loop drops what was cancelled


async def sleep0_loop(n):
    for _ in range(n):
        await asyncio.sleep(0)


async def _nothing():
    return None


async def create_task_await(n):
    lp = asyncio.get_running_loop()
    for _ in range(n):
        await lp.create_task(_nothing())


MICRO = {
    "call_soon_chain": (call_soon_chain, 200_000),
    "timer_schedule_cancel": (timer_schedule_cancel, 200_000),
    "sleep0_loop": (sleep0_loop, 100_000),
    "create_task_await": (create_task_await, 100_000),
}


def micro_child(contender, scale):
    os.sched_setaffinity(0, {0})
    lp = loop_factory(contender)()
    results = {}
    try:
        for name, (fn, n) in MICRO.items():
            n = max(1000, int(n * scale))
            lp.run_until_complete(fn(n // 10))  # warm up
            t0, c0 = time.perf_counter(), time.process_time()
            lp.run_until_complete(fn(n))
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            results[name] = {"ops": n, "seconds": wall, "cpu": cpu, "ops_per_s": n / wall}
    finally:
        lp.close()
    print(json.dumps(results))


def run_micro(contender, scale):
    out = subprocess.run(
        [sys.executable, __file__, "--micro-child", contender, str(scale)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode != 0:
        raise RuntimeError(f"micro-benchmarks on {contender} failed: {out.stderr.strip()}")
    return json.loads(out.stdout)


# --------------------------------------------------------------------------
# Driver


def rotated(names, r):
    k = r % len(names)
    return names[k:] + names[:k]


def paired_ratio(samples, cell_key, contender, metric):
    """Median over rounds of contender/asyncio in the same round."""
    ratios = []
    for r, by in samples.items():
        a, c = by.get((cell_key, "asyncio")), by.get((cell_key, contender))
        if a and c and a[metric] > 0:
            ratios.append(c[metric] / a[metric])
    return statistics.median(ratios) if ratios else None


def fmt_ratio(r):
    return "  n/a" if r is None else f"{r:5.2f}x"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=float, default=0.3, help="echo warm-up seconds per cell")
    p.add_argument("--measure", type=float, default=1.5, help="echo measured seconds per cell")
    p.add_argument("--sizes", default="1024,10240,102400")
    p.add_argument("--conns", default="10,100")
    p.add_argument("--modes", default="proto,streams")
    p.add_argument("--micro-scale", type=float, default=1.0)
    p.add_argument("--only", choices=("echo", "micro"))
    p.add_argument("--contenders", help="comma-separated subset")
    p.add_argument("--quick", action="store_true", help="smoke run: one round, tiny windows")
    p.add_argument("--json", default=os.path.join(ROOT, "target", "py", "pybench.json"))
    p.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--micro-child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        return serve(*args.serve)
    if args.micro_child:
        return micro_child(args.micro_child[0], float(args.micro_child[1]))
    if args.quick:
        args.rounds, args.warmup, args.measure, args.micro_scale = 1, 0.1, 0.3, 0.05
    if (os.cpu_count() or 1) < 2:
        sys.exit("pybench needs two cores (server on 0, client on 1)")

    contenders = available_contenders()
    if args.contenders:
        wanted = args.contenders.split(",")
        extra = [w for w in wanted if w.endswith(ASYNCIO_READ) and w[: -len(ASYNCIO_READ)] in contenders]
        contenders = [c for c in contenders if c in wanted] + extra
        if "asyncio" not in contenders:
            contenders.insert(0, "asyncio")
    sizes = [int(s) for s in args.sizes.split(",")]
    conns = [int(c) for c in args.conns.split(",")]
    modes = args.modes.split(",")
    load = os.getloadavg()
    report = {
        "python": sys.version.split()[0],
        "machine": platform.platform(),
        "cpu_count": os.cpu_count(),
        "loadavg_at_start": load,
        "contenders": contenders,
        "rounds": args.rounds,
        "echo": {"warmup_s": args.warmup, "measure_s": args.measure, "samples": []},
        "micro": {"scale": args.micro_scale, "samples": []},
    }
    print(f"Python {report['python']}, load {load[0]:.2f}, contenders: {', '.join(contenders)}")

    echo_samples, micro_samples = {}, {}
    if args.only != "micro":
        exe = build_client()
        servers = {}
        try:
            for c in contenders:
                for m in modes:
                    servers[(c, m)] = start_server(c, m)
            for r in range(args.rounds):
                for m in modes:
                    for size in sizes:
                        for n in conns:
                            for c in rotated(contenders, r):
                                proc, port = servers[(c, m)]
                                res = run_client(exe, port, n, size, args.warmup, args.measure, proc.pid)
                                res["rps"] = res["requests"] / res["seconds"]
                                res["per_cpu_s"] = (
                                    res["requests"] / res["server_cpu"] if res["server_cpu"] > 0 else 0
                                )
                                cell = (m, size, n)
                                echo_samples.setdefault(r, {})[(cell, c)] = res
                                report["echo"]["samples"].append(
                                    {"round": r, "mode": m, "size": size, "conns": n, "contender": c, **res}
                                )
                print(f"echo round {r + 1}/{args.rounds} done", file=sys.stderr)
        finally:
            for proc, _ in servers.values():
                proc.stdin.close()
            for proc, _ in servers.values():
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    if args.only != "echo":
        for r in range(args.rounds):
            for c in rotated(contenders, r):
                res = run_micro(c, args.micro_scale)
                for name, v in res.items():
                    micro_samples.setdefault(r, {})[(name, c)] = v
                    report["micro"]["samples"].append({"round": r, "bench": name, "contender": c, **v})
            print(f"micro round {r + 1}/{args.rounds} done", file=sys.stderr)

    summary = {"echo": [], "micro": []}
    if echo_samples:
        print()
        print("TCP echo (server on core 0, C client on core 1): median req/s, "
              "paired ratio to asyncio; req per server CPU-second, its ratio")
        head = f"{'mode':8}{'size':>8}{'conns':>6}  " + "".join(f"{c:>28}" for c in contenders)
        print(head)
        for m in modes:
            for size in sizes:
                for n in conns:
                    cell = (m, size, n)
                    line = f"{m:8}{size // 1024:>6}Ki{n:>6}  "
                    for c in contenders:
                        rps = statistics.median(
                            s[(cell, c)]["rps"] for s in echo_samples.values() if (cell, c) in s
                        )
                        cpu = statistics.median(
                            s[(cell, c)]["per_cpu_s"] for s in echo_samples.values() if (cell, c) in s
                        )
                        ratio = paired_ratio(echo_samples, cell, c, "rps")
                        cratio = paired_ratio(echo_samples, cell, c, "per_cpu_s")
                        summary["echo"].append(
                            {"mode": m, "size": size, "conns": n, "contender": c, "rps": rps,
                             "rps_ratio": ratio, "per_cpu_s": cpu, "per_cpu_s_ratio": cratio}
                        )
                        line += f"{rps:>10.0f} {fmt_ratio(ratio)} {cpu:>7.0f} {fmt_ratio(cratio)}"
                    print(line)
    if micro_samples:
        print()
        print("Micro-benchmarks (core 0): median ops/s, paired ratio to asyncio")
        print(f"{'bench':24}" + "".join(f"{c:>22}" for c in contenders))
        for name in MICRO:
            line = f"{name:24}"
            for c in contenders:
                ops = statistics.median(
                    s[(name, c)]["ops_per_s"] for s in micro_samples.values() if (name, c) in s
                )
                ratio = paired_ratio(micro_samples, name, c, "ops_per_s")
                summary["micro"].append({"bench": name, "contender": c, "ops_per_s": ops, "ratio": ratio})
                line += f"{ops:>14.0f} {fmt_ratio(ratio)}"
            print(line)
    report["summary"] = summary
    report["loadavg_at_end"] = os.getloadavg()
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(report, f, indent=1)
    print(f"\nJSON: {args.json}")


if __name__ == "__main__":
    main()
