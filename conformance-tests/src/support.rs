//! Helpers shared by the conformance sections.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use loop_api::{EventLoop, ExceptionContext};

use crate::Factory;

/// A fresh loop from the factory; panics (failing the test) if the backend cannot make one.
pub fn new_loop(factory: impl Factory) -> EventLoop {
    match factory() {
        Ok(lp) => lp,
        Err(e) => panic!("the backend could not create a loop: {e}"),
    }
}

/// A shared, clonable log that callbacks append to.
#[derive(Debug, Clone, Default)]
pub struct Log<T>(Rc<RefCell<Vec<T>>>);

impl<T: Clone> Log<T> {
    /// An empty log.
    pub fn new() -> Self {
        Log(Rc::new(RefCell::new(Vec::new())))
    }
    /// Appends a value.
    pub fn push(&self, v: T) {
        self.0.borrow_mut().push(v);
    }
    /// A copy of everything logged so far.
    pub fn get(&self) -> Vec<T> {
        self.0.borrow().clone()
    }
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }
    /// `true` if nothing was logged.
    pub fn is_empty(&self) -> bool {
        self.0.borrow().is_empty()
    }
}

/// Installs an exception handler that records every context; returns the record.
pub fn capture_exceptions(lp: &EventLoop) -> Log<ExceptionContext> {
    let log = Log::new();
    let sink = log.clone();
    lp.set_exception_handler(Some(Rc::new(
        move |_lp: &EventLoop, ctx: &ExceptionContext| sink.push(ctx.clone()),
    )));
    log
}

/// Number of open descriptors of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

static PROCESS_WIDE: RwLock<()> = RwLock::new(());

/// Taken by every ordinary test: they run in parallel with each other.
pub fn shared() -> RwLockReadGuard<'static, ()> {
    PROCESS_WIDE.read().unwrap_or_else(|e| e.into_inner())
}

/// Taken by tests that touch process-wide state (the policy, signals, child
/// processes, the descriptor count): they run alone, so parallel tests
/// neither disturb them nor are disturbed.
pub fn exclusive() -> RwLockWriteGuard<'static, ()> {
    PROCESS_WIDE.write().unwrap_or_else(|e| e.into_inner())
}

/// The panic payload of an allowed skip (see [`skip`]).
#[derive(Debug)]
pub struct Skip(pub String);

/// Ends the current conformance test early as skipped, printing `reason`.
///
/// The only permitted use is a backend that cannot run on this host at all
/// (io_uring unavailable); the backend's factory decides that, and CI
/// forbids it. It unwinds with a [`Skip`] payload, without the panic hook,
/// to the test wrapper ([`run_or_skip`]), which returns normally.
pub fn skip(reason: impl Into<String>) -> ! {
    std::panic::resume_unwind(Box::new(Skip(reason.into())))
}

/// Runs one conformance test. A [`skip`] ends it as passed with a notice;
/// every other panic — a failed assertion, an unexpected error — propagates
/// unchanged, so the test fails as usual.
pub fn run_or_skip(test: impl FnOnce()) {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(test)) {
        Ok(()) => {}
        Err(payload) => match payload.downcast::<Skip>() {
            Ok(skip) => eprintln!("notice: test skipped: {}", skip.0),
            Err(payload) => std::panic::resume_unwind(payload),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::{run_or_skip, skip};

    #[test]
    fn a_skip_ends_the_test_as_passed() {
        let mut after = false;
        run_or_skip(|| {
            skip("no io_uring here");
            #[allow(unreachable_code)]
            {
                after = true;
            }
        });
        assert!(!after);
    }

    #[test]
    fn any_other_panic_still_fails() {
        let result = std::panic::catch_unwind(|| run_or_skip(|| panic!("real failure")));
        let payload = result.unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"real failure"));
    }
}
