//! What a cancelled receive leaves behind, and where it waits for the next
//! receive on the same descriptor.
//!
//! Cancelling a receive must never lose what the kernel already gave it.
//! Two moments can carry a result to a future that is gone:
//! - the result arrived (the slot is `Forgotten`) but the future was dropped
//!   before collecting it: a task cancelled between the backend poll and
//!   its next step, the losing branch of a select, a timeout firing in the
//!   same iteration;
//! - the backend still owned the operation when the future was dropped
//!   (io_uring answers a cancel with [`Cancel::Pending`](crate::driver::Cancel))
//!   and its final completion carries bytes, a datagram or a connection.
//!
//! Either way the future's leftovers ([`Abandoned`]) take the result and
//! put what it carried into the descriptor's [`Stash`]; every receive on
//! that descriptor looks there first. While a cancelled receive is still in
//! the kernel, later receives on the descriptor wait for it, so the bytes
//! come out in the order the kernel delivered them.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::task::{Context, Poll, Waker};

use socket2::SockAddr;

use crate::driver::OpOutput;

/// One result kept for the next receive.
pub(crate) enum Salvaged {
    /// Bytes of a byte stream; the first `pos` were handed out already.
    Bytes {
        /// What the kernel delivered.
        data: Vec<u8>,
        /// How many were taken by receives with smaller buffers.
        pos: usize,
    },
    /// One datagram, and its sender where the receive asked for it.
    Datagram {
        /// The datagram.
        data: Vec<u8>,
        /// The sender (`None` from a connected socket's `recv`).
        from: Option<SockAddr>,
    },
    /// An accepted connection and its peer.
    Conn(OwnedFd, SockAddr),
    /// An error the kernel reports once (a reset connection, ...).
    Error(io::Error),
}

impl fmt::Debug for Salvaged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Salvaged::Bytes { data, pos } => write!(f, "Bytes({})", data.len() - pos),
            Salvaged::Datagram { data, .. } => write!(f, "Datagram({})", data.len()),
            Salvaged::Conn(fd, _) => write!(f, "Conn({fd:?})"),
            Salvaged::Error(e) => write!(f, "Error({e})"),
        }
    }
}

impl Salvaged {
    /// What `result` leaves for the next receive, if anything: an error
    /// worth repeating (not the cancellation itself), or `ok(output)`.
    pub(crate) fn from_result(
        result: io::Result<OpOutput>,
        ok: impl FnOnce(OpOutput) -> Option<Salvaged>,
    ) -> Option<Salvaged> {
        match result {
            Ok(out) => ok(out),
            Err(e) => match e.raw_os_error() {
                Some(libc::ECANCELED | libc::EINTR | libc::EAGAIN) | None => None,
                Some(_) => Some(Salvaged::Error(e)),
            },
        }
    }
}

/// The results kept for one descriptor's next receives (see the module docs).
#[derive(Default)]
pub(crate) struct Stash {
    items: RefCell<VecDeque<Salvaged>>,
    /// Receives whose future is gone while the kernel still owns them;
    /// their results come here, so later receives wait for them.
    in_flight: Cell<u32>,
    /// Receives waiting for `in_flight` to drop to zero.
    waiters: RefCell<Vec<Waker>>,
}

impl fmt::Debug for Stash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stash")
            .field("items", &self.items.borrow().len())
            .field("in_flight", &self.in_flight.get())
            .finish()
    }
}

impl Stash {
    /// `true` if nothing is kept and nothing is on its way: receives go
    /// straight to the backend. The only check on the hot path.
    #[inline]
    pub(crate) fn is_idle(&self) -> bool {
        self.in_flight.get() == 0 && self.items.borrow().is_empty()
    }

    /// Keeps `item` after everything kept before it.
    pub(crate) fn push(&self, item: Salvaged) {
        self.items.borrow_mut().push_back(item);
        self.wake();
    }

    /// Puts `item` back in front (a receive took part of it, or could not
    /// use it).
    pub(crate) fn put_back(&self, item: Salvaged) {
        self.items.borrow_mut().push_front(item);
    }

    /// The next kept result for a receive: `Pending` while a cancelled
    /// receive is still in the kernel (its result comes first), `None` if
    /// nothing is kept.
    pub(crate) fn poll_take(&self, cx: &Context<'_>) -> Poll<Option<Salvaged>> {
        if self.in_flight.get() > 0 {
            let mut waiters = self.waiters.borrow_mut();
            if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
                waiters.push(cx.waker().clone());
            }
            return Poll::Pending;
        }
        Poll::Ready(self.items.borrow_mut().pop_front())
    }

    /// A receive's future is gone while the kernel owns it.
    pub(crate) fn orphan_started(&self) {
        self.in_flight.set(self.in_flight.get() + 1);
    }

    /// That receive's final result has been kept (or there was none).
    pub(crate) fn orphan_ended(&self) {
        let n = self.in_flight.get();
        debug_assert!(n > 0, "more orphaned receives ended than started");
        self.in_flight.set(n.saturating_sub(1));
        if n <= 1 {
            self.wake();
        }
    }

    fn wake(&self) {
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for waker in waiters {
            waker.wake();
        }
    }
}

/// What an operation's keep-alive offers besides keeping its descriptor
/// open: where results of abandoned receives on that descriptor are kept.
pub(crate) trait Keep: 'static {
    /// The descriptor's stash, if results can be kept for it.
    fn stash(&self) -> Option<&Stash> {
        None
    }
    /// Called when something is about to be kept (a receive's result, or
    /// an orphaned receive), while the descriptor is surely still the one
    /// the operation ran on.
    fn keeping(&self) {}
}

impl Keep for () {}

/// The leftovers of an operation whose future is gone: they own its memory
/// until the final completion, then take its result (see [`Stash`]).
pub(crate) trait Abandoned {
    /// The kernel keeps the operation for now; `complete` comes later.
    fn orphaned(&mut self) {}
    /// The final result: keep what it carried, free the rest.
    fn complete(self: Box<Self>, result: io::Result<OpOutput>);
}

/// Leftovers that only keep memory (and a descriptor) alive until the end.
#[derive(Debug)]
pub(crate) struct Kept<K>(pub(crate) K);

impl<K> Abandoned for Kept<K> {
    fn complete(self: Box<Self>, _result: io::Result<OpOutput>) {}
}

/// Takes bytes from a kept item into `out`; what is left goes back to
/// `stash`. `None` for an item a stream read cannot use (put back).
pub(crate) fn take_into(
    item: Salvaged,
    out: &mut [u8],
    stash: &Stash,
) -> Option<io::Result<usize>> {
    match item {
        Salvaged::Bytes { data, pos } => {
            let n = (data.len() - pos).min(out.len());
            out[..n].copy_from_slice(&data[pos..pos + n]);
            if pos + n < data.len() {
                stash.put_back(Salvaged::Bytes { data, pos: pos + n });
            }
            Some(Ok(n))
        }
        Salvaged::Datagram { data, .. } => {
            let n = data.len().min(out.len());
            out[..n].copy_from_slice(&data[..n]);
            Some(Ok(n))
        }
        Salvaged::Error(e) => Some(Err(e)),
        conn @ Salvaged::Conn(..) => {
            stash.put_back(conn);
            None
        }
    }
}
