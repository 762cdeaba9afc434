//! Section 14 — signals (SIG-*), and the signal part of section 18 (BAD-1).
//!
//! Every test here changes process-wide signal dispositions, so all of
//! them are exclusive.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use loop_api::signal::NSIG;
use loop_api::{Error, EventLoop};

use crate::support::{new_loop, Log};
use crate::Factory;

#[doc(hidden)]
#[macro_export]
macro_rules! __signals_tests {
    ($f:expr) => {
        $crate::__section!($f, signals: [] exclusive [
            handler_runs_on_loop_thread_and_remove_restores_default,
            signal_wakes_a_blocked_loop,
            two_deliveries_give_two_calls,
            handler_may_remove_itself_and_others,
            second_add_replaces_handler,
            close_removes_handlers,
            loop_without_handlers_changes_nothing,
            signal_belongs_to_one_loop_at_a_time,
            bad_signal_numbers_are_typed_errors,
            handlers_work_on_a_loop_in_any_thread,
        ]);
    };
}

/// The current handler address of `sig` (`SIG_DFL` is 0, `SIG_IGN` is 1).
fn disposition(sig: i32) -> usize {
    // SAFETY: zeroed sigaction is a valid out-parameter; a null new action only queries.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(sig, std::ptr::null(), &mut old), 0);
        old.sa_sigaction
    }
}

/// Sends `sig` to this process.
fn raise_in_process(sig: i32) {
    // SAFETY: kill(2) on our own pid with a handled or harmless signal.
    assert_eq!(unsafe { libc::kill(libc::getpid(), sig) }, 0);
}

/// Runs the loop until `done()` or 10 s (a failure) have passed.
fn run_until(lp: &EventLoop, done: impl Fn() -> bool + 'static) {
    let lp2 = lp.clone();
    lp.run_until_complete(async move {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for the signal handler"
            );
            lp2.sleep(Duration::from_millis(2)).await;
        }
    })
    .unwrap();
}

/// SIG-1: the handler runs on the loop thread in a later iteration; removal
/// returns true, restores `SIG_DFL`; a second removal returns false.
pub fn handler_runs_on_loop_thread_and_remove_restores_default(factory: impl Factory) {
    let lp = new_loop(factory);
    let threads = Log::new();
    let t = threads.clone();
    lp.add_signal_handler(libc::SIGINT, move || t.push(std::thread::current().id()))
        .unwrap();
    assert_ne!(disposition(libc::SIGINT), libc::SIG_DFL);
    raise_in_process(libc::SIGINT);
    assert!(threads.is_empty(), "the handler must not run inside kill()");
    let t = threads.clone();
    run_until(&lp, move || !t.is_empty());
    assert_eq!(threads.get(), vec![std::thread::current().id()]);
    assert!(lp.remove_signal_handler(libc::SIGINT).unwrap());
    assert_eq!(
        disposition(libc::SIGINT),
        libc::SIG_DFL,
        "default disposition restored"
    );
    assert!(!lp.remove_signal_handler(libc::SIGINT).unwrap());
    lp.close().unwrap();
}

/// SIG-2: a signal arriving while the loop blocks (only a 60 s timer
/// pending) wakes it; the handler runs once.
pub fn signal_wakes_a_blocked_loop(factory: impl Factory) {
    let lp = new_loop(factory);
    let calls = Rc::new(Cell::new(0));
    let (c, lp2) = (calls.clone(), lp.clone());
    lp.add_signal_handler(libc::SIGUSR1, move || {
        c.set(c.get() + 1);
        lp2.stop();
    })
    .unwrap();
    let timer = lp.call_later(Duration::from_secs(60), || {}).unwrap();
    let sender = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(50));
        raise_in_process(libc::SIGUSR1);
    });
    let t0 = Instant::now();
    lp.run_forever().unwrap();
    sender.join().unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "the loop slept through the signal"
    );
    assert_eq!(calls.get(), 1);
    timer.cancel();
    assert!(lp.remove_signal_handler(libc::SIGUSR1).unwrap());
    lp.close().unwrap();
}

