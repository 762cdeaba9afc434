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
        let foreign = probe.foreign_cores().unwrap();
        assert!(foreign >= 0.0);
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
    /// steal time) used since `self`: 0.0 on a quiet machine, up to the
    /// number of cores. `/proc/stat` counts in ticks (10 ms), so short
    /// windows read coarsely.
    pub fn foreign_cores(&self) -> Option<f64> {
        let now = LoadProbe::now()?;
        let wall = (now.at - self.at).as_secs_f64();
        if wall <= 0.0 {
            return None;
        }
        let machine = now.machine.saturating_sub(self.machine).as_secs_f64();
        let ours = now.process.saturating_sub(self.process).as_secs_f64();
        Some(((machine - ours) / wall).max(0.0))
    }
}
