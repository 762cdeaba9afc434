//! Learning that a child exited, and reaping it.
//!
//! - **pidfd** (Linux 5.3+, the default): `pidfd_open(pid)` gives a
//!   descriptor that becomes readable when the child exits. The loop waits
//!   for the exit with an [`Op::ChildExit`] on the pidfd. A readiness backend
//!   (and io_uring before Linux 6.7) only reports the pidfd readable; the
//!   loop then reaps with `waitpid(pid, WNOHANG)`. io_uring's `waitid`
//!   reaps the child in the kernel and reports its status, which the loop
//!   records as if its own `waitpid` had returned it. Signals go through
//!   `pidfd_send_signal`, which can never hit a recycled pid (and fails
//!   with `ESRCH` once the child is reaped, by whoever reaped it).
//! - **SIGCHLD** (fallback when `pidfd_open` is unavailable, or chosen with
//!   [`EventLoop::set_child_watcher`]): the loop's signal self-pipe gets a
//!   byte on every `SIGCHLD` and the loop polls each of its unreaped children
//!   with `waitpid(pid, WNOHANG)`. Signals use `kill(pid)`, only while the
//!   child is known not to be reaped (reaping and signalling take the same lock).
//!
//! Only these per-pid `waitpid` calls reap, so evloop never steals the exit
//! status of a child it did not spawn.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::{Rc, Weak};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::Waker;

use slab::Slab;

use crate::driver::Op;
use crate::loop_core::error::{Error, Result};
use crate::loop_core::exception::ExceptionContext;
use crate::loop_core::extensions::Extension;
use crate::loop_core::{EventLoop, LoopInner};
use crate::op::CallbackOp;
use crate::sys;

/// How a loop learns that its children exited, chosen per loop with
/// `EventLoop::set_child_watcher` before spawning.
///
/// ```
/// use evloop::process::{ChildWatcher, Command};
///
/// let lp = evloop::new_event_loop()?;
/// // The SIGCHLD self-pipe even where pidfds exist (e.g. to test that path).
/// lp.set_child_watcher(ChildWatcher::Sigchld)?;
/// let code = lp.run_until_complete(async {
///     let lp = evloop::get_running_loop()?;
///     Command::shell("exit 3").spawn(&lp)?.wait().await
/// })??;
/// assert_eq!(code, 3);
/// lp.close()?;
/// # Ok::<_, evloop::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChildWatcher {
    /// A pidfd when the kernel offers `pidfd_open` (Linux 5.3+), else SIGCHLD.
    #[default]
    Auto,
    /// Always a pidfd; spawning fails with the kernel's error if it cannot open one.
    Pidfd,
    /// Always the SIGCHLD self-pipe (installs a process-wide `SIGCHLD` handler
    /// while the loop lives).
    Sigchld,
}

/// `true` if this kernel lets us open pidfds (probed once).
pub(crate) fn pidfd_supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    // SAFETY: getpid cannot fail.
    *SUPPORTED.get_or_init(|| pidfd_open(unsafe { libc::getpid() }).is_ok())
}

/// `pidfd_open(pid, 0)`: a close-on-exec descriptor for the process.
pub(crate) fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes two integers and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn already_exited() -> Error {
    Error::from(io::Error::new(
        io::ErrorKind::NotFound,
        "the process has already exited (ProcessLookupError)",
    ))
}

/// What every holder of a child (its `Child`, the loop, the reaper thread) shares.
pub(crate) struct ProcShared {
    pub(crate) pid: libc::pid_t,
    state: Mutex<ProcState>,
}

struct ProcState {
    /// The raw `waitpid` status, once reaped.
    status: Option<libc::c_int>,
    /// Ours until the child is reaped; a pending `ChildExit` holds a clone,
    /// so the descriptor is closed only once the backend is done with it.
    pidfd: Option<Arc<OwnedFd>>,
}

