//! [`UringDriver`]: the [`Driver`] on an io_uring instance.
//!
//! Every operation becomes one SQE whose user data is
//! `generation << 32 | id`; the driver keeps, per id, what the kernel may
//! still reference (see [`crate::ops`]) until that SQE's CQE is reaped. A
//! generation that changes with every submission means a late
//! `AsyncCancel` can never hit a newer operation that reuses the id.
//! Generation 0 is reserved: the waker's read has one fixed value, and an
//! `AsyncCancel` request carries the bare id of the operation it targets,
//! so that a cancel which found nothing can be retried (see [`Driver::cancel`]
//! below). Every form of user data is built and read in [`crate::user_data`].
//!
//! `submit` only pushes the SQE; `wait` makes one `io_uring_enter` per loop
//! iteration that both submits everything pushed since the last one and
//! waits (with an `EXT_ARG` timespec for a timeout).
//!
//! `cancel` is synchronous where the kernel has `IORING_REGISTER_SYNC_CANCEL`
//! (6.0; probed once, not on SQPOLL rings): it submits what is queued
//! (without running task work, so a receive whose poll fired is still
//! stopped before it takes the data), cancels, runs the deferred task work
//! and settles on the target's final CQE: `ECANCELED`/`EINTR` is consumed
//! and answered `Forgotten`; a real result stays for the next `wait` and is
//! answered `Pending`. A target the kernel does not find (`ENOENT`: in
//! transit as task work) is asked for again after the task work ran, a
//! bounded number of times; then, as on kernels without it, an
//! `AsyncCancel` and `Pending`. Cancelling runs no syscall on the paths
//! of `submit` and `wait`.
//!
//! `release_fd` cancels a read-ahead stream's multishot receive the same
//! way (its CQEs only recycle their buffers), and any operation on the
//! descriptor whose `cancel` fell back to an `AsyncCancel` (its final CQE
//! left for the next `wait`): when it returns the kernel holds no
//! reference to the file, so the loop's close right after takes effect at
//! once. The fallback is an `AsyncCancel` submitted by the next `wait`.

use std::io;
use std::marker::PhantomData;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use io_uring::types::{CancelBuilder, SubmitArgs, Timespec};
use io_uring::{opcode, squeue, types::Fd, IoUring};
use loop_driver::{Cancel, Completion, Driver, Notify, Op, OpId, OpOutput};

use crate::config::RingConfig;
use crate::notify::EventFd;
use crate::ops::{self, Holding, Stable};
use crate::probe::Support;
use crate::recv_ring::{RecvRing, Start, Work};
use crate::user_data::{self, Generations, Tag, MAX_OPS};
use crate::NAME;

/// `io_uring_enter` flags (`IORING_ENTER_*`, linux/io_uring.h).
const ENTER_GETEVENTS: u32 = 1 << 0;
const ENTER_SQ_WAKEUP: u32 = 1 << 1;
const ENTER_EXT_ARG: u32 = 1 << 3;

/// How often a cancel that found nothing is sent again while its target
/// is still in flight (see `retry_cancels`).
const CANCEL_RETRIES: u8 = 32;

/// How many synchronous cancels `cancel` makes (each followed by a run of
/// the deferred task work) before it falls back to an `AsyncCancel`.
const SYNC_CANCEL_ATTEMPTS: u32 = 4;
/// How long one synchronous cancel may wait for a target the kernel is
/// running on a worker thread (`EALREADY`); the worker is signalled, so a
/// blocking syscall there returns at once in practice.
const SYNC_CANCEL_TIMEOUT: Duration = Duration::from_millis(20);

/// How often `submit` flushes a full submission queue before giving up.
const PUSH_ATTEMPTS: usize = 8;

/// How long Drop waits for the kernel to return cancelled operations.
const DROP_WAIT: Duration = Duration::from_secs(2);
/// How often Drop asks again for what is still in flight.
const DROP_RECANCEL: Duration = Duration::from_millis(10);

/// One operation the kernel owns.
struct InFlight {
    user_data: u64,
    holding: Holding,
    /// `AsyncCancel` requests sent for it so far.
    cancels: u8,
    /// The descriptor it works on (`-1`: unknown).
    fd: std::os::fd::RawFd,
    /// A one-shot `Recv` on a read-ahead stream: its descriptor and
    /// buffer, so that bytes it received before a cancel could stop it
    /// can be handed back to `recv_ring` (see `settle_cancelled`).
    ahead: Option<(std::os::fd::RawFd, *const u8)>,
}

