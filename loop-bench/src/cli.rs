//! The command line, and the run it describes.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum};

use crate::contender::{self, Contender};
use crate::echo::EchoCell;
use crate::report::{self, Document, Host, Settings};
use crate::run::{self, Cell, Plan, Row, Status};
use crate::sample::Window;
use crate::sched::SchedWorkload;
use crate::sys::Placement;

/// Races evloop's backends against each other and against tokio and smol:
/// scheduling micro-benchmarks and TCP echo, interleaved, repeated, summarised
/// as tables, JSON and an SVG plot.
#[derive(Debug, Parser)]
#[command(name = "loop-bench", version)]
pub struct Args {
    /// Contenders, comma-separated: evloop backends (mio, polling, uring),
    /// tokio, smol, or `all` (every compiled-in backend plus the peers).
    /// Unknown or unusable ones are reported and skipped.
    #[arg(long, value_delimiter = ',', default_value = "all")]
    pub backends: Vec<String>,

    /// Workloads, comma-separated.
    #[arg(long, value_delimiter = ',', value_enum, default_value = "all")]
    pub workloads: Vec<WorkloadArg>,

    /// Echo message sizes, comma-separated: bytes, or with a K/KiB or M/MiB suffix.
    #[arg(long, value_delimiter = ',', value_parser = parse_size, default_value = "64,1KiB,10KiB,100KiB")]
    pub sizes: Vec<usize>,

    /// Echo connection counts, comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..=10_000), default_value = "10,100,1000")]
    pub conns: Vec<u32>,

    /// Repetitions of every (workload, contender) pair; the median is reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub reps: u32,

    /// Measured window of one scheduling measurement, milliseconds.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub sched_ms: u64,

    /// Measured window of one echo measurement, milliseconds.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub echo_ms: u64,

    /// Unmeasured warm-up before every measurement, milliseconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub warmup_ms: u64,

    /// A few seconds' run of every workload on every contender, to check
    /// that everything works (tiny windows, one rep, a reduced echo matrix
    /// unless --sizes/--conns are given). Never a measurement.
    #[arg(long)]
    pub smoke: bool,

    /// Where to write the results as JSON [default: results.json in
    /// $CARGO_TARGET_DIR/loop-bench/ if set, else target/loop-bench/ at the
    /// workspace root].
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// Where to write the SVG plot [default: results.svg beside the
    /// default JSON].
    #[arg(long)]
    pub plot: Option<PathBuf>,

    /// Extra attempts for a measurement during which other processes kept
    /// the machine busy (see --busy-threshold); 0 keeps every first attempt.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub retries: u32,

    /// Cores' worth of CPU used by other processes during a measurement
    /// above which it is retried.
    #[arg(long, default_value_t = 0.25, value_parser = parse_cores)]
    pub busy_threshold: f64,

    /// Do not pin the loop and the load generator to separate cores.
    #[arg(long)]
    pub no_pin: bool,

    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,

    /// List the contenders this build knows and whether they can run here, then exit.
    #[arg(long)]
    pub list: bool,

    /// Also race a loop per core: the echo cell of --scaling-size and
    /// --scaling-conns served by 1, 2, ... N threads (N = the CPUs this
    /// process may use), an evloop LoopGroup per backend against tokio's
    /// multi-thread runtime with as many workers. Off by default (it adds
    /// about N x contenders x reps x the echo window).
    #[arg(long)]
    pub scaling: bool,

    /// The scaling race's message size.
    #[arg(long, value_parser = parse_size, default_value = "1KiB")]
    pub scaling_size: usize,

    /// The scaling race's connections.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub scaling_conns: u32,

    /// Also measure each server's RSS per idle connection (the server in a
    /// process of its own, --rss-conns connections held open). Off by default.
    #[arg(long)]
    pub rss: bool,

    /// Connections for --rss.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub rss_conns: u32,

    /// (internal) Serve echo as contender NAME for --rss, until stdin closes.
    #[arg(long, hide = true, value_name = "NAME")]
    pub rss_server: Option<String>,

    /// Instead of the race: count each contender's user-space instructions
    /// per echo request with callgrind (each server under `valgrind
    /// --tool=callgrind` in a process of its own, the load generator
    /// outside it making a fixed number of round trips; see --instr-*).
    /// Needs valgrind. Load-independent, unlike the race's times.
    #[arg(long)]
    pub instructions: bool,

    /// --instructions: the message size.
    #[arg(long, value_parser = parse_size, default_value = "64")]
    pub instr_size: usize,

