//! A deterministic fake [`Selector`]: readiness is scripted by the caller.
//!
//! [`FakeSelector`] plugs into [`ReadinessDriver`](super::ReadinessDriver)
//! like the mio and polling selectors, but no kernel decides when a
//! descriptor is reported ready: the test does, through the
//! [`FakeControl`] it got from [`FakeSelector::control`] ("fd 7 is
//! readable", "fd 9 hung up"), and the next [`select`](Selector::select)
//! reports exactly that for the descriptors that are armed for it. The
//! operations themselves still run real syscalls, so a test gives the driver
//! real non-blocking descriptors (a `socketpair`, a `pipe2`) whose contents
//! it controls, while the fake decides when the driver is told.
//!
//! Every call the selector gets is recorded ([`Call`]), so a test can assert
//! what the driver asked for: which interest it armed, that it made no
//! `select` when none was needed, that it disarmed a released descriptor.
//!
//! It is also the smallest complete [`Selector`], written against the same
//! public trait a third-party backend implements.
//!
//! # The model
//!
//! - **Registration and interest.** [`arm`](Selector::arm) registers a
//!   descriptor and sets its interest to exactly the directions asked for
//!   (the driver always passes every direction that has waiters);
//!   [`set_interest`](Selector::set_interest) sets it to exactly the directions that still
//!   have waiters (an empty interest keeps the registration, as an epoll
//!   entry with no events); [`disarm`](Selector::disarm) forgets the
//!   descriptor and any readiness scripted for it, so a descriptor number
//!   reused later starts clean.
//! - **Scripted readiness.** [`FakeControl::readable`],
//!   [`FakeControl::writable`] and [`FakeControl::ready`] mark directions
//!   ready. `select` reports a direction only while the descriptor is
//!   registered with interest in it, and reports it once (an edge): the
//!   mark is then consumed. A direction nobody is interested in stays marked
//!   until someone is (a new registration reports the current state, as
//!   epoll's does). Several marks for one descriptor before a `select` merge
//!   into one event. [`FakeControl::hang_up`] is reported to a registered
//!   descriptor whatever its interest (epoll reports hang-ups and errors
//!   unasked), as readable, writable and [`closed`](Event::closed).
//!   Events come out in the order the descriptors were first marked.
//! - **Raw events.** [`FakeControl::event`] queues an [`Event`] reported
//!   verbatim by the next `select`, registered or not: for spurious or stale
//!   events.
//! - **Blocking.** `select` returns at once when it has events, when the
//!   notifier fired since the last `select`, or when the timeout is zero;
//!   otherwise it blocks (really, on a condition variable) until one of
//!   those happens, or until the timeout passes (`None`: no limit). Marking
//!   readiness from another thread wakes a blocked `select`.
//! - **Refusal.** [`FakeControl::refuse`] makes `arm` and `set_interest` of a
//!   descriptor fail with an OS error, as epoll refuses a regular file.
//!
//! # Example
//!
//! A receive on an empty socket parks; data arrives, but only once the fake
//! reports the socket readable does the driver retry and complete it.
//!
//! ```
//! use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
//! use std::task::Poll;
//! use std::time::Duration;
//!
//! use loop_driver::{Driver, Op};
//! use backend_readiness::fake::{Call, FakeSelector};
//! use backend_readiness::ReadinessDriver;
//!
//! // A non-blocking socket pair: `ours` is the driver's, `peer` the test's.
//! let mut fds = [0; 2];
//! let flags = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
//! assert_eq!(unsafe { libc::socketpair(libc::AF_UNIX, flags, 0, fds.as_mut_ptr()) }, 0);
//! let (ours, peer) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
//! let fd = ours.as_raw_fd();
//!
//! let selector = FakeSelector::new();
//! let ctl = selector.control();
//! let mut driver = ReadinessDriver::new(selector);
//!
//! let mut buf = [0u8; 16];
//! let op = Op::Recv { fd, buf: buf.as_mut_ptr(), len: buf.len() };
//! // SAFETY: `buf` and `ours` outlive the operation (it completes below).
//! assert!(matches!(unsafe { driver.submit(1, op) }, Poll::Pending));
//! assert_eq!(ctl.take_calls(), [Call::Arm { fd, read: true, write: false, registered: false }]);
//!
//! // Data arrives, but nobody has said so: the operation stays parked.
//! assert_eq!(unsafe { libc::write(peer.as_raw_fd(), b"hi".as_ptr().cast(), 2) }, 2);
//! let mut done = Vec::new();
//! driver.wait(Some(Duration::ZERO), &mut done).unwrap();
//! assert!(done.is_empty());
//!
//! // The fake reports it readable: the driver retries the receive.
//! ctl.readable(fd);
//! driver.wait(Some(Duration::ZERO), &mut done).unwrap();
//! assert_eq!(done.len(), 1);
//! assert_eq!(done[0].id, 1);
//! assert_eq!(done[0].result.as_ref().unwrap().bytes, 2);
//! assert_eq!(&buf[..2], b"hi");
//! ```

