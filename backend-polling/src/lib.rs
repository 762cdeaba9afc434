//! # backend-polling
//!
//! An evloop backend on [polling](https://docs.rs/polling): epoll on Linux,
//! in oneshot mode (each event disarms its descriptor; the shared driver
//! re-arms while operations still wait). Only the [`Selector`] lives here;
//! trying operations, parking them on `WouldBlock` and retrying them on
//! readiness is loop-api's shared [`ReadinessDriver`].
#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]

use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use loop_api::driver::Notify;
use loop_api::readiness::{Event, ReadinessDriver, Selector};
use loop_api::{Error, EventLoop};
use polling::{Events, Poller};

/// The backend's name, as `EVLOOP_BACKEND` spells it.
pub const NAME: &str = "polling";

/// The key polling gives its own notifier and timer events; descriptors use
/// their own number as key, which never reaches it.
const NOTIFY_KEY: usize = usize::MAX;

/// polling's `Poller`, with each descriptor armed oneshot for the directions
/// that have waiters.
pub struct PollingSelector {
    poller: Arc<Poller>,
    events: Events,
    notify: Arc<PollingNotify>,
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
            events: Events::with_capacity(NonZeroUsize::new(1024).expect("non-zero")),
        })
    }
}

impl Selector for PollingSelector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn arm(&mut self, fd: RawFd, read: bool, write: bool, registered: bool) -> io::Result<()> {
        let interest = polling::Event::new(fd as usize, read, write);
        if registered {
            // Oneshot: the last event disarmed the descriptor; re-enable the
            // directions that still have waiters.
            // SAFETY: the driver arms only descriptors that are open and
            // stay open until it is told to disarm them (`release_fd`).
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            return self.poller.modify(fd, interest);
        }
        // SAFETY: as above; `disarm` deletes the registration before the
        // descriptor is closed, which is `Poller::add`'s contract.
        unsafe { self.poller.add(fd, interest) }
    }

    fn disarm(&mut self, fd: RawFd) {
        // SAFETY: the driver disarms a descriptor before it is closed, so it
        // is still open here (if the owner closed it early, epoll already
        // forgot it and the call fails harmlessly with EBADF).
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let _ = self.poller.delete(fd);
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
                // Oneshot: every re-arm reports the current level, hang-up included.
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
    loop_api::readiness::new_event_loop(NAME, PollingSelector::new())
}