    /// --instructions: the connections.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub instr_conns: u32,

    /// --instructions: round trips per connection in the two runs per
    /// contender, SHORT,LONG; per request = the difference in instructions
    /// over the difference in requests, so start-up and tear-down cancel.
    #[arg(long, value_delimiter = ',', num_args = 2, default_value = "10,60")]
    pub instr_rounds: Vec<u64>,

    /// Measure nothing: print the tables of a JSON file an earlier run
    /// wrote and draw its plot again (to --plot).
    #[arg(long, value_name = "JSON")]
    pub replot: Option<PathBuf>,
}

/// A workload name on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum WorkloadArg {
    /// Every workload.
    All,
    /// Every scheduling micro-benchmark.
    Sched,
    /// Self-rescheduling call_soon chain.
    CallSoon,
    /// Timer schedule + cancel.
    Timer,
    /// Spawn + await of a trivial task.
    SpawnAwait,
    /// Yield switches between two tasks.
    Yield,
    /// Cross-thread wake latency.
    CrossThread,
    /// run_in_executor round trip.
    Executor,
    /// TCP echo matrix.
    Echo,
    /// None of the above (to run only --scaling or --rss).
    None,
}

/// Parses `64`, `1024`, `1K`, `1KiB`, `100kib`, `1M`, `1MiB` into bytes
/// (1 byte to 16 MiB).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mult) = if let Some(n) = t.strip_suffix("kib").or_else(|| t.strip_suffix('k')) {
        (n, 1024)
    } else if let Some(n) = t.strip_suffix("mib").or_else(|| t.strip_suffix('m')) {
        (n, 1024 * 1024)
    } else {
        (t.strip_suffix('b').unwrap_or(&t), 1)
    };
    let n: usize = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a size (try 64, 1KiB, 100KiB)"))?;
    let bytes = n
        .checked_mul(mult)
        .filter(|b| (1..=16 * 1024 * 1024).contains(b))
        .ok_or_else(|| format!("`{s}`: sizes go from 1 byte to 16 MiB"))?;
    Ok(bytes)
}

/// Parses a non-negative number of cores.
pub fn parse_cores(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("`{s}` is not a number of cores (try 0.25)")),
    }
}

fn cells(args: &Args, sizes: &[usize], conns: &[u32]) -> Vec<Cell> {
    let has = |w: WorkloadArg| args.workloads.contains(&w);
    let any = has(WorkloadArg::All);
    let mut cells = Vec::new();
    for (w, arg) in SchedWorkload::ALL.iter().zip([
        WorkloadArg::CallSoon,
        WorkloadArg::Timer,
        WorkloadArg::SpawnAwait,
        WorkloadArg::Yield,
        WorkloadArg::CrossThread,
        WorkloadArg::Executor,
    ]) {
        if any || has(WorkloadArg::Sched) || has(arg) {
            cells.push(Cell::Sched(*w));
        }
    }
    if any || has(WorkloadArg::Echo) {
        for &size in sizes {
            for &c in conns {
                cells.push(Cell::Echo(EchoCell {
                    size,
                    conns: c as usize,
                }));
            }
        }
    }
    cells
}

/// Where results go by default: `$CARGO_TARGET_DIR/loop-bench` when
/// `target_dir` (the variable's value) is set and not empty, as cargo
/// would put its own output there (a relative value is relative to the
/// current directory, as for cargo); else `target/loop-bench` at the
/// workspace root, the parent of `manifest_dir` (loop-bench's own
/// directory, fixed at build time), whatever the current directory.
pub fn default_out_dir(target_dir: Option<std::ffi::OsString>, manifest_dir: &Path) -> PathBuf {
    match target_dir.filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("loop-bench"),
        None => manifest_dir
            .parent()
            .unwrap_or(manifest_dir)
            .join("target")
            .join("loop-bench"),
    }
}

/// [`default_out_dir`] for this process.
fn out_dir() -> PathBuf {
    default_out_dir(
        std::env::var_os("CARGO_TARGET_DIR"),
        Path::new(env!("CARGO_MANIFEST_DIR")),
    )
}

fn write_file(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, contents)
}