use std::collections::HashMap;
use std::io;
use std::os::fd::RawFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{Event, Selector};
use loop_driver::Notify;

/// The name [`FakeSelector`] reports (the `EVLOOP_BACKEND` spelling it would have).
pub const NAME: &str = "fake";

/// One call [`FakeSelector`] received, as recorded for [`FakeControl::calls`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// [`Selector::arm`].
    Arm {
        /// The descriptor.
        fd: RawFd,
        /// Asked for readability.
        read: bool,
        /// Asked for writability.
        write: bool,
        /// The driver's claim that `fd` was armed before and not disarmed since.
        registered: bool,
    },
    /// [`Selector::set_interest`].
    Rearm {
        /// The descriptor.
        fd: RawFd,
        /// Readers still wait.
        read: bool,
        /// Writers still wait.
        write: bool,
        /// The event completed a read-side operation.
        served_read: bool,
    },
    /// [`Selector::disarm`].
    Disarm {
        /// The descriptor.
        fd: RawFd,
    },
    /// [`Selector::select`], recorded when it returns.
    Select {
        /// The timeout it was given.
        timeout: Option<Duration>,
        /// How many events it reported.
        events: usize,
    },
}

/// The directions a descriptor is armed for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Interest {
    /// Readability.
    pub read: bool,
    /// Writability.
    pub write: bool,
}

/// Readiness scripted for one descriptor and not reported yet.
#[derive(Debug, Clone, Copy, Default)]
struct Marked {
    fd: RawFd,
    read: bool,
    write: bool,
    hup: bool,
}

#[derive(Debug, Default)]
struct State {
    /// Registered descriptors and their interest.
    armed: HashMap<RawFd, Interest>,
    /// Scripted readiness, in the order the descriptors were first marked.
    marked: Vec<Marked>,
    /// Raw events for the next `select`.
    raw: Vec<Event>,
    /// Descriptors whose `arm`/`set_interest` fails, with the errno.
    refused: HashMap<RawFd, i32>,
    /// The notifier fired since the last `select` returned.
    notified: bool,
    calls: Vec<Call>,
}

impl State {
    /// Moves what is reportable now into `out`; how many events.
    fn collect(&mut self, out: &mut Vec<Event>) -> usize {
        let before = out.len();
        out.append(&mut self.raw);
        let armed = &self.armed;
        self.marked.retain_mut(|m| {
            let Some(interest) = armed.get(&m.fd) else {
                return true;
            };
            if m.hup {
                out.push(Event {
                    fd: m.fd,
                    readable: true,
                    writable: true,
                    closed: true,
                });
                return false;
            }
            let readable = m.read && interest.read;
            let writable = m.write && interest.write;
            if readable || writable {
                out.push(Event {
                    fd: m.fd,
                    readable,
                    writable,
                    closed: false,
                });
                m.read &= !readable;
                m.write &= !writable;
            }
            m.read || m.write
        });
        out.len() - before
    }

    fn refusal(&self, fd: RawFd) -> io::Result<()> {
        match self.refused.get(&fd) {
            Some(&errno) => Err(io::Error::from_raw_os_error(errno)),
            None => Ok(()),
        }
    }
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when readiness is marked or the notifier fires.
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not hide the state from the others.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A [`Selector`] whose readiness is scripted through a [`FakeControl`];
/// see the [module docs](self) for its model and an example.
#[derive(Debug, Default)]
pub struct FakeSelector {
    shared: Arc<Shared>,
}

impl FakeSelector {
    /// A selector with nothing registered and nothing ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// The handle that scripts this selector's readiness and reads its call
    /// log. It can be cloned and sent to other threads.
    pub fn control(&self) -> FakeControl {
        FakeControl {
            shared: self.shared.clone(),
        }
    }
}

impl Selector for FakeSelector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn arm(&mut self, fd: RawFd, read: bool, write: bool, registered: bool) -> io::Result<()> {
        let mut state = self.shared.lock();
        state.calls.push(Call::Arm {
            fd,
            read,
            write,
            registered,
        });
        state.refusal(fd)?;
        state.armed.insert(fd, Interest { read, write });
        Ok(())
    }

    fn set_interest(
        &mut self,
        fd: RawFd,
        read: bool,
        write: bool,
        served_read: bool,
    ) -> io::Result<()> {
        let mut state = self.shared.lock();
        state.calls.push(Call::Rearm {
            fd,
            read,
            write,
            served_read,
        });
        state.refusal(fd)?;
        state.armed.insert(fd, Interest { read, write });
        Ok(())
    }

