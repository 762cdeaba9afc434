//! # backend-readiness
//!
//! Completion emulated on readiness: the one implementation that
//! backend-mio and backend-polling share, between the boundary
//! (`loop-driver`) and the epoll backends. It knows nothing of the loop:
//! a readiness backend writes a [`Selector`] and wraps it in a
//! [`ReadinessDriver`], which implements `loop_driver::Driver`.
//!
//! For each operation: try the syscall at once; on `WouldBlock`, park the
//! operation on its descriptor, ask the [`Selector`] for readiness, and retry
//! when the descriptor is reported ready. The backends differ only in the
//! selector they plug in: mio is edge-triggered (register once, every edge
//! reported), polling is level-triggered (interest changed only when the
//! directions with waiters change, see [`Selector::set_interest`]).
//!
//! **Known-drained stream sockets skip the attempt.** A `recv` on a stream
//! socket that returns fewer bytes than asked (but not 0) has emptied the
//! receive queue, and a `send` that takes fewer bytes than offered has
//! filled the send buffer; the next such operation on that descriptor would
//! only fail with `WouldBlock`. So the driver remembers it per descriptor
//! and parks the next operation directly, saving a syscall per message
//! (tokio does the same). Any readiness event for the descriptor forgets
//! it. This cannot lose a wake-up: an edge-triggered registration reports
//! every later arrival (and a new registration reports the current state),
//! a oneshot or level-triggered one reports the current level; a hang-up or error seen in
//! an event is sticky ([`Event::closed`]), so end of stream that came in
//! the same edge as the last data is still read. Datagram sockets never
//! skip (a short datagram says nothing about the queue); the socket type is
//! asked once per descriptor and forgotten with it in
//! [`Driver::release_fd`].
//!
//! **A wait's events are handled in slices of [`READ_BUDGET`] bytes.** The
//! driver performs a reported descriptor's parked receive at once, before
//! any task runs; handling a large batch in one go would read megabytes
//! before the first task used its data, by which time that data has left
//! the cache (measured: with 1,024 events of 64 KiB reads, the kernel's copy
//! in the echo's `send` cost 4× tokio's). So once the receives of one
//! `wait` have read `READ_BUDGET` bytes, the rest of the batch is kept and
//! handled by the next `wait`, without a syscall, after the loop has run
//! the tasks it just woke. Small messages still get large batches (one
//! `epoll_wait` per up to 1,024 ready descriptors, as tokio).

pub mod fake;
mod syscalls;

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use loop_driver::{Cancel, Completion, Driver, Notify, Op, OpId, OpOutput};

/// Bytes the parked receives of one [`Driver::wait`] may read before the
/// rest of the selector's batch is left for the next `wait` (see the module
/// docs): well inside a core's L2 cache.
pub const READ_BUDGET: usize = 128 * 1024;

/// A readiness event for one descriptor.
#[derive(Debug, Clone, Copy)]
pub struct Event {
    /// The descriptor.
    pub fd: RawFd,
    /// Readable, or an error or hang-up that a read would report.
    pub readable: bool,
    /// Writable, or an error or hang-up that a write would report.
    pub writable: bool,
    /// The peer hung up or the socket failed: from now on reads and writes
    /// return at once (data, end of stream or an error), so the driver never
    /// again parks an operation on this descriptor without trying it. An
    /// edge-triggered selector must set it (the edge that carried the
    /// hang-up will not come again); a oneshot or level-triggered
    /// selector, which reports the current level, may leave it `false`.
    pub closed: bool,
}

/// The OS readiness mechanism a readiness backend plugs into [`ReadinessDriver`].
pub trait Selector {
    /// The backend's name (`EVLOOP_BACKEND` spelling).
    fn name(&self) -> &'static str;

