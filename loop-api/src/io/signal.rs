//! Unix signal handlers that run on the loop thread.
//!
//! # Mechanism
//! Each loop that handles signals owns a non-blocking, close-on-exec
//! self-pipe. For every signal it handles, a `signal-hook-registry` action
//! writes one byte (the signal number) to the pipe; that is the only thing
//! done in signal context (`write(2)` is async-signal-safe, and the registry
//! saves and restores `errno`). The loop watches the read end with an
//! ordinary [`Op::PollReadable`] operation, so every backend (epoll through
//! mio or polling, io_uring's `PollAdd`) wakes from a blocking wait when a
//! signal arrives. When the pipe is readable the loop drains it and
//! schedules the handler once per byte, with `call_soon`: two deliveries
//! give two calls, each in its own ready-queue slot (a panicking handler is
//! reported to the exception handler like any callback).
//!
//! signalfd is deliberately not used: it only sees signals blocked in every
//! thread, which a library cannot guarantee (async-signal and compio both
//! dropped it after missed signals).
//!
//! The read end is watched with a readiness poll plus a non-blocking
//! `read(2)` rather than an `Op::Read` with a buffer because the watcher
//! lives in a callback (`EventLoop::submit_with_callback` accepts only
//! operations without memory) and not in a task: an internal task would
//! count in `task_count()` and be cancelled by `run()`'s leftover-task
//! sweep.
//!
//! # Rules (and where they differ from asyncio)
//! - Any thread's loop may add handlers; asyncio insists on the main thread
//!   because CPython runs Python signal handlers there, which does not apply
//!   here. Signal dispositions are process-wide, though, so a signal
//!   belongs to at most one loop at a time: adding a handler for a signal
//!   another live loop handles fails with [`Error::InvalidArgument`].
//! - Adding a second handler for the same signal on the same loop replaces
//!   the first.
//! - Removing the last handler of a signal restores the disposition the
//!   signal had before evloop first touched it (normally `SIG_DFL`), with
//!   `sigaction(2)`: a later `SIGINT` then terminates the process.
//! - `close()` (or dropping the loop) removes all its handlers.
//! - Limits: signals arriving while the pipe is full (64 KiB of undelivered
//!   signals) are dropped. Another `signal-hook-registry` user of the same
//!   signal keeps working while evloop handles it, but loses the signal once
//!   evloop restores the original disposition.
//!
//! # Awaiting signals: [`ctrl_c`], [`signal()`] and [`Signals`]
//! Besides callbacks, a task can await deliveries: [`ctrl_c`] resolves on
//! the next `SIGINT`, and [`signal()`] (or [`EventLoop::signals`]) returns a
//! [`Signals`] listener whose [`recv`](Signals::recv) yields one item per
//! delivery. They use the same self-pipe; the rules:
//! - A listener is registered when it is created (a [`CtrlC`] when
//!   `ctrl_c()` is called, not when first polled), so a signal raised after
//!   that and before the first `await` is not lost (and does not kill the
//!   process).
//! - While at least one listener or handler of this loop exists for a
//!   signal, the loop's action is installed (one per loop and signal, so a
//!   delivery is one byte however many listen); when the last one goes (the
//!   `Signals` or `CtrlC` is dropped, or `ctrl_c()` resolved), the signal's
//!   original disposition is restored, exactly as by
//!   [`remove_signal_handler`](EventLoop::remove_signal_handler).
//! - Every listener sees every delivery, and so does the handler of
//!   [`add_signal_handler`](EventLoop::add_signal_handler) if there is one.
//!   Listeners may coexist with another loop's handler or listeners for the
//!   same signal (only handlers are one loop at a time).
//! - Deliveries faster than they are consumed are **counted, not merged**:
//!   each listener keeps the number of deliveries it has not yet received,
//!   and each `recv` takes one. What can still merge happens below evloop:
//!   the kernel keeps at most one pending instance of a standard signal, so
//!   two sent before the process runs its handler are one delivery (POSIX;
//!   the same for callbacks), and deliveries are lost while the pipe is
//!   full (above).
//! - When the loop closes, `recv` returns `None` and a pending `ctrl_c()`
//!   resolves to [`Error::Closed`].

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use signal_hook_registry as registry;
use slab::Slab;