/// SIG-3: two deliveries 100 ms apart give two calls.
pub fn two_deliveries_give_two_calls(factory: impl Factory) {
    let lp = new_loop(factory);
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    lp.add_signal_handler(libc::SIGUSR2, move || c.set(c.get() + 1))
        .unwrap();
    let sender = std::thread::spawn(|| {
        raise_in_process(libc::SIGUSR2);
        std::thread::sleep(Duration::from_millis(100));
        raise_in_process(libc::SIGUSR2);
    });
    let c = calls.clone();
    run_until(&lp, move || c.get() >= 2);
    sender.join().unwrap();
    // A little longer: no extra call appears.
    lp.run_until_complete(lp.sleep(Duration::from_millis(20)))
        .unwrap();
    assert_eq!(calls.get(), 2);
    lp.close().unwrap();
}

/// SIG-3: a handler may remove itself and another handler; later signals
/// get the default action (for SIGWINCH and SIGURG: ignored).
pub fn handler_may_remove_itself_and_others(factory: impl Factory) {
    let lp = new_loop(factory);
    let log = Log::new();
    let (l, lp2) = (log.clone(), lp.clone());
    lp.add_signal_handler(libc::SIGWINCH, move || {
        l.push("winch");
        assert!(lp2.remove_signal_handler(libc::SIGWINCH).unwrap());
        assert!(lp2.remove_signal_handler(libc::SIGURG).unwrap());
    })
    .unwrap();
    let l = log.clone();
    lp.add_signal_handler(libc::SIGURG, move || l.push("urg"))
        .unwrap();
    raise_in_process(libc::SIGWINCH);
    let l = log.clone();
    run_until(&lp, move || !l.is_empty());
    assert_eq!(disposition(libc::SIGWINCH), libc::SIG_DFL);
    assert_eq!(disposition(libc::SIGURG), libc::SIG_DFL);
    raise_in_process(libc::SIGWINCH);
    raise_in_process(libc::SIGURG);
    lp.run_until_complete(lp.sleep(Duration::from_millis(50)))
        .unwrap();
    assert_eq!(log.get(), vec!["winch"]);
    lp.close().unwrap();
}

/// A second `add_signal_handler` for the same signal replaces the first.
pub fn second_add_replaces_handler(factory: impl Factory) {
    let lp = new_loop(factory);
    let log = Log::new();
    let l = log.clone();
    lp.add_signal_handler(libc::SIGUSR1, move || l.push("old"))
        .unwrap();
    let l = log.clone();
    lp.add_signal_handler(libc::SIGUSR1, move || l.push("new"))
        .unwrap();
    raise_in_process(libc::SIGUSR1);
    let l = log.clone();
    run_until(&lp, move || !l.is_empty());
    lp.run_until_complete(lp.sleep(Duration::from_millis(20)))
        .unwrap();
    assert_eq!(log.get(), vec!["new"]);
    assert!(lp.remove_signal_handler(libc::SIGUSR1).unwrap());
    lp.close().unwrap();
}

/// SIG-4: `close()` removes the loop's handlers and restores the
/// dispositions; the signal is free for another loop.
pub fn close_removes_handlers(factory: impl Factory) {
    let lp = new_loop(factory);
    lp.add_signal_handler(libc::SIGUSR1, || {}).unwrap();
    lp.add_signal_handler(libc::SIGUSR2, || {}).unwrap();
    lp.close().unwrap();
    assert_eq!(disposition(libc::SIGUSR1), libc::SIG_DFL);
    assert_eq!(disposition(libc::SIGUSR2), libc::SIG_DFL);
    assert!(!lp.remove_signal_handler(libc::SIGUSR1).unwrap());
    assert!(matches!(
        lp.add_signal_handler(libc::SIGUSR1, || {}),
        Err(Error::Closed)
    ));
    let other = new_loop(factory);
    other.add_signal_handler(libc::SIGUSR1, || {}).unwrap();
    other.close().unwrap();
    assert_eq!(disposition(libc::SIGUSR1), libc::SIG_DFL);
}

