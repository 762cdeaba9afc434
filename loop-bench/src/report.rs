//! The terminal tables, the targets check, and the JSON document.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::contender::Skipped;
use crate::run::{Row, Status};
use crate::stats::Summary;

/// `24.1M`, `141k`, `512`.
pub fn fmt_rate(x: f64) -> String {
    if x >= 1e9 {
        format!("{:.2}G", x / 1e9)
    } else if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// `850ns`, `12.3µs`, `1.20ms`.
pub fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2}ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1}µs", ns / 1e3)
    } else {
        format!("{ns:.0}ns")
    }
}

fn with_spread(s: &Summary, f: fn(f64) -> String) -> String {
    format!("{} ±{:.0}%", f(s.median), s.spread_pct)
}

/// The foreign load above which a sample is marked `*` in the tables.
pub const BUSY_MARK: f64 = 0.25;

/// `*` if any repetition of `row` ran while other processes used more than
/// [`BUSY_MARK`] cores.
fn busy_mark(row: &Row) -> &'static str {
    if row
        .samples
        .iter()
        .any(|s| s.foreign_cores.is_some_and(|f| f > BUSY_MARK))
    {
        "*"
    } else {
        ""
    }
}

/// Renders rows of cells as an aligned text table.
fn table(title: &str, header: &[String], lines: &[Vec<String>]) -> String {
    let cols = header.len();
    let mut width = vec![0usize; cols];
    for line in std::iter::once(header).chain(lines.iter().map(|l| l.as_slice())) {
        for (i, cell) in line.iter().enumerate().take(cols) {
            width[i] = width[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let _ = writeln!(out, "\n{title}");
    let render = |line: &[String]| {
        let mut s = String::new();
        for (i, cell) in line.iter().enumerate().take(cols) {
            let pad = width[i] - cell.chars().count();
            if i == 0 {
                let _ = write!(s, "{cell}{}", " ".repeat(pad));
            } else {
                let _ = write!(s, "  {}{cell}", " ".repeat(pad));
            }
        }
        s.trim_end().to_owned()
    };
    let _ = writeln!(out, "{}", render(header));
    let total: usize = width.iter().sum::<usize>() + 2 * cols.saturating_sub(1);
    let _ = writeln!(out, "{}", "-".repeat(total));
    for line in lines {
        let _ = writeln!(out, "{}", render(line));
    }
    out
}

fn find<'a>(rows: &'a [Row], cell: &str, contender: &str) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.cell == cell && r.contender == contender)
}

/// `mine`'s requests per server-CPU-second relative to `tokio`'s in the
/// same cell: the median, over the repetitions, of the ratio of the two
/// measurements taken in that repetition. The contenders of a cell are
/// measured back to back in every repetition, so each ratio compares two
/// measurements made under the same machine conditions; on a VM whose
/// speed drifts by tens of percent over minutes this is a steadier figure
/// than the ratio of the two medians, which is the fallback when the
/// repetitions do not pair up.
pub fn paired_cpu_ratio(mine: &Row, tokio: &Row) -> Option<f64> {
    paired_cpu_ratios(mine, tokio).map(|s| s.median)
}

/// The per-repetition ratios behind [`paired_cpu_ratio`], summarised (the
/// range shows how far single repetitions strayed); with no pairing, the
/// ratio of the medians as a one-value summary.
pub fn paired_cpu_ratios(mine: &Row, tokio: &Row) -> Option<Summary> {
    if mine.status != Status::Ok || tokio.status != Status::Ok {
        return None;
    }
    let paired: Vec<f64> = mine
        .samples
        .iter()
        .zip(&tokio.samples)
        .filter_map(|(m, t)| Some(m.ops_per_cpu_sec? / t.ops_per_cpu_sec?))
        .filter(|x| x.is_finite())
        .collect();
    if !paired.is_empty() && mine.samples.len() == tokio.samples.len() {
        return Summary::of(&paired);
    }
    let ratio = mine.ops_per_cpu_sec.as_ref()?.median / tokio.ops_per_cpu_sec.as_ref()?.median;
    Summary::of(&[ratio])
}