    /// Asks for events when `fd` becomes readable (`read`) or writable
    /// (`write`). `registered` says whether `fd` was armed before and not
    /// disarmed since. Called when an operation parks, with the directions
    /// that now have waiters. An edge-triggered selector may register for
    /// both directions once and ignore later calls; a oneshot selector must
    /// re-arm; a level-triggered one must include these directions.
    fn arm(&mut self, fd: RawFd, read: bool, write: bool, registered: bool) -> io::Result<()>;

    /// Called after the driver handled an event for `fd`: `read`/`write`
    /// say which directions still have waiters, `served_read` whether the
    /// event completed a read-side operation (a reader is then likely to
    /// come back soon). The default re-arms the directions with waiters,
    /// which is what oneshot and edge-triggered selectors need; a
    /// level-triggered selector may keep a read interest for the reader
    /// that is about to return, and must drop interests nobody waits on.
    fn set_interest(
        &mut self,
        fd: RawFd,
        read: bool,
        write: bool,
        served_read: bool,
    ) -> io::Result<()> {
        let _ = served_read;
        if read || write {
            self.arm(fd, read, write, true)
        } else {
            Ok(())
        }
    }

    /// Forgets `fd` (it is about to be closed or handed back to its owner).
    fn disarm(&mut self, fd: RawFd);

    /// Blocks for at most `timeout` (`None`: no limit) until a descriptor is
    /// ready or the notifier fires, appending the ready descriptors to `events`.
    fn select(&mut self, timeout: Option<Duration>, events: &mut Vec<Event>) -> io::Result<()>;

    /// Wakes `select` from another thread.
    fn notifier(&self) -> Arc<dyn Notify>;
}

#[derive(Default)]
struct FdState {
    registered: bool,
    readers: VecDeque<OpId>,
    writers: VecDeque<OpId>,
    /// A short `recv` emptied the receive queue and no event came since.
    read_drained: bool,
    /// A short `send` filled the send buffer and no event came since.
    write_full: bool,
    /// A hang-up or error was reported (sticky until `release_fd`).
    closed: bool,
    /// `Some(true)` for a `SOCK_STREAM` socket; asked on first need.
    stream: Option<bool>,
    /// The batched check completed a read poll here since the last event:
    /// its watcher comes back at once, so an event that finds no reader
    /// meanwhile (a level-triggered selector reports the same readiness
    /// the check saw) counts as serving one, and the read interest stays.
    poll_served: bool,
}

impl FdState {
    /// Whether `op` would certainly find this descriptor not ready.
    fn known_not_ready(&self, op: &Op) -> bool {
        !self.closed
            && match op {
                Op::Recv { .. } => self.read_drained,
                Op::Send { .. } => self.write_full,
                _ => false,
            }
    }
}

struct Parked {
    op: Op,
    /// A connect that got `EINPROGRESS`: on writability, read its outcome
    /// instead of calling connect again.
    connecting: bool,
    /// A readiness poll waiting for the batched check of the next
    /// [`Driver::wait`] (see [`ReadinessDriver::check_polls`]); it is in
    /// `ReadinessDriver::unchecked`, not in its descriptor's queue.
    unchecked: bool,
}

/// Parked operations in a table indexed by id.
#[derive(Default)]
struct ParkedOps {
    slots: Vec<Option<Parked>>,
    len: usize,
}

impl ParkedOps {
    fn insert(&mut self, id: OpId, parked: Parked) {
        if id >= self.slots.len() {
            self.slots.resize_with(id + 1, || None);
        }
        if self.slots[id].replace(parked).is_none() {
            self.len += 1;
        }
    }

    fn get(&self, id: OpId) -> Option<&Parked> {
        self.slots.get(id)?.as_ref()
    }

    fn remove(&mut self, id: OpId) -> Option<Parked> {
        let parked = self.slots.get_mut(id)?.take();
        if parked.is_some() {
            self.len -= 1;
        }
        parked
    }
}

