//! [`UringBuilder`]: ring sizes and setup flags, each with the kernel it needs.

use std::io;
use std::time::Duration;

use io_uring::IoUring;
use loop_api::{Error, EventLoop};

use crate::buf_ring::BufRing;
use crate::config::RingConfig;
use crate::driver::UringDriver;
use crate::recv_ring::RecvRing;
use crate::{probe, NAME};

/// Options for the io_uring backend's ring.
///
/// [`UringBuilder::new`] gives the defaults [`crate::new_event_loop`] uses:
/// 256 submission entries, a completion queue four times that, and
/// `SINGLE_ISSUER | DEFER_TASKRUN`, falling back to `COOP_TASKRUN` and then to
/// a plain ring when the kernel refuses a flag. Whatever the flags, the
/// backend needs Linux 5.11 (`IORING_FEAT_EXT_ARG` timed waits) and the
/// opcodes listed in the crate documentation.
///
/// ```no_run
/// use std::time::Duration;
/// let lp = backend_uring::UringBuilder::new()
///     .entries(1024)
///     .sqpoll(Some(Duration::from_millis(50)))
///     .new_event_loop()
///     .unwrap();
/// # drop(lp);
/// ```
#[derive(Debug, Clone)]
pub struct UringBuilder {
    entries: u32,
    cq_entries: Option<u32>,
    single_issuer: bool,
    defer_taskrun: bool,
    coop_taskrun: bool,
    sqpoll_idle: Option<Duration>,
    fallback: bool,
    multishot_recv: bool,
    recv_buffers: u16,
    recv_buffer_size: u32,
}

impl Default for UringBuilder {
    fn default() -> Self {
        UringBuilder {
            entries: 256,
            cq_entries: None,
            single_issuer: true,
            defer_taskrun: true,
            coop_taskrun: false,
            sqpoll_idle: None,
            fallback: true,
            multishot_recv: false,
            recv_buffers: DEFAULT_RECV_BUFFERS,
            recv_buffer_size: DEFAULT_RECV_BUFFER_SIZE,
        }
    }
}

/// Buffers in the provided-buffer ring of multishot receives.
const DEFAULT_RECV_BUFFERS: u16 = 256;
/// Size of each of them.
const DEFAULT_RECV_BUFFER_SIZE: u32 = 16 * 1024;

/// The buffer group id of the receive ring (the driver has only one).
const RECV_BGID: u16 = 0;

/// Largest SQ the kernel accepts (`IORING_MAX_ENTRIES`).
const MAX_ENTRIES: u32 = 32768;

impl UringBuilder {
    /// The defaults (see the type's documentation).
    pub fn new() -> Self {
        Self::default()
    }

    /// A plain ring: no setup flags at all (works on every supported kernel).
    pub fn plain() -> Self {
        UringBuilder {
            single_issuer: false,
            defer_taskrun: false,
            coop_taskrun: false,
            ..Self::default()
        }
    }

    /// Submission-queue size, 1..=32768 (default 256). This bounds how many
    /// operations one loop iteration submits in one `io_uring_enter`, not
    /// how many may be in flight; a fuller queue is flushed early.
    pub fn entries(mut self, entries: u32) -> Self {
        self.entries = entries;
        self
    }

    /// Completion-queue size (`IORING_SETUP_CQSIZE`, Linux 5.5; default four
    /// times the submission queue). Completions beyond it are kept by the
    /// kernel (`IORING_FEAT_NODROP`), at some cost.
    pub fn cq_entries(mut self, entries: u32) -> Self {
        self.cq_entries = Some(entries);
        self
    }

    /// `IORING_SETUP_SINGLE_ISSUER` (Linux 6.0): only the creating thread
    /// submits, which lets the kernel skip locking. The loop is
    /// single-threaded, so this is always true of evloop. Default on.
    pub fn single_issuer(mut self, on: bool) -> Self {
        self.single_issuer = on;
        self
    }