/// A [`Driver`] that submits every operation to an io_uring instance.
///
/// Not `Send`: with `SINGLE_ISSUER`/`DEFER_TASKRUN` only the thread that
/// created the ring may submit to it or wait on it, and the loop that owns
/// the driver is single-threaded anyway.
///
/// ```compile_fail
/// fn assert_send<T: Send>() {}
/// assert_send::<backend_uring::UringDriver>();
/// ```
pub struct UringDriver {
    // Drop order (fields drop in declaration order, after `Drop::drop` ran):
    // the ring goes first, then the tables. `Drop::drop` has by then
    // collected the final CQE of every operation, or leaked the memory of
    // those the kernel did not return in time, so nothing the kernel may
    // still write is freed.
    ring: IoUring,
    /// Per id: the operation in flight and the memory it holds.
    ops: Vec<Option<InFlight>>,
    in_flight: usize,
    /// Operations in flight with an `AsyncCancel` sent (`cancels > 0`):
    /// the kernel may hold their files after `cancel` returned.
    orphans: usize,
    /// The generation of the next operation's user data.
    generations: Generations,
    /// CQEs (user data, result, flags) taken off the ring (to make room
    /// while flushing a full SQ) and not yet turned into completions.
    reaped: Vec<(u64, i32, u32)>,
    /// Multishot receives into a provided-buffer ring (`None`: every
    /// `Recv` is a one-shot; see [`crate::recv_ring`]).
    recv_ring: Option<RecvRing>,
    /// What `recv_ring` asked for while handling an event, applied right after.
    work: Work,
    /// Completions produced outside `wait` (by `release_fd`), reported by
    /// the next `wait`.
    early: Vec<Completion>,
    /// Ids whose `AsyncCancel` is still to be pushed (the SQ was full, or
    /// an earlier one found nothing); pushed by the next `wait`.
    deferred_cancels: Vec<OpId>,
    /// Ids whose cancel came back `ENOENT`/`EALREADY` in this batch.
    missed_cancels: Vec<OpId>,
    /// The cross-thread waker; the driver keeps a clone so the eventfd stays
    /// open while its read is in flight.
    waker: Arc<EventFd>,
    /// Where the waker's read lands; `None` only after Drop leaked it.
    waker_buf: Option<Stable<u64>>,
    waker_armed: bool,
    support: Support,
    config: RingConfig,
    /// Tests: how many synchronous cancels to answer as if the kernel had
    /// said `ENOENT` without asking it (the target "in transit").
    #[cfg(test)]
    fake_misses: u32,
    /// Tests: synchronous cancels that found nothing while the target was
    /// still in flight after the task work ran (really in transit).
    #[cfg(test)]
    in_transit: u32,
    _not_send: PhantomData<*const ()>,
}

impl std::fmt::Debug for UringDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringDriver")
            .field("config", &self.config)
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

fn is_transient(e: &io::Error) -> bool {
    // ETIME: the wait's timeout expired. EINTR: a signal. EBUSY/EAGAIN: the
    // CQ overflowed or the kernel is short of memory; reaping makes progress.
    matches!(
        e.raw_os_error(),
        Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN)
    )
}

impl UringDriver {
    pub(crate) fn new(
        ring: IoUring,
        support: Support,
        config: RingConfig,
        recv_ring: Option<RecvRing>,
    ) -> io::Result<Self> {
        Ok(UringDriver {
            ring,
            ops: Vec::new(),
            in_flight: 0,
            orphans: 0,
            generations: Generations::default(),
            reaped: Vec::with_capacity(64),
            recv_ring,
            work: Work::default(),
            early: Vec::new(),
            deferred_cancels: Vec::new(),
            missed_cancels: Vec::new(),
            waker: Arc::new(EventFd::new()?),
            waker_buf: Some(Stable::new(0u64)),
            waker_armed: false,
            support,
            config,
            #[cfg(test)]
            fake_misses: 0,
            #[cfg(test)]
            in_transit: 0,
            _not_send: PhantomData,
        })
    }

    /// The ring's setup as it was finally accepted by the kernel.
    pub fn config(&self) -> RingConfig {
        self.config
    }

    /// Number of operations submitted whose final completion has not been
    /// reported yet (cancelled ones included).
    pub fn in_flight(&self) -> usize {
        self.in_flight + self.recv_ring.as_ref().map_or(0, RecvRing::waiting)
    }

    /// `true` if stream receives use multishot receive into a
    /// provided-buffer ring ([`crate::UringBuilder::multishot_recv`]).
    pub fn multishot_recv(&self) -> bool {
        self.recv_ring.as_ref().is_some_and(RecvRing::enabled)
    }

    /// One `io_uring_enter`: submits every pushed SQE, runs pending task
    /// work, and waits for `min_complete` completions or `timeout`.
    fn enter(&mut self, min_complete: u32, timeout: Option<Duration>) -> io::Result<usize> {
        let mut sq = self.ring.submission();
        let to_submit = sq.len() as u32;
        let mut flags = ENTER_GETEVENTS;
        if self.config.sqpoll {
            // The kernel's SQ thread may be asleep; the fence orders our tail
            // update before reading its flag (see io-uring's `need_wakeup`).
            fence(Ordering::SeqCst);
            if sq.need_wakeup() {
                flags |= ENTER_SQ_WAKEUP;
            }
        }
        sq.sync();
        drop(sq);
        let submitter = self.ring.submitter();
        match timeout {
            Some(timeout) if min_complete > 0 => {
                let ts = Timespec::from(timeout);
                let args = SubmitArgs::new().timespec(&ts);
                // SAFETY: `args` (and the timespec it points to) outlive the
                // call; EXT_ARG tells the kernel that the argument is an
                // io_uring_getevents_arg of `size_of::<SubmitArgs>()` bytes,
                // which is what SubmitArgs wraps (io-uring's own
                // `submit_with_args` passes it the same way).
                unsafe {
                    submitter.enter(to_submit, min_complete, flags | ENTER_EXT_ARG, Some(&args))
                }
            }
            // SAFETY: no argument pointer; the flags are valid enter flags.
            _ => unsafe { submitter.enter::<libc::sigset_t>(to_submit, min_complete, flags, None) },
        }
    }

