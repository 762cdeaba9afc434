#!/usr/bin/env bash
# Builds the evloop Python package and runs python/tests on every backend,
# for each Python 3.10+ found (pyenv's versions if present, else python3).
#
#   python/run-tests.sh            # all Pythons, backends mio, polling, uring
#   BACKENDS="mio asyncio" python/run-tests.sh   # asyncio: CPython's own loop, for comparison
#   PYTHONS="/usr/bin/python3.12" python/run-tests.sh
#
# A wheel is built per Python (the native handles use CPython's non-limited
# API, so the extension is not abi3; the Rust dependencies are compiled once
# and only the PyO3 crates and evloop-py are rebuilt per version, 17-47 s
# each) and installed in a fresh virtual environment per Python under
# target/py/venv-3.X. Prints one summary line per (python, backend); exits
# nonzero if any run failed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
out="$root/target/py"
mkdir -p "$out"
export CARGO_INCREMENTAL=0
export CARGO_TARGET_DIR="$out/cargo"
BACKENDS="${BACKENDS:-mio polling uring}"
TIMEOUT="${EVLOOP_TEST_TIMEOUT:-120}"

# The Pythons to test.
pythons=()
if [[ -n "${PYTHONS:-}" ]]; then
    read -r -a pythons <<<"$PYTHONS"
elif command -v pyenv >/dev/null 2>&1 || [[ -d "${PYENV_ROOT:-$HOME/.pyenv}/versions" ]]; then
    for d in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/*/; do
        py="$d/bin/python3"
        [[ -x "$py" ]] || continue
        if "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
            pythons+=("$py")
        fi
    done
fi
if [[ ${#pythons[@]} -eq 0 ]]; then
    pythons=("$(command -v python3)")
fi

start=$(date +%s)
summary=()
failed=0

for py in "${pythons[@]}"; do
    ver="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    venv="$out/venv-$ver"
    echo "=== Python $ver ($py)"
    rm -rf "$venv"
    "$py" -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check maturin pytest pytest-timeout
    wheel_dir="$out/wheels-$ver"
    rm -rf "$wheel_dir"
    (cd "$here" && "$venv/bin/maturin" build --release --out "$wheel_dir" -i "$venv/bin/python")
    "$venv/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps "$wheel_dir"/evloop-*.whl
    for backend in $BACKENDS; do
        log="$out/pytest-$ver-$backend.log"
        set +e
        # Run from python/tests, never from python/: there `python/evloop`
        # (the sources, without the built `_core`) would shadow the installed
        # wheel, for pytest and for the Python children the tests start.
        (cd "$here/tests" && EVLOOP_BACKEND="$backend" "$venv/bin/pytest" -q -rs \
            -p no:cacheprovider --timeout="$TIMEOUT" .) >"$log" 2>&1
        rc=$?
        set -e
        line="$(grep -E '^[0-9]+ (passed|failed)|^=+ .*(passed|failed|error).* =+$|no tests ran' "$log" | tail -1)"
        line="${line//=/}"
        if [[ $rc -ne 0 ]]; then
            failed=1
            echo "--- python $ver backend $backend FAILED (exit $rc); log: $log"
            tail -40 "$log"
            summary+=("python $ver backend $backend: FAIL ($line)")
        else
            summary+=("python $ver backend $backend: ok ($line)")
        fi
    done
done

echo
echo "=== evloop Python tests: summary"
for s in "${summary[@]}"; do echo "$s"; done
echo "took $(($(date +%s) - start)) s"
exit $failed
