//! Scheduling micro-benchmarks, written once over [`Runtime`].
//!
//! Every workload runs on a fresh loop on a fresh thread (pinned to the
//! server core), warms up, then counts operations until its deadline. The
//! clock is read only every [`CHECK_EVERY`] operations, so reading it costs
//! next to nothing.

use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use crate::runtime::Runtime;
use crate::sample::{Sample, Window};
use crate::sys::Placement;
use crate::watchdog;

/// Operations between two looks at the clock.
pub const CHECK_EVERY: u64 = 256;

/// How much longer than its window a measurement may take before it is
/// declared hung.
pub const HANG_LIMIT: Duration = Duration::from_secs(30);

/// A timer delay that never expires during a measurement.
const FAR: Duration = Duration::from_secs(3600);

/// The scheduling workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchedWorkload {
    /// A callback that schedules its successor with `call_soon` (peers: a
    /// task that spawns its successor).
    CallSoon,
    /// Schedule a timer and cancel it at once.
    Timers,
    /// Spawn a trivial task and await its result, one at a time.
    SpawnAwait,
    /// Two tasks that yield to each other; one switch per yield.
    Yield,
    /// Another thread schedules a callback on the idle loop; latency from
    /// the call to the callback running.
    CrossThread,
    /// `run_in_executor` (peers: `spawn_blocking`, `unblock`) of a trivial
    /// function, awaited, one at a time.
    Executor,
}

impl SchedWorkload {
    /// All of them, in report order.
    pub const ALL: [SchedWorkload; 6] = [
        SchedWorkload::CallSoon,
        SchedWorkload::Timers,
        SchedWorkload::SpawnAwait,
        SchedWorkload::Yield,
        SchedWorkload::CrossThread,
        SchedWorkload::Executor,
    ];

    /// The name used on the command line, in the JSON and in tables.
    pub fn name(self) -> &'static str {
        match self {
            SchedWorkload::CallSoon => "call_soon",
            SchedWorkload::Timers => "timer",
            SchedWorkload::SpawnAwait => "spawn_await",
            SchedWorkload::Yield => "yield",
            SchedWorkload::CrossThread => "cross_thread",
            SchedWorkload::Executor => "executor",
        }
    }

    /// What one operation is, for tables.
    pub fn describe(self) -> &'static str {
        match self {
            SchedWorkload::CallSoon => "call_soon chain (callbacks/s)",
            SchedWorkload::Timers => "timer schedule+cancel (/s)",
            SchedWorkload::SpawnAwait => "spawn+await trivial task (/s)",
            SchedWorkload::Yield => "yield switches, 2 tasks (/s)",
            SchedWorkload::CrossThread => "cross-thread wake (/s, p50/p99)",
            SchedWorkload::Executor => "run_in_executor round trip (/s, p50/p99)",
        }
    }

    /// Whether the p50/p99 columns mean something for this workload.
    pub fn has_latency(self) -> bool {
        matches!(self, SchedWorkload::CrossThread | SchedWorkload::Executor)
    }
}

/// How a measurement ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It ran.
    Ok(Sample),
    /// The contender cannot run this workload (yet); the reason says why.
    Unavailable(String),
    /// It tried and failed.
    Failed(String),
}

/// Runs `workload` once on `rt`, on a new thread pinned to the server core.
pub fn measure<R>(rt: &R, workload: SchedWorkload, win: Window, place: Placement) -> Outcome
where
    R: Runtime + Clone + Send + 'static,
{
    let rt = rt.clone();
    let thread = watchdog::spawn(&format!("bench-{}", workload.name()), move || {
        let _ = Placement::pin(place.server);
        run_on_this_thread(&rt, workload, win, place)
    });
    match thread.and_then(|t| t.wait(win.warmup + win.measure + HANG_LIMIT)) {
        Ok(outcome) => outcome,
        Err(e) => Outcome::Failed(e),
    }
}

fn run_on_this_thread<R: Runtime>(
    rt: &R,
    workload: SchedWorkload,
    win: Window,
    place: Placement,
) -> Outcome {
    let result = match workload {
        SchedWorkload::CallSoon => rt.block_on(|sp| async move {
            call_soon_chain::<R>(&sp, Instant::now() + win.warmup).await;
            let start = Instant::now();
            let (n, end) = call_soon_chain::<R>(&sp, start + win.measure).await;
            Ok(Sample::new(n, end - start))
        }),
        SchedWorkload::Timers => rt.block_on(|sp| async move {
            timers::<R>(&sp, Instant::now() + win.warmup);
            let start = Instant::now();
            let n = timers::<R>(&sp, start + win.measure);
            Ok(Sample::new(n, start.elapsed()))
        }),
        SchedWorkload::SpawnAwait => rt.block_on(|sp| async move {
            spawn_await::<R>(&sp, Instant::now() + win.warmup).await;
            let start = Instant::now();
            let n = spawn_await::<R>(&sp, start + win.measure).await;
            Ok(Sample::new(n, start.elapsed()))
        }),
        SchedWorkload::Yield => rt.block_on(|sp| async move {
            yield_switches::<R>(&sp, Instant::now() + win.warmup).await;
            let start = Instant::now();
            let n = yield_switches::<R>(&sp, start + win.measure).await;
            Ok(Sample::new(n, start.elapsed()))
        }),
        SchedWorkload::CrossThread => {
            rt.block_on(|sp| async move { cross_thread::<R>(&sp, win, place).await })
        }
        SchedWorkload::Executor => rt.block_on(|sp| async move {
            if let Err(reason) = R::blocking(&sp, || ()) {
                return Err(Outcome::Unavailable(reason.to_owned()));
            }
            executor_round_trips::<R>(&sp, Instant::now() + win.warmup).await?;
            let start = Instant::now();
            let mut lat = executor_round_trips::<R>(&sp, start + win.measure).await?;
            Ok(Sample::new(lat.len() as u64, start.elapsed()).with_latencies(&mut lat))
        }),
    };
    match result {
        Ok(Ok(sample)) => Outcome::Ok(sample),
        Ok(Err(outcome)) => outcome,
        Err(e) => Outcome::Failed(e),
    }
}

