//! loop-bench's Python section: races evloop's asyncio loop (on each
//! backend) against asyncio and uvloop by running `python/bench/pybench.py`
//! (vmbench-style TCP echo and the scheduling micro-benchmarks; see
//! `python/bench/README.md`) with the Python in `$PYTHON` (default
//! `python3`), which must have the `evloop` package installed (and
//! `uvloop`, to race it).
//!
//! ```text
//! cargo run --release -p loop-bench --bin python_bench -- --rounds 5
//! PYTHON=.venv/bin/python cargo run --release -p loop-bench --bin python_bench -- --quick
//! ```
//!
//! Every argument is passed on to `pybench.py` (`--help` lists them).

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

fn main() -> ExitCode {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let script: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "python",
        "bench",
        "pybench.py",
    ]
    .iter()
    .collect();
    if !script.exists() {
        eprintln!("python_bench: {} not found", script.display());
        return ExitCode::FAILURE;
    }
    // A clear message, not a Python traceback, when the package is missing.
    let probe = Command::new(&python)
        .args(["-c", "import evloop._core"])
        .stderr(Stdio::null())
        .status();
    match probe {
        Err(e) => {
            eprintln!("python_bench: cannot run `{python}`: {e} (set PYTHON to a Python 3.10+)");
            return ExitCode::FAILURE;
        }
        Ok(status) if !status.success() => {
            eprintln!(
                "python_bench: `{python}` cannot import evloop. Install it first, e.g.\n  \
                 python3 -m venv .venv && . .venv/bin/activate && pip install maturin uvloop\n  \
                 (cd python && maturin develop --release)\n  \
                 cargo run --release -p loop-bench --bin python_bench   # with the venv active"
            );
            return ExitCode::FAILURE;
        }
        Ok(_) => {}
    }
    match Command::new(&python)
        .arg(&script)
        .args(std::env::args_os().skip(1))
        .status()
    {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("python_bench: cannot run `{python}`: {e}");
            ExitCode::FAILURE
        }
    }
}