use crate::driver::Op;
use crate::loop_core::error::{Error, Result};
use crate::loop_core::exception::ExceptionContext;
use crate::loop_core::extensions::Extension;
use crate::loop_core::{EventLoop, LoopInner};
use crate::op::CallbackOp;
use crate::sys;

/// One more than the largest signal number on Linux (glibc's `_NSIG`).
pub const NSIG: i32 = 65;

/// A signal, by number: what [`EventLoop::add_signal_handler`],
/// [`signal()`] and [`EventLoop::signals`] take. Use this module's
/// constants ([`SIGINT`], [`SIGTERM`], ...) rather than numbers; any number
/// converts (`SignalKind::from(40)`, for a real-time signal), and an
/// invalid one is refused with [`Error::InvalidArgument`] where it is
/// used, never here.
///
/// ```
/// use evloop::signal::{SignalKind, SIGINT, SIGTERM};
/// assert_eq!(SIGINT.as_raw(), libc::SIGINT);
/// assert_eq!(SIGTERM.to_string(), "SIGTERM");
/// assert_eq!(SignalKind::from(libc::SIGTERM), SIGTERM);
/// assert_eq!(SignalKind::from(40).name(), None);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SignalKind(i32);

impl SignalKind {
    /// The signal with number `signum` (not checked here).
    pub const fn from_raw(signum: i32) -> SignalKind {
        SignalKind(signum)
    }

    /// The signal's number.
    pub const fn as_raw(self) -> i32 {
        self.0
    }

    /// The usual name (`"SIGINT"`) of a signal this module has a constant
    /// for; `None` for others.
    pub fn name(self) -> Option<&'static str> {
        NAMED.iter().find(|(k, _)| *k == self).map(|(_, n)| *n)
    }
}

impl From<i32> for SignalKind {
    fn from(signum: i32) -> SignalKind {
        SignalKind(signum)
    }
}

impl From<SignalKind> for i32 {
    fn from(kind: SignalKind) -> i32 {
        kind.0
    }
}

impl fmt::Debug for SignalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "SignalKind({})", self.0),
        }
    }
}

impl fmt::Display for SignalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "signal {}", self.0),
        }
    }
}

macro_rules! signal_constants {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        $(
            $(#[$doc])*
            pub const $name: SignalKind = SignalKind(libc::$name);
        )*
        const NAMED: &[(SignalKind, &str)] = &[$(($name, stringify!($name))),*];
    };
}

signal_constants! {
    /// Hangup: the controlling terminal closed; daemons reload on it.
    SIGHUP,
    /// Interrupt: Ctrl-C in a terminal (see [`ctrl_c`]).
    SIGINT,
    /// Quit: Ctrl-\ in a terminal.
    SIGQUIT,
    /// Trace/breakpoint trap.
    SIGTRAP,
    /// Abort (`abort(3)`).
    SIGABRT,
    /// Bus error.
    SIGBUS,
    /// Kill: cannot be caught (a handler is refused); for sending.
    SIGKILL,
    /// User-defined signal 1.
    SIGUSR1,
    /// User-defined signal 2.
    SIGUSR2,
    /// Write to a pipe or socket nobody reads.
    SIGPIPE,
    /// Timer from `alarm(2)`.
    SIGALRM,
    /// Termination request: what `kill` sends by default.
    SIGTERM,
    /// A child process stopped or exited.
    SIGCHLD,
    /// Continue a stopped process.
    SIGCONT,
    /// Stop: cannot be caught (a handler is refused); for sending.
    SIGSTOP,
    /// Stop from the terminal: Ctrl-Z.
    SIGTSTP,
    /// Background read from the terminal.
    SIGTTIN,
    /// Background write to the terminal.
    SIGTTOU,
    /// Urgent data on a socket.
    SIGURG,
    /// CPU time limit exceeded.
    SIGXCPU,
    /// File size limit exceeded.
    SIGXFSZ,
    /// Virtual timer expired.
    SIGVTALRM,
    /// Profiling timer expired.
    SIGPROF,
    /// The terminal window changed size.
    SIGWINCH,
    /// I/O is possible on a descriptor (`SIGPOLL`).
    SIGIO,
    /// Power failure.
    SIGPWR,
    /// Bad system call.
    SIGSYS,
}

