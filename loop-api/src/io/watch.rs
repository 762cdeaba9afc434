//! Readiness callbacks: `add_reader`, `add_writer`, `remove_reader`,
//! `remove_writer` (asyncio's names and semantics).
//!
//! A watcher is a `PollReadable`/`PollWritable` operation submitted with
//! [`EventLoop::submit_with_callback`]; when it completes, the user's
//! callback runs and the operation is submitted again. Resubmitting gives
//! level-triggered behaviour on every backend: a readiness backend checks
//! the resubmitted polls in its next wait (one zero-timeout `poll(2)` over
//! all of them), so while the descriptor stays ready the callback runs
//! once per loop iteration; io_uring's `PollAdd` likewise completes at
//! once on a ready descriptor.
//!
//! Each watcher has a generation number. A completion whose generation no
//! longer matches the table (the watcher was removed, or removed and added
//! again) is ignored, so a removed callback never runs again. A second add
//! for the same descriptor and direction only swaps the callback and keeps
//! the operation. Removal cancels the operation synchronously and, when no
//! other watcher or `sock_*` operation uses the descriptor, makes the
//! driver forget it: the user may close the descriptor and reuse its number
//! straight away. The user must remove a watcher before closing its
//! descriptor (as in asyncio); a watcher whose descriptor fails (`EBADF`)
//! is reported to the exception handler and dropped.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::os::fd::RawFd;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};

use crate::driver::{Op, OpOutput};
use crate::io::borrowed::{check_fd, check_not_owned, FdUse};
use crate::loop_core::exception::ExceptionContext;
use crate::loop_core::extensions::Extension;
use crate::loop_core::{EventLoop, LoopInner};
use crate::op::CallbackOp;
use crate::{Error, Result};

/// Which readiness a watcher waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Dir {
    Read,
    Write,
}

/// One registered callback.
struct Watcher {
    gen: u64,
    /// `None` while the callback runs (it is taken out to be called).
    callback: Option<Box<dyn FnMut()>>,
    /// The poll in flight; `None` from its completion until it is resubmitted.
    op: Option<CallbackOp>,
    /// Keeps the descriptor counted as used by the loop.
    _use: FdUse,
}

/// The loop's readiness watchers, by descriptor and direction (a loop
/// extension, created by the first `add_*`).
#[derive(Default)]
pub(crate) struct Watchers {
    map: RefCell<HashMap<(RawFd, Dir), Watcher>>,
    next_gen: Cell<u64>,
}

impl Extension for Watchers {
    fn on_close(&self, _lp: &EventLoop) {
        // The loop drops the pending polls; the callbacks go here.
        let map = std::mem::take(&mut *self.map.borrow_mut());
        drop(map);
    }
}

fn watchers(lp: &EventLoop) -> Option<Rc<Watchers>> {
    lp.inner.extensions.get::<Watchers>()
}

fn submit(lp: &EventLoop, fd: RawFd, dir: Dir, gen: u64) -> Result<CallbackOp> {
    let op = match dir {
        Dir::Read => Op::PollReadable { fd },
        Dir::Write => Op::PollWritable { fd },
    };
    let weak = lp.downgrade();
    let on_ready = Box::new(move |res: io::Result<OpOutput>| fire(&weak, fd, dir, gen, res));
    // SAFETY: a poll operation holds no pointers. The descriptor belongs to
    // the user, who must keep it open while it is watched (documented on
    // add_reader); if it is closed anyway, the poll fails or never fires,
    // which is a misbehaving watcher, not a memory error.
    unsafe { lp.submit_with_callback(op, on_ready) }
}

fn report(lp: &EventLoop, fd: RawFd, dir: Dir, err: &dyn std::fmt::Display) {
    lp.call_exception_handler(ExceptionContext {
        message: format!("readiness watcher ({dir:?}) on fd {fd} failed and was removed: {err}"),
        ..ExceptionContext::default()
    });
}

/// Takes a watcher out of the table (dropped by the caller, outside the borrow).
fn take(lp: &EventLoop, fd: RawFd, dir: Dir) -> Option<Watcher> {
    watchers(lp)?.map.borrow_mut().remove(&(fd, dir))
}

