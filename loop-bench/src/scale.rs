//! Two races beside the main matrix:
//!
//! - **Scaling** (`--scaling`): one echo cell served by 1, 2, ... N threads:
//!   an [`evloop::LoopGroup`] of that many loops (one `SO_REUSEPORT`
//!   listener per loop, [`evloop::LoopGroup::serve`]) against tokio's
//!   multi-thread runtime with as many workers (one listener, work
//!   stealing). Nothing is pinned: on a machine with N cores the load
//!   generator (one thread) shares them with the server's N threads, as a
//!   client on the same host would.
//! - **Memory** (`--rss`): the resident set of a server process (this
//!   binary, re-run with the hidden `--rss-server NAME`) before and after
//!   10,000 connections are opened to it, each having made one 1-byte
//!   round trip and then left idle: bytes per idle connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::contender::Contender;
use crate::echo::{client, EchoCell};
use crate::report::{fmt_ns, fmt_rate};
use crate::run::Status;
use crate::runtime::{Runtime, Stopper, ECHO_BUF};
use crate::sample::{Sample, Window};
use crate::stats::Summary;

/// The scaling race's name for tokio's multi-thread runtime.
pub const TOKIO_MT: &str = "tokio-mt";

/// One contender at one thread count, every repetition.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScaleRow {
    /// An evloop backend (a `LoopGroup` on it) or [`TOKIO_MT`].
    pub contender: String,
    /// Loops or worker threads.
    pub threads: usize,
    /// Message size, bytes.
    pub size: usize,
    /// Connections.
    pub conns: usize,
    /// How it went.
    pub status: Status,
    /// Why it failed.
    pub reason: Option<String>,
    /// One per repetition.
    pub samples: Vec<Sample>,
    /// Requests/s.
    pub rate: Option<Summary>,
    /// Requests per server-CPU-second.
    pub ops_per_cpu_sec: Option<Summary>,
    /// p99 latency, ns.
    pub p99_ns: Option<Summary>,
    /// Server CPU over wall time (2.0 is two cores busy).
    pub server_util: Option<Summary>,
}

impl ScaleRow {
    fn summarise(&mut self) {
        let of = |f: &dyn Fn(&Sample) -> Option<f64>| {
            let v: Vec<f64> = self.samples.iter().filter_map(f).collect();
            Summary::of(&v)
        };
        self.rate = of(&|s| Some(s.rate));
        self.ops_per_cpu_sec = of(&|s| s.ops_per_cpu_sec);
        self.p99_ns = of(&|s| s.p99_ns.map(|v| v as f64));
        self.server_util = of(&|s| s.server_util);
    }
}

/// The contenders of the scaling race: every evloop backend among
/// `contenders`, and tokio's multi-thread runtime if tokio is one.
pub fn scale_contenders(contenders: &[Contender]) -> Vec<String> {
    let mut out: Vec<String> = contenders
        .iter()
        .filter(|c| c.is_evloop())
        .map(Contender::name)
        .collect();
    if contenders.iter().any(|c| c.name() == "tokio") {
        out.push(TOKIO_MT.to_owned());
    }
    out
}

/// Runs the scaling race: `cell` at 1..=`max_threads` threads for every
/// contender, interleaved (contenders rotate per repetition), `reps` times.
pub fn scaling(
    contenders: &[String],
    max_threads: usize,
    cell: EchoCell,
    win: Window,
    reps: u32,
    progress: &mut dyn FnMut(&str),
) -> Vec<ScaleRow> {
    let mut rows: Vec<ScaleRow> = (1..=max_threads)
        .flat_map(|threads| {
            contenders.iter().map(move |c| ScaleRow {
                contender: c.clone(),
                threads,
                size: cell.size,
                conns: cell.conns,
                status: Status::Ok,
                reason: None,
                samples: Vec::new(),
                rate: None,
                ops_per_cpu_sec: None,
                p99_ns: None,
                server_util: None,
            })
        })
        .collect();
    let n = contenders.len();
    for rep in 0..reps {
        for t in 0..max_threads {
            for k in 0..n {
                let idx = (k + rep as usize) % n;
                let row = &mut rows[t * n + idx];
                if row.status != Status::Ok {
                    continue;
                }
                progress(&format!(
                    "scaling rep {}/{reps}: {} with {} threads",
                    rep + 1,
                    row.contender,
                    row.threads
                ));
                match measure_scaled(&row.contender, row.threads, cell, win) {
                    Ok(sample) => row.samples.push(sample),
                    Err(e) => {
                        row.status = Status::Failed;
                        row.reason = Some(e);
                    }
                }
            }
        }
    }
    for row in &mut rows {
        row.summarise();
    }
    rows
}

