//! Multishot receive into a provided-buffer ring, for stream sockets the
//! loop reads only through `Op::Recv` ([`Driver::promise_recv_only`]).
//!
//! Per such descriptor the first `Recv` that finds nothing queued arms one
//! `IORING_OP_RECV` with `IORING_RECV_MULTISHOT` (Linux 6.0) that selects
//! buffers from the driver's [`BufRing`]. Each of its CQEs appends the
//! bytes (a buffer id and a length) to the descriptor's queue; a `Recv` is
//! completed by copying from that queue into the caller's buffer — at
//! `submit` (`Poll::Ready`) when something is queued, else when the next
//! CQE arrives. So an echo request costs one CQE and no SQE, and a
//! cancelled `Recv` is forgotten at once (`Cancel::Forgotten`): the kernel never
//! held its buffer, and bytes received meanwhile stay queued for the next.
//!
//! End of stream and errors are sticky (reported after the queued bytes,
//! to every later `Recv`). When the multishot stops (the ring ran out of
//! buffers: `ENOBUFS`; a cancel; the kernel ended it without
//! `IORING_CQE_F_MORE`) it is armed again when a `Recv` needs data; if no
//! buffer is free then, that `Recv` is an ordinary one-shot into the
//! caller's buffer, so a descriptor whose reader is slow can never starve
//! the others. A descriptor holding more than a quarter of the buffers
//! with nobody waiting has its multishot cancelled until it is read.
//!
//! Copying out of the ring is what a multishot costs; for large chunks
//! (4 KiB and more) that costs more than the submission it saves, so a
//! descriptor that received one stops its multishot once nobody waits and
//! makes its next 64 reads as one-shots straight into the callers'
//! buffers, then samples the multishot again.
//!
//! [`RecvRing::release`] (from `release_fd`) recycles the queued buffers
//! and marks the multishot dying; the driver cancels it, synchronously
//! where the kernel allows, so that closing the socket right after really
//! closes it. The CQEs a cancelled multishot still posts are recognised by
//! their user data (a generation per arm, see [`crate::user_data`]) and
//! only recycle their buffer. The buffer ring is unmapped only once no
//! multishot is left in the kernel (the driver's Drop).
//!
//! [`Driver::promise_recv_only`]: loop_driver::Driver::promise_recv_only

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;

use io_uring::{cqueue, opcode, squeue, types::Fd};
use loop_driver::{Completion, OpId, OpOutput};

use crate::buf_ring::BufRing;
use crate::user_data::{self, Generations, Tag, MAX_FD};

/// A CQE this large means the socket carries big messages: copying them
/// out of the ring costs more than the submission a multishot saves, so
/// the next reads go straight into the caller's buffers (one-shot).
const LARGE_CHUNK: u32 = 4096;
/// How many one-shot reads a socket with large chunks makes before it
/// tries the multishot again (to notice that its messages got small).
const DIRECT_READS: u8 = 64;
/// How often a cancel of a released descriptor's multishot is sent again
/// when the kernel did not find it (in transit between attempts).
const CANCEL_RETRIES: u8 = 32;

/// Bytes of one provided buffer not yet handed to a `Recv`.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    bid: u16,
    off: u32,
    len: u32,
}

/// A `Recv` waiting for bytes: the caller's memory (kept alive by the loop
/// until the completion or `Cancel::Forgotten`).
#[derive(Debug, Clone, Copy)]
struct Waiter {
    id: OpId,
    buf: *mut u8,
    len: usize,
}

/// The descriptor each waiting `Recv` waits on, by op id (the loop's ids
/// are dense and the driver refuses ids from `MAX_OPS` on).
#[derive(Debug, Default)]
struct Waiting {
    /// `fd + 1` per id, 0 for none.
    by_id: Vec<u32>,
    len: usize,
}