/// A watcher's poll completed: run its callback, then poll again.
fn fire(weak: &Weak<LoopInner>, fd: RawFd, dir: Dir, gen: u64, res: io::Result<OpOutput>) {
    let Some(inner) = weak.upgrade() else { return };
    let lp = EventLoop { inner };
    let Some(table) = watchers(&lp) else { return };
    let mut callback = {
        let mut map = table.map.borrow_mut();
        let Some(watcher) = map.get_mut(&(fd, dir)).filter(|w| w.gen == gen) else {
            return;
        };
        watcher.op = None;
        if let Err(e) = res {
            drop(map);
            drop(take(&lp, fd, dir));
            report(&lp, fd, dir, &e);
            return;
        }
        match watcher.callback.take() {
            Some(cb) => cb,
            None => return,
        }
    };
    let outcome = catch_unwind(AssertUnwindSafe(&mut callback));

    // Put the callback back unless it was replaced or removed meanwhile,
    // and poll again if the watcher is still the same one.
    let mut resubmit = false;
    let stale = {
        let mut map = table.map.borrow_mut();
        match map.get_mut(&(fd, dir)) {
            Some(watcher) if watcher.gen == gen => {
                resubmit = watcher.op.is_none();
                match watcher.callback {
                    None => {
                        watcher.callback = Some(callback);
                        None
                    }
                    Some(_) => Some(callback),
                }
            }
            _ => Some(callback),
        }
    };
    drop(stale);
    if resubmit {
        match submit(&lp, fd, dir, gen) {
            Ok(op) => {
                let mut map = table.map.borrow_mut();
                if let Some(watcher) = map.get_mut(&(fd, dir)).filter(|w| w.gen == gen) {
                    watcher.op = Some(op);
                }
            }
            Err(e) => {
                drop(take(&lp, fd, dir));
                if !lp.is_closed() {
                    report(&lp, fd, dir, &e);
                }
            }
        }
    }
    if let Err(payload) = outcome {
        // Let the loop report the panic as it does for any callback.
        resume_unwind(payload);
    }
}

impl EventLoop {
    fn add_watcher(&self, fd: RawFd, dir: Dir, callback: Box<dyn FnMut()>) -> Result<()> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        check_fd(fd)?;
        check_not_owned(self, fd)?;
        let table = self.inner.extensions.get_or_insert_with(Watchers::default);
        let gen = {
            let mut map = table.map.borrow_mut();
            if let Some(watcher) = map.get_mut(&(fd, dir)) {
                let old = watcher.callback.replace(callback);
                drop(map);
                drop(old);
                return Ok(());
            }
            table.next_gen.set(table.next_gen.get() + 1);
            table.next_gen.get()
        };
        let fd_use = FdUse::acquire(self, fd);
        let op = submit(self, fd, dir, gen)?;
        let watcher = Watcher {
            gen,
            callback: Some(callback),
            op: Some(op),
            _use: fd_use,
        };
        let old = table.map.borrow_mut().insert((fd, dir), watcher);
        drop(old);
        Ok(())
    }

    fn remove_watcher(&self, fd: RawFd, dir: Dir) -> bool {
        if self.is_closed() {
            return false;
        }
        let Some(watcher) = take(self, fd, dir) else {
            return false;
        };
        if let Some(op) = &watcher.op {
            self.cancel_op(op);
        }
        // Dropping the watcher ends its use of the descriptor, after the
        // poll was cancelled.
        drop(watcher);
        true
    }

    /// Calls `callback` on every loop iteration while `fd` is readable (or
    /// has an error or hang-up), until [`remove_reader`](Self::remove_reader);
    /// level-triggered, like asyncio. Callbacks must tolerate spurious
    /// wake-ups (a non-blocking read may still find nothing).
    ///
    /// A second call for the same `fd` replaces the callback; a reader and
    /// a writer on one `fd` are independent. Keep `fd` open until the
    /// reader is removed. Errors: [`Error::Closed`] after `close()`,
    /// [`Error::InvalidArgument`] for a negative `fd` or for one owned by a
    /// socket of this loop (a `TcpStream`, `TcpListener`, `UdpSocket`, Unix
    /// socket, ...: its operations already watch it; asyncio's "is used by
    /// transport"), [`Error::Io`] (`EBADF`) for a descriptor that is not open.
    pub fn add_reader<F: FnMut() + 'static>(&self, fd: RawFd, callback: F) -> Result<()> {
        self.add_watcher(fd, Dir::Read, Box::new(callback))
    }

    /// Like [`add_reader`](Self::add_reader), for writability.
    pub fn add_writer<F: FnMut() + 'static>(&self, fd: RawFd, callback: F) -> Result<()> {
        self.add_watcher(fd, Dir::Write, Box::new(callback))
    }

    /// Removes the reader on `fd`, at once: its callback never runs again
    /// and the descriptor may be closed right after. Returns whether one
    /// was registered: always `false` once the loop is closed, and `false`
    /// for a descriptor owned by a socket of this loop, on which no watcher
    /// can be added (rather than an error: nothing is removed, so nothing
    /// went wrong).
    pub fn remove_reader(&self, fd: RawFd) -> bool {
        self.remove_watcher(fd, Dir::Read)
    }

    /// Like [`remove_reader`](Self::remove_reader), for the writer.
    pub fn remove_writer(&self, fd: RawFd) -> bool {
        self.remove_watcher(fd, Dir::Write)
    }
}