/// A [`Driver`] that emulates completion on top of a readiness [`Selector`].
pub struct ReadinessDriver<S: Selector> {
    selector: S,
    fds: Vec<FdState>,
    /// Parked operations by id (the loop's ids are dense slab keys).
    parked: ParkedOps,
    /// The last `select`'s events; those from `next_event` on are not handled yet.
    events: Vec<Event>,
    next_event: usize,
    /// Readiness polls (`PollReadable`/`PollWritable`) whose readiness is
    /// not checked yet: submitted since the last wait, or reported by the
    /// selector. Ids may be stale (cancelled, or reused by an operation that
    /// is not `unchecked`): the parked table decides.
    unchecked: Vec<OpId>,
    /// The `pollfd` array of the batched check (kept to reuse its memory).
    pollfds: Vec<libc::pollfd>,
}

impl<S: Selector> std::fmt::Debug for ReadinessDriver<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadinessDriver")
            .field("selector", &self.selector.name())
            .field("parked", &self.parked.len)
            .finish()
    }
}

impl<S: Selector> ReadinessDriver<S> {
    /// Wraps a selector.
    pub fn new(selector: S) -> Self {
        ReadinessDriver {
            selector,
            fds: Vec::new(),
            parked: ParkedOps::default(),
            events: Vec::with_capacity(1024),
            next_event: 0,
            unchecked: Vec::new(),
            pollfds: Vec::new(),
        }
    }

    fn fd_state(&mut self, fd: RawFd) -> &mut FdState {
        let idx = fd as usize;
        if idx >= self.fds.len() {
            self.fds.resize_with(idx + 1, FdState::default);
        }
        &mut self.fds[idx]
    }

    /// Remembers what a completed `op` says about its descriptor: a short
    /// stream `recv` drained it, a short stream `send` filled it. Returns
    /// whether it did (then the descriptor's other parked operations of that
    /// direction need not be tried).
    fn note_result(&mut self, op: &Op, result: &io::Result<OpOutput>) -> bool {
        let (fd, len, read) = match *op {
            Op::Recv { fd, len, .. } => (fd, len, true),
            Op::Send { fd, len, .. } => (fd, len, false),
            _ => return false,
        };
        let Ok(out) = result else { return false };
        if fd < 0 || out.bytes == 0 || out.bytes >= len {
            return false;
        }
        let state = self.fd_state(fd);
        if state.closed {
            return false;
        }
        let stream = *state
            .stream
            .get_or_insert_with(|| loop_driver::is_stream_socket(fd));
        if !stream {
            return false;
        }
        if read {
            state.read_drained = true;
        } else {
            state.write_full = true;
        }
        true
    }

