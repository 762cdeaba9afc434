//! The few things the benchmark asks the OS directly: which cores this
//! process may use, pinning a thread to one, and CPU time from the kernel's
//! own accounting (`getrusage`).

use std::io;
use std::mem::MaybeUninit;
use std::time::Duration;

/// User and system CPU time, as the kernel accounts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTime {
    /// Time spent running user code.
    pub user: Duration,
    /// Time spent in the kernel on the thread's (or process's) behalf.
    pub system: Duration,
}

impl CpuTime {
    /// `user + system`.
    pub fn total(&self) -> Duration {
        self.user + self.system
    }

    /// `self - earlier`, clamped at zero (the two need not be monotonic
    /// across threads that exited in between).
    pub fn since(&self, earlier: &CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

fn timeval(tv: libc::timeval) -> Duration {
    Duration::from_secs(tv.tv_sec.max(0) as u64) + Duration::from_micros(tv.tv_usec.max(0) as u64)
}

fn rusage(who: libc::c_int) -> io::Result<CpuTime> {
    let mut usage = MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` points to writable memory of the right size and type;
    // getrusage only writes into it.
    let rc = unsafe { libc::getrusage(who, usage.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: getrusage returned 0, so it filled the struct (which was
    // zero-initialised anyway, a valid `rusage`).
    let usage = unsafe { usage.assume_init() };
    Ok(CpuTime {
        user: timeval(usage.ru_utime),
        system: timeval(usage.ru_stime),
    })
}

/// CPU time of the calling thread (`getrusage(RUSAGE_THREAD)`).
pub fn thread_cpu() -> io::Result<CpuTime> {
    rusage(libc::RUSAGE_THREAD)
}

/// CPU time of the whole process, every thread, live or exited (`getrusage(RUSAGE_SELF)`).
pub fn process_cpu() -> io::Result<CpuTime> {
    rusage(libc::RUSAGE_SELF)
}

/// The CPUs this process may run on, in ascending order.
pub fn allowed_cpus() -> Vec<usize> {
    let mut set = MaybeUninit::<libc::cpu_set_t>::zeroed();
    // SAFETY: `set` is a zeroed cpu_set_t (a valid empty set) and the size
    // passed is its size; the kernel writes at most that many bytes.
    let rc = unsafe {
        libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set.as_mut_ptr())
    };
    if rc != 0 {
        return Vec::new();
    }
    // SAFETY: initialised (zeroed, then filled by the kernel).
    let set = unsafe { set.assume_init() };
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE, the bound CPU_ISSET requires.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}

/// Pins the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cpu {cpu} is out of range"),
        ));
    }
    let mut set = MaybeUninit::<libc::cpu_set_t>::zeroed();
    // SAFETY: a zeroed cpu_set_t is a valid empty set; `cpu` is in range
    // (checked above); the size passed is the set's size; pid 0 means the
    // calling thread.
    let rc = unsafe {
        let set = set.as_mut_ptr();
        libc::CPU_SET(cpu, &mut *set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set)
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Where the benchmark puts its threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// The core of the loop under test (the echo server, the scheduling loop).
    pub server: Option<usize>,
    /// The core of the load generator and of the cross-thread waker.
    pub client: Option<usize>,
}

impl Placement {
    /// The first two allowed cores, or no pinning (with `pin == false`, or
    /// when this process may use only one core).
    pub fn choose(pin: bool) -> Placement {
        let cpus = allowed_cpus();
        if !pin || cpus.len() < 2 {
            return Placement {
                server: None,
                client: None,
            };
        }
        Placement {
            server: Some(cpus[0]),
            client: Some(cpus[1]),
        }
    }

    /// Pins the calling thread to `cpu` if there is one; failure to pin is
    /// not fatal (the run goes on, unpinned), so it is only returned.
    pub fn pin(cpu: Option<usize>) -> io::Result<()> {
        match cpu {
            Some(cpu) => pin_current_thread(cpu),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_cpu_grows_with_work() {
        let before = thread_cpu().unwrap();
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_millis(30) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let after = thread_cpu().unwrap();
        assert!(after.since(&before).total() > Duration::ZERO);
        assert!(process_cpu().unwrap().total() >= after.total());
    }

    #[test]
    fn machine_is_at_least_as_busy_as_us() {
        let probe = LoadProbe::now().unwrap();
        assert!(machine_busy().unwrap() > Duration::ZERO);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(probe.foreign_cores(), None, "20 ms is too short to judge");
        std::thread::sleep(MIN_LOAD_WINDOW);
        let foreign = probe.foreign_cores().unwrap();
        assert!(
            (0.0..=online_cores() as f64).contains(&foreign),
            "{foreign}"
        );
    }

    #[test]
    fn some_cpu_is_allowed() {
        let cpus = allowed_cpus();
        assert!(!cpus.is_empty());
        pin_current_thread(cpus[0]).unwrap();
        assert!(pin_current_thread(usize::MAX).is_err());
    }
}

/// CPU time the whole machine spent busy (every core: user, nice, system,
/// irq, softirq and steal from the first line of `/proc/stat`).
pub fn machine_busy() -> io::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat
        .lines()
        .next()
        .filter(|l| l.starts_with("cpu "))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no cpu line in /proc/stat"))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal (guest is inside user).
    let ticks = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as u64 } else { 100 };
    Ok(Duration::from_nanos(
        ticks.saturating_mul(1_000_000_000) / hz,
    ))
}

/// The shortest window over which other processes' load is judged.
/// `/proc/stat` counts busy time in clock ticks (10 ms) per core, so one
/// reading can be off by about one tick per core and a difference of two
/// readings by two: on 2 cores, up to 40 ms of CPU. Over a 10 ms smoke
/// window that is 4 cores' worth of error, over 1 s at most 0.04 cores,
/// well under the 0.25-core threshold that marks a measurement busy.
pub const MIN_LOAD_WINDOW: Duration = Duration::from_secs(1);

/// The number of cores `/proc/stat`'s first line sums over (the online
/// CPUs, not only those this process may run on).
pub fn online_cores() -> usize {
    // SAFETY: sysconf only reads a system constant.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n > 0 {
        n as usize
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// A reading of how busy the machine and this process were, to tell how
/// much CPU *other* processes took during a measurement.
#[derive(Debug, Clone, Copy)]
pub struct LoadProbe {
    at: std::time::Instant,
    machine: Duration,
    process: Duration,
}

impl LoadProbe {
    /// Reads the machine's and this process's CPU time now.
    pub fn now() -> Option<LoadProbe> {
        Some(LoadProbe {
            machine: machine_busy().ok()?,
            process: process_cpu().ok()?.total(),
            at: std::time::Instant::now(),
        })
    }

    /// Cores' worth of CPU that other processes (and the hypervisor, as
    /// steal time) used since `self`: 0.0 on a quiet machine, at most the
    /// machine's cores; `None` for a window shorter than
    /// [`MIN_LOAD_WINDOW`], where tick rounding would swamp the figure.
    pub fn foreign_cores(&self) -> Option<f64> {
        foreign_between(self, &LoadProbe::now()?, online_cores())
    }
}

/// Other processes' load between two probes, clamped to `[0, cores]`
/// (the machine's and our own CPU time are read by different clocks, so
/// their difference can stray outside); `None` under [`MIN_LOAD_WINDOW`].
pub fn foreign_between(start: &LoadProbe, end: &LoadProbe, cores: usize) -> Option<f64> {
    let window = end.at.checked_duration_since(start.at)?;
    if window < MIN_LOAD_WINDOW {
        return None;
    }
    let machine = end.machine.saturating_sub(start.machine).as_secs_f64();
    let ours = end.process.saturating_sub(start.process).as_secs_f64();
    Some(((machine - ours) / window.as_secs_f64()).clamp(0.0, cores.max(1) as f64))
}

/// Other processes' load around each measurement, over at least
/// [`MIN_LOAD_WINDOW`]: a measurement shorter than that (every one in
/// `--smoke`, short scheduling windows) is judged over the last second
/// up to its end, which takes in the measurements just before it (our
/// own CPU is subtracted either way). Load from builds and other jobs
/// lasts seconds, so the window says whether the machine was shared then.
#[derive(Debug)]
pub struct LoadMeter {
    /// Probes at the start of recent measurements, oldest first; only the
    /// newest one at least [`MIN_LOAD_WINDOW`] old is kept behind the rest.
    history: std::collections::VecDeque<LoadProbe>,
}

impl LoadMeter {
    /// A meter whose first window starts now.
    pub fn new() -> LoadMeter {
        LoadMeter {
            history: LoadProbe::now().into_iter().collect(),
        }
    }

    /// Marks the start of a measurement.
    pub fn start(&mut self) {
        if let Some(p) = LoadProbe::now() {
            self.history.push_back(p);
        }
    }

    /// Other processes' load over the window ending now: from the
    /// measurement's start, or earlier if that was under
    /// [`MIN_LOAD_WINDOW`] ago; `None` in the first second of the run.
    pub fn foreign_cores(&mut self) -> Option<f64> {
        let now = LoadProbe::now()?;
        let start = window_start(&mut self.history, now.at)?;
        foreign_between(&start, &now, online_cores())
    }
}

impl Default for LoadMeter {
    fn default() -> Self {
        LoadMeter::new()
    }
}

/// The newest probe at least [`MIN_LOAD_WINDOW`] before `now`, dropping
/// the older ones it makes useless.
fn window_start(
    history: &mut std::collections::VecDeque<LoadProbe>,
    now: std::time::Instant,
) -> Option<LoadProbe> {
    let old_enough = |p: &LoadProbe| now.saturating_duration_since(p.at) >= MIN_LOAD_WINDOW;
    let newest_old = history.iter().rposition(old_enough)?;
    history.drain(..newest_old);
    history.front().copied()
}

#[cfg(test)]
mod load_tests {
    use super::*;
    use std::collections::VecDeque;
    use std::time::Instant;

    fn probe(at: Instant, machine_ms: u64, process_ms: u64) -> LoadProbe {
        LoadProbe {
            at,
            machine: Duration::from_millis(machine_ms),
            process: Duration::from_millis(process_ms),
        }
    }

    #[test]
    fn foreign_load_is_clamped_to_the_cores() {
        let t = Instant::now();
        // 2 s on 2 cores; /proc/stat says 9 s busy (impossible), we used 1 s.
        let v = foreign_between(
            &probe(t, 0, 0),
            &probe(t + Duration::from_secs(2), 9_000, 1_000),
            2,
        );
        assert_eq!(v, Some(2.0));
        // Our own clock ran ahead of the machine's ticks: not negative.
        let v = foreign_between(
            &probe(t, 0, 0),
            &probe(t + Duration::from_secs(2), 1_000, 1_500),
            2,
        );
        assert_eq!(v, Some(0.0));
        // An ordinary reading passes through: 3 s busy, 1 s ours, over 2 s.
        let v = foreign_between(
            &probe(t, 0, 0),
            &probe(t + Duration::from_secs(2), 3_000, 1_000),
            2,
        );
        assert_eq!(v, Some(1.0));
    }

    #[test]
    fn short_windows_are_not_judged() {
        let t = Instant::now();
        // 10 ms with one 10 ms tick of someone else's: 1 core by arithmetic, noise in fact.
        let end = probe(t + Duration::from_millis(10), 20, 10);
        assert_eq!(foreign_between(&probe(t, 0, 0), &end, 2), None);
        let end = probe(t + MIN_LOAD_WINDOW, 20, 10);
        assert!(foreign_between(&probe(t, 0, 0), &end, 2).is_some());
        // An end before the start is no window at all.
        assert_eq!(foreign_between(&end, &probe(t, 0, 0), 2), None);
    }

    #[test]
    fn a_short_measurement_is_judged_over_the_last_second() {
        let t = Instant::now();
        let ms = |n| t + Duration::from_millis(n);
        let mut history: VecDeque<_> = [0, 400, 900, 1_300, 1_350]
            .map(|n| probe(ms(n), n, 0))
            .into();
        // At 1.4 s: 0.4 s is the newest start at least 1 s back; 0 is dropped.
        assert_eq!(window_start(&mut history, ms(1_400)).unwrap().at, ms(400));
        assert_eq!(history.len(), 4);
        // At 2.0 s: 0.9 s.
        assert_eq!(window_start(&mut history, ms(2_000)).unwrap().at, ms(900));
        assert_eq!(history.len(), 3);
        // In the first second of a run, nothing is old enough.
        let mut young: VecDeque<_> = [probe(t, 0, 0)].into();
        assert!(window_start(&mut young, ms(300)).is_none());
        assert_eq!(young.len(), 1);
    }
}

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit (for the
/// memory race's 10,000 connections); returns the new soft limit.
pub fn raise_nofile() -> io::Result<u64> {
    let mut lim = MaybeUninit::<libc::rlimit>::zeroed();
    // SAFETY: `lim` points to writable memory of the right size and type.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, lim.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: getrlimit returned 0, so it filled the struct.
    let mut lim = unsafe { lim.assume_init() };
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: `lim` is a valid rlimit; setrlimit only reads it.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(lim.rlim_cur)
}