    fn disarm(&mut self, fd: RawFd) {
        let mut state = self.shared.lock();
        state.calls.push(Call::Disarm { fd });
        state.armed.remove(&fd);
        state.marked.retain(|m| m.fd != fd);
    }

    fn select(&mut self, timeout: Option<Duration>, events: &mut Vec<Event>) -> io::Result<()> {
        let deadline = timeout.map(|t| Instant::now().checked_add(t));
        let mut state = self.shared.lock();
        let reported = loop {
            let n = state.collect(events);
            if n > 0 || state.notified || timeout == Some(Duration::ZERO) {
                break n;
            }
            state = match deadline {
                // No limit (or one too far to represent).
                None | Some(None) => self
                    .shared
                    .changed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(Some(deadline)) => {
                    let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                        break 0;
                    };
                    self.shared
                        .changed
                        .wait_timeout(state, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        };
        state.notified = false;
        state.calls.push(Call::Select {
            timeout,
            events: reported,
        });
        Ok(())
    }

    fn notifier(&self) -> Arc<dyn Notify> {
        Arc::new(FakeNotify {
            shared: self.shared.clone(),
        })
    }
}

/// The [`FakeSelector`]'s notifier: makes the current or next `select` return.
#[derive(Debug)]
struct FakeNotify {
    shared: Arc<Shared>,
}

impl Notify for FakeNotify {
    fn notify(&self) {
        self.shared.lock().notified = true;
        self.shared.changed.notify_all();
    }
}

/// Scripts a [`FakeSelector`]'s readiness and reads what it was asked.
#[derive(Debug, Clone)]
pub struct FakeControl {
    shared: Arc<Shared>,
}

impl FakeControl {
    /// Marks `fd` readable: the next `select` that finds it registered with
    /// read interest reports it.
    pub fn readable(&self, fd: RawFd) {
        self.ready(fd, true, false);
    }

    /// Marks `fd` writable: the next `select` that finds it registered with
    /// write interest reports it.
    pub fn writable(&self, fd: RawFd) {
        self.ready(fd, false, true);
    }

    /// Marks the given directions of `fd` ready (added to any marks not
    /// reported yet).
    pub fn ready(&self, fd: RawFd, read: bool, write: bool) {
        self.mark(Marked {
            fd,
            read,
            write,
            hup: false,
        });
    }

    /// Marks `fd` hung up: the next `select` that finds it registered
    /// reports it readable, writable and [`closed`](Event::closed),
    /// whatever its interest.
    pub fn hang_up(&self, fd: RawFd) {
        self.mark(Marked {
            fd,
            read: false,
            write: false,
            hup: true,
        });
    }

    /// Queues `event` for the next `select`, reported as is (registered or not).
    pub fn event(&self, event: Event) {
        self.shared.lock().raw.push(event);
        self.shared.changed.notify_all();
    }

    /// Makes `arm` and `set_interest` of `fd` fail with the OS error `errno`
    /// (`libc::EPERM` is what epoll says of a regular file) until
    /// [`FakeControl::allow`].
    pub fn refuse(&self, fd: RawFd, errno: i32) {
        self.shared.lock().refused.insert(fd, errno);
    }

    /// Undoes [`FakeControl::refuse`].
    pub fn allow(&self, fd: RawFd) {
        self.shared.lock().refused.remove(&fd);
    }

    /// Every call recorded since the selector was made or the log last taken.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.lock().calls.clone()
    }

    /// Takes the call log, leaving it empty.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut self.shared.lock().calls)
    }

    /// How many `select` calls the log holds.
    pub fn selects(&self) -> usize {
        self.shared
            .lock()
            .calls
            .iter()
            .filter(|c| matches!(c, Call::Select { .. }))
            .count()
    }

    /// `fd`'s interest, `None` if it is not registered.
    pub fn interest(&self, fd: RawFd) -> Option<Interest> {
        self.shared.lock().armed.get(&fd).copied()
    }

    /// Whether readiness marked for `fd` is still waiting to be reported.
    pub fn is_marked(&self, fd: RawFd) -> bool {
        self.shared.lock().marked.iter().any(|m| m.fd == fd)
    }

    fn mark(&self, new: Marked) {
        let mut state = self.shared.lock();
        match state.marked.iter_mut().find(|m| m.fd == new.fd) {
            Some(m) => {
                m.read |= new.read;
                m.write |= new.write;
                m.hup |= new.hup;
            }
            None => state.marked.push(new),
        }
        drop(state);
        self.shared.changed.notify_all();
    }
}

#[cfg(test)]
mod tests;
