#!/usr/bin/env bash
# Races hyper on evloop (the hello_server example, on each backend) against
# tokio current_thread + hyper-util (the tokio_hello binary): wrk over
# HTTP/1.1 and h2load over h2c, hyper's timer on in both (a 10 s
# header_read_timeout). Servers and clients are pinned to different cores
# (taskset); rounds are interleaved (every server once per round, the order
# rotating), and each figure is the median over rounds of the per-round
# ratio to tokio. Run it when nothing else is compiling.
#
#   examples-hyper/bench.sh [ROUNDS=3] [SECONDS=5]
#   SERVER_CPU=0 CLIENT_CPU=1 CONNS=50 examples-hyper/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${1:-3}
SECS=${2:-5}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
CONNS=${CONNS:-50}
STREAMS=${STREAMS:-10}
PORT=${PORT:-18480}
for tool in wrk h2load taskset python3; do
    command -v "$tool" >/dev/null || { echo "bench.sh needs $tool (apt-get install -y wrk nghttp2-client)" >&2; exit 1; }
done

cargo build --release -q -p examples-hyper --example hello_server --bin tokio_hello
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
EVLOOP_BIN="$target_dir/release/examples/hello_server"
TOKIO_BIN="$target_dir/release/tokio_hello"
out=$(mktemp -d)
server_pid=
trap 'if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi; rm -rf "$out"' EXIT

servers=(tokio mio polling uring)

start_server() { # name -> pid in $server_pid, a fresh port each time (no TIME_WAIT clash)
    local name=$1
    PORT=$((PORT + 1))
    rm -f "$out/server.log" # the last server's "listening" must not count
    if [ "$name" = tokio ]; then
        taskset -c "$SERVER_CPU" "$TOKIO_BIN" "127.0.0.1:$PORT" >"$out/server.log" 2>&1 &
    else
        EVLOOP_BACKEND=$name taskset -c "$SERVER_CPU" "$EVLOOP_BIN" "127.0.0.1:$PORT" >"$out/server.log" 2>&1 &
    fi
    server_pid=$!
    for _ in $(seq 100); do
        grep -q listening "$out/server.log" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "server $name did not start:" >&2; cat "$out/server.log" >&2; exit 1
}

stop_server() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=; }

for round in $(seq "$ROUNDS"); do
    # Rotate the order so no server always runs first.
    order=("${servers[@]:$(( (round - 1) % 4 ))}" "${servers[@]:0:$(( (round - 1) % 4 ))}")
    for name in "${order[@]}"; do
        start_server "$name"
        url="http://127.0.0.1:$PORT/"
        taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${SECS}s" --latency "$url" >"$out/wrk.$name.$round"
        taskset -c "$CLIENT_CPU" h2load -c"$CONNS" -m"$STREAMS" -D"$SECS" --warm-up-time=1 \
            --log-file="$out/h2log.$name.$round" "$url" >"$out/h2load.$name.$round"
        stop_server
        echo "round $round: $name done" >&2
    done
done

python3 - "$out" "$ROUNDS" <<'PY'
import glob, os, re, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
servers = ["tokio", "mio", "polling", "uring"]

def ms(text):
    v, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

def wrk(name, r):
    t = open(f"{out}/wrk.{name}.{r}").read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
    p99 = ms(re.search(r"^\s+99%\s+(\S+)", t, re.M).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", t)
    return rps, p99, errors.group(0) if errors else ""

def h2(name, r):
    t = open(f"{out}/h2load.{name}.{r}").read()
    rps = float(re.search(r"finished in [^,]+, ([\d.]+) req/s", t).group(1))
    ok = re.search(r"(\d+) succeeded, (\d+) failed, (\d+) errored", t)
    durations = sorted(int(l.split()[2]) for l in open(f"{out}/h2log.{name}.{r}") if l.strip())
    p99 = durations[int(0.99 * (len(durations) - 1))] / 1000.0 if durations else float("nan")
    bad = "" if ok.group(2) == "0" and ok.group(3) == "0" else f"{ok.group(2)} failed, {ok.group(3)} errored"
    return rps, p99, bad

for title, f in [("wrk, HTTP/1.1", wrk), ("h2load, h2c", h2)]:
    print(f"\n{title}: {rounds} rounds")
    print(f"{'server':10} {'req/s (median)':>15} {'p99 ms (median)':>16} {'ratio to tokio: median [min, max]':>36}")
    res = {s: [f(s, r) for r in range(1, rounds + 1)] for s in servers}
    for s in servers:
        rps = statistics.median(x[0] for x in res[s])
        p99 = statistics.median(x[1] for x in res[s])
        ratios = [res[s][i][0] / res["tokio"][i][0] for i in range(rounds)]
        notes = "; ".join(x[2] for x in res[s] if x[2])
        print(f"{s:10} {rps:15.0f} {p99:16.2f} {statistics.median(ratios):14.3f} [{min(ratios):.3f}, {max(ratios):.3f}] {notes}")
PY