fn cell_text(row: Option<&Row>, pick: &dyn Fn(&Row) -> Option<String>) -> String {
    match row {
        None => String::new(),
        Some(r) => match r.status {
            Status::Ok => match pick(r) {
                Some(text) => format!("{text}{}", busy_mark(r)),
                None => "-".to_owned(),
            },
            Status::Unavailable => "n/a".to_owned(),
            Status::Failed => "FAILED".to_owned(),
        },
    }
}

/// Every table for the terminal: scheduling rates, latencies, echo
/// requests/s, server CPU per request, echo latency; then the notes.
pub fn tables(rows: &[Row], contenders: &[String], reps: u32) -> String {
    let mut out = String::new();
    let cells = |workload_is_echo: bool| -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for r in rows {
            if (r.workload == "echo") == workload_is_echo && !v.contains(&r.cell) {
                v.push(r.cell.clone());
            }
        }
        v
    };
    let header = |first: &str| -> Vec<String> {
        std::iter::once(first.to_owned())
            .chain(contenders.iter().cloned())
            .collect()
    };
    let grid = |cells: &[String], pick: &dyn Fn(&Row) -> Option<String>| -> Vec<Vec<String>> {
        cells
            .iter()
            .map(|cell| {
                std::iter::once(cell.clone())
                    .chain(
                        contenders
                            .iter()
                            .map(|c| cell_text(find(rows, cell, c), pick)),
                    )
                    .collect()
            })
            .collect()
    };
    let note = format!("median of {reps} rep(s), ± half the range");

    let sched = cells(false);
    if !sched.is_empty() {
        out += &table(
            &format!("Scheduling, operations per second ({note})"),
            &header("workload"),
            &grid(&sched, &|r| {
                r.rate.as_ref().map(|s| with_spread(s, fmt_rate))
            }),
        );
        let lat: Vec<String> = sched
            .iter()
            .filter(|c| rows.iter().any(|r| &r.cell == *c && r.p50_ns.is_some()))
            .cloned()
            .collect();
        if !lat.is_empty() {
            out += &table(
                "Scheduling latency, p50 / p99 (median over reps)",
                &header("workload"),
                &grid(&lat, &|r| p50_p99(r)),
            );
        }
    }
    let echo = cells(true);
    if !echo.is_empty() {
        out += &table(
            &format!("TCP echo, requests per second ({note})"),
            &header("size x conns"),
            &grid(&echo, &|r| {
                r.rate.as_ref().map(|s| with_spread(s, fmt_rate))
            }),
        );
        out += &table(
            &format!("TCP echo, server CPU per request ({note}; lower is better)"),
            &header("size x conns"),
            &grid(&echo, &|r| {
                r.cpu_ns_per_op.as_ref().map(|s| with_spread(s, fmt_ns))
            }),
        );
        if contenders.iter().any(|c| c == "tokio") {
            let others: Vec<String> = contenders
                .iter()
                .filter(|c| *c != "tokio")
                .cloned()
                .collect();
            let lines: Vec<Vec<String>> = echo
                .iter()
                .map(|cell| {
                    let tokio = find(rows, cell, "tokio");
                    std::iter::once(cell.clone())
                        .chain(others.iter().map(|c| {
                            match (find(rows, cell, c), tokio) {
                                (Some(m), Some(t)) => paired_cpu_ratio(m, t)
                                    .map_or_else(|| "-".to_owned(), |x| format!("{x:.2}x")),
                                _ => "-".to_owned(),
                            }
                        }))
                        .collect()
                })
                .collect();
            out += &table(
                "TCP echo, requests per server-CPU-second relative to tokio (median of \
                 per-repetition ratios; above 1.00x is better than tokio)",
                &std::iter::once("size x conns".to_owned())
                    .chain(others.iter().cloned())
                    .collect::<Vec<_>>(),
                &lines,
            );
        }
        out += &table(
            "TCP echo, CPU busy: server / load generator (median over reps; 100% = one core)",
            &header("size x conns"),
            &grid(&echo, &|r| {
                let server = r.server_util.as_ref()?.median * 100.0;
                let client = r.client_util.as_ref()?.median * 100.0;
                Some(format!("{server:.0}% / {client:.0}%"))
            }),
        );
        out += &table(
            "TCP echo, round-trip latency p50 / p99 (median over reps)",
            &header("size x conns"),
            &grid(&echo, &|r| p50_p99(r)),
        );
    }
    let foreign: Vec<(f64, u32)> = rows
        .iter()
        .flat_map(|r| r.samples.iter())
        .filter_map(|s| s.foreign_cores.map(|f| (f, s.attempts)))
        .collect();
    if !foreign.is_empty() {
        let n = foreign.len() as f64;
        let mean = foreign.iter().map(|(f, _)| f).sum::<f64>() / n;
        let max = foreign.iter().map(|(f, _)| *f).fold(0.0, f64::max);
        let retried = foreign.iter().filter(|(_, a)| *a > 1).count();
        let _ = writeln!(
            out,
            "\nOther processes used {mean:.2} cores on average during the measurements \
             (at most {max:.2}; each judged over at least {:.0} s up to its end, {} \
             in the run's first second not judged); {retried} of {} measurements were \
             retried because the machine was busy. `*`: a repetition in that cell \
             still ran while others used more than {BUSY_MARK} cores.",
            crate::sys::MIN_LOAD_WINDOW.as_secs_f64(),
            rows.iter().map(|r| r.samples.len()).sum::<usize>() - foreign.len(),
            foreign.len()
        );
    }
    let mut notes = String::new();
    for r in rows {
        if r.status != Status::Ok {
            let what = if r.status == Status::Failed {
                "FAILED"
            } else {
                "n/a"
            };
            let line = format!(
                "  {what}: {} on {}: {}\n",
                r.workload,
                r.contender,
                r.reason.as_deref().unwrap_or("")
            );
            if !notes.contains(&line) {
                notes += &line;
            }
        }
    }
    if !notes.is_empty() {
        out += "\nNot measured:\n";
        out += &notes;
    }
    out
}