/// The byte the child watcher's `SIGCHLD` action writes (no signal is 0).
const CHILD_EVENT: u8 = 0;

static NEXT_STATE_ID: AtomicU64 = AtomicU64::new(1);

/// Who an installed action serves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// A user handler from `add_signal_handler` (and maybe listeners).
    User,
    /// Listeners ([`Signals`], [`CtrlC`]) only, no handler.
    Listen,
    /// The loop's internal `SIGCHLD` watcher for child processes.
    ChildWatch,
}

struct Action {
    owner: u64,
    kind: Kind,
    id: registry::SigId,
}

/// A signal's disposition before evloop first registered it, and the
/// registry's handler installed then (to reinstall after a restore).
struct Saved {
    original: libc::sigaction,
    installed: libc::sigaction,
}

// SAFETY: `libc::sigaction` is plain data (a handler address, a mask, flags
// and a restorer function pointer) with no thread affinity.
unsafe impl Send for Saved {}

#[derive(Default)]
struct Global {
    saved: HashMap<i32, Saved>,
    actions: HashMap<i32, Vec<Action>>,
}

/// Process-wide: which loop handles which signal. Only touched outside
/// signal context.
static GLOBAL: Mutex<Option<Global>> = Mutex::new(None);

fn with_global<R>(f: impl FnOnce(&mut Global) -> R) -> R {
    let mut guard = GLOBAL.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(Global::default))
}

fn query(sig: i32) -> io::Result<libc::sigaction> {
    // SAFETY: an all-zero sigaction is a valid value to be overwritten.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only reads the current one into `old`.
    sys::cvt(unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) })?;
    Ok(old)
}

fn set_action(sig: i32, action: &libc::sigaction) -> io::Result<()> {
    // SAFETY: `action` is a complete sigaction previously returned by the
    // kernel for this signal (the original disposition or the registry's
    // handler, whose code lives for the whole program).
    sys::cvt(unsafe { libc::sigaction(sig, action, std::ptr::null_mut()) })?;
    Ok(())
}

/// Registers a registry action writing `byte` to `fd` for `sig`.
fn install(
    g: &mut Global,
    sig: i32,
    fd: RawFd,
    byte: u8,
    owner: u64,
    kind: Kind,
) -> io::Result<()> {
    let write_byte = move || {
        let b = byte;
        // SAFETY: write(2) is async-signal-safe; `b` is a valid one-byte
        // buffer. `fd` stays open while this action is registered: the
        // owning loop unregisters it (and `unregister` waits for running
        // handlers to leave) before closing the pipe. A full pipe drops
        // the byte (documented).
        unsafe {
            libc::write(fd, (&b as *const u8).cast(), 1);
        }
    };
    let active = g.actions.get(&sig).is_some_and(|v| !v.is_empty());
    let id = match g.saved.get(&sig) {
        None => {
            let original = query(sig)?;
            // SAFETY: the action only calls write(2), which is async-signal-safe.
            let id = unsafe { registry::register(sig, write_byte) }?;
            let installed = query(sig)?;
            g.saved.insert(
                sig,
                Saved {
                    original,
                    installed,
                },
            );
            id
        }
        Some(saved) => {
            if !active {
                // We restored the original disposition when the last action
                // went away; the registry does not know, so put its handler back.
                set_action(sig, &saved.installed)?;
            }
            // SAFETY: as above.
            unsafe { registry::register(sig, write_byte) }?
        }
    };
    g.actions
        .entry(sig)
        .or_default()
        .push(Action { owner, kind, id });
    Ok(())
}

/// Unregisters the matching actions; restores the original disposition when
/// none is left for the signal. Returns whether one was found.
fn uninstall(g: &mut Global, sig: i32, owner: u64, kind: Option<Kind>) -> bool {
    let Some(list) = g.actions.get_mut(&sig) else {
        return false;
    };
    let mut found = false;
    list.retain(|a| {
        let hit = a.owner == owner && kind.is_none_or(|k| a.kind == k);
        if hit {
            // Returns once no signal handler is still running the action.
            registry::unregister(a.id);
            found = true;
        }
        !hit
    });
    if found && list.is_empty() {
        g.actions.remove(&sig);
        if let Some(saved) = g.saved.get(&sig) {
            // Nothing sensible to do if this fails; the registry's handler
            // then stays installed with no action (the signal is ignored).
            let _ = set_action(sig, &saved.original);
        }
    }
    found
}