impl fmt::Debug for ProcShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcShared")
            .field("pid", &self.pid)
            .field("status", &self.status())
            .finish()
    }
}

impl ProcShared {
    pub(crate) fn new(pid: libc::pid_t, pidfd: Option<OwnedFd>) -> Self {
        ProcShared {
            pid,
            state: Mutex::new(ProcState {
                status: None,
                pidfd: pidfd.map(Arc::new),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ProcState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The raw wait status, once reaped.
    pub(crate) fn status(&self) -> Option<libc::c_int> {
        self.lock().status
    }

    pub(crate) fn pidfd_raw(&self) -> Option<i32> {
        self.lock().pidfd.as_ref().map(|fd| fd.as_raw_fd())
    }

    /// A shared handle on the pidfd, while the child is not reaped.
    fn pidfd(&self) -> Option<Arc<OwnedFd>> {
        self.lock().pidfd.clone()
    }

    /// Reaps the child if it has exited (never blocks). `inner` is the loop
    /// whose backend may have watched the pidfd. Returns the status.
    pub(crate) fn try_reap(&self, inner: Option<&LoopInner>) -> Option<libc::c_int> {
        let mut state = self.lock();
        if state.status.is_some() {
            return state.status;
        }
        let mut status: libc::c_int = 0;
        let ret = loop {
            // SAFETY: waitpid on one specific pid with a valid status pointer.
            let ret = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            if ret < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break ret;
        };
        if ret == 0 {
            return None;
        }
        if ret < 0 {
            // ECHILD: someone else reaped it (or SIGCHLD is ignored);
            // the status is lost. Report 255, as asyncio does.
            status = 255 << 8;
        }
        state.status = Some(status);
        if let Some(fd) = state.pidfd.take() {
            // Closed when the last holder (a pending ChildExit) lets go.
            sys::release(inner, fd.as_raw_fd());
        }
        state.status
    }

    /// Records the raw wait `status` of a child the backend already reaped
    /// (an [`Op::ChildExit`] that reported one), and closes its pidfd. The
    /// first recorded status wins, so every waiter sees the same one.
    pub(crate) fn set_reaped(&self, status: libc::c_int, inner: Option<&LoopInner>) {
        let mut state = self.lock();
        if state.status.is_none() {
            state.status = Some(status);
        }
        if let Some(fd) = state.pidfd.take() {
            // Closed when the last holder (a pending ChildExit) lets go.
            sys::release(inner, fd.as_raw_fd());
        }
    }

    /// Sends `sig`, unless the child has been reaped (then `NotFound`).
    pub(crate) fn send_signal(&self, sig: i32) -> Result<()> {
        let state = self.lock();
        if state.status.is_some() {
            return Err(already_exited());
        }
        let ret = match &state.pidfd {
            // SAFETY: pidfd_send_signal with a valid pidfd, a null siginfo and no flags.
            Some(fd) => unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    sig,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                ) as libc::c_int
            },
            // SAFETY: kill(2); the pid is not reaped (we hold the lock that
            // reaping takes), so it still names our child.
            None => unsafe { libc::kill(self.pid, sig) },
        };
        if ret < 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::ESRCH) => already_exited(),
                Some(libc::EINVAL) => Error::InvalidArgument(format!("invalid signal {sig}")),
                _ => Error::from(e),
            });
        }
        Ok(())
    }
}

/// The loop's view of one child: who waits for it, and its pidfd watch.
pub(crate) struct Watch {
    pub(crate) shared: Arc<ProcShared>,
    waiters: RefCell<Slab<Option<Waker>>>,
    op: RefCell<Option<CallbackOp>>,
}

impl Watch {
    pub(crate) fn new(shared: Arc<ProcShared>) -> Self {
        Watch {
            shared,
            waiters: RefCell::new(Slab::new()),
            op: RefCell::new(None),
        }
    }

