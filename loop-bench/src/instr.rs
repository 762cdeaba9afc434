//! `--instructions`: user-space instructions per echo request, counted by
//! callgrind, for each contender's echo server.
//!
//! Each server runs in a process of its own under
//! `valgrind --tool=callgrind` (this binary with the hidden
//! `--rss-server NAME`); the load generator ([`client::run_count`]) runs
//! outside valgrind and makes an exact number of round trips per
//! connection, then closes the connections and the server's stdin, and
//! the server exits. Every contender is run twice, with `short` and `long`
//! round trips per connection; start-up, accepting and tear-down cost the
//! same in both, so (instructions(long) - instructions(short)) / (the
//! difference in round trips) is what one request costs, in every thread
//! of the server process (the loop thread and any helper). Instruction
//! counts do not depend on the machine's load, unlike times.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::contender::Contender;
use crate::echo::client;
use crate::scale::{check_nofile, read_listening, vs_tokio};

/// How long the load generator waits for any echo from a server under
/// valgrind before it gives up.
const STALL: Duration = Duration::from_secs(60);

/// What to count.
#[derive(Debug, Clone)]
pub struct InstrPlan {
    /// Message size in bytes.
    pub size: usize,
    /// Connections.
    pub conns: usize,
    /// Round trips per connection in the shorter run.
    pub short: u64,
    /// Round trips per connection in the longer run.
    pub long: u64,
    /// Where the callgrind output files go (`NAME-ROUNDS.callgrind`), for
    /// `callgrind_annotate`.
    pub dir: PathBuf,
}

/// One contender's count.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct InstrRow {
    /// The contender's name.
    pub contender: String,
    /// Instructions of the shorter run, all threads of the server process.
    pub short_ir: Option<u64>,
    /// Instructions of the longer run.
    pub long_ir: Option<u64>,
    /// Instructions per request: the difference over the extra requests.
    pub per_request: Option<f64>,
    /// Why it failed, if it did.
    pub reason: Option<String>,
}

/// Counts every contender in `contenders` (two valgrind runs each);
/// `progress` hears what is being run.
pub fn count(
    contenders: &[Contender],
    plan: &InstrPlan,
    progress: &mut dyn FnMut(&str),
) -> Vec<InstrRow> {
    contenders
        .iter()
        .map(|c| {
            let name = c.name();
            let mut run = |rounds: u64| {
                progress(&format!(
                    "callgrind: {name}, {} x {} B, {rounds} round trips each",
                    plan.conns, plan.size
                ));
                count_one(&name, plan, rounds)
            };
            match run(plan.short).and_then(|s| Ok((s, run(plan.long)?))) {
                Ok((s, l)) => {
                    let extra = (plan.long - plan.short) * plan.conns as u64;
                    InstrRow {
                        contender: name,
                        short_ir: Some(s),
                        long_ir: Some(l),
                        per_request: Some((l as f64 - s as f64) / extra as f64),
                        reason: None,
                    }
                }
                Err(e) => InstrRow {
                    contender: name,
                    short_ir: None,
                    long_ir: None,
                    per_request: None,
                    reason: Some(e),
                },
            }
        })
        .collect()
}

fn count_one(name: &str, plan: &InstrPlan, rounds: u64) -> Result<u64, String> {
    check_nofile(plan.conns)?;
    std::fs::create_dir_all(&plan.dir)
        .map_err(|e| format!("create {}: {e}", plan.dir.display()))?;
    let out = plan.dir.join(format!("{name}-{rounds}.callgrind"));
    let _ = std::fs::remove_file(&out);
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut child = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg("-q")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(exe)
        .args(["--rss-server", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawn valgrind (is it installed?): {e}"))?;
    let mut addr = None;
    let served = (|| {
        let listening = read_listening(&mut child)?;
        addr = Some(listening);
        client::run_count(listening, plan.conns, plan.size, rounds, STALL)
            .map_err(|e| format!("load generator: {e}"))
    })();
    // Closing stdin stops the server; it then exits and callgrind writes
    // its file. Under valgrind a thread blocked in `io_uring_enter` keeps
    // valgrind's lock (that syscall is not marked as blocking in 3.19), so
    // the server's stdin thread cannot run until the loop wakes: a
    // connection opened and closed now and then wakes it (each costs the
    // server an accept and an end of stream, the same few in both runs,
    // and nothing beside the thousands of requests counted).
    drop(child.stdin.take());
    let deadline = std::time::Instant::now() + STALL;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() < deadline => {
                if let Some(addr) = addr {
                    let _ = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("the server did not exit within {STALL:?}"));
            }
            Err(e) => return Err(format!("wait for valgrind: {e}")),
        }
    };
    served?;
    if !status.success() {
        return Err(format!("the server under valgrind exited with {status}"));
    }
    total_ir(&out)
}

/// The `summary:` (or `totals:`) line of a callgrind output file: its
/// instruction count.
fn total_ir(path: &Path) -> Result<u64, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    parse_total(&text).ok_or_else(|| format!("no summary line in {}", path.display()))
}

fn parse_total(text: &str) -> Option<u64> {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("summary:"))
        .or_else(|| text.lines().find_map(|l| l.strip_prefix("totals:")))?;
    line.split_whitespace().next()?.parse().ok()
}

/// The table, with the goal (at most tokio's instructions per request).
pub fn text(rows: &[InstrRow], plan: &InstrPlan) -> String {
    let mut out = format!(
        "\nInstructions per request (callgrind, user space, every thread of the server \
         process): {} connections x {} B echo; runs of {} and {} round trips per \
         connection, per request = the difference / {} requests; goal: <= tokio\n\
         | contender | Ir ({} each) | Ir ({} each) | per request | vs tokio |\n|---|---|---|---|---|\n",
        plan.conns,
        plan.size,
        plan.short,
        plan.long,
        (plan.long - plan.short) * plan.conns as u64,
        plan.short,
        plan.long,
    );
    let tokio = rows
        .iter()
        .find(|r| r.contender == "tokio")
        .and_then(|r| r.per_request);
    for r in rows {
        match (r.short_ir, r.long_ir, r.per_request) {
            (Some(s), Some(l), Some(per)) => {
                let vs = vs_tokio(&r.contender, per, tokio);
                out += &format!("| {} | {s} | {l} | {per:.0} | {vs} |\n", r.contender);
            }
            _ => {
                out += &format!(
                    "| {} | failed: {} | | | |\n",
                    r.contender,
                    r.reason.as_deref().unwrap_or("?")
                )
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_summary_line() {
        let file = "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nsummary: 123456\n\nfn=x\n";
        assert_eq!(parse_total(file), Some(123456));
        assert_eq!(parse_total("events: Ir\ntotals: 42\n"), Some(42));
        assert_eq!(parse_total("events: Ir\n"), None);
    }
}