fn p50_p99(r: &Row) -> Option<String> {
    let p50 = r.p50_ns.as_ref()?;
    let p99 = r.p99_ns.as_ref()?;
    Some(format!("{} / {}", fmt_ns(p50.median), fmt_ns(p99.median)))
}

/// One of the project's performance targets, checked against this run.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// What is compared.
    pub target: String,
    /// The evloop backend concerned.
    pub contender: String,
    /// What was measured (a rate, or a ratio to tokio).
    pub measured: f64,
    /// What the target asks for.
    pub goal: f64,
    /// `measured >= goal`.
    pub met: bool,
    /// A human-readable detail.
    pub detail: String,
}

/// What an echo target compares with tokio, cell by cell: what users
/// measure (requests/s, p99 latency) and what it costs (server CPU per
/// request). Each is a ratio where 1.00 is tokio's figure and above is
/// better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EchoMetric {
    /// Requests per second, ours over tokio's.
    Rate,
    /// p99 latency, tokio's over ours (above 1: ours is lower).
    P99,
    /// Requests per server-CPU-second, ours over tokio's.
    PerCpu,
}

impl EchoMetric {
    /// Every metric, in the order the targets print.
    pub const ALL: [EchoMetric; 3] = [EchoMetric::Rate, EchoMetric::P99, EchoMetric::PerCpu];

    /// The target's text.
    pub fn target(self) -> &'static str {
        match self {
            EchoMetric::Rate => "echo requests/s >= tokio, every cell",
            EchoMetric::P99 => "echo p99 latency <= tokio, every cell",
            EchoMetric::PerCpu => "echo requests per server-CPU-second >= tokio, every cell",
        }
    }

    /// `mine` against `tokio` in one cell (paired per repetition, as
    /// [`paired_cpu_ratio`]); `None` if either did not run.
    pub fn ratio(self, mine: &Row, tokio: &Row) -> Option<f64> {
        match self {
            EchoMetric::PerCpu => paired_cpu_ratio(mine, tokio),
            EchoMetric::Rate => paired_ratio(mine, tokio, |s| Some(s.rate), |r| r.rate),
            EchoMetric::P99 => {
                paired_ratio(tokio, mine, |s| s.p99_ns.map(|v| v as f64), |r| r.p99_ns)
            }
        }
    }
}