impl Waiting {
    fn insert(&mut self, id: OpId, fd: RawFd) {
        if id >= self.by_id.len() {
            self.by_id.resize(id + 1, 0);
        }
        if self.by_id[id] == 0 {
            self.len += 1;
        }
        // `0 <= fd < MAX_FD`: checked by `recv` before any insert.
        self.by_id[id] = fd as u32 + 1;
    }

    fn remove(&mut self, id: OpId) -> Option<RawFd> {
        let slot = self.by_id.get_mut(id).filter(|s| **s != 0)?;
        let fd = (*slot - 1) as RawFd;
        *slot = 0;
        self.len -= 1;
        Some(fd)
    }

    fn len(&self) -> usize {
        self.len
    }

    fn clear(&mut self) {
        self.by_id.clear();
        self.len = 0;
    }
}

/// What a descriptor turned out to be (`SO_TYPE`, asked once).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Kind {
    #[default]
    Unknown,
    Stream,
    Other,
}

/// Per-descriptor state.
#[derive(Debug, Default)]
struct FdState {
    /// The loop declared `promise_recv_only` and has not released the descriptor.
    ahead: bool,
    kind: Kind,
    /// User data of the live multishot, 0 if none.
    armed: u64,
    /// A cancel was sent for `armed` (too much queued).
    stopping: bool,
    queue: VecDeque<Chunk>,
    /// Sticky end: `Some(0)` end of stream, `Some(errno)` an error.
    end: Option<i32>,
    waiters: VecDeque<Waiter>,
    /// Bytes a one-shot `Recv` had received when its cancel came too late
    /// to stop it, handed back by the driver: older than anything queued,
    /// so served first.
    carry: VecDeque<u8>,
    /// One-shot reads still to make before the multishot is tried again
    /// (set by a large chunk, see `LARGE_CHUNK`).
    direct: u8,
}

/// A multishot of a released descriptor, whose final CQE is still to come.
#[derive(Debug)]
struct Dying {
    user_data: u64,
    fd: RawFd,
    /// Cancels sent so far.
    cancels: u8,
    /// The last cancel found nothing: send another.
    retry: bool,
}

/// How `submit` should go on with a `Recv`.
#[derive(Debug)]
pub(crate) enum Start {
    /// Completed from the queue (or the sticky end).
    Ready(io::Result<OpOutput>),
    /// Waiting for the multishot; its SQE (if it had to be armed) is in
    /// the `Work` passed in.
    Waiting,
    /// Not for this module: submit an ordinary one-shot `Recv`.
    OneShot,
}

/// What the module asks the driver to do after an event.
#[derive(Debug, Default)]
pub(crate) struct Work {
    /// Entries to push (arms and cancels; they point into no caller memory).
    pub(crate) sqes: Vec<squeue::Entry>,
    /// Waiting `Recv`s to submit as ordinary one-shots after all (no
    /// buffer was free, or the kernel lacks multishot receive).
    pub(crate) one_shots: Vec<(OpId, RawFd, *mut u8, usize)>,
}

/// The multishot receives of one driver and the buffers they fill.
#[derive(Debug)]
pub(crate) struct RecvRing {
    bufs: BufRing,
    fds: Vec<FdState>,
    /// Which descriptor each waiting `Recv` waits on.
    waiting: Waiting,
    dying: Vec<Dying>,
    /// Descriptors given bytes back (`hand_back`) while a `Recv` waited.
    handed: Vec<RawFd>,
    /// Multishots in the kernel (armed or dying) whose final CQE has not come.
    live: usize,
    /// The generation of the next multishot's user data.
    generations: Generations,
    /// `false` once the kernel refused a multishot receive (before 6.0).
    enabled: bool,
    /// Queued buffers above which a descriptor nobody reads stops receiving.
    max_queued: usize,
}

impl RecvRing {
    pub(crate) fn new(bufs: BufRing) -> Self {
        let max_queued = (usize::from(bufs.entries()) / 4).max(2);
        RecvRing {
            bufs,
            fds: Vec::new(),
            waiting: Waiting::default(),
            dying: Vec::new(),
            handed: Vec::new(),
            live: 0,
            generations: Generations::default(),
            enabled: true,
            max_queued,
        }
    }