    /// Pushes `entry`, flushing the SQ to the kernel if it is full.
    ///
    /// # Safety
    /// Every pointer in `entry` must stay valid until its final CQE is reaped.
    unsafe fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        for _ in 0..PUSH_ATTEMPTS {
            // SAFETY: the caller guarantees the entry's memory outlives its
            // completion.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return Ok(());
            }
            self.flush()?;
        }
        Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            "the io_uring submission queue stays full",
        ))
    }

    /// Hands the SQ to the kernel without waiting, and takes the CQEs off
    /// the ring so it has room (they are reported by the next `wait`).
    fn flush(&mut self) -> io::Result<()> {
        self.run_task_work()?;
        if self.config.sqpoll && self.ring.submission().is_full() {
            // Let the SQ thread consume entries (IORING_ENTER_SQ_WAIT).
            let _ = self.ring.submitter().squeue_wait();
        }
        Ok(())
    }

    /// Moves every CQE from the ring into `self.reaped`.
    fn reap(&mut self) {
        let cq = self.ring.completion();
        self.reaped
            .extend(cq.map(|cqe| (cqe.user_data(), cqe.result(), cqe.flags())));
    }

    /// Starts the read of the waker's eventfd, unless one is in flight.
    fn arm_waker(&mut self) -> io::Result<()> {
        if self.waker_armed {
            return Ok(());
        }
        let Some(buf) = self.waker_buf.as_ref() else {
            return Ok(());
        };
        use std::os::fd::AsRawFd;
        let entry = opcode::Read::new(Fd(self.waker.as_raw_fd()), buf.as_ptr().cast::<u8>(), 8)
            .offset(u64::MAX)
            .build()
            .user_data(user_data::WAKER);
        // SAFETY: the 8-byte buffer is owned by `self.waker_buf` and the
        // eventfd by `self.waker`; Drop frees neither before this read's
        // final CQE (it leaks the buffer if that CQE never comes).
        unsafe { self.push(&entry)? };
        self.waker_armed = true;
        Ok(())
    }

    /// The `AsyncCancel` entry for the operation in flight under `id`,
    /// counting the attempt; `None` once it is no longer in flight.
    fn cancel_entry(&mut self, id: OpId) -> Option<squeue::Entry> {
        let op = self.ops.get_mut(id)?.as_mut()?;
        if op.cancels == 0 {
            self.orphans += 1;
        }
        op.cancels = op.cancels.saturating_add(1);
        Some(
            opcode::AsyncCancel::new(op.user_data)
                .build()
                .user_data(user_data::op_cancel(id)),
        )
    }

    /// Pushes the `AsyncCancel` requests waiting for room or for a retry.
    fn push_deferred_cancels(&mut self) -> io::Result<()> {
        while let Some(id) = self.deferred_cancels.pop() {
            let Some(entry) = self.cancel_entry(id) else {
                continue;
            };
            // SAFETY: AsyncCancel points into no memory.
            if let Err(e) = unsafe { self.push(&entry) } {
                self.deferred_cancels.push(id);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Schedules another cancel for each operation whose cancel came back
    /// `ENOENT` or `EALREADY` and which is still in flight after the whole
    /// batch was processed.
    ///
    /// The kernel answers `ENOENT` when the request is not where cancel
    /// looks at that instant — it completed (its CQE is then in this batch
    /// or a later one), or it is in transit between issue attempts (queued
    /// as task work after a poll wake-up); in the second case it would
    /// otherwise stay pending until data arrives, perhaps forever. Sending
    /// the cancel again on the next `wait` finds it once it is re-armed; a
    /// target that completed meanwhile is simply not retried.
    fn retry_cancels(&mut self) {
        for id in std::mem::take(&mut self.missed_cancels) {
            let retry = matches!(
                self.ops.get(id),
                Some(Some(op)) if op.cancels > 0 && op.cancels < CANCEL_RETRIES
            );
            if retry && !self.deferred_cancels.contains(&id) {
                self.deferred_cancels.push(id);
            }
        }
    }

    /// Takes the operation a CQE with `user_data` belongs to, if it is
    /// still ours (a stale or reserved user data yields `None`).
    fn take_op(&mut self, user_data: u64) -> Option<(OpId, InFlight)> {
        let Tag::Op(id) = user_data::decode(user_data) else {
            return None;
        };
        let slot = self.ops.get_mut(id)?;
        let op = slot.as_ref()?;
        if op.user_data != user_data {
            return None;
        }
        if op.cancels > 0 {
            self.orphans -= 1;
        }
        self.in_flight -= 1;
        slot.take().map(|op| (id, op))
    }

    /// Turns the reaped CQEs into completions.
    fn process(&mut self, done: &mut Vec<Completion>) -> io::Result<()> {
        let mut reaped = std::mem::take(&mut self.reaped);
        let mut waker_error = None;
        done.append(&mut self.early);
        if let Some(recv) = self.recv_ring.as_mut() {
            // Handed-back bytes are older than anything in this batch.
            recv.serve_handed_back(&mut self.work, done);
        }
        for (user_data, res, flags) in reaped.drain(..) {
            match user_data::decode(user_data) {
                Tag::Waker => {
                    self.waker_armed = false;
                    if res < 0 && res != -libc::ECANCELED && res != -libc::EINTR {
                        waker_error = Some(io::Error::from_raw_os_error(-res));
                    }
                }
                Tag::Multishot(_) | Tag::MultishotCancel(_) => {
                    if let Some(recv) = self.recv_ring.as_mut() {
                        recv.complete(user_data, res, flags, &mut self.work, done);
                    }
                }
                Tag::OpCancel(target) => {
                    if res == -libc::ENOENT || res == -libc::EALREADY {
                        self.missed_cancels.push(target);
                    }
                }
                // Its answer is of no interest (the waker's read reports).
                Tag::WakerCancel | Tag::Unknown => {}
                Tag::Op(_) => {
                    if let Some((id, op)) = self.take_op(user_data) {
                        // SAFETY: every CQE of an operation is final (the
                        // only multishots are recv_ring's, handled above),
                        // so the kernel is done with the operation's memory.
                        let result = unsafe { op.holding.finish(res) };
                        done.push(Completion { id, result });
                    }
                }
            }
        }
        self.reaped = reaped;
        self.retry_cancels();
        if let Some(recv) = self.recv_ring.as_mut() {
            recv.retry_cancels(&mut self.work);
        }
        self.apply_work(done)?;
        match waker_error {
            Some(e) => Err(io::Error::new(
                e.kind(),
                format!("the io_uring waker's eventfd read failed: {e}"),
            )),
            None => Ok(()),
        }
    }

    /// Pushes the entries `recv_ring` asked for and submits the receives it
    /// handed back as one-shots.
    fn apply_work(&mut self, done: &mut Vec<Completion>) -> io::Result<()> {
        let mut work = std::mem::take(&mut self.work);
        let mut result = Ok(());
        for entry in work.sqes.drain(..) {
            // SAFETY: a multishot receive writes only into the buffer ring,
            // which the driver keeps mapped until no multishot is left in
            // the kernel (Drop); a cancel points into no memory.
            if let Err(e) = unsafe { self.push(&entry) } {
                result = Err(e);
            }
        }
        for (id, fd, buf, len) in work.one_shots.drain(..) {
            // SAFETY: a waiting Recv's memory stays valid until its
            // completion is reported (submit's contract); it now goes to
            // the kernel as an ordinary Recv under the same id.
            if let Poll::Ready(result) = unsafe { self.submit_op(id, Op::Recv { fd, buf, len }) } {
                done.push(Completion { id, result });
            }
        }
        self.work = work;
        result
    }

    /// Submits `op` as one SQE under `id` (the ordinary, one-shot path).
    ///
    /// # Safety
    /// As [`Driver::submit`].
    unsafe fn submit_op(&mut self, id: OpId, op: Op) -> Poll<io::Result<OpOutput>> {
        let ahead = match op {
            Op::Recv { fd, buf, .. }
                if self.recv_ring.as_ref().is_some_and(|r| r.reads_ahead(fd)) =>
            {
                Some((fd, buf.cast_const()))
            }
            _ => None,
        };
        let fd = op.fd();
        // SAFETY: `submit`'s contract is `prepare`'s: the pointers in `op`
        // stay valid until the completion for `id` is reported.
        let (entry, holding) = match unsafe { ops::prepare(op, self.support.waitid) } {
            Ok(prepared) => prepared,
            Err(e) => return Poll::Ready(Err(e)),
        };
        let user_data = user_data::op(self.generations.next(), id);
        // SAFETY: the caller's memory lives until the completion for `id`
        // (submit's contract); the driver's own memory is in `holding`,
        // stored below and dropped only when the final CQE is reaped. If
        // the push fails the kernel never saw the entry and dropping
        // `holding` is fine.
        if let Err(e) = unsafe { self.push(&entry.user_data(user_data)) } {
            return Poll::Ready(Err(e));
        }
        if id >= self.ops.len() {
            self.ops.resize_with(id + 1, || None);
        }
        self.ops[id] = Some(InFlight {
            user_data,
            holding,
            cancels: 0,
            fd,
            ahead,
        });
        self.in_flight += 1;
        Poll::Pending
    }

    /// A `Recv` on a descriptor that may read ahead: served by `recv_ring`,
    /// or `None` for the one-shot path.
    ///
    /// # Safety
    /// As [`Driver::submit`].
    unsafe fn submit_recv(
        &mut self,
        id: OpId,
        fd: std::os::fd::RawFd,
        buf: *mut u8,
        len: usize,
    ) -> Option<Poll<io::Result<OpOutput>>> {
        let recv = self.recv_ring.as_mut()?;
        // SAFETY: submit's contract covers `buf..buf + len` until the
        // completion for `id` or `Cancel::Forgotten`.
        match unsafe { recv.recv(id, fd, buf, len, &mut self.work) } {
            Start::OneShot => None,
            Start::Ready(result) => Some(Poll::Ready(result)),
            Start::Waiting => {
                let mut done = Vec::new();
                if let Err(e) = self.apply_work(&mut done) {
                    // The arm never reached the kernel: forget the Recv.
                    if let Some(recv) = self.recv_ring.as_mut() {
                        recv.cancel(id);
                        recv.arm_failed(fd);
                    }
                    return Some(Poll::Ready(Err(e)));
                }
                self.early.append(&mut done);
                Some(Poll::Pending)
            }
        }
    }

    /// Today's cancellation, and the fallback of the synchronous one:
    /// push an `AsyncCancel` (retried by `wait` while the kernel reports
    /// the target in transit) and let the loop keep the memory until the
    /// final CQE is reported.
    fn cancel_async(&mut self, id: OpId) -> Cancel {
        let Some(entry) = self.cancel_entry(id) else {
            return Cancel::Forgotten;
        };
        // SAFETY: AsyncCancel points into no memory. If the SQ is full the
        // request waits for the next `wait` (no flushing here: cancel runs
        // from destructors and must not fail).
        if unsafe { self.ring.submission().push(&entry) }.is_err() {
            self.deferred_cancels.push(id);
        }
        // Even if the kernel already finished it, the CQE is still to be
        // reaped: the memory stays the loop's to keep until it is reported.
        Cancel::Pending
    }

    /// Cancels the operation in flight under `user_data` with
    /// `IORING_REGISTER_SYNC_CANCEL` and waits for its final CQE, so that
    /// the kernel has let go of it (its memory, its file) on return.
    ///
    /// `Some(Done)`: the kernel cancelled it (or never issued it): its CQE
    /// said `ECANCELED`/`EINTR` and was consumed here. `Some(Pending)`: it
    /// completed before the cancel could stop it; its CQE, unchanged, is
    /// in `reaped` and the next `wait` reports it. `None`: the outcome
    /// could not be confirmed (the kernel kept missing the target, a
    /// worker did not let go within the timeout, an error): the caller
    /// falls back to an `AsyncCancel`.
    fn cancel_sync(&mut self, user_data: u64) -> Option<Cancel> {
        self.sync_cancel_until(user_data, |d| d.settle_cancelled(user_data))
    }

    /// The synchronous cancel of the request under `user_data` (see
    /// `cancel_sync`), until `settled` says its final CQE has been reaped
    /// and dealt with: `settled` is asked first (the CQE may be here
    /// already), then after each cancel and the task work run behind it.
    /// `None`: not settled (see `cancel_sync`).
    fn sync_cancel_until<T>(
        &mut self,
        user_data: u64,
        mut settled: impl FnMut(&mut Self) -> Option<T>,
    ) -> Option<T> {
        // Its CQE may be here already (reaped while flushing, or posted
        // by the task work an earlier cancel ran).
        self.reap();
        if let Some(answer) = settled(self) {
            return Some(answer);
        }
        // Its SQE may not have reached the kernel yet (`submit` only
        // queues): submit everything queued first, or the cancel would
        // find nothing. Only submit: the task work must not run before the
        // cancel, or a receive whose poll fired would take the data that
        // the cancel can still leave in the socket.
        self.submit_queued().ok()?;
        for _ in 0..SYNC_CANCEL_ATTEMPTS {
            let target = CancelBuilder::user_data(user_data);
            let timeout = Some(Timespec::from(SYNC_CANCEL_TIMEOUT));
            #[cfg(not(test))]
            let answer = self.ring.submitter().register_sync_cancel(timeout, target);
            #[cfg(test)]
            let answer = match self.fake_misses.checked_sub(1) {
                Some(left) => {
                    self.fake_misses = left;
                    Err(io::Error::from_raw_os_error(libc::ENOENT))
                }
                None => self.ring.submitter().register_sync_cancel(timeout, target),
            };
            let missed = answer
                .as_ref()
                .is_err_and(|e| e.raw_os_error() == Some(libc::ENOENT));
            match answer {
                // Found and cancelled (its CQE is posted by task work), or
                // finished while the kernel waited for a worker to let go.
                Ok(()) => {}
                // ENOENT: not where cancel looks: completed (its CQE may
                // still be in deferred task work), or in transit between
                // issue attempts, queued as task work after a poll
                // wake-up. EINTR: a signal. Either way: run the task
                // work, look for the CQE, and ask again.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::EINTR)) => {}
                // ETIME: a worker still runs it; anything else: unknown.
                Err(_) => return None,
            }
            self.run_task_work().ok()?;
            if let Some(answer) = settled(self) {
                return Some(answer);
            }
            #[cfg(test)]
            {
                self.in_transit += u32::from(missed);
            }
            let _ = missed;
        }
        None
    }

    /// Submits what is queued, without running deferred task work (no
    /// GETEVENTS): a request whose poll fired but whose task work has not
    /// run is still cancellable as it stands.
    fn submit_queued(&mut self) -> io::Result<()> {
        let to_submit = {
            let mut sq = self.ring.submission();
            sq.sync();
            sq.len() as u32
        };
        if to_submit == 0 {
            return Ok(());
        }
        // SAFETY: no argument pointer, no flags; every queued entry's
        // memory is held until its final CQE (`push`'s contract).
        match unsafe {
            self.ring
                .submitter()
                .enter::<libc::sigset_t>(to_submit, 0, 0, None)
        } {
            Ok(_) => Ok(()),
            Err(e) if is_transient(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Submits what is queued and runs the deferred task work (one
    /// `io_uring_enter` with GETEVENTS that does not wait), then reaps.
    fn run_task_work(&mut self) -> io::Result<()> {
        match self.enter(0, None) {
            Ok(_) => {}
            Err(e) if is_transient(&e) => {}
            Err(e) => return Err(e),
        }
        self.reap();
        Ok(())
    }

    /// The reaped CQE at `pos` says that the operation under `user_data`
    /// completed with `res > 0` before its cancel could stop it. A `Recv`
    /// on a read-ahead stream gives its bytes to `recv_ring`, where the next
    /// read finds them (`Forgotten`: nothing is lost, nothing is reported);
    /// anything else is reported by the next `wait` (`Pending`).
    fn hand_back(&mut self, pos: usize, user_data: u64) -> Cancel {
        let Tag::Op(id) = user_data::decode(user_data) else {
            return Cancel::Pending;
        };
        let Some((fd, buf)) = self
            .ops
            .get(id)
            .and_then(Option::as_ref)
            .and_then(|op| op.ahead)
        else {
            return Cancel::Pending;
        };
        let Some(recv) = self.recv_ring.as_mut() else {
            return Cancel::Pending;
        };
        let res = self.reaped[pos].1;
        // SAFETY: the CQE is the Recv's final one: the kernel wrote `res`
        // bytes (at most the length it was given) to `buf`, which stays
        // valid until `cancel` returns (submit's contract).
        let data = unsafe { std::slice::from_raw_parts(buf, res as usize) };
        if !recv.hand_back(fd, data) {
            return Cancel::Pending;
        }
        self.reaped.remove(pos);
        if let Some((_, op)) = self.take_op(user_data) {
            // SAFETY: the final CQE (see above); a Recv holds no descriptor.
            drop(unsafe { op.holding.finish(res) });
        }
        Cancel::Forgotten
    }

    /// If the final CQE of the operation under `user_data` has been
    /// reaped: consumes it if it says the operation was cancelled
    /// (`ECANCELED`, or `EINTR` from a worker interrupted by the cancel;
    /// neither moved any data) and answers `Forgotten`; else leaves it for the
    /// next `wait` to report and answers `Pending`.
    fn settle_cancelled(&mut self, user_data: u64) -> Option<Cancel> {
        let pos = self.reaped.iter().position(|&(ud, _, _)| ud == user_data)?;
        let res = self.reaped[pos].1;
        if res > 0 {
            return Some(self.hand_back(pos, user_data));
        }
        if res != -libc::ECANCELED && res != -libc::EINTR {
            return Some(Cancel::Pending);
        }
        self.reaped.remove(pos);
        if let Some((_, op)) = self.take_op(user_data) {
            // SAFETY: this was the operation's final CQE (every operation
            // of this table is one-shot): the kernel is done with its
            // memory. The result is an error, so no descriptor is lost.
            drop(unsafe { op.holding.finish(res) });
        }
        Some(Cancel::Forgotten)
    }

    /// Hands the reaped CQEs of the released multishot `user_data` to
    /// `recv_ring` (they only recycle their buffers, in any order with the
    /// rest of the batch: the descriptor is gone) and answers `Some` once
    /// its final one was among them.
    fn settle_multishot(&mut self, user_data: u64) -> Option<()> {
        let recv = self.recv_ring.as_mut()?;
        let (mut work, mut done) = (Work::default(), Vec::new());
        self.reaped.retain(|&(ud, res, flags)| {
            let ours = ud == user_data;
            if ours {
                recv.complete(ud, res, flags, &mut work, &mut done);
            }
            !ours
        });
        // A released multishot's CQE asks for nothing and completes nothing.
        debug_assert!(work.sqes.is_empty() && work.one_shots.is_empty() && done.is_empty());
        (!recv.is_dying(user_data)).then_some(())
    }

    /// The operations on `fd` whose cancel fell back to an `AsyncCancel`
    /// (the loop no longer waits on them, but the kernel may still hold
    /// the file): cancels each synchronously until its final CQE is
    /// reaped, which stays in `reaped` for the next `wait` to report (the
    /// loop was told `Pending`). One the kernel keeps missing is left to
    /// its `AsyncCancel`.
    fn let_go_of_orphans(&mut self, fd: std::os::fd::RawFd) {
        let targets: Vec<u64> = self
            .ops
            .iter()
            .flatten()
            .filter(|op| op.cancels > 0 && op.fd == fd)
            .map(|op| op.user_data)
            .collect();
        for user_data in targets {
            let _ = self.sync_cancel_until(user_data, |d| {
                d.reaped
                    .iter()
                    .any(|&(ud, _, _)| ud == user_data)
                    .then_some(())
            });
        }
    }

    fn close_sync(fd: i32) -> io::Result<OpOutput> {
        // SAFETY: `Op::Close` hands the descriptor to the driver: nobody else
        // uses or closes it.
        if unsafe { libc::close(fd) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OpOutput::new(0))
    }
}

impl Driver for UringDriver {
    fn name(&self) -> &'static str {
        NAME
    }

    unsafe fn submit(&mut self, id: OpId, op: Op) -> Poll<io::Result<OpOutput>> {
        if id >= MAX_OPS {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "operation id {id} is out of range (at most {MAX_OPS} operations in flight)"
                ),
            )));
        }
        if matches!(self.ops.get(id), Some(Some(_))) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("operation id {id} is already in flight"),
            )));
        }
        match op {
            Op::Close { fd } => {
                // Whatever was received ahead on it goes.
                self.release_fd(fd);
                if !self.support.close {
                    // The kernel lacks IORING_OP_CLOSE (before 5.6): close here.
                    return Poll::Ready(Self::close_sync(fd));
                }
            }
            Op::Recv { fd, buf, len } => {
                // SAFETY: submit's contract, passed on.
                if let Some(started) = unsafe { self.submit_recv(id, fd, buf, len) } {
                    return started;
                }
            }
            ref file => {
                if let Some(opcode) = self.support.files.missing(file) {
                    // Refused before anything reaches the ring: the loop
                    // runs it on its executor instead (the contract's
                    // "Unsupported").
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        format!("this kernel's io_uring lacks {opcode}"),
                    )));
                }
            }
        }
        // SAFETY: submit's contract, passed on.
        unsafe { self.submit_op(id, op) }
    }

    fn cancel(&mut self, id: OpId) -> Cancel {
        // A completion produced outside `wait` and not yet reported: the
        // operation is over, and its result must not reach the next
        // operation that gets this id.
        let queued = self.early.len();
        self.early.retain(|c| c.id != id);
        if self.early.len() != queued {
            return Cancel::Forgotten;
        }
        if self.recv_ring.as_mut().is_some_and(|r| r.cancel(id)) {
            // A Recv waiting for the multishot: the kernel never had its buffer.
            return Cancel::Forgotten;
        }
        let Some(user_data) = self
            .ops
            .get(id)
            .and_then(Option::as_ref)
            .map(|op| op.user_data)
        else {
            return Cancel::Forgotten;
        };
        if self.support.sync_cancel {
            if let Some(answer) = self.cancel_sync(user_data) {
                return answer;
            }
        }
        self.cancel_async(id)
    }

    fn release_fd(&mut self, fd: std::os::fd::RawFd) {
        // Only receive-ahead state is kept per descriptor: recycle what it
        // queued and cancel its multishot — synchronously where the kernel
        // allows, so that the kernel no longer holds the file when this
        // returns and the close that follows really closes the socket;
        // else pushed now, submitted by the next `wait` (which the loop
        // always makes), and the kernel lets go of the file then.
        if let Some(dying) = self
            .recv_ring
            .as_mut()
            .and_then(|r| r.release(fd, &mut self.early))
        {
            let gone = self.support.sync_cancel
                && self
                    .sync_cancel_until(dying, |d| d.settle_multishot(dying))
                    .is_some();
            if !gone {
                if let Some(recv) = self.recv_ring.as_mut() {
                    recv.cancel_dying(dying, &mut self.work);
                }
            }
        }
        if self.support.sync_cancel && self.orphans > 0 {
            self.let_go_of_orphans(fd);
        }
        let mut done = Vec::new();
        // A cancel that cannot be pushed now is no loss of memory
        // safety: Drop cancels every multishot left anyway.
        let _ = self.apply_work(&mut done);
        self.early.append(&mut done);
    }

    fn promise_recv_only(&mut self, fd: std::os::fd::RawFd) -> bool {
        self.recv_ring
            .as_mut()
            .is_some_and(|r| r.promise_recv_only(fd))
    }

    fn wait(&mut self, timeout: Option<Duration>, done: &mut Vec<Completion>) -> io::Result<()> {
        self.push_deferred_cancels()?;
        self.arm_waker()?;
        let ready = !self.reaped.is_empty()
            || !self.early.is_empty()
            || !self.ring.completion().is_empty()
            || self
                .recv_ring
                .as_ref()
                .is_some_and(RecvRing::has_handed_back);
        let timeout = if ready { Some(Duration::ZERO) } else { timeout };
        let nonblocking = timeout == Some(Duration::ZERO);
        let skip_enter = nonblocking && {
            let sq = self.ring.submission();
            // Nothing to submit, no deferred task work, no overflowed CQEs:
            // a syscall would find nothing.
            sq.is_empty() && !sq.taskrun() && !sq.cq_overflow()
        };
        if !skip_enter {
            let min_complete = if nonblocking { 0 } else { 1 };
            match self.enter(min_complete, timeout) {
                Ok(_) => {}
                Err(e) if is_transient(&e) => {}
                Err(e) => return Err(e),
            }
        }
        self.reap();
        self.process(done)
    }

    fn notifier(&self) -> Arc<dyn Notify> {
        self.waker.clone()
    }
}