    /// Parks `op` until its descriptor is ready; an error if the selector
    /// refuses the descriptor (closed, or a regular file).
    fn park(&mut self, id: OpId, op: Op, connecting: bool) -> io::Result<()> {
        let fd = op.fd();
        if fd < 0 {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        self.enqueue(id, fd, op.wants_read())?;
        self.parked.insert(
            id,
            Parked {
                op,
                connecting,
                unchecked: false,
            },
        );
        Ok(())
    }

    /// Puts `id` in `fd`'s queue of readers or writers and arms the
    /// selector for it; on refusal, leaves nothing queued.
    fn enqueue(&mut self, id: OpId, fd: RawFd, wants_read: bool) -> io::Result<()> {
        let state = self.fd_state(fd);
        if wants_read {
            state.readers.push_back(id);
        } else {
            state.writers.push_back(id);
        }
        let (read, write, registered) = (
            !state.readers.is_empty(),
            !state.writers.is_empty(),
            state.registered,
        );
        if let Err(e) = self.selector.arm(fd, read, write, registered) {
            let state = self.fd_state(fd);
            state.readers.retain(|x| *x != id);
            state.writers.retain(|x| *x != id);
            return Err(e);
        }
        self.fd_state(fd).registered = true;
        Ok(())
    }

    /// Leaves a readiness poll for the batched check of the next `wait`.
    fn defer_poll(&mut self, id: OpId, op: Op) {
        self.parked.insert(
            id,
            Parked {
                op,
                connecting: false,
                unchecked: true,
            },
        );
        self.unchecked.push(id);
    }

    /// The batched readiness check: ONE `poll(2)` with a zero timeout over
    /// every unchecked readiness poll. A ready descriptor (or one with an
    /// error or hang-up) completes its poll; a closed one fails it with
    /// `EBADF`; the others are parked on their descriptor like any
    /// operation that would block.
    ///
    /// Why no readiness is lost between this check and the park: the
    /// selector registration that `enqueue` arms is in place from the first
    /// park of the descriptor until `release_fd`. If the descriptor was not
    /// registered yet, arming registers it, and a new registration reports
    /// the descriptor's current state, so readiness that came after the
    /// check is reported by the next select. If it was registered (an
    /// edge-triggered selector keeps both directions armed; a
    /// level-triggered one gets the direction added by `arm`), readiness
    /// that comes after the check is a new edge that the kernel queues on
    /// the registration, or a level the next select reports. Either way the
    /// event reaches `handle_events` after the poll is parked (the driver
    /// is single-threaded: the park happens before the next select), which
    /// puts it back here. Readiness from before the check is seen by the
    /// check itself. A stale event (an edge already consumed by the
    /// callback) costs one more check, never a spurious completion.
    fn check_polls(&mut self, done: &mut Vec<Completion>) {
        if self.unchecked.is_empty() {
            return;
        }
        let mut ids = std::mem::take(&mut self.unchecked);
        let mut pollfds = std::mem::take(&mut self.pollfds);
        pollfds.clear();
        ids.retain(|&id| match self.parked.get(id) {
            Some(p) if p.unchecked => {
                let events = if p.op.wants_read() {
                    libc::POLLIN
                } else {
                    libc::POLLOUT
                };
                pollfds.push(libc::pollfd {
                    fd: p.op.fd(),
                    events,
                    revents: 0,
                });
                // A duplicate id (reused after a cancel) is checked once.
                if let Some(p) = self.parked.slots[id].as_mut() {
                    p.unchecked = false;
                }
                true
            }
            _ => false,
        });
        let polled = loop {
            // SAFETY: `pollfds` holds `pollfds.len()` initialised entries
            // and lives across the call; the timeout is zero.
            let n = unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, 0) };
            if n >= 0 {
                break Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                break Err(e);
            }
        };
        for (&id, pfd) in ids.iter().zip(&pollfds) {
            let result = match &polled {
                Err(e) => Some(Err(io::Error::new(e.kind(), e.to_string()))),
                Ok(()) if pfd.revents & libc::POLLNVAL != 0 => {
                    Some(Err(io::Error::from_raw_os_error(libc::EBADF)))
                }
                Ok(()) if pfd.revents & (pfd.events | libc::POLLERR | libc::POLLHUP) != 0 => {
                    Some(Ok(OpOutput::new(0)))
                }
                Ok(()) => None,
            };
            if pfd.events == libc::POLLIN && matches!(result, Some(Ok(_))) {
                self.fd_state(pfd.fd).poll_served = true;
            }
            let result = match result {
                Some(result) => result,
                None => match self.enqueue(id, pfd.fd, pfd.events == libc::POLLIN) {
                    Ok(()) => continue,
                    Err(e) => Err(e),
                },
            };
            self.parked.remove(id);
            done.push(Completion { id, result });
        }
        ids.clear();
        self.unchecked = ids;
        self.pollfds = pollfds;
    }

    /// Retries the parked operations of one direction, in order, until one
    /// would block; whether any completed. Adds the bytes the completed
    /// receives read to `bytes`.
    fn retry(
        &mut self,
        fd: RawFd,
        read: bool,
        done: &mut Vec<Completion>,
        bytes: &mut usize,
    ) -> bool {
        let mut served = false;
        loop {
            let state = &mut self.fds[fd as usize];
            let queue = if read {
                &mut state.readers
            } else {
                &mut state.writers
            };
            let Some(&id) = queue.front() else {
                return served;
            };
            let Some(parked) = self.parked.get(id) else {
                queue.pop_front();
                continue;
            };
            if is_readiness_poll(&parked.op) {
                // Checked with the others of this wait, in one syscall. It
                // counts as served: the watcher comes back at once, so a
                // level-triggered selector keeps the read interest.
                served = true;
                queue.pop_front();
                if let Some(p) = self.parked.slots[id].as_mut() {
                    p.unchecked = true;
                }
                self.unchecked.push(id);
                continue;
            }
            let result = if parked.connecting {
                syscalls::connect_result(fd)
            } else {
                syscalls::attempt(&parked.op)
            };
            match result {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return served,
                result => {
                    served = true;
                    queue.pop_front();
                    let parked = self.parked.remove(id);
                    if let (
                        Ok(out),
                        Some(Op::Recv { .. } | Op::Read { .. } | Op::RecvFrom { .. }),
                    ) = (&result, parked.as_ref().map(|p| &p.op))
                    {
                        *bytes += out.bytes;
                    }
                    let exhausted =
                        parked.is_some_and(|parked| self.note_result(&parked.op, &result));
                    done.push(Completion { id, result });
                    if exhausted {
                        return served;
                    }
                }
            }
        }
    }

    /// Handles the selected events from `next_event` on, until they are
    /// all handled or the receives have read [`READ_BUDGET`] bytes.
    fn handle_events(&mut self, done: &mut Vec<Completion>) {
        let mut bytes = 0;
        while bytes < READ_BUDGET {
            let Some(&ev) = self.events.get(self.next_event) else {
                return;
            };
            self.next_event += 1;
            let fd = ev.fd;
            if fd < 0 || fd as usize >= self.fds.len() || !self.fds[fd as usize].registered {
                continue;
            }
            let state = &mut self.fds[fd as usize];
            state.closed |= ev.closed;
            if ev.readable {
                state.read_drained = false;
            }
            if ev.writable {
                state.write_full = false;
            }
            let poll_served = std::mem::take(&mut state.poll_served);
            let served_read = ev.readable && self.retry(fd, true, done, &mut bytes) || poll_served;
            if ev.writable {
                self.retry(fd, false, done, &mut bytes);
            }
            let state = &self.fds[fd as usize];
            let (read, write) = (!state.readers.is_empty(), !state.writers.is_empty());
            if let Err(e) = self.selector.set_interest(fd, read, write, served_read) {
                // The descriptor went bad under us: fail its waiters.
                let state = &mut self.fds[fd as usize];
                let ids: Vec<OpId> = state
                    .readers
                    .drain(..)
                    .chain(state.writers.drain(..))
                    .collect();
                for id in ids {
                    self.parked.remove(id);
                    done.push(Completion {
                        id,
                        result: Err(io::Error::new(e.kind(), e.to_string())),
                    });
                }
            }
        }
    }
}