/// Changes the kind of `owner`'s action for `sig` from `from` to `to`;
/// returns whether there was one.
fn retag(g: &mut Global, sig: i32, owner: u64, from: Kind, to: Kind) -> bool {
    let Some(list) = g.actions.get_mut(&sig) else {
        return false;
    };
    match list.iter_mut().find(|a| a.owner == owner && a.kind == from) {
        Some(a) => {
            a.kind = to;
            true
        }
        None => false,
    }
}

/// Checks that `sig` is a signal a handler or listener may be installed for.
fn check_catchable(sig: i32) -> Result<()> {
    if !validate(sig)? {
        return Err(Error::InvalidArgument(format!(
            "signal {sig} cannot be caught or handled"
        )));
    }
    Ok(())
}

/// The error for a failed `install` of `sig`.
fn install_error(sig: i32) -> impl FnOnce(io::Error) -> Error {
    move |e| match e.raw_os_error() {
        Some(libc::EINVAL) => {
            Error::InvalidArgument(format!("signal {sig} cannot be handled: {e}"))
        }
        _ => Error::from(e),
    }
}

/// Checks a signal number: `Ok(false)` for a valid but uncatchable one.
fn validate(sig: i32) -> Result<bool> {
    if sig <= 0 || sig >= NSIG {
        return Err(Error::InvalidArgument(format!(
            "invalid signal number {sig} (valid: 1..{NSIG})"
        )));
    }
    Ok(!registry::FORBIDDEN.contains(&sig))
}

/// The loop's signal state: its self-pipe, watcher and handlers.
pub(crate) struct SignalState {
    id: u64,
    lp: Weak<LoopInner>,
    /// The read end; the pending watch holds a clone, so it is closed only
    /// once the backend is done with it.
    read: RefCell<Option<Rc<OwnedFd>>>,
    write: RefCell<Option<OwnedFd>>,
    watch: RefCell<Option<CallbackOp>>,
    handlers: RefCell<HashMap<i32, Rc<dyn Fn()>>>,
    /// The awaiting listeners of each signal ([`Signals`]).
    listeners: RefCell<HashMap<i32, Slab<Listener>>>,
    child_hook: RefCell<Option<Rc<dyn Fn()>>>,
    closed: Cell<bool>,
}