    /// `false` once the kernel refused a multishot receive.
    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// The arm just asked for on `fd` never reached the kernel.
    pub(crate) fn arm_failed(&mut self, fd: RawFd) {
        if let Some(st) = self.fds.get_mut(fd as usize).filter(|st| st.armed != 0) {
            st.armed = 0;
            st.stopping = false;
            self.live = self.live.saturating_sub(1);
        }
    }

    /// Drops every waiting `Recv` (the driver is going away: nobody will
    /// collect them, and their multishots must not be re-armed).
    pub(crate) fn forget_waiters(&mut self) {
        self.waiting.clear();
        for st in &mut self.fds {
            st.waiters.clear();
        }
    }

    /// `Recv`s waiting for data (counted as in flight by the driver).
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Multishots whose final CQE is still to come.
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    /// The loop reads `fd` only through `Recv` until `release`.
    pub(crate) fn promise_recv_only(&mut self, fd: RawFd) -> bool {
        if !self.enabled || !(0..MAX_FD).contains(&fd) {
            return false;
        }
        let idx = fd as usize;
        if idx >= self.fds.len() {
            self.fds.resize_with(idx + 1, FdState::default);
        }
        self.fds[idx].ahead = true;
        true
    }

    /// Starts a `Recv` of at most `len` bytes into `buf` on `fd`.
    ///
    /// # Safety
    /// `buf..buf + len` is writable and stays valid (and unused by anyone
    /// else) until the `Recv`'s completion is reported or `cancel` took it.
    pub(crate) unsafe fn recv(
        &mut self,
        id: OpId,
        fd: RawFd,
        buf: *mut u8,
        len: usize,
        work: &mut Work,
    ) -> Start {
        if !self.enabled || len == 0 || !(0..MAX_FD).contains(&fd) {
            return Start::OneShot;
        }
        let Some(st) = self.fds.get_mut(fd as usize) else {
            return Start::OneShot;
        };
        if !st.ahead {
            return Start::OneShot;
        }
        if st.kind == Kind::Unknown {
            st.kind = if loop_driver::is_stream_socket(fd) {
                Kind::Stream
            } else {
                Kind::Other
            };
        }
        if st.kind != Kind::Stream {
            return Start::OneShot;
        }
        if !st.carry.is_empty() && st.waiters.is_empty() {
            // SAFETY: the caller's contract on `buf`.
            return Start::Ready(Ok(OpOutput::new(unsafe { take_carry(st, buf, len) })));
        }
        if !st.queue.is_empty() {
            // SAFETY: the caller's contract on `buf`.
            let n = unsafe { fill(&mut self.bufs, st, buf, len) };
            return Start::Ready(Ok(OpOutput::new(n)));
        }
        if let Some(end) = st.end {
            return Start::Ready(end_result(end));
        }
        if st.waiters.is_empty() && st.armed == 0 {
            if st.direct > 0 {
                // Large messages: straight into the caller's buffer.
                st.direct -= 1;
                return Start::OneShot;
            }
            if !self.bufs.has_free() {
                // Every buffer is queued somewhere: read into the caller's.
                return Start::OneShot;
            }
        }
        st.waiters.push_back(Waiter { id, buf, len });
        self.waiting.insert(id, fd);
        if self.fds[fd as usize].armed == 0 {
            self.arm(fd, work);
        }
        Start::Waiting
    }

    /// Arms the multishot of `fd` (whose state exists).
    fn arm(&mut self, fd: RawFd, work: &mut Work) {
        let user_data = user_data::multishot(self.generations.next(), fd);
        let st = &mut self.fds[fd as usize];
        st.armed = user_data;
        st.stopping = false;
        self.live += 1;
        work.sqes.push(
            opcode::RecvMulti::new(Fd(fd), self.bufs.bgid())
                .build()
                .user_data(user_data),
        );
    }