    /// Registers (or updates) a waiter's waker; returns its key.
    pub(crate) fn register(&self, key: Option<usize>, waker: &Waker) -> usize {
        let mut waiters = self.waiters.borrow_mut();
        match key.and_then(|k| waiters.get_mut(k)) {
            Some(slot) => {
                if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
                    *slot = Some(waker.clone());
                }
                key.unwrap_or_default()
            }
            None => waiters.insert(Some(waker.clone())),
        }
    }

    pub(crate) fn unregister(&self, key: usize) {
        let mut waiters = self.waiters.borrow_mut();
        if waiters.contains(key) {
            waiters.remove(key);
        }
    }

    fn wake_all(&self) {
        let wakers: Vec<Waker> = self
            .waiters
            .borrow_mut()
            .iter_mut()
            .filter_map(|(_, w)| w.take())
            .collect();
        for w in wakers {
            w.wake();
        }
    }
}

/// The loop's child-process state: the watcher choice and the children not
/// yet reaped (kept alive here so a dropped `Child` is still reaped).
#[derive(Default)]
pub(crate) struct ProcessState {
    pub(crate) watcher: Cell<ChildWatcher>,
    children: RefCell<Vec<Rc<Watch>>>,
    sigchld: Cell<bool>,
}

impl ProcessState {
    pub(crate) fn get(lp: &EventLoop) -> Rc<ProcessState> {
        lp.inner
            .extensions
            .get_or_insert_with(ProcessState::default)
    }

    /// Prepares the SIGCHLD fallback before a spawn (so no exit is missed).
    pub(crate) fn ensure_sigchld(&self, lp: &EventLoop) -> Result<()> {
        if self.sigchld.get() {
            return Ok(());
        }
        let weak = lp.downgrade();
        let hook: Rc<dyn Fn()> = Rc::new(move || {
            if let Some(inner) = weak.upgrade() {
                let lp = EventLoop { inner };
                if let Some(state) = lp.inner.extensions.get::<ProcessState>() {
                    state.reap_all(&lp);
                }
            }
        });
        crate::io::signal::watch_sigchld(lp, hook)?;
        self.sigchld.set(true);
        Ok(())
    }

    /// Starts watching a freshly spawned child.
    pub(crate) fn adopt(&self, lp: &EventLoop, watch: Rc<Watch>) {
        self.children.borrow_mut().push(watch.clone());
        if watch.shared.pidfd_raw().is_some() {
            if let Err(e) = arm(lp, &watch) {
                lp.call_exception_handler(ExceptionContext {
                    message: format!("cannot watch child {}: {e}", watch.shared.pid),
                    ..ExceptionContext::default()
                });
            }
        } else {
            // SIGCHLD mode: a child that exited before the handler saw it
            // is caught by this first look.
            let weak = lp.downgrade();
            let _ = lp.call_soon(move || {
                if let Some(inner) = weak.upgrade() {
                    let lp = EventLoop { inner };
                    if let Some(state) = lp.inner.extensions.get::<ProcessState>() {
                        state.reap_all(&lp);
                    }
                }
            });
        }
    }

    /// Reaps `watch` if it exited: records the status and wakes its waiters.
    fn check(&self, lp: &EventLoop, watch: &Rc<Watch>) -> bool {
        if watch.shared.try_reap(Some(&lp.inner)).is_none() {
            return false;
        }
        self.forget(watch);
        true
    }

    /// `watch` is reaped: stop tracking it and wake its waiters.
    fn forget(&self, watch: &Rc<Watch>) {
        self.children.borrow_mut().retain(|w| !Rc::ptr_eq(w, watch));
        watch.wake_all();
    }

    /// SIGCHLD mode: looks at every child that has no pidfd watch (a child
    /// with a pidfd is reaped only by its own watch, whose pending
    /// operation needs the pidfd open).
    fn reap_all(&self, lp: &EventLoop) {
        let children: Vec<Rc<Watch>> = self.children.borrow().clone();
        for watch in children.iter().filter(|w| w.shared.pidfd_raw().is_none()) {
            self.check(lp, watch);
        }
    }

