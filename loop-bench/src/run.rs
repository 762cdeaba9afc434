//! Running the race: every cell, every contender, interleaved, `reps` times.
//!
//! Within a repetition the cells run in order and, in each cell, every
//! contender runs once before the next cell starts; the contenders' order
//! rotates from one repetition to the next. So a slow drift of the machine
//! (another build starting, thermal limits) hits every contender alike
//! instead of whichever happened to run last.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::contender::Contender;
use crate::echo::EchoCell;
use crate::sample::{Sample, Window};
use crate::sched::{Outcome, SchedWorkload};
use crate::stats::Summary;
use crate::sys::{LoadMeter, Placement};

/// One cell of the race: a scheduling workload or an echo configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cell {
    /// A scheduling micro-benchmark.
    Sched(SchedWorkload),
    /// TCP echo with this message size and connection count.
    Echo(EchoCell),
}

impl Cell {
    /// The workload's name (`call_soon`, ..., `echo`).
    pub fn workload(&self) -> &'static str {
        match self {
            Cell::Sched(w) => w.name(),
            Cell::Echo(_) => "echo",
        }
    }

    /// The cell's label in tables: the workload, or `1KiB x 100` for echo.
    pub fn label(&self) -> String {
        match self {
            Cell::Sched(w) => w.name().to_owned(),
            Cell::Echo(c) => c.label(),
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The contenders, in their first repetition's order.
    pub contenders: Vec<Contender>,
    /// The cells, in order.
    pub cells: Vec<Cell>,
    /// Repetitions of every (cell, contender).
    pub reps: u32,
    /// Window of a scheduling measurement.
    pub sched: Window,
    /// Window of an echo measurement.
    pub echo: Window,
    /// Where threads go.
    pub placement: Placement,
    /// Extra attempts for a measurement during which other processes used
    /// more than `busy_threshold` cores.
    pub retries: u32,
    /// Foreign load (cores) above which a measurement is retried.
    pub busy_threshold: f64,
}

impl Plan {
    /// How many measurements the plan makes at most.
    pub fn len(&self) -> u64 {
        self.cells.len() as u64 * self.contenders.len() as u64 * self.reps as u64
    }

    /// `true` if there is nothing to run.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The state of one (cell, contender) row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Every repetition ran.
    Ok,
    /// The contender cannot run this workload (yet).
    Unavailable,
    /// A repetition failed; see the reason.
    Failed,
}

/// Every repetition of one contender in one cell, and their summary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// The workload's name.
    pub workload: String,
    /// The cell's label.
    pub cell: String,
    /// Echo message size, bytes.
    pub size: Option<usize>,
    /// Echo connections.
    pub conns: Option<usize>,
    /// The contender's name.
    pub contender: String,
    /// `true` for evloop backends.
    pub evloop: bool,
    /// How it went.
    pub status: Status,
    /// Why it is unavailable or failed.
    pub reason: Option<String>,
    /// One entry per repetition that ran.
    pub samples: Vec<Sample>,
    /// Operations over all repetitions.
    pub ops_total: u64,
    /// Operations per second.
    pub rate: Option<Summary>,
    /// Median latency, ns.
    pub p50_ns: Option<Summary>,
    /// 99th-percentile latency, ns.
    pub p99_ns: Option<Summary>,
    /// Server CPU ns per operation (echo).
    pub cpu_ns_per_op: Option<Summary>,
    /// Operations per server-CPU-second (echo).
    pub ops_per_cpu_sec: Option<Summary>,
    /// Server CPU over wall time (echo).
    pub server_util: Option<Summary>,
    /// Load generator CPU over wall time (echo).
    pub client_util: Option<Summary>,
}

impl Row {
    fn new(cell: &Cell, contender: &Contender) -> Row {
        let (size, conns) = match cell {
            Cell::Echo(c) => (Some(c.size), Some(c.conns)),
            Cell::Sched(_) => (None, None),
        };
        Row {
            workload: cell.workload().to_owned(),
            cell: cell.label(),
            size,
            conns,
            contender: contender.name(),
            evloop: contender.is_evloop(),
            status: Status::Ok,
            reason: None,
            samples: Vec::new(),
            ops_total: 0,
            rate: None,
            p50_ns: None,
            p99_ns: None,
            cpu_ns_per_op: None,
            ops_per_cpu_sec: None,
            server_util: None,
            client_util: None,
        }
    }