    /// `true` if `fd` reads ahead and is a stream: bytes received for it
    /// can be [handed back](Self::hand_back).
    pub(crate) fn reads_ahead(&self, fd: RawFd) -> bool {
        self.fds
            .get(fd as usize)
            .is_some_and(|st| fd >= 0 && st.ahead && st.kind == Kind::Stream)
    }

    /// Takes back `data`, which a one-shot `Recv` on `fd` received before
    /// its cancel could stop it: the next reads get it first (a `Recv`
    /// already waiting, from the next `wait`: see `serve_handed_back`).
    /// `false` if `fd` does not read ahead.
    pub(crate) fn hand_back(&mut self, fd: RawFd, data: &[u8]) -> bool {
        if !self.reads_ahead(fd) {
            return false;
        }
        let st = &mut self.fds[fd as usize];
        for &b in data.iter().rev() {
            st.carry.push_front(b);
        }
        if !st.waiters.is_empty() && !self.handed.contains(&fd) {
            self.handed.push(fd);
        }
        true
    }

    /// `true` if bytes were handed back while a `Recv` waited: the next
    /// `wait` has something to report and must not block.
    pub(crate) fn has_handed_back(&self) -> bool {
        !self.handed.is_empty()
    }

    /// Serves the `Recv`s that were waiting when bytes were handed back
    /// (called by `wait`, so their completions are reported at once and
    /// no cancel can come between).
    pub(crate) fn serve_handed_back(&mut self, work: &mut Work, done: &mut Vec<Completion>) {
        for fd in std::mem::take(&mut self.handed) {
            if self.reads_ahead(fd) {
                self.serve(fd, work, done);
            }
        }
    }

    /// Forgets a waiting `Recv`; `false` if `id` is not one.
    pub(crate) fn cancel(&mut self, id: OpId) -> bool {
        let Some(fd) = self.waiting.remove(id) else {
            return false;
        };
        if let Some(st) = self.fds.get_mut(fd as usize) {
            st.waiters.retain(|w| w.id != id);
        }
        true
    }

    /// The loop stops using `fd`: drop what is queued, and return the user
    /// data of its multishot if one is still in the kernel (now dying: its
    /// CQEs only recycle their buffers). The caller cancels it, at once
    /// (waiting until [`is_dying`](Self::is_dying) says its final CQE was
    /// handled) or with [`cancel_dying`](Self::cancel_dying).
    /// Waiting `Recv`s (there should be none) are completed with `ECANCELED`.
    pub(crate) fn release(&mut self, fd: RawFd, done: &mut Vec<Completion>) -> Option<u64> {
        let st = self.fds.get_mut(fd as usize).filter(|_| fd >= 0)?;
        let st = std::mem::take(st);
        for chunk in st.queue {
            self.bufs.recycle(chunk.bid);
        }
        for w in st.waiters {
            self.waiting.remove(w.id);
            done.push(Completion {
                id: w.id,
                result: Err(io::Error::from_raw_os_error(libc::ECANCELED)),
            });
        }
        if st.armed == 0 {
            return None;
        }
        self.dying.push(Dying {
            user_data: st.armed,
            fd,
            cancels: 0,
            retry: false,
        });
        Some(st.armed)
    }

    /// Asks for an `AsyncCancel` of the dying multishot `user_data` (the
    /// asynchronous release: retried while the kernel misses it).
    pub(crate) fn cancel_dying(&mut self, user_data: u64, work: &mut Work) {
        if let Some(d) = self.dying.iter_mut().find(|d| d.user_data == user_data) {
            d.cancels = d.cancels.saturating_add(1);
            work.sqes.push(cancel_entry(d.user_data, d.fd));
        }
    }

    /// `true` while the released multishot `user_data` has not posted (or
    /// its final CQE has not been handed to [`complete`](Self::complete)).
    pub(crate) fn is_dying(&self, user_data: u64) -> bool {
        self.dying.iter().any(|d| d.user_data == user_data)
    }