/// Runs the load generator against a server at `addr` on this thread.
fn load(addr: SocketAddr, cell: EchoCell, win: Window) -> Result<Sample, String> {
    let mut r = client::run(addr, cell.conns, cell.size, win).map_err(|e| format!("load: {e}"))?;
    Ok(Sample::new(r.requests, r.elapsed)
        .with_latencies(&mut r.latencies)
        .with_cpu(r.server_cpu, r.client_cpu))
}

fn measure_scaled(
    contender: &str,
    threads: usize,
    cell: EchoCell,
    win: Window,
) -> Result<Sample, String> {
    if contender == TOKIO_MT {
        return tokio_mt(threads, cell, win);
    }
    let group = evloop::LoopGroup::builder()
        .threads(threads)
        .backend(contender)
        .thread_name("bench-loop")
        .build()
        .map_err(|e| format!("loop group: {e}"))?;
    let addr = group
        .serve(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            |stream: evloop::net::TcpStream| async move {
                let _ = stream.set_nodelay(true);
                let mut buf = Vec::with_capacity(ECHO_BUF);
                loop {
                    let (res, data) = stream.read_owned(buf).await;
                    match res {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    let (res, data) = stream.write_all_owned(data).await;
                    if res.is_err() {
                        break;
                    }
                    buf = data;
                }
            },
        )
        .map_err(|e| format!("serve: {e}"))?;
    let sample = load(addr, cell, win);
    group
        .shutdown_timeout(Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    sample
}

fn tokio_mt(threads: usize, cell: EchoCell, win: Window) -> Result<Sample, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("bench-tokio")
        .enable_io()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let (listener, addr) = crate::echo::listen().map_err(|e| format!("listen: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("set_nonblocking: {e}"))?;
    let listener = {
        let _enter = rt.enter();
        tokio::net::TcpListener::from_std(listener).map_err(|e| format!("listener: {e}"))?
    };
    rt.spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = vec![0u8; ECHO_BUF];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
    let sample = load(addr, cell, win);
    rt.shutdown_timeout(Duration::from_secs(5));
    sample
}

/// The scaling table for the terminal.
pub fn scaling_text(rows: &[ScaleRow]) -> String {
    let Some(first) = rows.first() else {
        return String::new();
    };
    let max = rows.iter().map(|r| r.threads).max().unwrap_or(1);
    let mut names: Vec<&str> = Vec::new();
    for r in rows {
        if !names.contains(&r.contender.as_str()) {
            names.push(&r.contender);
        }
    }
    let get = |c: &str, t: usize| {
        rows.iter()
            .find(|r| r.contender == c && r.threads == t && r.status == Status::Ok)
    };
    let mut out = format!(
        "\nScaling: echo {} x {} served by 1..{max} threads (evloop: a LoopGroup, one SO_REUSEPORT \
         listener per loop; {TOKIO_MT}: tokio's multi-thread runtime, one listener), nothing pinned, \
         the load generator on the same cores; median of {} reps\n",
        crate::echo::size_label(first.size),
        first.conns,
        first.samples.len().max(1),
    );
    let mut header = vec!["contender".to_owned()];
    for t in 1..=max {
        header.push(format!("{t} thr req/s"));
    }
    header.push(format!("1->{max}"));
    for t in 1..=max {
        header.push(format!("{t} thr req/CPU-s"));
    }
    for t in 1..=max {
        header.push(format!("{t} thr p99"));
    }
    out += &format!("| {} |\n", header.join(" | "));
    out += &format!("|{}\n", "---|".repeat(header.len()));
    for name in &names {
        let mut line = vec![(*name).to_owned()];
        let rate = |t| get(name, t).and_then(|r| r.rate).map(|s| s.median);
        for t in 1..=max {
            line.push(rate(t).map_or("failed".to_owned(), fmt_rate));
        }
        line.push(match (rate(1), rate(max)) {
            (Some(a), Some(b)) if a > 0.0 => format!("{:.2}x", b / a),
            _ => "-".to_owned(),
        });
        for t in 1..=max {
            line.push(
                get(name, t)
                    .and_then(|r| r.ops_per_cpu_sec)
                    .map_or("-".to_owned(), |s| fmt_rate(s.median)),
            );
        }
        for t in 1..=max {
            line.push(
                get(name, t)
                    .and_then(|r| r.p99_ns)
                    .map_or("-".to_owned(), |s| fmt_ns(s.median)),
            );
        }
        out += &format!("| {} |\n", line.join(" | "));
    }
    for r in rows.iter().filter(|r| r.status != Status::Ok) {
        out += &format!(
            "  {} with {} threads failed: {}\n",
            r.contender,
            r.threads,
            r.reason.as_deref().unwrap_or("?")
        );
    }
    out
}

/// One contender's memory per idle connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RssRow {
    /// An evloop backend or `tokio` (current_thread, the main matrix's server).
    pub contender: String,
    /// Connections opened.
    pub conns: usize,
    /// How it went.
    pub status: Status,
    /// Why it failed.
    pub reason: Option<String>,
    /// The server's VmRSS before the connections, KiB.
    pub before_kib: Option<u64>,
    /// ... and with every connection open and idle, KiB.
    pub after_kib: Option<u64>,
    /// `(after - before) / conns`, bytes.
    pub bytes_per_conn: Option<f64>,
}

/// Measures every contender's RSS per idle connection at `conns`
/// connections; a server is this binary run with `--rss-server NAME`.
pub fn rss(contenders: &[Contender], conns: usize, progress: &mut dyn FnMut(&str)) -> Vec<RssRow> {
    contenders
        .iter()
        .filter(|c| c.is_evloop() || c.name() == "tokio")
        .map(|c| {
            let name = c.name();
            progress(&format!("rss: {name} with {conns} connections"));
            match rss_one(&name, conns) {
                Ok((before, after)) => RssRow {
                    contender: name,
                    conns,
                    status: Status::Ok,
                    reason: None,
                    before_kib: Some(before),
                    after_kib: Some(after),
                    bytes_per_conn: Some(
                        (after as f64 - before as f64) * 1024.0 / conns.max(1) as f64,
                    ),
                },
                Err(e) => RssRow {
                    contender: name,
                    conns,
                    status: Status::Failed,
                    reason: Some(e),
                    before_kib: None,
                    after_kib: None,
                    bytes_per_conn: None,
                },
            }
        })
        .collect()
}

fn vm_rss_kib(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("read /proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no VmRSS in /proc/{pid}/status"))
}

fn rss_one(name: &str, conns: usize) -> Result<(u64, u64), String> {
    check_nofile(conns)?;
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut child = Command::new(exe)
        .args(["--rss-server", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawn the server: {e}"))?;
    let result = (|| {
        let addr = read_listening(&mut child)?;
        std::thread::sleep(Duration::from_millis(200));
        let before = vm_rss_kib(child.id())?;
        let mut open = Vec::with_capacity(conns);
        for i in 0..conns {
            let mut s =
                std::net::TcpStream::connect(addr).map_err(|e| format!("connection {i}: {e}"))?;
            s.set_read_timeout(Some(Duration::from_secs(10)))
                .map_err(|e| e.to_string())?;
            s.write_all(b"x")
                .map_err(|e| format!("connection {i}: {e}"))?;
            let mut b = [0u8; 1];
            s.read_exact(&mut b)
                .map_err(|e| format!("connection {i}'s echo: {e}"))?;
            open.push(s);
        }
        std::thread::sleep(Duration::from_millis(300));
        let after = vm_rss_kib(child.id())?;
        // The server goes first (its side keeps the TIME_WAITs), then ours.
        let _ = child.kill();
        drop(open);
        Ok((before, after))
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// Whether this process may open `conns` connections (and some more),
/// raising its descriptor limit first.
pub(crate) fn check_nofile(conns: usize) -> Result<(), String> {
    let limit = crate::sys::raise_nofile().map_err(|e| format!("RLIMIT_NOFILE: {e}"))?;
    if limit < conns as u64 + 100 {
        return Err(format!(
            "RLIMIT_NOFILE is {limit}, too low for {conns} connections"
        ));
    }
    Ok(())
}

/// The address a `--rss-server` child prints (`LISTENING addr`) before it
/// serves.
pub(crate) fn read_listening(child: &mut std::process::Child) -> Result<SocketAddr, String> {
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| format!("read the server's port: {e}"))?;
    line.trim()
        .strip_prefix("LISTENING ")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("the server said {line:?}"))
}

/// A "vs tokio" cell for a lower-is-better figure: the ratio to tokio's
/// and whether the goal (at most tokio's) is met; "-" for tokio itself.
pub(crate) fn vs_tokio(contender: &str, per: f64, tokio: Option<f64>) -> String {
    match tokio {
        Some(t) if contender != "tokio" && t > 0.0 => format!(
            "{:.2}x ({})",
            per / t,
            if per <= t { "goal met" } else { "goal NOT met" }
        ),
        _ => "-".to_owned(),
    }
}

/// `--rss-server NAME`: serve echo on 127.0.0.1 with contender `NAME`'s
/// server, print `LISTENING addr`, and serve until stdin closes.
pub fn rss_server(name: &str) -> ExitCode {
    if let Err(e) = crate::sys::raise_nofile() {
        eprintln!("rss-server: RLIMIT_NOFILE: {e}");
    }
    let (contenders, skipped) = crate::contender::resolve(&[name.to_owned()]);
    let Some(contender) = contenders.into_iter().next() else {
        eprintln!(
            "rss-server: no contender {name}: {}",
            skipped.first().map_or("unknown", |s| s.reason.as_str())
        );
        return ExitCode::FAILURE;
    };
    let (listener, addr): (TcpListener, SocketAddr) = match crate::echo::listen() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("rss-server: listen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ready: Box<dyn FnOnce(Stopper)> = Box::new(move |stop| {
        println!("LISTENING {addr}");
        let _ = std::io::stdout().flush();
        std::thread::spawn(move || {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            stop();
        });
    });
    let served = match &contender {
        Contender::Evloop(r) => r.serve_echo(listener, ready),
        Contender::Tokio(r) => r.serve_echo(listener, ready),
        Contender::Smol(r) => r.serve_echo(listener, ready),
    };
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rss-server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The memory table, with the goal (at most tokio's bytes per connection).
pub fn rss_text(rows: &[RssRow]) -> String {
    let Some(first) = rows.first() else {
        return String::new();
    };
    let mut out = format!(
        "\nMemory: server RSS per idle connection at {} connections (VmRSS after - before, \
         each connection one 1-byte round trip then idle; goal: <= tokio)\n\
         | contender | RSS before | RSS after | bytes per connection | vs tokio |\n|---|---|---|---|---|\n",
        first.conns
    );
    let tokio = rows
        .iter()
        .find(|r| r.contender == "tokio")
        .and_then(|r| r.bytes_per_conn);
    for r in rows {
        match (r.before_kib, r.after_kib, r.bytes_per_conn) {
            (Some(b), Some(a), Some(per)) => {
                let vs = vs_tokio(&r.contender, per, tokio);
                out += &format!(
                    "| {} | {:.1} MiB | {:.1} MiB | {:.0} | {vs} |\n",
                    r.contender,
                    b as f64 / 1024.0,
                    a as f64 / 1024.0,
                    per
                );
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