impl fmt::Debug for SignalState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalState")
            .field("id", &self.id)
            .field(
                "signals",
                &self.handlers.borrow().keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl SignalState {
    fn new(lp: &EventLoop) -> io::Result<Self> {
        let (read, write) = sys::pipe_cloexec()?;
        sys::set_nonblocking(read.as_raw_fd(), true)?;
        sys::set_nonblocking(write.as_raw_fd(), true)?;
        Ok(SignalState {
            id: NEXT_STATE_ID.fetch_add(1, Ordering::Relaxed),
            lp: lp.downgrade(),
            read: RefCell::new(Some(Rc::new(read))),
            write: RefCell::new(Some(write)),
            watch: RefCell::new(None),
            handlers: RefCell::new(HashMap::new()),
            listeners: RefCell::new(HashMap::new()),
            child_hook: RefCell::new(None),
            closed: Cell::new(false),
        })
    }

    fn write_fd(&self) -> RawFd {
        self.write.borrow().as_ref().map_or(-1, |fd| fd.as_raw_fd())
    }

    /// Starts (or restarts) watching the read end.
    fn arm(&self, lp: &EventLoop) -> Result<()> {
        let Some(read) = self.read.borrow().clone() else {
            return Err(Error::Closed);
        };
        let fd = read.as_raw_fd();
        let weak = self.lp.clone();
        let callback = Box::new(move |result: io::Result<crate::driver::OpOutput>| {
            // Held by the operation (a cancelled one too) until the backend
            // is done with it.
            drop(read);
            let Some(inner) = weak.upgrade() else { return };
            let lp = EventLoop { inner };
            let Some(state) = lp.inner.extensions.get::<SignalState>() else {
                return;
            };
            state.watch.borrow_mut().take();
            if state.closed.get() {
                return;
            }
            if let Err(e) = result {
                lp.call_exception_handler(ExceptionContext {
                    message: format!("signal self-pipe watch failed: {e}"),
                    ..ExceptionContext::default()
                });
                return;
            }
            state.drain(&lp);
            if let Err(e) = state.arm(&lp) {
                if !lp.is_closed() {
                    lp.call_exception_handler(ExceptionContext {
                        message: format!("cannot re-arm the signal self-pipe: {e}"),
                        ..ExceptionContext::default()
                    });
                }
            }
        });
        // SAFETY: PollReadable points into no memory; the read end stays
        // open until `shutdown`, which cancels this operation first.
        let op = unsafe { lp.submit_with_callback(Op::PollReadable { fd }, callback) }?;
        *self.watch.borrow_mut() = Some(op);
        Ok(())
    }

    /// Reads every pending byte and schedules one handler call per byte.
    fn drain(&self, lp: &EventLoop) {
        let Some(fd) = self.read.borrow().as_ref().map(|fd| fd.as_raw_fd()) else {
            return;
        };
        let mut buf = [0u8; 256];
        loop {
            // SAFETY: `buf` is valid for `buf.len()` bytes of writes.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // WouldBlock: drained.
                return;
            }
            if n == 0 {
                return;
            }
            for &byte in &buf[..n as usize] {
                let callback = if byte == CHILD_EVENT {
                    self.child_hook.borrow().clone()
                } else {
                    self.handlers.borrow().get(&(byte as i32)).cloned()
                };
                if let Some(cb) = callback {
                    let _ = lp.call_soon(move || cb());
                }
                if byte != CHILD_EVENT {
                    self.notify(byte as i32);
                }
            }
        }
    }

    /// Counts one delivery of `sig` for each of its listeners and wakes them.
    fn notify(&self, sig: i32) {
        let wakers: Vec<Waker> = {
            let mut listeners = self.listeners.borrow_mut();
            let Some(slab) = listeners.get_mut(&sig) else {
                return;
            };
            slab.iter_mut()
                .filter_map(|(_, l)| {
                    l.pending = l.pending.saturating_add(1);
                    l.waker.take()
                })
                .collect()
        };
        for w in wakers {
            w.wake();
        }
    }

    /// Whether this loop has a listener for `sig`.
    fn listening(&self, sig: i32) -> bool {
        self.listeners
            .borrow()
            .get(&sig)
            .is_some_and(|s| !s.is_empty())
    }

    /// Removes every action of this loop and closes the pipe.
    fn shutdown(&self, lp: Option<&EventLoop>) {
        if self.closed.replace(true) {
            return;
        }
        if let (Some(lp), Some(op)) = (lp, self.watch.borrow_mut().take()) {
            lp.cancel_op(&op);
        }
        let signals: Vec<i32> = with_global(|g| {
            let mine: Vec<i32> = g
                .actions
                .iter()
                .filter(|(_, v)| v.iter().any(|a| a.owner == self.id))
                .map(|(sig, _)| *sig)
                .collect();
            for &sig in &mine {
                uninstall(g, sig, self.id, None);
            }
            mine
        });
        drop(signals);
        let handlers = std::mem::take(&mut *self.handlers.borrow_mut());
        let hook = self.child_hook.borrow_mut().take();
        drop((handlers, hook));
        // Listeners see the end (`recv` returns `None`).
        let listeners = std::mem::take(&mut *self.listeners.borrow_mut());
        for (_, slab) in listeners {
            for (_, listener) in slab {
                if let Some(w) = listener.waker {
                    w.wake();
                }
            }
        }
        // Every action writing to the pipe is gone: closing it is safe.
        let inner = lp.map(|lp| &*lp.inner);
        if let Some(fd) = self.read.borrow_mut().take() {
            // Closed when the last holder (a pending watch) lets go.
            sys::release(inner, fd.as_raw_fd());
        }
        drop(self.write.borrow_mut().take());
    }
}

impl Extension for SignalState {
    fn on_close(&self, lp: &EventLoop) {
        self.shutdown(Some(lp));
    }
}

impl Drop for SignalState {
    fn drop(&mut self) {
        // The loop was dropped without close(): its backend is already gone.
        self.shutdown(None);
    }
}