    /// Handles a CQE whose user data decodes to [`Tag::Multishot`] or
    /// [`Tag::MultishotCancel`] (any other is not ours and is ignored).
    pub(crate) fn complete(
        &mut self,
        user_data: u64,
        res: i32,
        flags: u32,
        work: &mut Work,
        done: &mut Vec<Completion>,
    ) {
        let fd = match user_data::decode(user_data) {
            Tag::Multishot(fd) => fd,
            Tag::MultishotCancel(fd) => {
                // A cancel of a multishot: retry if it found nothing while
                // the target is still live.
                if res == -libc::ENOENT || res == -libc::EALREADY {
                    for d in self.dying.iter_mut().filter(|d| d.fd == fd) {
                        d.retry = d.cancels < CANCEL_RETRIES;
                    }
                }
                return;
            }
            _ => return,
        };
        let more = cqueue::more(flags);
        let bid = cqueue::buffer_select(flags).and_then(|bid| self.bufs.taken(bid));
        if !more {
            self.live = self.live.saturating_sub(1);
        }
        let current = self
            .fds
            .get_mut(fd as usize)
            .filter(|st| st.armed == user_data);
        let Some(st) = current else {
            // A released descriptor's multishot: give the buffer back.
            if let Some(bid) = bid {
                self.bufs.recycle(bid);
            }
            if !more {
                self.dying.retain(|d| d.user_data != user_data);
            }
            return;
        };
        if !more {
            st.armed = 0;
            st.stopping = false;
        }
        match (res, bid) {
            (n, Some(bid)) if n > 0 => {
                let len = (n as u32).min(self.bufs.buf_size());
                st.queue.push_back(Chunk { bid, off: 0, len });
                if len >= LARGE_CHUNK {
                    st.direct = DIRECT_READS;
                }
            }
            (n, bid) if n >= 0 => {
                // 0 is end of stream; a positive count without a buffer
                // would break the kernel's contract: treat it as the end.
                if let Some(bid) = bid {
                    self.bufs.recycle(bid);
                }
                st.end = Some(if n == 0 { 0 } else { libc::EIO });
            }
            (e, bid) => {
                if let Some(bid) = bid {
                    self.bufs.recycle(bid);
                }
                match -e {
                    // Out of buffers, or cancelled by us: not an end.
                    libc::ENOBUFS | libc::ECANCELED => {}
                    // Multishot receive unknown to this kernel (5.19):
                    // every later Recv is a one-shot.
                    libc::EINVAL if st.queue.is_empty() => self.enabled = false,
                    errno => st.end = Some(errno),
                }
            }
        }
        self.serve(fd, work, done);
    }

    /// Completes the waiters of `fd` from its queue or sticky end; re-arms
    /// (or falls back to one-shots) for those left if the multishot stopped;
    /// stops a multishot that queued too much for a reader that is not there.
    fn serve(&mut self, fd: RawFd, work: &mut Work, done: &mut Vec<Completion>) {
        let st = &mut self.fds[fd as usize];
        while let Some(&Waiter { id, buf, len }) = st.waiters.front() {
            let result = if !st.carry.is_empty() {
                // SAFETY: as below.
                Ok(OpOutput::new(unsafe { take_carry(st, buf, len) }))
            } else if !st.queue.is_empty() {
                // SAFETY: a waiter's memory stays valid until its completion
                // is reported or it is cancelled (`recv`'s contract); it is
                // removed from the list right after this.
                Ok(OpOutput::new(unsafe { fill(&mut self.bufs, st, buf, len) }))
            } else if let Some(end) = st.end {
                end_result(end)
            } else {
                break;
            };
            st.waiters.pop_front();
            self.waiting.remove(id);
            done.push(Completion { id, result });
        }
        let st = &mut self.fds[fd as usize];
        if st.waiters.is_empty() {
            let stop = st.queue.len() >= self.max_queued || st.direct > 0;
            if st.armed != 0 && !st.stopping && stop {
                st.stopping = true;
                work.sqes.push(cancel_entry(st.armed, fd));
            }
            return;
        }
        if st.armed != 0 {
            return;
        }
        if self.enabled && self.bufs.has_free() && st.direct == 0 {
            self.arm(fd, work);
            return;
        }
        for w in std::mem::take(&mut st.waiters) {
            self.waiting.remove(w.id);
            work.one_shots.push((w.id, fd, w.buf, w.len));
        }
    }