/// `--instructions`: the callgrind count instead of the race.
fn instructions(args: &Args, contenders: &[Contender]) -> ExitCode {
    let (short, long) = match args.instr_rounds[..] {
        [s, l] if s < l => (s, l),
        _ => {
            eprintln!("--instr-rounds takes SHORT,LONG with SHORT < LONG");
            return ExitCode::from(2);
        }
    };
    let plan = crate::instr::InstrPlan {
        size: args.instr_size,
        conns: args.instr_conns as usize,
        short,
        long,
        dir: out_dir().join("callgrind"),
    };
    let quiet = args.quiet;
    let rows = crate::instr::count(contenders, &plan, &mut |what| {
        if !quiet {
            eprintln!("{what}");
        }
    });
    print!("{}", crate::instr::text(&rows, &plan));
    println!(
        "callgrind files (for callgrind_annotate): {}",
        plan.dir.display()
    );
    if rows.iter().any(|r| r.per_request.is_none()) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Runs the command line: the whole program behind `main`.
pub fn main() -> ExitCode {
    let matches = Args::command().get_matches();
    let args = match Args::from_arg_matches(&matches) {
        Ok(args) => args,
        Err(e) => e.exit(),
    };
    let explicit = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);

    let json_path = args
        .json
        .clone()
        .unwrap_or_else(|| out_dir().join("results.json"));
    let plot_path = args
        .plot
        .clone()
        .unwrap_or_else(|| out_dir().join("results.svg"));
    if let Some(json) = &args.replot {
        return replot(json, &plot_path);
    }
    if let Some(name) = &args.rss_server {
        return crate::scale::rss_server(name);
    }

    if args.list {
        let (ok, skipped) = contender::resolve(&["all".to_owned()]);
        for c in &ok {
            println!("{:<8} ok", c.name());
        }
        for s in &skipped {
            println!("{:<8} unavailable: {}", s.name, s.reason);
        }
        for name in ["mio", "polling", "uring"] {
            if !ok.iter().any(|c| c.name() == name) && !skipped.iter().any(|s| s.name == name) {
                if let Err(e) = evloop::new_event_loop_for(name) {
                    println!("{name:<8} unavailable: {e}");
                }
            }
        }
        return ExitCode::SUCCESS;
    }

    let (contenders, skipped) = contender::resolve(&args.backends);
    for s in &skipped {
        eprintln!("skipping {}: {}", s.name, s.reason);
    }
    if contenders.is_empty() {
        eprintln!("no contender can run; try --list");
        return ExitCode::from(2);
    }
    if args.instructions {
        return instructions(&args, &contenders);
    }

    // --smoke's echo cells: many small messages, and a few large ones
    // (not 100 KiB x 1000, which moves 100 MB per round).
    let smoke_cells = args.smoke && !explicit("sizes") && !explicit("conns");
    let (sizes, conns, reps, sched, echo) = if args.smoke {
        let ms = Duration::from_millis;
        (
            if explicit("sizes") {
                args.sizes.clone()
            } else {
                vec![64, 100 * 1024]
            },
            if explicit("conns") {
                args.conns.clone()
            } else {
                vec![10, 1000]
            },
            if explicit("reps") { args.reps } else { 1 },
            Window {
                warmup: ms(1),
                measure: ms(5),
            },
            Window {
                warmup: ms(5),
                measure: ms(20),
            },
        )
    } else {
        let ms = Duration::from_millis;
        (
            args.sizes.clone(),
            args.conns.clone(),
            args.reps,
            Window {
                warmup: ms(args.warmup_ms),
                measure: ms(args.sched_ms),
            },
            Window {
                warmup: ms(args.warmup_ms),
                measure: ms(args.echo_ms),
            },
        )
    };
    let placement = Placement::choose(!args.no_pin);
    let plan = Plan {
        contenders: contenders.clone(),
        cells: if smoke_cells {
            cells(&args, &[], &[])
                .into_iter()
                .chain(
                    [(64, 1000), (100 * 1024, 10)]
                        .into_iter()
                        .filter(|_| {
                            args.workloads.contains(&WorkloadArg::All)
                                || args.workloads.contains(&WorkloadArg::Echo)
                        })
                        .map(|(size, conns)| Cell::Echo(EchoCell { size, conns })),
                )
                .collect()
        } else {
            cells(&args, &sizes, &conns)
        },
        reps,
        sched,
        echo,
        placement,
        retries: if args.smoke { 0 } else { args.retries },
        busy_threshold: args.busy_threshold,
    };
    let names: Vec<String> = contenders.iter().map(Contender::name).collect();
    let host = Host::detect();
    if cfg!(debug_assertions) && !args.smoke {
        eprintln!("warning: this is a debug build; its figures mean nothing (use --release)");
    }
    eprintln!(
        "loop-bench: {} on {} ({} cores, kernel {}); loop on cpu {}, load on cpu {}; about {:.0} s",
        names.join(", "),
        host.cpu,
        host.cores,
        host.kernel,
        placement
            .server
            .map_or("unpinned".to_owned(), |c| c.to_string()),
        placement
            .client
            .map_or("unpinned".to_owned(), |c| c.to_string()),
        // (+ 0.0: an empty sum of f64 is -0.0, printed "-0".)
        run::estimate_secs(&plan) + side_races_secs(&args, &contenders, echo, reps) + 0.0
    );

    let started_unix = run::now_unix();
    let clock = Instant::now();
    let bar = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::new(plan.len());
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} {msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    };
    let rows = run::run(&plan, &mut |done, what| {
        bar.set_position(done);
        bar.set_message(what.to_owned());
    });
    // --smoke checks both side races too, small: 64 B x 10, 200 connections.
    let scaling = if args.scaling || args.smoke {
        let cell = if args.smoke && !args.scaling {
            EchoCell {
                size: 64,
                conns: 10,
            }
        } else {
            EchoCell {
                size: args.scaling_size,
                conns: args.scaling_conns as usize,
            }
        };
        let max = crate::sys::allowed_cpus().len().max(1);
        crate::scale::scaling(
            &crate::scale::scale_contenders(&contenders),
            max,
            cell,
            echo,
            reps,
            &mut |what| bar.set_message(what.to_owned()),
        )
    } else {
        Vec::new()
    };
    let rss = if args.rss || args.smoke {
        let conns = if args.smoke && !args.rss {
            200
        } else {
            args.rss_conns as usize
        };
        crate::scale::rss(&contenders, conns, &mut |what| {
            bar.set_message(what.to_owned())
        })
    } else {
        Vec::new()
    };
    bar.finish_and_clear();
    let wall = clock.elapsed();

    let targets = report::targets(&rows);
    let mut text = results_text(&rows, &names, reps, args.smoke, &targets, &scaling, &rss);
    let failed = rows.iter().any(|r| r.status == Status::Failed)
        || scaling.iter().any(|r| r.status == Status::Failed)
        || rss.iter().any(|r| r.status == Status::Failed);
    let command = std::env::args().collect::<Vec<_>>().join(" ");

    let doc = Document {
        tool: "loop-bench",
        version: env!("CARGO_PKG_VERSION"),
        command,
        started_unix,
        wall_secs: wall.as_secs_f64(),
        host: host.clone(),
        settings: Settings {
            reps,
            sched_warmup_ms: sched.warmup.as_millis() as u64,
            sched_ms: sched.measure.as_millis() as u64,
            echo_warmup_ms: echo.warmup.as_millis() as u64,
            echo_ms: echo.measure.as_millis() as u64,
            server_cpu: placement.server,
            client_cpu: placement.client,
            smoke: args.smoke,
            echo_server_buffer: crate::runtime::ECHO_BUF,
            retries: plan.retries,
            busy_threshold: plan.busy_threshold,
        },
        contenders: names.clone(),
        skipped,
        rows,
        targets,
        scaling,
        rss,
    };
    let mut status = if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    };
    match serde_json::to_string_pretty(&doc) {
        Ok(json) => match write_file(&json_path, &json) {
            Ok(()) => text += &format!("\nJSON: {}", json_path.display()),
            Err(e) => {
                eprintln!("cannot write {}: {e}", json_path.display());
                status = ExitCode::FAILURE;
            }
        },
        Err(e) => {
            eprintln!("cannot serialise the results: {e}");
            status = ExitCode::FAILURE;
        }
    }
    let subtitle = format!(
        "{} | kernel {} | {} cores | median of {} reps, whiskers: min-max | {:.0} s run",
        host.cpu,
        host.kernel,
        host.cores,
        reps,
        wall.as_secs_f64()
    );
    match write_file(&plot_path, &crate::plot::svg(&doc.rows, &names, &subtitle)) {
        Ok(()) => text += &format!("\nPlot: {}\n", plot_path.display()),
        Err(e) => {
            eprintln!("cannot write {}: {e}", plot_path.display());
            status = ExitCode::FAILURE;
        }
    }
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}");
    status
}