/// `PollReadable`/`PollWritable`: checked in batches (see
/// [`ReadinessDriver::check_polls`]) rather than one `poll(2)` each.
fn is_readiness_poll(op: &Op) -> bool {
    matches!(op, Op::PollReadable { .. } | Op::PollWritable { .. })
}

impl<S: Selector> Driver for ReadinessDriver<S> {
    fn name(&self) -> &'static str {
        self.selector.name()
    }

    unsafe fn submit(&mut self, id: OpId, op: Op) -> Poll<io::Result<OpOutput>> {
        if let Op::Close { fd } = op {
            self.release_fd(fd);
            // SAFETY: `Op::Close` hands the descriptor to the backend: we own
            // it and nobody else uses the number until it is closed here.
            unsafe { libc::close(fd) };
            return Poll::Ready(Ok(OpOutput::new(0)));
        }
        if is_readiness_poll(&op) {
            if op.fd() < 0 {
                return Poll::Ready(Err(io::Error::from_raw_os_error(libc::EBADF)));
            }
            self.defer_poll(id, op);
            return Poll::Pending;
        }
        let connecting = matches!(op, Op::Connect { .. });
        let fd = op.fd();
        if fd >= 0
            && self
                .fds
                .get(fd as usize)
                .is_some_and(|s| s.known_not_ready(&op))
        {
            return match self.park(id, op, connecting) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            };
        }
        match syscalls::attempt(&op) {
            // A Unix-domain connect to a listener whose backlog is full
            // fails with EAGAIN without starting (an in-progress connect
            // reports EINPROGRESS), and no readiness event ever says there
            // is room: report it instead of waiting forever.
            Err(e) if connecting && e.raw_os_error() == Some(libc::EAGAIN) => Poll::Ready(Err(e)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                match self.park(id, op, connecting) {
                    Ok(()) => Poll::Pending,
                    Err(e) => Poll::Ready(Err(e)),
                }
            }
            result => {
                self.note_result(&op, &result);
                Poll::Ready(result)
            }
        }
    }

    fn cancel(&mut self, id: OpId) -> Cancel {
        if let Some(parked) = self.parked.remove(id) {
            let fd = parked.op.fd();
            if let Some(state) = self.fds.get_mut(fd as usize) {
                state.readers.retain(|x| *x != id);
                state.writers.retain(|x| *x != id);
            }
        }
        Cancel::Forgotten
    }

    fn release_fd(&mut self, fd: RawFd) {
        if fd < 0 {
            return;
        }
        // Readiness polls not checked yet are not in the descriptor's queues.
        for &id in &self.unchecked {
            if self
                .parked
                .get(id)
                .is_some_and(|p| p.unchecked && p.op.fd() == fd)
            {
                self.parked.remove(id);
            }
        }
        if let Some(state) = self.fds.get_mut(fd as usize) {
            let state = std::mem::take(state);
            if state.registered {
                self.selector.disarm(fd);
            }
            for id in state.readers.into_iter().chain(state.writers) {
                self.parked.remove(id);
            }

            // Events of the current batch not handled yet are about this
            // descriptor, not about one that may reuse its number.
            for ev in &mut self.events[self.next_event..] {
                if ev.fd == fd {
                    ev.fd = -1;
                }
            }
        }
    }

    fn wait(&mut self, timeout: Option<Duration>, done: &mut Vec<Completion>) -> io::Result<()> {
        let before = done.len();
        if self.next_event < self.events.len() {
            // The rest of the last batch first, without a syscall.
            self.handle_events(done);
            if done.len() > before {
                self.check_polls(done);
                return Ok(());
            }
        }
        // The readiness polls submitted since the last wait, checked
        // before the select may block (an edge-triggered selector would
        // not report readiness whose edge came before they parked).
        self.check_polls(done);
        let timeout = if done.len() > before {
            Some(Duration::ZERO)
        } else {
            timeout
        };
        if timeout == Some(Duration::ZERO) && self.parked.len == 0 {
            // A poll that may not block, with no operation parked, could
            // complete nothing: it could only report descriptors nobody
            // waits for (their events would refresh the hints below) or the
            // notifier (whose work the loop finds in its own queue). So the
            // selector's syscalls are skipped, as the io_uring driver skips
            // `io_uring_enter` when it has nothing to submit. The kernel
            // keeps those events for the next select, which comes at the
            // latest once an operation parks.
            return Ok(());
        }
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        let result = self.selector.select(timeout, &mut events);
        self.events = events;
        self.next_event = 0;
        self.handle_events(done);
        // The readiness polls whose descriptors the select reported.
        self.check_polls(done);
        match result {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            other => other,
        }
    }

    fn notifier(&self) -> Arc<dyn Notify> {
        self.selector.notifier()
    }
}