    /// `IORING_SETUP_DEFER_TASKRUN` (Linux 6.1; implies `SINGLE_ISSUER`):
    /// completion work runs only when the loop waits, in a batch, instead of
    /// interrupting it. Default on.
    pub fn defer_taskrun(mut self, on: bool) -> Self {
        self.defer_taskrun = on;
        self
    }

    /// `IORING_SETUP_COOP_TASKRUN` (Linux 5.19): completion work does not
    /// interrupt the thread with an IPI but waits for its next kernel entry.
    /// Ignored when `DEFER_TASKRUN` is on (which already implies it). Default off.
    pub fn coop_taskrun(mut self, on: bool) -> Self {
        self.coop_taskrun = on;
        self
    }

    /// `IORING_SETUP_SQPOLL` (unprivileged since Linux 5.11): a kernel
    /// thread polls the submission queue and sleeps after `idle` without
    /// work, so submissions need no syscall while it is awake. It costs a
    /// core while busy; not combinable with `DEFER_TASKRUN` (which is
    /// dropped when this is set). `None` (default) turns it off.
    pub fn sqpoll(mut self, idle: Option<Duration>) -> Self {
        self.sqpoll_idle = idle;
        self
    }

    /// When the kernel refuses the requested flags (too old: `EINVAL`; not
    /// permitted: `EPERM`), retry with fewer: first without
    /// `SINGLE_ISSUER`/`DEFER_TASKRUN`/`SQPOLL` but with `COOP_TASKRUN`,
    /// then a plain ring. Default on; off makes the exact setup mandatory.
    pub fn fallback(mut self, on: bool) -> Self {
        self.fallback = on;
        self
    }

    /// Multishot receive (`IORING_RECV_MULTISHOT`, Linux 6.0) into a
    /// provided-buffer ring (`IORING_REGISTER_PBUF_RING`, Linux 5.19) for
    /// the stream sockets the loop reads only through owned-buffer reads:
    /// one receive stays armed per socket and each read copies what it
    /// queued, which saves a submission per read and lets a cancelled read
    /// lose nothing. Where the kernel lacks either, every read is a
    /// one-shot `Recv`, as with `false`.
    ///
    /// Default off: measured on TCP echo (Linux 6.18) it costs as much
    /// server CPU per request as one-shot `Recv`s (within ±3 %), because a
    /// one-shot issued when the data is already there is one inline
    /// receive, while a multishot pays a poll wake-up, task work and a
    /// copy out of the ring.
    pub fn multishot_recv(mut self, on: bool) -> Self {
        self.multishot_recv = on;
        self
    }

    /// The provided-buffer ring of multishot receives: `count` buffers (a
    /// power of two, at most 32768) of `size` bytes each (default 256 of
    /// 16 KiB). A socket holds buffers only until its data is read; when
    /// every buffer is held, reads go to the kernel one by one (one-shot).
    pub fn recv_buffers(mut self, count: u16, size: u32) -> Self {
        self.recv_buffers = count;
        self.recv_buffer_size = size;
        self
    }

    /// The setups to try, most wanted first.
    fn attempts(&self) -> Vec<RingConfig> {
        let cq = self
            .cq_entries
            .unwrap_or_else(|| self.entries.saturating_mul(4))
            .clamp(self.entries, 2 * MAX_ENTRIES);
        let sqpoll = self.sqpoll_idle.is_some();
        let defer = self.defer_taskrun && !sqpoll;
        let wanted = RingConfig {
            sq_entries: self.entries,
            cq_entries: cq,
            single_issuer: self.single_issuer || defer,
            defer_taskrun: defer,
            coop_taskrun: self.coop_taskrun && !defer,
            sqpoll,
        };
        let mut attempts = vec![wanted];
        if self.fallback {
            let coop = RingConfig {
                single_issuer: false,
                defer_taskrun: false,
                coop_taskrun: true,
                sqpoll: false,
                ..wanted
            };
            let plain = RingConfig {
                coop_taskrun: false,
                ..coop
            };
            for fallback in [coop, plain] {
                if !attempts.contains(&fallback) {
                    attempts.push(fallback);
                }
            }
        }
        attempts
    }

