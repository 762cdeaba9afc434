//! `fs_bench`: evloop's file I/O (`evloop::fs`) against `tokio::fs` and
//! against plain `std::fs` calls in `run_in_executor`.
//!
//! Workloads, one after the other, each timed on its own:
//! 1. `write`: a large file (1 GiB by default) written in 64 KiB chunks,
//!    then `fsync`ed (the open, every write, the fsync and the close are in
//!    the time);
//! 2. `read`: the same file read back in 64 KiB chunks;
//! 3. `create`: 10,000 small files (4 KiB each) created and written in one
//!    directory;
//! 4. `read_small`: each of them read back whole;
//! 5. `remove`: each removed.
//!
//! Every operation is awaited before the next starts (one file, one chunk
//! at a time), as a straightforward program would do it. The page cache is
//! dropped (`sync; echo 3 > /proc/sys/vm/drop_caches`, which needs root)
//! before each read workload, so reads come from the device; where that is
//! refused the run says the reads came from the page cache.
//!
//! Contenders: evloop's `fs` on each backend (`mio`, `polling`: every
//! operation becomes a `run_in_executor` job inside `evloop::fs`; `uring`:
//! one io_uring SQE per operation), `tokio` (`tokio::fs` on a
//! `current_thread` runtime, which runs every operation on its blocking
//! pool) and `run_in_executor` (an evloop loop on mio calling `std::fs` in
//! `lp.run_in_executor`, one job per chunk or per file operation).
//! Contenders are interleaved within each repetition, their order rotating
//! between repetitions; each figure is the median of the repetitions ± half
//! their range.
//!
//! ```sh
//! cargo run --release -p loop-bench --bin fs_bench -- [--size-mib N] [--files N] [--reps N] [--json FILE]
//! ```

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};
use loop_bench::report::Host;
use loop_bench::stats::Summary;
use loop_bench::sys::LoadProbe;
use serde::Serialize;

/// Size of every read and write of the large file.
const CHUNK: usize = 64 * 1024;
/// Size of each small file.
const SMALL: usize = 4 * 1024;

const CONTENDERS: &[&str] = &["mio", "polling", "uring", "tokio", "run_in_executor"];

#[derive(Parser, Debug)]
#[command(
    name = "fs_bench",
    about = "evloop::fs on each backend vs tokio::fs vs std::fs in run_in_executor"
)]
struct Args {
    /// Size of the large file, in MiB (written and read in 64 KiB chunks).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    size_mib: u64,
    /// Number of small (4 KiB) files.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    files: u64,
    /// Repetitions of every workload on every contender.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    reps: u32,
    /// Contenders to run (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "mio,polling,uring,tokio,run_in_executor"
    )]
    contenders: Vec<String>,
    /// Where to put the benchmark's files (a temporary directory is made
    /// inside it and removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Do not try to drop the page cache before the read workloads.
    #[arg(long)]
    no_drop_caches: bool,
    /// A tiny run to check that everything works: 4 MiB, 64 files, one
    /// repetition, page cache left alone (unless the sizes are given).
    #[arg(long)]
    smoke: bool,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// One workload.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Workload {
    Write,
    Read,
    Create,
    ReadSmall,
    Remove,
}

const WORKLOADS: [Workload; 5] = [
    Workload::Write,
    Workload::Read,
    Workload::Create,
    Workload::ReadSmall,
    Workload::Remove,
];

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Write => "write",
            Workload::Read => "read",
            Workload::Create => "create",
            Workload::ReadSmall => "read_small",
            Workload::Remove => "remove",
        }
    }

    fn label(self, size_mib: u64, files: u64) -> String {
        match self {
            Workload::Write => format!("write {size_mib} MiB + fsync, MB/s"),
            Workload::Read => format!("read {size_mib} MiB, MB/s"),
            Workload::Create => format!("create {files} × 4 KiB, files/s"),
            Workload::ReadSmall => format!("read {files} × 4 KiB, files/s"),
            Workload::Remove => format!("remove {files}, files/s"),
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Workload::Write | Workload::Read => "MB/s",
            _ => "files/s",
        }
    }

    /// The rate for a run of `secs` (MB/s are 10^6 bytes per second).
    fn rate(self, secs: f64, bytes: u64, files: u64) -> f64 {
        match self {
            Workload::Write | Workload::Read => bytes as f64 / 1e6 / secs,
            _ => files as f64 / secs,
        }
    }
}