    pub(crate) fn summarise(&mut self) {
        let of = |f: &dyn Fn(&Sample) -> Option<f64>| {
            let v: Vec<f64> = self.samples.iter().filter_map(f).collect();
            Summary::of(&v)
        };
        self.rate = of(&|s| Some(s.rate));
        self.p50_ns = of(&|s| s.p50_ns.map(|v| v as f64));
        self.p99_ns = of(&|s| s.p99_ns.map(|v| v as f64));
        self.cpu_ns_per_op = of(&|s| s.cpu_ns_per_op);
        self.ops_per_cpu_sec = of(&|s| s.ops_per_cpu_sec);
        self.server_util = of(&|s| s.server_util);
        self.client_util = of(&|s| s.client_util);
        self.ops_total = self.samples.iter().map(|s| s.ops).sum();
    }
}

/// Runs `plan`; `progress(done, total, what)` is called before each
/// measurement and once at the end. Returns one row per (cell, contender),
/// cells in plan order, contenders in plan order.
pub fn run(plan: &Plan, progress: &mut dyn FnMut(u64, &str)) -> Vec<Row> {
    let n = plan.contenders.len();
    let mut rows: Vec<Row> = plan
        .cells
        .iter()
        .flat_map(|cell| plan.contenders.iter().map(move |c| Row::new(cell, c)))
        .collect();
    let mut done = 0u64;
    let mut meter = LoadMeter::new();
    for rep in 0..plan.reps {
        for (ci, cell) in plan.cells.iter().enumerate() {
            for k in 0..n {
                let idx = (k + rep as usize) % n.max(1);
                let contender = &plan.contenders[idx];
                let row = &mut rows[ci * n + idx];
                progress(
                    done,
                    &format!(
                        "rep {}/{}: {} on {}",
                        rep + 1,
                        plan.reps,
                        cell.label(),
                        contender.name()
                    ),
                );
                done += 1;
                if row.status != Status::Ok {
                    continue;
                }
                let outcome = measure(plan, &mut meter, cell, contender);
                match outcome {
                    Outcome::Ok(sample) => row.samples.push(sample),
                    Outcome::Unavailable(reason) => {
                        row.status = Status::Unavailable;
                        row.reason = Some(reason);
                    }
                    Outcome::Failed(reason) => {
                        row.status = Status::Failed;
                        row.reason = Some(reason);
                    }
                }
            }
        }
    }
    progress(done, "done");
    for row in &mut rows {
        row.summarise();
    }
    rows
}

/// One measurement, taken again (up to `plan.retries` times, after a
/// pause) while other processes keep the machine busier than
/// `plan.busy_threshold`; of the attempts, the one with the least foreign
/// load is kept. The load is judged by `meter`, over at least a second
/// (see [`LoadMeter`]).
fn measure(plan: &Plan, meter: &mut LoadMeter, cell: &Cell, contender: &Contender) -> Outcome {
    let mut attempts = 0;
    let mut best: Option<Sample> = None;
    loop {
        attempts += 1;
        meter.start();
        let outcome = match cell {
            Cell::Sched(w) => contender.sched(*w, plan.sched, plan.placement),
            Cell::Echo(c) => contender.echo(*c, plan.echo, plan.placement),
        };
        let foreign = meter.foreign_cores();
        let Outcome::Ok(mut sample) = outcome else {
            return outcome;
        };
        sample.foreign_cores = foreign;
        let load = |s: &Sample| s.foreign_cores.unwrap_or(0.0);
        if best.as_ref().is_none_or(|b| load(&sample) < load(b)) {
            best = Some(sample);
        }
        let busy = foreign.is_some_and(|f| f > plan.busy_threshold);
        if !busy || attempts > plan.retries {
            let mut kept = best.unwrap_or_default();
            kept.attempts = attempts;
            return Outcome::Ok(kept);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// How long a plan will take, roughly, in seconds (for the default's sanity).
pub fn estimate_secs(plan: &Plan) -> f64 {
    let per = |w: Window| (w.warmup + w.measure).as_secs_f64();
    plan.cells
        .iter()
        .map(|c| match c {
            Cell::Sched(_) => per(plan.sched),
            Cell::Echo(e) => per(plan.echo) + e.conns as f64 * 40e-6,
        })
        .sum::<f64>()
        * plan.contenders.len() as f64
        * plan.reps as f64
}

/// When the run started, for the JSON.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
