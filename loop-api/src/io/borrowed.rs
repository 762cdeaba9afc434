//! Descriptors the loop borrows from the user.
//!
//! `sock_*` operations and readiness watchers (`add_reader`/`add_writer`)
//! work on descriptors the loop does not own. A readiness backend keeps a
//! registration for every descriptor it waited on; if that registration
//! outlived the loop's use, a user who closes the descriptor and gets the
//! same number back from the kernel for a new socket would inherit a stale
//! one (mio's edge-triggered registration would then never fire). So each
//! use is counted here, and when the last one ends the driver is told to
//! forget the descriptor ([`Driver::release_fd`](crate::driver::Driver::release_fd)).
//! Counting matters because two uses overlap routinely: a `sock_recv` and a
//! `sock_sendall` on one socket, or a reader and a writer on one fd.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::RawFd;
use std::rc::{Rc, Weak};

use crate::loop_core::extensions::Extension;
use crate::loop_core::{EventLoop, LoopInner};
use crate::op::salvage::{Keep, Stash};
use crate::Error;

/// The descriptors borrowed on one loop (a loop extension, created on
/// first use): one entry per descriptor number ever borrowed, kept so that
/// a `sock_*` call allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct BorrowedFds {
    fds: RefCell<HashMap<RawFd, Rc<Borrowed>>>,
}

/// One borrowed descriptor: how many uses it has, and what cancelled
/// receives on it took (kept for the user's next receive on it).
#[derive(Debug)]
pub(crate) struct Borrowed {
    fd: RawFd,
    uses: Cell<usize>,
    stash: Stash,
    /// Which open file the stash belongs to (`st_dev`, `st_ino`), recorded
    /// when something is first kept: the user may close the descriptor and
    /// get the number back for another socket, which must not inherit it.
    file: Cell<Option<(u64, u64)>>,
}

/// The identity of the open file behind `fd`, if it is open.
fn file_identity(fd: RawFd) -> Option<(u64, u64)> {
    // SAFETY: an all-zero `stat` is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is valid for writes; a closed fd gives EBADF.
    if unsafe { libc::fstat(fd, &mut st) } < 0 {
        return None;
    }
    Some((st.st_dev, st.st_ino))
}

impl Extension for BorrowedFds {
    fn on_close(&self, _lp: &EventLoop) {
        // The backend goes away with the loop, and every registration with it.
    }
}

/// One use of a user's descriptor; dropping the last use of a descriptor
/// makes the driver forget it. Drop it only after the operation or watcher
/// it covers has completed or been cancelled.
#[derive(Debug)]
pub(crate) struct FdUse {
    lp: Weak<LoopInner>,
    entry: Rc<Borrowed>,
}

impl FdUse {
    /// Counts one more use of `fd` on `lp`.
    pub(crate) fn acquire(lp: &EventLoop, fd: RawFd) -> FdUse {
        let borrowed = lp.inner.extensions.get_or_insert_with(BorrowedFds::default);
        let mut fds = borrowed.fds.borrow_mut();
        let entry = fds.entry(fd).or_insert_with(|| Borrowed::new(fd));
        // Kept results belong to the file they came from: a descriptor
        // closed and reused by the user starts afresh (the old entry lives
        // on in the operations that still hold it).
        if !entry.stash.is_idle() && file_identity(fd) != entry.file.get() {
            *entry = Borrowed::new(fd);
        }
        entry.uses.set(entry.uses.get() + 1);
        FdUse {
            lp: lp.downgrade(),
            entry: entry.clone(),
        }
    }
}

impl Borrowed {
    fn new(fd: RawFd) -> Rc<Borrowed> {
        Rc::new(Borrowed {
            fd,
            uses: Cell::new(0),
            stash: Stash::default(),
            file: Cell::new(None),
        })
    }
}

impl Keep for FdUse {
    #[inline]
    fn stash(&self) -> Option<&Stash> {
        Some(&self.entry.stash)
    }

    fn keeping(&self) {
        if self.entry.file.get().is_none() {
            self.entry.file.set(file_identity(self.entry.fd));
        }
    }
}

impl Drop for FdUse {
    fn drop(&mut self) {
        let entry = &self.entry;
        let left = entry.uses.get().saturating_sub(1);
        entry.uses.set(left);
        if left > 0 {
            return;
        }
        let Some(inner) = self.lp.upgrade() else {
            return;
        };
        // None once the loop is closed: its backend is gone too.
        let Some(borrowed) = inner.extensions.get::<BorrowedFds>() else {
            return;
        };
        let current = borrowed
            .fds
            .borrow()
            .get(&entry.fd)
            .is_some_and(|e| Rc::ptr_eq(e, entry));
        // The entry stays (one per descriptor number: no allocation per
        // operation); with nothing kept it belongs to no file any more, so
        // whatever the number names next starts clean.
        if current && entry.stash.is_idle() {
            entry.file.set(None);
        }
        // Only the current entry's last use releases the number: an older
        // entry's file was closed by the user already.
        if current {
            crate::sys::release(Some(&inner), entry.fd);
        }
    }
}

/// Descriptors owned by this loop's sockets (every live `LoopFd`), so that
/// `add_reader`/`add_writer` can refuse them (a loop extension, created by
/// the first socket). Inserting and removing a number is all a socket pays.
#[derive(Debug, Default)]
pub(crate) struct OwnedFds {
    fds: RefCell<HashSet<RawFd>>,
}

impl Extension for OwnedFds {
    fn on_close(&self, _lp: &EventLoop) {}
}

/// Records that a loop socket owns `fd` (nothing once the loop is closed).
pub(crate) fn mark_owned(lp: &EventLoop, fd: RawFd) {
    if lp.is_closed() {
        return;
    }
    let owned = lp.inner.extensions.get_or_insert_with(OwnedFds::default);
    owned.fds.borrow_mut().insert(fd);
}

/// Forgets that a loop socket owns `fd`; call before closing it.
pub(crate) fn unmark_owned(inner: &LoopInner, fd: RawFd) {
    if let Some(owned) = inner.extensions.get::<OwnedFds>() {
        owned.fds.borrow_mut().remove(&fd);
    }
}

/// [`Error::InvalidArgument`] if a socket of this loop owns `fd`
/// (asyncio's "File descriptor … is used by transport").
pub(crate) fn check_not_owned(lp: &EventLoop, fd: RawFd) -> Result<(), Error> {
    let owned = lp
        .inner
        .extensions
        .get::<OwnedFds>()
        .is_some_and(|owned| owned.fds.borrow().contains(&fd));
    if owned {
        return Err(Error::InvalidArgument(format!(
            "file descriptor {fd} is used by a socket of this loop"
        )));
    }
    Ok(())
}

/// Checks that `fd` can be borrowed: not negative (a typed error) and open
/// (`EBADF` otherwise, so a dead descriptor is refused rather than
/// registered, and no operation on it can hang).
pub(crate) fn check_fd(fd: RawFd) -> Result<libc::c_int, Error> {
    if fd < 0 {
        return Err(Error::InvalidArgument(format!(
            "invalid file descriptor {fd}"
        )));
    }
    // SAFETY: F_GETFL reads the descriptor's status flags and touches no memory.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(Error::from(io::Error::last_os_error()));
    }
    Ok(flags)
}