/// The state carried from one `call_soon` step to the next: kept small
/// (three words with the loop reference) because every step moves it into a
/// new callback, and with a larger closure the harness, not the loop, shows
/// up in the figure.
struct Chain {
    n: u64,
    end: Arc<ChainEnd>,
}

/// What every step of a chain shares.
struct ChainEnd {
    deadline: Instant,
    done: async_channel::Sender<(u64, Instant)>,
}

fn chain_step<R: Runtime>(sp: &R::Spawner, mut st: Chain) {
    st.n += 1;
    if st.n.is_multiple_of(CHECK_EVERY) {
        let now = Instant::now();
        if now >= st.end.deadline {
            let _ = st.end.done.try_send((st.n, now));
            return;
        }
    }
    R::soon(sp, chain_step::<R>, st);
}

/// A self-rescheduling callback until `deadline`; returns how many steps
/// ran and when the last one did.
async fn call_soon_chain<R: Runtime>(sp: &R::Spawner, deadline: Instant) -> (u64, Instant) {
    let (done, finished) = async_channel::bounded(1);
    let end = Arc::new(ChainEnd { deadline, done });
    R::soon(sp, chain_step::<R>, Chain { n: 0, end });
    finished
        .recv()
        .await
        .expect("the chain reports before it ends")
}

/// Schedules and cancels timers until `deadline`, without returning to the loop.
fn timers<R: Runtime>(sp: &R::Spawner, deadline: Instant) -> u64 {
    let mut n = 0;
    loop {
        for _ in 0..CHECK_EVERY {
            R::timer_cycle(sp, FAR);
        }
        n += CHECK_EVERY;
        if Instant::now() >= deadline {
            return n;
        }
    }
}

async fn spawn_await<R: Runtime>(sp: &R::Spawner, deadline: Instant) -> u64 {
    let mut n = 0;
    loop {
        for _ in 0..CHECK_EVERY {
            n += R::spawn(sp, async { 1u64 }).await;
        }
        if Instant::now() >= deadline {
            return n;
        }
    }
}

async fn yield_switches<R: Runtime>(sp: &R::Spawner, deadline: Instant) -> u64 {
    let yielder = move || async move {
        let mut n = 0u64;
        loop {
            for _ in 0..CHECK_EVERY {
                R::yield_now().await;
            }
            n += CHECK_EVERY;
            if Instant::now() >= deadline {
                return n;
            }
        }
    };
    let a = R::spawn(sp, yielder());
    let b = R::spawn(sp, yielder());
    a.await + b.await
}

/// Another thread, pinned to the client core, calls into the loop, waits
/// for the callback to report how long it took to start running, and
/// repeats; the loop is idle (blocked in its backend) between calls.
async fn cross_thread<R: Runtime>(
    sp: &R::Spawner,
    win: Window,
    place: Placement,
) -> Result<Sample, Outcome> {
    let remote = R::remote(sp);
    let (done, finished) = async_channel::bounded(1);
    let caller = std::thread::Builder::new()
        .name("bench-waker".to_owned())
        .spawn(move || {
            let _ = Placement::pin(place.client);
            let (reply, replies) = mpsc::channel::<Instant>();
            let round = |latencies: Option<&mut Vec<u64>>| -> bool {
                let reply = reply.clone();
                let sent = Instant::now();
                if !R::remote_call(&remote, move || {
                    let _ = reply.send(Instant::now());
                }) {
                    return false;
                }
                match replies.recv_timeout(Duration::from_secs(5)) {
                    Ok(ran) => {
                        if let Some(l) = latencies {
                            l.push((ran - sent).as_nanos() as u64);
                        }
                        true
                    }
                    Err(_) => false,
                }
            };
            let warm_end = Instant::now() + win.warmup;
            while Instant::now() < warm_end {
                if !round(None) {
                    return done.send_blocking(Err("the loop stopped answering".to_owned()));
                }
            }
            let mut latencies = Vec::with_capacity(4096);
            let start = Instant::now();
            let end = start + win.measure;
            while Instant::now() < end {
                if !round(Some(&mut latencies)) {
                    return done.send_blocking(Err("the loop stopped answering".to_owned()));
                }
            }
            let elapsed = start.elapsed();
            done.send_blocking(Ok((latencies, elapsed)))
        });
    if let Err(e) = caller {
        return Err(Outcome::Failed(format!("cannot spawn a thread: {e}")));
    }
    match finished.recv().await {
        Ok(Ok((mut latencies, elapsed))) => {
            Ok(Sample::new(latencies.len() as u64, elapsed).with_latencies(&mut latencies))
        }
        Ok(Err(e)) => Err(Outcome::Failed(e)),
        Err(_) => Err(Outcome::Failed("the waker thread died".to_owned())),
    }
}

async fn executor_round_trips<R: Runtime>(
    sp: &R::Spawner,
    deadline: Instant,
) -> Result<Vec<u64>, Outcome> {
    let mut latencies = Vec::with_capacity(4096);
    loop {
        let sent = Instant::now();
        let job = R::blocking(sp, || 1u64).map_err(|r| Outcome::Unavailable(r.to_owned()))?;
        std::hint::black_box(job.await);
        let now = Instant::now();
        latencies.push((now - sent).as_nanos() as u64);
        if now >= deadline {
            return Ok(latencies);
        }
    }
}