/// Roughly how long `--scaling` and `--rss` (or their small `--smoke`
/// versions) add to a run, in seconds.
fn side_races_secs(args: &Args, contenders: &[Contender], echo: Window, reps: u32) -> f64 {
    let mut secs = 0.0;
    if args.scaling || args.smoke {
        let threads = crate::sys::allowed_cpus().len().max(1) as f64;
        let n = crate::scale::scale_contenders(contenders).len() as f64;
        secs += threads * n * reps as f64 * (echo.warmup + echo.measure).as_secs_f64();
    }
    if args.rss || args.smoke {
        let conns = if args.rss {
            args.rss_conns as f64
        } else {
            200.0
        };
        // About 0.3 ms a connection, plus the server's start and settling.
        secs += contenders.len() as f64 * (0.6 + conns * 0.3e-3);
    }
    secs
}

/// The tables for the terminal, then the targets (or, for a smoke run, a
/// note that it measured nothing).
fn results_text(
    rows: &[Row],
    names: &[String],
    reps: u32,
    smoke: bool,
    targets: &[report::Target],
    scaling: &[crate::scale::ScaleRow],
    rss: &[crate::scale::RssRow],
) -> String {
    let mut text = report::tables(rows, names, reps);
    if smoke {
        text += "\n(--smoke: tiny windows, one repetition; a check that everything runs, not a measurement)\n";
    } else {
        text += &report::targets_text(targets);
    }
    // Beside the targets: how each scales, and memory per connection.
    text += &crate::scale::scaling_text(scaling);
    text += &crate::scale::rss_text(rss);
    text
}