/// The median over the repetitions of `num`'s metric over `den`'s in the
/// same repetition, or the ratio of the medians when they do not pair up.
fn paired_ratio(
    num: &Row,
    den: &Row,
    per_sample: fn(&crate::sample::Sample) -> Option<f64>,
    summary: fn(&Row) -> Option<Summary>,
) -> Option<f64> {
    if num.status != Status::Ok || den.status != Status::Ok {
        return None;
    }
    let paired: Vec<f64> = num
        .samples
        .iter()
        .zip(&den.samples)
        .filter_map(|(a, b)| Some(per_sample(a)? / per_sample(b)?))
        .filter(|x| x.is_finite() && *x > 0.0)
        .collect();
    if !paired.is_empty() && num.samples.len() == den.samples.len() {
        return Summary::of(&paired).map(|s| s.median);
    }
    let ratio = summary(num)?.median / summary(den)?.median;
    (ratio.is_finite() && ratio > 0.0).then_some(ratio)
}

/// The targets from the project's brief, measured (never asserted):
/// call_soon > 20 M/s, timer schedule+cancel > 10 M/s, spawn+await at least
/// 2× tokio's rate, and in every echo cell requests/s, p99 latency and
/// requests per server-CPU-second at least as good as tokio's (each
/// compared per repetition, [`EchoMetric`]).
pub fn targets(rows: &[Row]) -> Vec<Target> {
    let mut out = Vec::new();
    let median = |r: &Row, f: fn(&Row) -> Option<Summary>| -> Option<f64> {
        (r.status == Status::Ok)
            .then(|| f(r).map(|s| s.median))
            .flatten()
    };
    let evloop: Vec<&Row> = rows.iter().filter(|r| r.evloop).collect();
    for r in &evloop {
        let rate = median(r, |r| r.rate);
        match (r.workload.as_str(), rate) {
            ("call_soon", Some(v)) => out.push(Target {
                target: "call_soon chain > 20 M/s".to_owned(),
                contender: r.contender.clone(),
                measured: v,
                goal: 20e6,
                met: v > 20e6,
                detail: format!("{}/s", fmt_rate(v)),
            }),
            ("timer", Some(v)) => out.push(Target {
                target: "timer schedule+cancel > 10 M/s".to_owned(),
                contender: r.contender.clone(),
                measured: v,
                goal: 10e6,
                met: v > 10e6,
                detail: format!("{}/s", fmt_rate(v)),
            }),
            ("spawn_await", Some(v)) => {
                let tokio = find(rows, &r.cell, "tokio").and_then(|t| median(t, |t| t.rate));
                if let Some(t) = tokio {
                    out.push(Target {
                        target: "spawn+await >= 2x tokio".to_owned(),
                        contender: r.contender.clone(),
                        measured: v / t,
                        goal: 2.0,
                        met: v >= 2.0 * t,
                        detail: format!("{}/s vs tokio {}/s", fmt_rate(v), fmt_rate(t)),
                    });
                }
            }
            _ => {}
        }
    }
    let backends: Vec<String> = {
        let mut v: Vec<String> = Vec::new();
        for r in &evloop {
            if !v.contains(&r.contender) {
                v.push(r.contender.clone());
            }
        }
        v
    };
    for b in backends {
        for metric in EchoMetric::ALL {
            let mut ratios: Vec<(f64, String)> = Vec::new();
            for r in evloop
                .iter()
                .filter(|r| r.contender == b && r.workload == "echo")
            {
                let ratio = find(rows, &r.cell, "tokio").and_then(|t| metric.ratio(r, t));
                if let Some(x) = ratio {
                    ratios.push((x, r.cell.clone()));
                }
            }
            if ratios.is_empty() {
                continue;
            }
            let met_cells = ratios.iter().filter(|(x, _)| *x >= 1.0).count();
            let geomean =
                (ratios.iter().map(|(x, _)| x.ln()).sum::<f64>() / ratios.len() as f64).exp();
            let worst = ratios
                .iter()
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .cloned()
                .unwrap_or((0.0, String::new()));
            out.push(Target {
                target: metric.target().to_owned(),
                contender: b.clone(),
                measured: worst.0,
                goal: 1.0,
                met: worst.0 >= 1.0,
                detail: format!(
                    "{met_cells}/{} cells as good as tokio or better; geometric mean {geomean:.2}x; worst {:.2}x ({})",
                    ratios.len(),
                    worst.0,
                    worst.1
                ),
            });
        }
    }
    out
}