/// SIG-4: a loop that never added a handler leaves every disposition as it was.
pub fn loop_without_handlers_changes_nothing(factory: impl Factory) {
    let sigs = [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGUSR1,
        libc::SIGCHLD,
        libc::SIGPIPE,
    ];
    let before: Vec<usize> = sigs.iter().map(|&s| disposition(s)).collect();
    let lp = new_loop(factory);
    lp.call_soon(|| {}).unwrap();
    lp.stop();
    lp.run_forever().unwrap();
    assert!(!lp.remove_signal_handler(libc::SIGTERM).unwrap());
    lp.close().unwrap();
    let after: Vec<usize> = sigs.iter().map(|&s| disposition(s)).collect();
    assert_eq!(before, after);
}

/// A signal is handled by at most one loop at a time; once the owner
/// removes its handler (or closes), another loop may take it.
pub fn signal_belongs_to_one_loop_at_a_time(factory: impl Factory) {
    let a = new_loop(factory);
    let b = new_loop(factory);
    a.add_signal_handler(libc::SIGUSR1, || {}).unwrap();
    assert!(matches!(
        b.add_signal_handler(libc::SIGUSR1, || {}),
        Err(Error::InvalidArgument(_))
    ));
    assert!(
        !b.remove_signal_handler(libc::SIGUSR1).unwrap(),
        "b has no handler to remove"
    );
    assert_ne!(
        disposition(libc::SIGUSR1),
        libc::SIG_DFL,
        "a's handler is still installed"
    );
    assert!(a.remove_signal_handler(libc::SIGUSR1).unwrap());
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    b.add_signal_handler(libc::SIGUSR1, move || c.set(c.get() + 1))
        .unwrap();
    raise_in_process(libc::SIGUSR1);
    let c = calls.clone();
    run_until(&b, move || c.get() == 1);
    a.close().unwrap();
    b.close().unwrap();
    assert_eq!(disposition(libc::SIGUSR1), libc::SIG_DFL);
}

/// BAD-1: 0, -1, NSIG and NSIG+1 are `InvalidArgument` on add and remove;
/// SIGKILL and SIGSTOP cannot be added (`InvalidArgument`) and removing
/// them returns false.
pub fn bad_signal_numbers_are_typed_errors(factory: impl Factory) {
    let lp = new_loop(factory);
    for sig in [0, -1, NSIG, NSIG + 1] {
        assert!(
            matches!(
                lp.add_signal_handler(sig, || {}),
                Err(Error::InvalidArgument(_))
            ),
            "add({sig})"
        );
        assert!(
            matches!(
                lp.remove_signal_handler(sig),
                Err(Error::InvalidArgument(_))
            ),
            "remove({sig})"
        );
    }
    for sig in [libc::SIGKILL, libc::SIGSTOP] {
        let err = lp.add_signal_handler(sig, || {}).unwrap_err();
        assert!(
            matches!(err, Error::InvalidArgument(_)),
            "add({sig}): {err:?}"
        );
        assert!(!lp.remove_signal_handler(sig).unwrap());
    }
    lp.close().unwrap();
}

/// Our rule (asyncio requires the main thread): a loop on any thread may
/// handle signals; the handler runs on that loop's thread.
pub fn handlers_work_on_a_loop_in_any_thread(factory: impl Factory) {
    let loop_thread = std::thread::spawn(move || {
        let lp = new_loop(factory);
        let threads = Log::new();
        let t = threads.clone();
        lp.add_signal_handler(libc::SIGUSR2, move || t.push(std::thread::current().id()))
            .unwrap();
        raise_in_process(libc::SIGUSR2);
        let t = threads.clone();
        run_until(&lp, move || !t.is_empty());
        lp.close().unwrap();
        assert_eq!(disposition(libc::SIGUSR2), libc::SIG_DFL);
        (threads.get(), std::thread::current().id())
    });
    let (calls, id) = loop_thread.join().unwrap();
    assert_eq!(calls, vec![id]);
}