/// What `--replot` reads back of a [`Document`].
#[derive(serde::Deserialize)]
struct Saved {
    wall_secs: f64,
    host: Host,
    settings: Settings,
    contenders: Vec<String>,
    rows: Vec<Row>,
    // Absent from files written before these races existed.
    #[serde(default)]
    scaling: Vec<crate::scale::ScaleRow>,
    #[serde(default)]
    rss: Vec<crate::scale::RssRow>,
}

/// `--replot`: the tables and targets of the run saved in `json`, and its
/// plot written to `plot`.
fn replot(json: &Path, plot: &Path) -> ExitCode {
    let saved: Saved = match std::fs::read_to_string(json)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
    {
        Ok(saved) => saved,
        Err(e) => {
            eprintln!("cannot read the results in {}: {e}", json.display());
            return ExitCode::FAILURE;
        }
    };
    let reps = saved.settings.reps;
    let targets = report::targets(&saved.rows);
    let mut text = results_text(
        &saved.rows,
        &saved.contenders,
        reps,
        saved.settings.smoke,
        &targets,
        &saved.scaling,
        &saved.rss,
    );
    let subtitle = format!(
        "{} | kernel {} | {} cores | median of {} reps, whiskers: min-max | {:.0} s run",
        saved.host.cpu, saved.host.kernel, saved.host.cores, reps, saved.wall_secs
    );
    let svg = crate::plot::svg(&saved.rows, &saved.contenders, &subtitle);
    let status = match write_file(plot, &svg) {
        Ok(()) => {
            text += &format!("\nPlot: {}\n", plot.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot write {}: {e}", plot.display());
            ExitCode::FAILURE
        }
    };
    println!("{text}");
    status
}

#[cfg(test)]
mod tests {
    use super::{default_out_dir, parse_size};
    use std::path::Path;

    #[test]
    fn results_go_under_cargo_target_dir_when_set() {
        let manifest = Path::new("/ws/loop-bench");
        assert_eq!(
            default_out_dir(Some("/tmp/tgt".into()), manifest),
            Path::new("/tmp/tgt/loop-bench")
        );
        // Unset or empty: the workspace's target/, not the current directory's.
        assert_eq!(
            default_out_dir(None, manifest),
            Path::new("/ws/target/loop-bench")
        );
        assert_eq!(
            default_out_dir(Some("".into()), manifest),
            Path::new("/ws/target/loop-bench")
        );
        // This build's own default is at the workspace root.
        let here = default_out_dir(None, Path::new(env!("CARGO_MANIFEST_DIR")));
        assert!(
            here.parent()
                .unwrap()
                .parent()
                .unwrap()
                .join("Cargo.lock")
                .exists(),
            "{here:?}"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64"), Ok(64));
        assert_eq!(parse_size("64B"), Ok(64));
        assert_eq!(parse_size("1KiB"), Ok(1024));
        assert_eq!(parse_size("100k"), Ok(102_400));
        assert_eq!(parse_size(" 1MiB "), Ok(1 << 20));
        assert!(parse_size("0").is_err());
        assert!(parse_size("17MiB").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999999999999k").is_err());
    }
}