/// The targets as text for the terminal.
pub fn targets_text(targets: &[Target]) -> String {
    if targets.is_empty() {
        return String::new();
    }
    let mut out = String::from("\nTargets (measured in this run, not asserted):\n");
    for t in targets {
        let _ = writeln!(
            out,
            "  [{}] {:<8} {}: {}",
            if t.met { "met" } else { "NOT met" },
            t.contender,
            t.target,
            t.detail
        );
    }
    out
}

/// The machine the run happened on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Host {
    /// `uname -r`.
    pub kernel: String,
    /// `/proc/cpuinfo`'s first `model name`.
    pub cpu: String,
    /// Online CPUs.
    pub cores: usize,
    /// CPUs this process may use.
    pub allowed_cpus: Vec<usize>,
}

impl Host {
    /// Reads it from `/proc`.
    pub fn detect() -> Host {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        Host {
            kernel,
            cpu,
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            allowed_cpus: crate::sys::allowed_cpus(),
        }
    }
}

/// The settings of a run, as recorded in the JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    /// Repetitions.
    pub reps: u32,
    /// Scheduling warm-up, ms.
    pub sched_warmup_ms: u64,
    /// Scheduling window, ms.
    pub sched_ms: u64,
    /// Echo warm-up, ms.
    pub echo_warmup_ms: u64,
    /// Echo window, ms.
    pub echo_ms: u64,
    /// The server / loop core, if pinned.
    pub server_cpu: Option<usize>,
    /// The load generator / waker core, if pinned.
    pub client_cpu: Option<usize>,
    /// Whether this was a `--smoke` run.
    pub smoke: bool,
    /// Bytes each echo connection's server task reads at a time.
    pub echo_server_buffer: usize,
    /// Extra attempts allowed for a measurement taken while the machine was busy.
    pub retries: u32,
    /// Foreign load (cores) that counts as busy.
    pub busy_threshold: f64,
}

/// The whole JSON document.
#[derive(Debug, Clone, Serialize)]
pub struct Document {
    /// `loop-bench`.
    pub tool: &'static str,
    /// The crate version.
    pub version: &'static str,
    /// The command line.
    pub command: String,
    /// Unix time the run started.
    pub started_unix: u64,
    /// Wall-clock seconds the run took.
    pub wall_secs: f64,
    /// Where it ran.
    pub host: Host,
    /// How it ran.
    pub settings: Settings,
    /// Contenders that ran.
    pub contenders: Vec<String>,
    /// Contenders asked for that could not run.
    pub skipped: Vec<Skipped>,
    /// One row per (cell, contender).
    pub rows: Vec<Row>,
    /// The project's targets, as measured.
    pub targets: Vec<Target>,
    /// The scaling race (`--scaling`; small in `--smoke`), empty if not run.
    pub scaling: Vec<crate::scale::ScaleRow>,
    /// Memory per idle connection (`--rss`; small in `--smoke`), empty if not run.
    pub rss: Vec<crate::scale::RssRow>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::Status;

