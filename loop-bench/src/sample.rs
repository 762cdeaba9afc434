//! What one measurement produces, and how long it runs.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::sys::CpuTime;

/// How long one measurement warms up, then measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Run, uncounted, for this long first (allocators, caches, thread pools).
    pub warmup: Duration,
    /// Then count for this long.
    pub measure: Duration,
}

/// Server-side CPU time spent during a measurement window.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct CpuSeconds {
    /// User time, seconds.
    pub user: f64,
    /// System time, seconds.
    pub system: f64,
}

impl From<CpuTime> for CpuSeconds {
    fn from(t: CpuTime) -> Self {
        CpuSeconds {
            user: t.user.as_secs_f64(),
            system: t.system.as_secs_f64(),
        }
    }
}

impl CpuSeconds {
    /// `user + system`.
    pub fn total(&self) -> f64 {
        self.user + self.system
    }
}

/// One measurement of one contender in one cell.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Sample {
    /// Operations (callbacks, timers, tasks, switches, wake-ups, round
    /// trips, echoed requests) completed in the window.
    pub ops: u64,
    /// The window's length, seconds.
    pub secs: f64,
    /// `ops / secs`.
    pub rate: f64,
    /// Median latency of one operation, nanoseconds (where measured).
    pub p50_ns: Option<u64>,
    /// 99th-percentile latency, nanoseconds (where measured).
    pub p99_ns: Option<u64>,
    /// CPU time of the server side during the window (echo only).
    pub server_cpu: Option<CpuSeconds>,
    /// Server CPU nanoseconds per operation (echo only).
    pub cpu_ns_per_op: Option<f64>,
    /// Operations per second of server CPU (echo only): the robust ranking
    /// when the load generator, not the server, is the bottleneck.
    pub ops_per_cpu_sec: Option<f64>,
    /// Server CPU time over wall time (echo only): 1.0 is one core busy.
    pub server_util: Option<f64>,
    /// The load generator's CPU time over wall time (echo only); near 1.0
    /// means the load generator, not the server, limits requests/s.
    pub client_util: Option<f64>,
    /// Cores' worth of CPU that other processes used while this
    /// measurement ran (from `/proc/stat`): interference, not ours.
    pub foreign_cores: Option<f64>,
    /// How many times the measurement was taken (more than 1 when earlier
    /// attempts were discarded because the machine was busy).
    pub attempts: u32,
}

impl Sample {
    /// A sample of `ops` operations in `elapsed`.
    pub fn new(ops: u64, elapsed: Duration) -> Sample {
        let secs = elapsed.as_secs_f64();
        Sample {
            ops,
            secs,
            rate: if secs > 0.0 { ops as f64 / secs } else { 0.0 },
            ..Sample::default()
        }
    }

    /// Adds p50/p99 from a set of latencies in nanoseconds.
    pub fn with_latencies(mut self, latencies: &mut [u64]) -> Sample {
        let (p50, p99) = crate::stats::p50_p99(latencies);
        self.p50_ns = p50;
        self.p99_ns = p99;
        self
    }

    /// Adds the server's and the load generator's CPU time over the window.
    pub fn with_cpu(mut self, cpu: CpuTime, client: CpuTime) -> Sample {
        let cpu = CpuSeconds::from(cpu);
        let total = cpu.total();
        if self.secs > 0.0 {
            self.server_util = Some(total / self.secs);
            self.client_util = Some(client.total().as_secs_f64() / self.secs);
        }
        self.server_cpu = Some(cpu);
        if self.ops > 0 {
            self.cpu_ns_per_op = Some(total * 1e9 / self.ops as f64);
        }
        if total > 0.0 {
            self.ops_per_cpu_sec = Some(self.ops as f64 / total);
        }
        self
    }
}