    /// Hands every unreaped child to the process-wide reaper thread.
    fn orphan_all(&self, lp: Option<&EventLoop>) {
        let children = std::mem::take(&mut *self.children.borrow_mut());
        for watch in children {
            if let (Some(lp), Some(op)) = (lp, watch.op.borrow_mut().take()) {
                lp.cancel_op(&op);
            }
            if let Some(lp) = lp {
                // Maybe it just exited: reap it here if so. (On io_uring the
                // cancelled ChildExit may have reaped it in the kernel already;
                // its status is then lost with the cancelled callback and
                // waitpid's ECHILD records 255, as for any lost status. The
                // child is never signalled: pidfd_send_signal says ESRCH.)
                if watch.shared.try_reap(Some(&lp.inner)).is_some() {
                    watch.wake_all();
                    continue;
                }
            }
            if let (Some(lp), Some(fd)) = (lp, watch.shared.pidfd_raw()) {
                // Its watch is cancelled: the backend may forget the pidfd,
                // which the reaper thread polls and closes from now on.
                sys::release(Some(&lp.inner), fd);
            }
            super::reaper::adopt(watch.shared.clone());
            // Waiters see the loop closed.
            watch.wake_all();
        }
    }
}

impl Extension for ProcessState {
    fn on_close(&self, lp: &EventLoop) {
        self.orphan_all(Some(lp));
    }
}

impl Drop for ProcessState {
    fn drop(&mut self) {
        self.orphan_all(None);
    }
}

/// Waits for the child's exit with an [`Op::ChildExit`] on its pidfd.
fn arm(lp: &EventLoop, watch: &Rc<Watch>) -> Result<()> {
    let Some(pidfd) = watch.shared.pidfd() else {
        return Ok(());
    };
    let fd = pidfd.as_raw_fd();
    let weak_watch: Weak<Watch> = Rc::downgrade(watch);
    let weak_loop = lp.downgrade();
    let callback = Box::new(move |result: io::Result<crate::driver::OpOutput>| {
        // Held by the operation (a cancelled one too) until the backend is
        // done with it.
        drop(pidfd);
        let (Some(inner), Some(watch)) = (weak_loop.upgrade(), weak_watch.upgrade()) else {
            return;
        };
        let lp = EventLoop { inner };
        watch.op.borrow_mut().take();
        let Some(state) = lp.inner.extensions.get::<ProcessState>() else {
            return;
        };
        if let Ok(crate::driver::OpOutput {
            child_status: Some(status),
            ..
        }) = result
        {
            // The backend reaped the child: waitpid would now fail (ECHILD).
            watch.shared.set_reaped(status, Some(&lp.inner));
            state.forget(&watch);
            return;
        }
        if state.check(&lp, &watch) {
            return;
        }
        match result {
            // Spurious wake-up: watch again.
            Ok(_) => {
                if let Err(e) = arm(&lp, &watch) {
                    lp.call_exception_handler(ExceptionContext {
                        message: format!("cannot watch child {}: {e}", watch.shared.pid),
                        ..ExceptionContext::default()
                    });
                }
            }
            Err(e) => lp.call_exception_handler(ExceptionContext {
                message: format!("watching child {} failed: {e}", watch.shared.pid),
                ..ExceptionContext::default()
            }),
        }
    });
    // SAFETY: ChildExit points into no memory (a backend that reaps keeps its
    // own siginfo storage); the pidfd stays open until the child is reaped,
    // which happens only in this callback (by `waitpid`, or by the backend
    // within this very operation), in `reap_all`/`orphan_all` after this
    // operation was cancelled, or by the reaper thread after `orphan_all`
    // cancelled it.
    let op = unsafe { lp.submit_with_callback(Op::ChildExit { pidfd: fd }, callback) }?;
    *watch.op.borrow_mut() = Some(op);
    Ok(())
}
