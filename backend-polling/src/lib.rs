//! # backend-polling
//!
//! An evloop backend on [polling](https://docs.rs/polling): epoll on Linux,
//! in level-triggered mode with interest tracking, libuv-style: a
//! descriptor's interest is changed (one `epoll_ctl`) only when the set of
//! directions that have waiters changes, not after every event. A read
//! interest outlives the reader it was made for when that reader was just
//! served, because the next read on a connection usually follows within the
//! same iteration; an event that finds no reader drops it, so unread data
//! never makes the loop spin. A write interest is dropped as soon as no
//! writer waits (a socket is writable almost always). A descriptor nobody
//! waits on leaves the epoll set, since epoll reports an error or hang-up
//! whatever the interest.
//!
//! polling's oneshot mode, which this backend used first, needs an
//! `epoll_ctl` re-arm per operation that waited; measured on TCP echo it
//! cost one syscall per request more than tokio.
//! Only the [`Selector`] lives here;
//! trying operations, parking them on `WouldBlock` and retrying them on
//! readiness is loop-api's shared [`ReadinessDriver`].

use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use backend_readiness::{Event, ReadinessDriver, Selector};
use loop_api::{Error, EventLoop};
use loop_driver::Notify;
use polling::{Events, PollMode, Poller};

/// At most this many descriptors are reported per wait (the rest stay
/// ready in the kernel for the next one), as tokio. The shared readiness
/// driver handles a large batch in slices
/// ([`READ_BUDGET`](backend_readiness::READ_BUDGET) bytes of receives
/// each), so its data is still in the cache when the tasks use it.
const EVENTS_PER_WAIT: usize = 1024;

/// The backend's name, as `EVLOOP_BACKEND` spells it.
pub const NAME: &str = "polling";

/// The key polling gives its own notifier and timer events; descriptors use
/// their own number as key, which never reaches it.
const NOTIFY_KEY: usize = usize::MAX;

/// polling's `Poller`, with each descriptor registered level-triggered for
/// the directions that have (or, for reads, just had) waiters.
pub struct PollingSelector {
    poller: Arc<Poller>,
    events: Events,
    notify: Arc<PollingNotify>,
    /// The interest each descriptor is registered with now, by descriptor
    /// (`None`: not in the epoll set).
    interest: Vec<Option<Interest>>,
}

/// The directions a descriptor is registered for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Interest {
    read: bool,
    write: bool,
}

impl std::fmt::Debug for PollingSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PollingSelector").finish_non_exhaustive()
    }
}

/// Wakes a blocked `Poller::wait` through polling's own notifier.
#[derive(Debug)]
struct PollingNotify(Arc<Poller>);

impl Notify for PollingNotify {
    fn notify(&self) {
        // A failed wake means the notifier is saturated: a wake-up is pending anyway.
        let _ = self.0.notify();
    }
}

impl PollingSelector {
    /// Creates the epoll instance and its notifier.
    pub fn new() -> io::Result<Self> {
        let poller = Arc::new(Poller::new()?);
        Ok(PollingSelector {
            notify: Arc::new(PollingNotify(poller.clone())),
            poller,
            events: Events::with_capacity(NonZeroUsize::new(EVENTS_PER_WAIT).expect("non-zero")),
            interest: Vec::new(),
        })
    }

    /// What `fd` is registered for now; `None` if it is not in the epoll set.
    fn current(&self, fd: RawFd) -> Option<Interest> {
        self.interest.get(fd as usize).copied().flatten()
    }

    /// The interest entry of `fd` (the driver never passes a negative one).
    fn slot(&mut self, fd: RawFd) -> &mut Option<Interest> {
        let idx = fd as usize;
        if idx >= self.interest.len() {
            self.interest.resize(idx + 1, None);
        }
        &mut self.interest[idx]
    }

    /// Makes `fd`'s registration `want` with at most one `epoll_ctl`: none
    /// if it already is. An empty interest removes the descriptor from the
    /// epoll set, because epoll reports an error or hang-up whatever the
    /// interest, and level-triggered it would report it on every wait.
    fn set(&mut self, fd: RawFd, want: Interest) -> io::Result<()> {
        let now = self.current(fd);
        if now == Some(want) || (now.is_none() && want == Interest::default()) {
            return Ok(());
        }
        if want == Interest::default() {
            self.delete(fd);
            return Ok(());
        }
        let event = polling::Event::new(fd as usize, want.read, want.write);
        if now.is_some() {
            // SAFETY: the driver arms only descriptors that are open and
            // stay open until it is told to disarm them (`release_fd`).
            let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
            self.poller
                .modify_with_mode(borrowed, event, PollMode::Level)?;
        } else {
            // SAFETY: as above, and the registration is deleted (here or in
            // `disarm`) before the descriptor is closed, which is
            // `Poller::add`'s contract.
            unsafe { self.poller.add_with_mode(fd, event, PollMode::Level) }?;
        }
        *self.slot(fd) = Some(want);
        Ok(())
    }

    /// Removes `fd` from the epoll set, if it is there.
    fn delete(&mut self, fd: RawFd) {
        if self.slot(fd).take().is_some() {
            // SAFETY: the driver disarms a descriptor before it is closed,
            // so it is still open here (if the owner closed it early, epoll
            // already forgot it and the call fails harmlessly with EBADF).
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            let _ = self.poller.delete(fd);
        }
    }
}

impl Selector for PollingSelector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn arm(&mut self, fd: RawFd, read: bool, write: bool, _registered: bool) -> io::Result<()> {
        // Add the new waiters' directions to what is registered (the
        // selector tracks its own registrations: it removes descriptors
        // nobody waits on).
        let now = self.current(fd).unwrap_or_default();
        self.set(
            fd,
            Interest {
                read: now.read || read,
                write: now.write || write,
            },
        )
    }

    fn set_interest(
        &mut self,
        fd: RawFd,
        read: bool,
        write: bool,
        served_read: bool,
    ) -> io::Result<()> {
        self.set(
            fd,
            Interest {
                read: read || served_read,
                write,
            },
        )
    }

    fn disarm(&mut self, fd: RawFd) {
        self.delete(fd);
    }

    fn select(&mut self, timeout: Option<Duration>, out: &mut Vec<Event>) -> io::Result<()> {
        self.events.clear();
        self.poller.wait(&mut self.events, timeout)?;
        for ev in self.events.iter() {
            if ev.key == NOTIFY_KEY {
                continue;
            }
            // polling already folds hang-up and error into both directions.
            out.push(Event {
                fd: ev.key as RawFd,
                readable: ev.readable,
                writable: ev.writable,
                // Level-triggered: every wait reports the current state,
                // hang-up included.
                closed: false,
            });
        }
        Ok(())
    }

    fn notifier(&self) -> Arc<dyn Notify> {
        self.notify.clone()
    }
}

/// A driver for this backend.
pub fn driver() -> io::Result<ReadinessDriver<PollingSelector>> {
    Ok(ReadinessDriver::new(PollingSelector::new()?))
}

/// A new event loop on this backend.
pub fn new_event_loop() -> Result<EventLoop, Error> {
    let selector = PollingSelector::new().map_err(|e| Error::BackendUnavailable {
        backend: NAME.to_owned(),
        reason: format!("cannot create the readiness selector: {e}"),
    })?;
    Ok(EventLoop::from_driver(Box::new(ReadinessDriver::new(
        selector,
    ))))
}