/// A contender: runs each workload to completion on its own runtime.
trait Contender {
    fn write_big(&mut self, path: &Path, bytes: u64) -> io::Result<()>;
    fn read_big(&mut self, path: &Path, bytes: u64) -> io::Result<()>;
    fn create_small(&mut self, paths: &[PathBuf]) -> io::Result<()>;
    fn read_small(&mut self, paths: &[PathBuf]) -> io::Result<()>;
    fn remove_small(&mut self, paths: &[PathBuf]) -> io::Result<()>;
}

fn ev(e: evloop::Error) -> io::Error {
    io::Error::from(e)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn short_read(path: &Path, got: u64, want: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("{}: read {got} bytes, expected {want}", path.display()),
    )
}

/// Runs `fut` on `lp` and flattens the loop's error into the result.
fn block<T: 'static>(
    lp: &evloop::EventLoop,
    fut: impl std::future::Future<Output = io::Result<T>> + 'static,
) -> io::Result<T> {
    lp.run_until_complete(fut).map_err(ev)?
}

/// `evloop::fs` on one of evloop's backends.
struct EvloopFs {
    lp: evloop::EventLoop,
}

impl Contender for EvloopFs {
    fn write_big(&mut self, path: &Path, bytes: u64) -> io::Result<()> {
        let path = path.to_owned();
        block(&self.lp, async move {
            let mut file = evloop::fs::File::create(&path).await.map_err(ev)?;
            let mut buf = pattern(CHUNK);
            let mut left = bytes;
            while left > 0 {
                let n = left.min(CHUNK as u64) as usize;
                buf.truncate(n);
                let (res, back) = file.write_all_owned(buf).await;
                res?;
                buf = back;
                left -= n as u64;
            }
            file.sync_all().await.map_err(ev)?;
            Ok(())
        })
    }

    fn read_big(&mut self, path: &Path, bytes: u64) -> io::Result<()> {
        let path = path.to_owned();
        block(&self.lp, async move {
            let mut file = evloop::fs::File::open(&path).await.map_err(ev)?;
            let mut buf: Vec<u8> = Vec::with_capacity(CHUNK);
            let mut total = 0u64;
            loop {
                let (res, back) = file.read_owned(buf).await;
                buf = back;
                match res? {
                    0 => break,
                    n => total += n as u64,
                }
            }
            if total != bytes {
                return Err(short_read(&path, total, bytes));
            }
            Ok(())
        })
    }

    fn create_small(&mut self, paths: &[PathBuf]) -> io::Result<()> {
        let paths = paths.to_vec();
        block(&self.lp, async move {
            let data = pattern(SMALL);
            for path in &paths {
                evloop::fs::write(path, data.clone()).await.map_err(ev)?;
            }
            Ok(())
        })
    }

    fn read_small(&mut self, paths: &[PathBuf]) -> io::Result<()> {
        let paths = paths.to_vec();
        block(&self.lp, async move {
            for path in &paths {
                let data = evloop::fs::read(path).await.map_err(ev)?;
                if data.len() != SMALL {
                    return Err(short_read(path, data.len() as u64, SMALL as u64));
                }
            }
            Ok(())
        })
    }

    fn remove_small(&mut self, paths: &[PathBuf]) -> io::Result<()> {
        let paths = paths.to_vec();
        block(&self.lp, async move {
            for path in &paths {
                evloop::fs::remove_file(path).await.map_err(ev)?;
            }
            Ok(())
        })
    }
}

/// `std::fs` in `run_in_executor` on an evloop loop (mio), one job per
/// chunk or per file operation; buffers move into the job and back.
struct ExecutorFs {
    lp: evloop::EventLoop,
}

impl Contender for ExecutorFs {
    fn write_big(&mut self, path: &Path, bytes: u64) -> io::Result<()> {
        let path = path.to_owned();
        let lp = self.lp.clone();
        block(&self.lp, async move {
            let file = lp
                .run_in_executor(move || std::fs::File::create(path))
                .await
                .map_err(ev)??;
            let file = Arc::new(file);
            let mut buf = pattern(CHUNK);
            let mut left = bytes;
            while left > 0 {
                let n = left.min(CHUNK as u64) as usize;
                buf.truncate(n);
                let f = file.clone();
                buf = lp
                    .run_in_executor(move || {
                        use std::io::Write;
                        (&*f).write_all(&buf).map(|()| buf)
                    })
                    .await
                    .map_err(ev)??;
                left -= n as u64;
            }
            let f = file.clone();
            lp.run_in_executor(move || f.sync_all())
                .await
                .map_err(ev)??;
            // The close, on the executor too.
            lp.run_in_executor(move || drop(file)).await.map_err(ev)?;
            Ok(())
        })
    }

