#!/usr/bin/env bash
# Every test of the repository, as the README's test command:
#   1. the Rust tests (`cargo test --workspace`: unit, conformance suite and
#      driver contract on every backend, doctests);
#   2. the Python package's tests (`python/run-tests.sh`: a fresh venv per
#      Python 3.10+ found, `pip install maturin pytest`, one wheel per Python,
#      CPython's own test_asyncio mixins and evloop's pytest tests, on
#      mio, polling and uring).
# Needs cargo and a python3 with venv and pip (the package registries
# reachable for maturin and pytest).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

echo "== Rust: cargo test --workspace"
cargo test --workspace

echo "== Python: python/run-tests.sh"
bash python/run-tests.sh