    /// Sends the cancels that found nothing again.
    pub(crate) fn retry_cancels(&mut self, work: &mut Work) {
        for d in self.dying.iter_mut().filter(|d| d.retry) {
            d.retry = false;
            d.cancels = d.cancels.saturating_add(1);
            work.sqes.push(cancel_entry(d.user_data, d.fd));
        }
    }

    /// Cancels every multishot still in the kernel (for the driver's Drop).
    pub(crate) fn cancel_everything(&mut self, work: &mut Work) {
        for (fd, st) in self.fds.iter().enumerate() {
            if st.armed != 0 {
                work.sqes.push(cancel_entry(st.armed, fd as RawFd));
            }
        }
        for d in &self.dying {
            work.sqes.push(cancel_entry(d.user_data, d.fd));
        }
    }

    /// Frees the buffer ring if no multishot is left in the kernel, else
    /// leaks it (it may still be written to).
    pub(crate) fn shut_down(self, ring: &io_uring::IoUring) {
        if self.live == 0 {
            // SAFETY: no multishot receive is left in the kernel, and only
            // multishots select from this group.
            unsafe { self.bufs.release(ring) };
        }
        // Otherwise `BufRing`'s Drop leaks the memory.
    }
}

/// The `AsyncCancel` of the multishot with `user_data` on `fd`.
fn cancel_entry(user_data: u64, fd: RawFd) -> squeue::Entry {
    opcode::AsyncCancel::new(user_data)
        .build()
        .user_data(user_data::multishot_cancel(fd))
}

fn end_result(end: i32) -> io::Result<OpOutput> {
    if end == 0 {
        Ok(OpOutput::new(0))
    } else {
        Err(io::Error::from_raw_os_error(end))
    }
}

/// Copies handed-back bytes of `st` into `buf` (at most `len`); the count.
///
/// # Safety
/// `buf..buf + len` is writable and not accessed by anyone else meanwhile.
unsafe fn take_carry(st: &mut FdState, buf: *mut u8, len: usize) -> usize {
    let n = len.min(st.carry.len());
    for (i, b) in st.carry.drain(..n).enumerate() {
        // SAFETY: `i < n <= len`: inside the caller's writable buffer.
        unsafe { buf.add(i).write(b) };
    }
    n
}

/// Copies queued bytes of `st` into `buf` (at most `len`), recycling every
/// buffer emptied; the count copied.
///
/// # Safety
/// `buf..buf + len` is writable and not accessed by anyone else meanwhile.
unsafe fn fill(bufs: &mut BufRing, st: &mut FdState, buf: *mut u8, len: usize) -> usize {
    let mut copied = 0;
    while copied < len {
        let Some(chunk) = st.queue.front_mut() else {
            break;
        };
        let n = (chunk.len as usize).min(len - copied);
        // SAFETY: the chunk's bytes were written by the kernel into a
        // buffer a CQE handed us and we have not recycled (`data`'s
        // contract); the destination is the caller's, `n` bytes fit; a
        // provided buffer and a caller's buffer never overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bufs.data(chunk.bid, chunk.off, n as u32),
                buf.add(copied),
                n,
            );
        }
        copied += n;
        chunk.off += n as u32;
        chunk.len -= n as u32;
        if chunk.len == 0 {
            let bid = chunk.bid;
            st.queue.pop_front();
            bufs.recycle(bid);
        }
    }
    copied
}