    fn setup(&self, config: &RingConfig) -> io::Result<IoUring> {
        let mut b = IoUring::builder();
        // Children of fork() must not share the ring's memory (subprocesses).
        b.dontfork();
        b.setup_cqsize(config.cq_entries);
        if config.single_issuer {
            b.setup_single_issuer();
        }
        if config.defer_taskrun {
            b.setup_defer_taskrun();
        }
        if config.coop_taskrun {
            b.setup_coop_taskrun();
        }
        if config.defer_taskrun || config.coop_taskrun {
            // Lets `wait(0)` see pending completion work and skip the
            // syscall when there is none (Linux 5.19, like COOP_TASKRUN).
            b.setup_taskrun_flag();
        }
        if let Some(idle) = self.sqpoll_idle.filter(|_| config.sqpoll) {
            b.setup_sqpoll(u32::try_from(idle.as_millis()).unwrap_or(u32::MAX));
        }
        b.build(config.sq_entries)
    }

    /// Creates the ring and its driver, or says why io_uring cannot be used
    /// here ([`Error::BackendUnavailable`]) or why the options are wrong
    /// ([`Error::InvalidArgument`]).
    pub fn build(&self) -> Result<UringDriver, Error> {
        if self.entries == 0 || self.entries > MAX_ENTRIES {
            return Err(Error::InvalidArgument(format!(
                "io_uring entries must be in 1..={MAX_ENTRIES}, got {}",
                self.entries
            )));
        }
        if self
            .cq_entries
            .is_some_and(|cq| cq < self.entries || cq > 2 * MAX_ENTRIES)
        {
            return Err(Error::InvalidArgument(format!(
                "io_uring cq_entries must be in {}..={}",
                self.entries,
                2 * MAX_ENTRIES
            )));
        }
        if self.multishot_recv
            && (!self.recv_buffers.is_power_of_two()
                || self.recv_buffers > 1 << 15
                || self.recv_buffer_size == 0
                || self.recv_buffer_size > 1 << 30)
        {
            return Err(Error::InvalidArgument(format!(
                "io_uring recv_buffers needs a power-of-two count up to 32768 of 1..=1 GiB bytes, got {} x {}",
                self.recv_buffers, self.recv_buffer_size
            )));
        }
        let unavailable = |reason: String| Error::BackendUnavailable {
            backend: NAME.to_owned(),
            reason,
        };
        let mut refused = None;
        for config in self.attempts() {
            let ring = match self.setup(&config) {
                Ok(ring) => ring,
                // Flags this kernel does not know or does not permit: try fewer.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::EPERM)) => {
                    refused = Some(e);
                    continue;
                }
                Err(e) => return Err(unavailable(probe::setup_error_reason(&e))),
            };
            let support = probe::check(&ring).map_err(unavailable)?;
            let config = RingConfig {
                sq_entries: ring.params().sq_entries(),
                cq_entries: ring.params().cq_entries(),
                ..config
            };
            // A kernel without provided-buffer rings (before 5.19) refuses
            // the registration: every read is then a one-shot.
            let recv = self
                .multishot_recv
                .then(|| {
                    BufRing::new(&ring, self.recv_buffers, self.recv_buffer_size, RECV_BGID).ok()
                })
                .flatten()
                .map(RecvRing::new);
            return UringDriver::new(ring, support, config, recv)
                .map_err(|e| unavailable(format!("cannot create the waker's eventfd: {e}")));
        }
        let e = refused.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EINVAL));
        Err(unavailable(probe::setup_error_reason(&e)))
    }

    /// A new event loop on a ring built with these options.
    pub fn new_event_loop(&self) -> Result<EventLoop, Error> {
        Ok(EventLoop::from_driver(Box::new(self.build()?)))
    }
}
