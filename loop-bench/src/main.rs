//! `loop-bench`: see the library's documentation, or `--help`.

fn main() -> std::process::ExitCode {
    loop_bench::cli::main()
}