    fn read_big(&mut self, path: &Path, bytes: u64) -> io::Result<()> {
        let path = path.to_owned();
        let lp = self.lp.clone();
        block(&self.lp, async move {
            let p = path.clone();
            let file = lp
                .run_in_executor(move || std::fs::File::open(p))
                .await
                .map_err(ev)??;
            let file = Arc::new(file);
            let mut buf = vec![0u8; CHUNK];
            let mut total = 0u64;
            loop {
                let f = file.clone();
                let (n, back) = lp
                    .run_in_executor(move || {
                        use std::io::Read;
                        (&*f).read(&mut buf).map(|n| (n, buf))
                    })
                    .await
                    .map_err(ev)??;
                buf = back;
                match n {
                    0 => break,
                    n => total += n as u64,
                }
            }
            lp.run_in_executor(move || drop(file)).await.map_err(ev)?;
            if total != bytes {
                return Err(short_read(&path, total, bytes));
            }
            Ok(())
        })
    }

    fn create_small(&mut self, paths: &[PathBuf]) -> io::Result<()> {
        let paths = paths.to_vec();
        let lp = self.lp.clone();
        block(&self.lp, async move {
            let data = Arc::new(pattern(SMALL));
            for path in paths {
                let data = data.clone();
                lp.run_in_executor(move || std::fs::write(path, &*data))
                    .await
                    .map_err(ev)??;
            }
            Ok(())
        })
    }

    fn read_small(&mut self, paths: &[PathBuf]) -> io::Result<()> {
        let paths = paths.to_vec();
        let lp = self.lp.clone();
        block(&self.lp, async move {
            for path in paths {
                let p = path.clone();
                let data = lp
                    .run_in_executor(move || std::fs::read(p))
                    .await
                    .map_err(ev)??;
                if data.len() != SMALL {
                    return Err(short_read(&path, data.len() as u64, SMALL as u64));
                }
            }
            Ok(())
        })
    }

    fn remove_small(&mut self, paths: &[PathBuf]) -> io::Result<()> {
        let paths = paths.to_vec();
        let lp = self.lp.clone();
        block(&self.lp, async move {
            for path in paths {
                lp.run_in_executor(move || std::fs::remove_file(path))
                    .await
                    .map_err(ev)??;
            }
            Ok(())
        })
    }
}

/// `tokio::fs` on a `current_thread` runtime.
struct TokioFs {
    rt: tokio::runtime::Runtime,
}

impl Contender for TokioFs {
    fn write_big(&mut self, path: &Path, bytes: u64) -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        self.rt.block_on(async {
            let mut file = tokio::fs::File::create(path).await?;
            let buf = pattern(CHUNK);
            let mut left = bytes;
            while left > 0 {
                let n = left.min(CHUNK as u64) as usize;
                file.write_all(&buf[..n]).await?;
                left -= n as u64;
            }
            file.flush().await?;
            file.sync_all().await?;
            Ok(())
        })
    }

    fn read_big(&mut self, path: &Path, bytes: u64) -> io::Result<()> {
        use tokio::io::AsyncReadExt;
        self.rt.block_on(async {
            let mut file = tokio::fs::File::open(path).await?;
            let mut buf = vec![0u8; CHUNK];
            let mut total = 0u64;
            loop {
                match file.read(&mut buf).await? {
                    0 => break,
                    n => total += n as u64,
                }
            }
            if total != bytes {
                return Err(short_read(path, total, bytes));
            }
            Ok(())
        })
    }

    fn create_small(&mut self, paths: &[PathBuf]) -> io::Result<()> {
        self.rt.block_on(async {
            let data = pattern(SMALL);
            for path in paths {
                tokio::fs::write(path, &data).await?;
            }
            Ok(())
        })
    }

    fn read_small(&mut self, paths: &[PathBuf]) -> io::Result<()> {
        self.rt.block_on(async {
            for path in paths {
                let data = tokio::fs::read(path).await?;
                if data.len() != SMALL {
                    return Err(short_read(path, data.len() as u64, SMALL as u64));
                }
            }
            Ok(())
        })
    }

    fn remove_small(&mut self, paths: &[PathBuf]) -> io::Result<()> {
        self.rt.block_on(async {
            for path in paths {
                tokio::fs::remove_file(path).await?;
            }
            Ok(())
        })
    }
}