impl EventLoop {
    fn signal_state(&self) -> Result<Rc<SignalState>> {
        self.check_open()?;
        let state = self
            .inner
            .extensions
            .get_or_try_insert_with(|| SignalState::new(self).map_err(Error::from))?;
        if state.watch.borrow().is_none() {
            state.arm(self)?;
        }
        Ok(state)
    }

    /// Calls `callback` on the loop thread each time signal `sig` arrives,
    /// also when the loop is blocked waiting for I/O or timers.
    ///
    /// Errors: [`Error::InvalidArgument`] for a number outside `1..NSIG`,
    /// for `SIGKILL`/`SIGSTOP` (uncatchable) and `SIGILL`/`SIGFPE`/`SIGSEGV`
    /// (which `signal-hook-registry` refuses), and for a signal another loop
    /// handles; [`Error::Closed`] on a closed loop. See the module notes for
    /// the mechanism and its limits.
    ///
    /// ```
    /// use evloop::signal::SIGUSR2;
    /// let lp = evloop::new_event_loop().unwrap();
    /// let l = lp.clone();
    /// lp.add_signal_handler(SIGUSR2, move || l.stop()).unwrap();
    /// // SAFETY: raise only sends a signal to this process, which handles it.
    /// lp.call_soon(|| unsafe { libc::raise(libc::SIGUSR2); }).unwrap();
    /// lp.run_forever().unwrap(); // until the handler stops the loop
    /// assert!(lp.remove_signal_handler(SIGUSR2).unwrap());
    /// lp.close().unwrap();
    /// ```
    pub fn add_signal_handler<F: Fn() + 'static>(
        &self,
        sig: impl Into<SignalKind>,
        callback: F,
    ) -> Result<()> {
        let sig = sig.into().as_raw();
        check_catchable(sig)?;
        let state = self.signal_state()?;
        let fd = state.write_fd();
        with_global(|g| {
            let list = g.actions.get(&sig).map_or(&[][..], Vec::as_slice);
            if list
                .iter()
                .any(|a| a.kind == Kind::User && a.owner != state.id)
            {
                return Err(Error::InvalidArgument(format!(
                    "signal {sig} is already handled by another event loop"
                )));
            }
            if list
                .iter()
                .any(|a| a.kind == Kind::User && a.owner == state.id)
            {
                return Ok(());
            }
            // This loop's listeners already have an action: it now serves the handler too.
            if retag(g, sig, state.id, Kind::Listen, Kind::User) {
                return Ok(());
            }
            install(g, sig, fd, sig as u8, state.id, Kind::User).map_err(install_error(sig))
        })?;
        state.handlers.borrow_mut().insert(sig, Rc::new(callback));
        Ok(())
    }

    /// Removes this loop's handler for `sig` and restores the signal's
    /// original disposition. Returns whether a handler was registered.
    /// An invalid number is [`Error::InvalidArgument`]; an uncatchable one
    /// (`SIGKILL`) simply has no handler.
    /// Listeners of the signal ([`Signals`]) keep theirs: the disposition
    /// is restored only once they are gone too.
    pub fn remove_signal_handler(&self, sig: impl Into<SignalKind>) -> Result<bool> {
        let sig = sig.into().as_raw();
        if !validate(sig)? {
            return Ok(false);
        }
        let Some(state) = self.inner.extensions.get::<SignalState>() else {
            return Ok(false);
        };
        let listening = state.listening(sig);
        let removed = with_global(|g| {
            if listening {
                retag(g, sig, state.id, Kind::User, Kind::Listen)
            } else {
                uninstall(g, sig, state.id, Some(Kind::User))
            }
        });
        let handler = state.handlers.borrow_mut().remove(&sig);
        drop(handler);
        Ok(removed)
    }
}

/// Installs the loop's internal `SIGCHLD` watcher (the child-process
/// fallback when pidfds are unavailable): `hook` runs on the loop thread
/// after each `SIGCHLD`. Idempotent per loop.
pub(crate) fn watch_sigchld(lp: &EventLoop, hook: Rc<dyn Fn()>) -> Result<()> {
    let state = lp.signal_state()?;
    if state.child_hook.borrow().is_some() {
        return Ok(());
    }
    let fd = state.write_fd();
    with_global(|g| {
        install(
            g,
            libc::SIGCHLD,
            fd,
            CHILD_EVENT,
            state.id,
            Kind::ChildWatch,
        )
    })?;
    *state.child_hook.borrow_mut() = Some(hook);
    Ok(())
}

