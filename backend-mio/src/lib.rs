//! # backend-mio
//!
//! An evloop backend on [mio](https://docs.rs/mio): epoll, edge-triggered.
//! Only the [`Selector`] lives here; trying operations, parking them on
//! `WouldBlock` and retrying them on readiness is loop-api's shared
//! [`ReadinessDriver`].

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use backend_readiness::{Event, ReadinessDriver, Selector};
use loop_api::{Error, EventLoop};
use loop_driver::Notify;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

/// At most this many descriptors are reported per wait (the rest stay
/// ready in the kernel for the next one), as tokio. The shared readiness
/// driver handles a large batch in slices
/// ([`READ_BUDGET`](backend_readiness::READ_BUDGET) bytes of receives
/// each), so its data is still in the cache when the tasks use it.
const EVENTS_PER_WAIT: usize = 1024;

/// The backend's name, as `EVLOOP_BACKEND` spells it.
pub const NAME: &str = "mio";

/// The waker's token: descriptors use their own number as token.
const WAKER: Token = Token(usize::MAX);

/// mio's `Poll`, registered edge-triggered for both directions once per descriptor.
pub struct MioSelector {
    poll: Poll,
    events: Events,
    waker: Arc<MioNotify>,
}

impl std::fmt::Debug for MioSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MioSelector").finish_non_exhaustive()
    }
}

/// Wakes a blocked `Poll` through mio's eventfd waker.
#[derive(Debug)]
struct MioNotify(mio::Waker);

impl Notify for MioNotify {
    fn notify(&self) {
        // A failed wake means the eventfd counter is saturated: a wake-up is pending anyway.
        let _ = self.0.wake();
    }
}

impl MioSelector {
    /// Creates the epoll instance and its waker.
    pub fn new() -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), WAKER)?;
        Ok(MioSelector {
            poll,
            events: Events::with_capacity(EVENTS_PER_WAIT),
            waker: Arc::new(MioNotify(waker)),
        })
    }
}

impl Selector for MioSelector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn arm(&mut self, fd: RawFd, _read: bool, _write: bool, registered: bool) -> io::Result<()> {
        if registered {
            // Edge-triggered: the registration already reports every new edge.
            return Ok(());
        }
        self.poll.registry().register(
            &mut SourceFd(&fd),
            Token(fd as usize),
            Interest::READABLE | Interest::WRITABLE,
        )
    }

    fn disarm(&mut self, fd: RawFd) {
        // The descriptor may already be closed; nothing to undo then.
        let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
    }

    fn select(&mut self, timeout: Option<Duration>, out: &mut Vec<Event>) -> io::Result<()> {
        self.poll.poll(&mut self.events, timeout)?;
        for ev in self.events.iter() {
            if ev.token() == WAKER {
                continue;
            }
            let failed = ev.is_error();
            out.push(Event {
                fd: ev.token().0 as RawFd,
                readable: ev.is_readable() || ev.is_read_closed() || failed,
                writable: ev.is_writable() || ev.is_write_closed() || failed,
                // Edge-triggered: this edge is the only report of a hang-up.
                closed: ev.is_read_closed() || ev.is_write_closed() || failed,
            });
        }
        Ok(())
    }

    fn notifier(&self) -> Arc<dyn Notify> {
        self.waker.clone()
    }
}

/// A driver for this backend.
pub fn driver() -> io::Result<ReadinessDriver<MioSelector>> {
    Ok(ReadinessDriver::new(MioSelector::new()?))
}

/// A new event loop on this backend.
pub fn new_event_loop() -> Result<EventLoop, Error> {
    let selector = MioSelector::new().map_err(|e| Error::BackendUnavailable {
        backend: NAME.to_owned(),
        reason: format!("cannot create the readiness selector: {e}"),
    })?;
    Ok(EventLoop::from_driver(Box::new(ReadinessDriver::new(
        selector,
    ))))
}