fn make_contender(name: &str) -> io::Result<Box<dyn Contender>> {
    match name {
        "tokio" => Ok(Box::new(TokioFs {
            rt: tokio::runtime::Builder::new_current_thread().build()?,
        })),
        "run_in_executor" => Ok(Box::new(ExecutorFs {
            lp: evloop::new_event_loop_for("mio").map_err(ev)?,
        })),
        backend => Ok(Box::new(EvloopFs {
            lp: evloop::new_event_loop_for(backend).map_err(ev)?,
        })),
    }
}

/// Writes back dirty pages and drops the page cache; `false` if refused.
fn drop_caches() -> bool {
    // SAFETY: sync(2) has no arguments and cannot fail.
    unsafe { libc::sync() };
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}

/// The benchmark's directory, removed (with whatever is left in it) on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Serialize)]
struct Row {
    contender: String,
    workload: &'static str,
    unit: &'static str,
    /// One rate per repetition, in repetition order.
    samples: Vec<f64>,
    /// Wall-clock seconds per repetition.
    seconds: Vec<f64>,
    summary: Option<Summary>,
}

#[derive(Serialize)]
struct Unavailable {
    contender: String,
    reason: String,
}

#[derive(Serialize)]
struct Settings {
    size_mib: u64,
    chunk_bytes: usize,
    files: u64,
    small_file_bytes: usize,
    reps: u32,
    smoke: bool,
    dir: PathBuf,
    /// `true` if the page cache was dropped before every read workload.
    page_cache_dropped: bool,
}

#[derive(Serialize)]
struct Doc {
    settings: Settings,
    host: Host,
    contenders: Vec<String>,
    unavailable: Vec<Unavailable>,
    rows: Vec<Row>,
    /// Cores' worth of CPU other processes used during the run.
    foreign_cores: Option<f64>,
    wall_seconds: f64,
}