/// One awaiting listener: deliveries not yet received, and its waker.
#[derive(Default)]
struct Listener {
    pending: u64,
    waker: Option<Waker>,
}

impl EventLoop {
    /// Listens for `sig` on this loop: the returned [`Signals`] yields one
    /// item per delivery from now on (see the [module notes](self) on
    /// listeners). Like [`signal()`], on an explicit loop.
    ///
    /// Errors: as [`add_signal_handler`](Self::add_signal_handler), except
    /// that another loop handling the signal is no obstacle.
    pub fn signals(&self, sig: impl Into<SignalKind>) -> Result<Signals> {
        let kind = sig.into();
        let sig = kind.as_raw();
        check_catchable(sig)?;
        let state = self.signal_state()?;
        let served = state.handlers.borrow().contains_key(&sig) || state.listening(sig);
        if !served {
            let fd = state.write_fd();
            with_global(|g| install(g, sig, fd, sig as u8, state.id, Kind::Listen))
                .map_err(install_error(sig))?;
        }
        let key = state
            .listeners
            .borrow_mut()
            .entry(sig)
            .or_default()
            .insert(Listener::default());
        Ok(Signals {
            kind,
            state: Rc::downgrade(&state),
            key,
        })
    }
}

/// Listens for `kind` on the running loop (tokio's `signal(kind)`): one
/// item per delivery, from this call on.
///
/// Errors: [`Error::NoRunningLoop`] outside a loop; as
/// [`EventLoop::signals`] otherwise.
///
/// ```
/// use evloop::signal::{self, SIGUSR1};
/// evloop::run(async {
///     let mut usr1 = signal::signal(SIGUSR1).unwrap();
///     // Another process would send it (`kill -USR1 <pid>`); here we do.
///     // SAFETY: raise only sends a signal to this process, which listens for it.
///     unsafe { libc::raise(libc::SIGUSR1) };
///     // A server would loop: `while usr1.recv().await.is_some() { reload() }`.
///     assert!(usr1.recv().await.is_some());
/// })
/// .unwrap();
/// ```
pub fn signal(kind: impl Into<SignalKind>) -> Result<Signals> {
    crate::loop_core::get_running_loop()?.signals(kind)
}

/// Resolves on the next `SIGINT` (Ctrl-C) delivered to the process, on the
/// running loop (tokio's `signal::ctrl_c`).
///
/// The listener is installed by this call, before the first poll, and
/// removed when the returned future completes or is dropped: `SIGINT` then
/// has its previous disposition again (normally: terminate the process)
/// unless something else of this loop still handles it. Outside a loop the
/// future resolves to [`Error::NoRunningLoop`]; if the loop closes first,
/// to [`Error::Closed`].
///
/// A server that runs until Ctrl-C (here the process sends itself the
/// `SIGINT` a terminal would):
///
/// ```
/// use evloop::{sleep, Error};
/// use futures::future::{select, Either};
/// use std::time::Duration;
///
/// evloop::run(async {
///     let stop = evloop::signal::ctrl_c(); // listening from here on
///     let serve = async {
///         loop {
///             sleep(Duration::from_millis(5)).await; // serve ...
///         }
///     };
///     // SAFETY: raise only sends a signal to this process, which listens for it.
///     unsafe { libc::raise(libc::SIGINT) };
///     match select(std::pin::pin!(serve), stop).await {
///         Either::Right((res, _)) => res?, // Ctrl-C: shut down
///         Either::Left(_) => unreachable!("the server never returns"),
///     }
///     Ok::<_, Error>(())
/// })??;
/// # Ok::<_, evloop::Error>(())
/// ```
pub fn ctrl_c() -> CtrlC {
    let state = match signal(SIGINT) {
        Ok(signals) => CtrlCState::Listening(signals),
        Err(e) => CtrlCState::Failed(Some(e)),
    };
    CtrlC { state }
}