    fn row(workload: &str, cell: &str, contender: &str, rate: f64, per_cpu: Option<f64>) -> Row {
        let s = |v: f64| Summary {
            median: v,
            min: v,
            max: v,
            spread_pct: 0.0,
        };
        Row {
            workload: workload.to_owned(),
            cell: cell.to_owned(),
            size: None,
            conns: None,
            contender: contender.to_owned(),
            evloop: !["tokio", "smol"].contains(&contender),
            status: Status::Ok,
            reason: None,
            samples: Vec::new(),
            ops_total: 1,
            rate: Some(s(rate)),
            p50_ns: None,
            p99_ns: None,
            cpu_ns_per_op: None,
            ops_per_cpu_sec: per_cpu.map(s),
            server_util: None,
            client_util: None,
        }
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_rate(24_100_000.0), "24.10M");
        assert_eq!(fmt_rate(141_200.0), "141.2k");
        assert_eq!(fmt_rate(512.0), "512");
        assert_eq!(fmt_ns(850.0), "850ns");
        assert_eq!(fmt_ns(12_300.0), "12.3µs");
        assert_eq!(fmt_ns(1_200_000.0), "1.20ms");
    }

    #[test]
    fn targets_compare_with_tokio() {
        let mut rows = vec![
            row("call_soon", "call_soon", "mio", 25e6, None),
            row("timer", "timer", "mio", 9e6, None),
            row("spawn_await", "spawn_await", "mio", 5e6, None),
            row("spawn_await", "spawn_await", "tokio", 2e6, None),
            row("echo", "1KiB x 10", "mio", 1.0, Some(120e3)),
            row("echo", "1KiB x 10", "tokio", 1.0, Some(100e3)),
            row("echo", "64B x 10", "mio", 1.0, Some(90e3)),
            row("echo", "64B x 10", "tokio", 1.0, Some(100e3)),
        ];
        let mut unavailable = row("echo", "1KiB x 10", "polling", 0.0, None);
        unavailable.status = Status::Unavailable;
        unavailable.reason = Some("not yet".to_owned());
        rows.push(unavailable);
        let t = targets(&rows);
        let get = |name: &str| t.iter().find(|t| t.target.starts_with(name)).unwrap();
        assert!(get("call_soon").met);
        assert!(!get("timer").met);
        assert!(get("spawn+await").met);
        assert_eq!(get("spawn+await").measured, 2.5);
        let echo = get("echo requests per server-CPU-second");
        assert!(!echo.met);
        assert!(echo.detail.contains("1/2 cells"), "{}", echo.detail);
        assert!(echo.detail.contains("64B x 10"), "{}", echo.detail);
        assert_eq!(t.iter().filter(|t| t.contender == "polling").count(), 0);
        // Requests/s equal to tokio's in both cells: met.
        let rate = get("echo requests/s");
        assert!(
            rate.met && rate.detail.contains("2/2 cells"),
            "{}",
            rate.detail
        );
        // No latencies in these rows: no p99 target rather than a made-up one.
        assert!(t.iter().all(|t| !t.target.starts_with("echo p99")));
        // p99: a lower latency than tokio's is above 1.
        let with_p99 = |c: &str, p99: f64| {
            let mut r = row("echo", "1KiB x 10", c, 1.0, None);
            r.p99_ns = Some(Summary {
                median: p99,
                min: p99,
                max: p99,
                spread_pct: 0.0,
            });
            r
        };
        let x = EchoMetric::P99.ratio(&with_p99("mio", 200.0), &with_p99("tokio", 100.0));
        assert_eq!(x, Some(0.5));
        let x = EchoMetric::P99.ratio(&with_p99("mio", 50.0), &with_p99("tokio", 100.0));
        assert_eq!(x, Some(2.0));

        let names: Vec<String> = ["mio", "polling", "tokio"].map(String::from).to_vec();
        let text = tables(&rows, &names, 3);
        assert!(text.contains("n/a"), "{text}");
        assert!(text.contains("25.00M ±0%"), "{text}");
        assert!(
            text.contains("Not measured:\n  n/a: echo on polling: not yet"),
            "{text}"
        );
        let svg = crate::plot::svg(&rows, &names, "test <run>");
        assert!(text.contains("relative to tokio"), "{text}");
        assert!(svg.contains("test &lt;run&gt;"));
    }

    #[test]
    fn echo_ratio_pairs_the_repetitions() {
        let with_samples = |contender: &str, per_cpu: &[f64]| {
            let mut r = row("echo", "1KiB x 100", contender, 1.0, None);
            r.samples = per_cpu
                .iter()
                .map(|&v| crate::sample::Sample {
                    ops_per_cpu_sec: Some(v),
                    ..crate::sample::Sample::default()
                })
                .collect();
            r.summarise();
            r
        };
        // The machine speeds up over the run: in two repetitions of three
        // mio is 9-10 % behind tokio, but the medians alone would say it
        // is 5 % ahead.
        let mio = with_samples("mio", &[90.0, 200.0, 300.0]);
        let tokio = with_samples("tokio", &[100.0, 190.0, 330.0]);
        let x = paired_cpu_ratio(&mio, &tokio).unwrap();
        assert!((x - 300.0 / 330.0).abs() < 1e-9, "{x}");
        let t = targets(&[mio, tokio]);
        assert!(!t[0].met);
        assert!(t[0].detail.contains("0/1 cells"), "{}", t[0].detail);
    }
}