fn main() -> std::process::ExitCode {
    let matches = Args::command().get_matches();
    let args = match Args::from_arg_matches(&matches) {
        Ok(args) => args,
        Err(e) => e.exit(),
    };
    let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    let explicit = [given("size_mib"), given("files"), given("reps")];
    match run(args, explicit) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fs_bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `explicit`: whether `--size-mib`, `--files` and `--reps` were given.
fn run(mut args: Args, explicit: [bool; 3]) -> io::Result<()> {
    if args.smoke {
        // Tiny sizes unless given explicitly.
        if !explicit[0] {
            args.size_mib = 4;
        }
        if !explicit[1] {
            args.files = 64;
        }
        if !explicit[2] {
            args.reps = 1;
        }
        args.no_drop_caches = true;
    }
    for c in &args.contenders {
        if !CONTENDERS.contains(&c.as_str()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unknown contender {c}; known: {}", CONTENDERS.join(", ")),
            ));
        }
    }

    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let scratch = Scratch(base.join(format!("fs-bench-{}", std::process::id())));
    std::fs::create_dir_all(&scratch.0)?;
    let bytes = args.size_mib * 1024 * 1024;
    // Check the space first: the large file plus the small ones, with room to spare.
    let need = bytes + args.files * (SMALL as u64 + 4096);
    if let Some(avail) = free_bytes(&scratch.0) {
        if avail < need + (2 << 30) {
            return Err(io::Error::other(format!(
                "{}: {} MiB free, the benchmark needs {} MiB and leaves 2 GiB",
                scratch.0.display(),
                avail >> 20,
                need >> 20
            )));
        }
    }

    let mut drop_ok = !args.no_drop_caches;
    if drop_ok && !drop_caches() {
        eprintln!(
            "fs_bench: cannot drop the page cache (needs root): reads come from the page cache"
        );
        drop_ok = false;
    }

    // Which contenders can run here.
    let mut contenders = Vec::new();
    let mut unavailable = Vec::new();
    for name in &args.contenders {
        match make_contender(name) {
            Ok(_) => contenders.push(name.clone()),
            Err(e) => {
                eprintln!("fs_bench: {name} unavailable: {e}");
                unavailable.push(Unavailable {
                    contender: name.clone(),
                    reason: e.to_string(),
                });
            }
        }
    }

    eprintln!(
        "fs_bench: {} MiB in {} KiB chunks, {} files of {} KiB, {} repetition(s), in {}; {}",
        args.size_mib,
        CHUNK / 1024,
        args.files,
        SMALL / 1024,
        args.reps,
        scratch.0.display(),
        if drop_ok {
            "page cache dropped before reads"
        } else {
            "reads from the page cache"
        }
    );

    // seconds[contender][workload][rep]
    let mut seconds = vec![vec![Vec::new(); WORKLOADS.len()]; contenders.len()];
    let started = Instant::now();
    let probe = LoadProbe::now();
    for rep in 0..args.reps as usize {
        for k in 0..contenders.len() {
            let ci = (k + rep) % contenders.len();
            let name = &contenders[ci];
            let mut contender = make_contender(name)?;
            let dir = scratch.0.join(format!("{name}-{rep}"));
            std::fs::create_dir(&dir)?;
            let big = dir.join("big");
            let small_dir = dir.join("small");
            std::fs::create_dir(&small_dir)?;
            let paths: Vec<PathBuf> = (0..args.files)
                .map(|i| small_dir.join(format!("f{i:07}")))
                .collect();
            for (wi, w) in WORKLOADS.iter().enumerate() {
                if drop_ok && matches!(w, Workload::Read | Workload::ReadSmall) {
                    drop_ok = drop_caches();
                }
                if *w == Workload::Create {
                    // Nothing of the large file left in the cache or on disk.
                    std::fs::remove_file(&big)?;
                    // SAFETY: sync(2) has no arguments and cannot fail.
                    unsafe { libc::sync() };
                }
                let t = Instant::now();
                let result = match w {
                    Workload::Write => contender.write_big(&big, bytes),
                    Workload::Read => contender.read_big(&big, bytes),
                    Workload::Create => contender.create_small(&paths),
                    Workload::ReadSmall => contender.read_small(&paths),
                    Workload::Remove => contender.remove_small(&paths),
                };
                let secs = t.elapsed().as_secs_f64();
                result
                    .map_err(|e| io::Error::new(e.kind(), format!("{name} {}: {e}", w.name())))?;
                eprintln!(
                    "  rep {} {name:>15} {:>10}: {:8.3} s  {:>12.1} {}",
                    rep + 1,
                    w.name(),
                    secs,
                    w.rate(secs, bytes, args.files),
                    w.unit()
                );
                seconds[ci][wi].push(secs);
            }
            std::fs::remove_dir(&small_dir)?;
            std::fs::remove_dir(&dir)?;
        }
    }
    let foreign = probe.and_then(|p| p.foreign_cores());
    let wall = started.elapsed();

    let mut rows = Vec::new();
    for (ci, name) in contenders.iter().enumerate() {
        for (wi, w) in WORKLOADS.iter().enumerate() {
            let secs = &seconds[ci][wi];
            let samples: Vec<f64> = secs.iter().map(|s| w.rate(*s, bytes, args.files)).collect();
            rows.push(Row {
                contender: name.clone(),
                workload: w.name(),
                unit: w.unit(),
                summary: Summary::of(&samples),
                samples,
                seconds: secs.clone(),
            });
        }
    }
    let doc = Doc {
        settings: Settings {
            size_mib: args.size_mib,
            chunk_bytes: CHUNK,
            files: args.files,
            small_file_bytes: SMALL,
            reps: args.reps,
            smoke: args.smoke,
            dir: base,
            page_cache_dropped: drop_ok,
        },
        host: Host::detect(),
        contenders,
        unavailable,
        rows,
        foreign_cores: foreign,
        wall_seconds: wall.as_secs_f64(),
    };
    print_table(&doc, &args);
    if let Some(path) = &args.json {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)?;
        println!("JSON: {}", path.display());
    }
    drop(scratch);
    Ok(())
}

fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: a plain C struct of integers, for which all zeroes is valid.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` is a writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

fn fmt_rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn print_table(doc: &Doc, args: &Args) {
    println!();
    println!(
        "File I/O, median of {} repetition(s) ± half the range ({}; {:.0} s, other processes {}):",
        args.reps,
        if doc.settings.page_cache_dropped {
            "page cache dropped before each read"
        } else {
            "reads from the page cache"
        },
        doc.wall_seconds,
        doc.foreign_cores
            .map(|c| format!("{c:.2} cores"))
            .unwrap_or_else(|| "unknown".to_owned()),
    );
    println!();
    print!("| workload |");
    for c in &doc.contenders {
        print!(" {c} |");
    }
    println!();
    print!("|---|");
    for _ in &doc.contenders {
        print!("---|");
    }
    println!();
    for w in WORKLOADS {
        print!("| {} |", w.label(args.size_mib, args.files));
        for c in &doc.contenders {
            let row = doc
                .rows
                .iter()
                .find(|r| &r.contender == c && r.workload == w.name());
            match row.and_then(|r| r.summary) {
                Some(s) => print!(" {} ±{:.0}% |", fmt_rate(s.median), s.spread_pct),
                None => print!(" – |"),
            }
        }
        println!();
    }
    for u in &doc.unavailable {
        println!("{}: unavailable ({})", u.contender, u.reason);
    }
    println!();
}