/// The deliveries of one signal to one loop, from [`signal()`] (whose
/// example awaits one with `recv`) or [`EventLoop::signals`]. Dropping it
/// stops listening (and restores the signal's disposition if nothing else
/// of this loop handles it).
///
/// As a `futures::Stream`:
///
/// ```
/// use evloop::signal::SIGUSR2;
/// use futures::StreamExt;
///
/// evloop::run(async {
///     let lp = evloop::get_running_loop()?;
///     let mut usr2 = lp.signals(SIGUSR2)?;
///     let mut deliveries = futures::stream::poll_fn(move |cx| usr2.poll_recv(cx));
///     // SAFETY: raise only sends a signal to this process, which listens for it.
///     unsafe { libc::raise(libc::SIGUSR2) };
///     assert_eq!(deliveries.next().await, Some(SIGUSR2));
///     Ok::<_, evloop::Error>(())
/// })??;
/// # Ok::<_, evloop::Error>(())
/// ```
///
/// [`recv`](Self::recv) takes one delivery at a time; deliveries not yet
/// received are counted, so none is merged by evloop (see the module
/// notes for what the kernel merges). For a `futures::Stream`, wrap
/// [`poll_recv`](Self::poll_recv): `futures::stream::poll_fn(move |cx|
/// signals.poll_recv(cx))`.
pub struct Signals {
    kind: SignalKind,
    state: Weak<SignalState>,
    key: usize,
}

impl fmt::Debug for Signals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signals")
            .field("kind", &self.kind)
            .field(
                "open",
                &self.state.upgrade().is_some_and(|s| !s.closed.get()),
            )
            .finish()
    }
}

impl Signals {
    /// The signal listened for.
    pub fn kind(&self) -> SignalKind {
        self.kind
    }

    /// Waits for the next delivery: `Some(kind)` once per delivery, `None`
    /// once the loop is closed (for good).
    pub async fn recv(&mut self) -> Option<SignalKind> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The poll form of [`recv`](Self::recv), for hand-written futures
    /// and streams: `Ready(Some(kind))` takes one delivery.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<SignalKind>> {
        let Some(state) = self.state.upgrade().filter(|s| !s.closed.get()) else {
            return Poll::Ready(None);
        };
        let mut listeners = state.listeners.borrow_mut();
        let Some(listener) = listeners
            .get_mut(&self.kind.as_raw())
            .and_then(|slab| slab.get_mut(self.key))
        else {
            return Poll::Ready(None);
        };
        if listener.pending > 0 {
            listener.pending -= 1;
            return Poll::Ready(Some(self.kind));
        }
        match &listener.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => listener.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        let Some(state) = self.state.upgrade() else {
            return;
        };
        if state.closed.get() {
            return;
        }
        let sig = self.kind.as_raw();
        let (removed, last) = {
            let mut listeners = state.listeners.borrow_mut();
            let Some(slab) = listeners.get_mut(&sig) else {
                return;
            };
            let removed = slab.try_remove(self.key);
            let last = slab.is_empty();
            if last {
                listeners.remove(&sig);
            }
            (removed, last)
        };
        drop(removed);
        if last && !state.handlers.borrow().contains_key(&sig) {
            with_global(|g| uninstall(g, sig, state.id, Some(Kind::Listen)));
        }
    }
}

/// The future returned by [`ctrl_c`] (see its example): `Ok(())` on the
/// next `SIGINT`.
#[must_use = "futures do nothing unless awaited; dropping it stops listening"]
pub struct CtrlC {
    state: CtrlCState,
}

enum CtrlCState {
    Listening(Signals),
    Failed(Option<Error>),
    Done,
}

impl fmt::Debug for CtrlC {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            CtrlCState::Listening(_) => "listening",
            CtrlCState::Failed(_) => "failed",
            CtrlCState::Done => "done",
        };
        f.debug_struct("CtrlC").field("state", &state).finish()
    }
}

impl Future for CtrlC {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let result = match &mut self.state {
            CtrlCState::Listening(signals) => match signals.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(_)) => Ok(()),
                Poll::Ready(None) => Err(Error::Closed),
            },
            CtrlCState::Failed(e) => Err(e.take().unwrap_or(Error::Closed)),
            CtrlCState::Done => Err(Error::InvalidArgument(
                "CtrlC polled after it completed".to_owned(),
            )),
        };
        // Stops listening at once: the disposition is restored.
        self.state = CtrlCState::Done;
        Poll::Ready(result)
    }
}