impl UringDriver {
    /// Pushes an `AsyncCancel` for every operation still in flight and for
    /// the waker's read; stops quietly if the SQ stays full.
    fn cancel_everything(&mut self) {
        let ids: Vec<OpId> = (0..self.ops.len())
            .filter(|&id| self.ops[id].is_some())
            .collect();
        let mut entries: Vec<squeue::Entry> = ids
            .into_iter()
            .filter_map(|id| self.cancel_entry(id))
            .collect();
        if self.waker_armed {
            entries.push(
                opcode::AsyncCancel::new(user_data::WAKER)
                    .build()
                    .user_data(user_data::WAKER_CANCEL),
            );
        }
        if let Some(recv) = self.recv_ring.as_mut() {
            let mut work = Work::default();
            recv.cancel_everything(&mut work);
            entries.append(&mut work.sqes);
        }
        for entry in entries {
            // SAFETY: AsyncCancel points into no memory.
            if unsafe { self.push(&entry) }.is_err() {
                break;
            }
        }
    }
}

impl Drop for UringDriver {
    fn drop(&mut self) {
        // 1. Ask the kernel to give back every operation still in flight.
        //    (The loop has normally let its orphaned operations finish
        //    already; what is left here are the waker's read and operations
        //    of futures that outlived the loop.)
        self.deferred_cancels.clear();
        if let Some(recv) = self.recv_ring.as_mut() {
            // Nobody will collect them, and no multishot must be re-armed.
            recv.forget_waiters();
        }
        if self.support.sync_cancel {
            // Everything the kernel holds, at once: submit what is queued,
            // then one synchronous cancel matching any request. What it
            // misses (in transit) the AsyncCancels below and their
            // retries find; errors only leave the work to them.
            let _ = self.enter(0, None);
            let _ = self
                .ring
                .submitter()
                .register_sync_cancel(Some(Timespec::from(DROP_RECANCEL)), CancelBuilder::any());
        }
        self.cancel_everything();

        // 2. Submit, and collect final CQEs until every operation is back,
        //    bounded by DROP_WAIT; ask again every DROP_RECANCEL, because a
        //    cancel can miss a request in transit (see `retry_cancels`). An
        //    accept that completed anyway yields a descriptor nobody will
        //    receive: close it.
        let deadline = Instant::now() + DROP_WAIT;
        let mut next_round = Instant::now() + DROP_RECANCEL;
        loop {
            self.reap();
            for (user_data, res, flags) in std::mem::take(&mut self.reaped) {
                match user_data::decode(user_data) {
                    Tag::Waker => self.waker_armed = false,
                    Tag::Multishot(_) | Tag::MultishotCancel(_) => {
                        if let Some(recv) = self.recv_ring.as_mut() {
                            let (mut work, mut done) = (Work::default(), Vec::new());
                            // Only bookkeeping: no waiter is left to serve or re-arm for.
                            recv.complete(user_data, res, flags, &mut work, &mut done);
                        }
                    }
                    Tag::Op(_) => {
                        if let Some((_, op)) = self.take_op(user_data) {
                            // SAFETY: a final CQE (operations are one-shot;
                            // multishots are recv_ring's). Dropping the
                            // output closes an accepted descriptor.
                            drop(unsafe { op.holding.finish(res) });
                        }
                    }
                    // Answers to cancels: Drop asks again every DROP_RECANCEL anyway.
                    Tag::OpCancel(_) | Tag::WakerCancel | Tag::Unknown => {}
                }
            }
            let multishots = self.recv_ring.as_ref().map_or(0, RecvRing::live);
            if self.in_flight == 0 && !self.waker_armed && multishots == 0 {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if now >= next_round {
                self.cancel_everything();
                next_round = now + DROP_RECANCEL;
            }
            match self.enter(1, Some(next_round.min(deadline) - now)) {
                Ok(_) => {}
                Err(e) if is_transient(&e) => {}
                Err(_) => break,
            }
        }

        // 3. Whatever the kernel has not returned may still be written to:
        //    leak its memory instead of freeing it. Only after this do the
        //    fields drop — the ring first (unmapping it and closing its
        //    descriptor makes the kernel cancel what is left), then the
        //    now-empty tables and the eventfd handle.
        if self.in_flight > 0 {
            for op in self.ops.iter_mut().filter_map(Option::take) {
                std::mem::forget(op.holding);
            }
        }
        if self.waker_armed {
            std::mem::forget(self.waker_buf.take());
        }
        // The buffer ring is unmapped only if no multishot is left in the
        // kernel; else it is leaked.
        if let Some(recv) = self.recv_ring.take() {
            recv.shut_down(&self.ring);
        }
    }
}

#[cfg(test)]
mod tests;
