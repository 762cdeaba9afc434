//! Section 14 — signals (SIG-*), and the signal part of section 18 (BAD-1).
//!
//! Every test here changes process-wide signal dispositions, so all of
//! them are exclusive.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use loop_api::signal::{self, SignalKind, NSIG, SIGINT, SIGUSR1, SIGUSR2};
use loop_api::{wait_for, Error, EventLoop};

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
            ctrl_c_resolves_on_a_raised_sigint,
            stream_yields_each_of_n_deliveries,
            dropping_the_stream_restores_the_default,
            two_listeners_and_a_handler_each_see_a_delivery,
            signal_constants_name_the_signals,
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

/// Sends `sig` to the calling thread (delivered before `raise` returns).
fn raise_here(sig: i32) {
    // SAFETY: raise(3) with a signal this test listens for.
    assert_eq!(unsafe { libc::raise(sig) }, 0);
}

/// `signal::ctrl_c()` installs its listener when called (a SIGINT raised
/// before the first poll is caught, not fatal), resolves on it, and then
/// restores the default disposition.
pub fn ctrl_c_resolves_on_a_raised_sigint(factory: impl Factory) {
    let lp = new_loop(factory);
    assert_eq!(disposition(libc::SIGINT), libc::SIG_DFL);
    let result = lp
        .run_until_complete(async {
            let ctrl_c = signal::ctrl_c();
            assert_ne!(disposition(libc::SIGINT), libc::SIG_DFL);
            raise_here(libc::SIGINT);
            wait_for(ctrl_c, Duration::from_secs(10)).await
        })
        .unwrap();
    assert!(matches!(result, Ok(Ok(()))), "{result:?}");
    assert_eq!(
        disposition(libc::SIGINT),
        libc::SIG_DFL,
        "the default disposition is back once ctrl_c() resolved"
    );
    lp.close().unwrap();
}

/// N deliveries raised before the first `recv` give N items (counted, not
/// merged), and no more.
pub fn stream_yields_each_of_n_deliveries(factory: impl Factory) {
    const N: usize = 5;
    let lp = new_loop(factory);
    let l = lp.clone();
    let (items, extra) = lp
        .run_until_complete(async move {
            let mut usr2 = l.signals(SIGUSR2).unwrap();
            for _ in 0..N {
                raise_here(libc::SIGUSR2);
            }
            let mut items = Vec::new();
            for _ in 0..N {
                items.push(wait_for(usr2.recv(), Duration::from_secs(10)).await);
            }
            let extra = wait_for(usr2.recv(), Duration::from_millis(100)).await;
            (items, extra)
        })
        .unwrap();
    for item in &items {
        assert!(matches!(item, Ok(Some(k)) if *k == SIGUSR2), "{items:?}");
    }
    assert!(matches!(extra, Err(Error::TimedOut)), "{extra:?}");
    lp.close().unwrap();
    assert_eq!(disposition(libc::SIGUSR2), libc::SIG_DFL);
}

/// The listener's action is installed while a `Signals` lives; dropping it
/// restores `SIG_DFL`. After close, `recv` ends with `None`.
pub fn dropping_the_stream_restores_the_default(factory: impl Factory) {
    let lp = new_loop(factory);
    assert_eq!(disposition(libc::SIGUSR1), libc::SIG_DFL);
    let usr1 = lp.signals(SIGUSR1).unwrap();
    let second = lp.signals(libc::SIGUSR1).unwrap();
    assert_eq!(second.kind(), SIGUSR1);
    assert_ne!(disposition(libc::SIGUSR1), libc::SIG_DFL);
    drop(usr1);
    assert_ne!(
        disposition(libc::SIGUSR1),
        libc::SIG_DFL,
        "one listener is left"
    );
    drop(second);
    assert_eq!(disposition(libc::SIGUSR1), libc::SIG_DFL);
    // A listener outlived by its loop: ended, not hung; close restored the default.
    let mut late = lp.signals(SIGUSR1).unwrap();
    lp.close().unwrap();
    assert_eq!(disposition(libc::SIGUSR1), libc::SIG_DFL);
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    assert_eq!(late.poll_recv(&mut cx), std::task::Poll::Ready(None));
    assert!(matches!(lp.signals(SIGUSR1), Err(Error::Closed)));
}

/// Two listeners and a handler on one loop: each sees the one delivery
/// exactly once (one action per loop and signal, not one per listener).
pub fn two_listeners_and_a_handler_each_see_a_delivery(factory: impl Factory) {
    let lp = new_loop(factory);
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    lp.add_signal_handler(SIGUSR1, move || c.set(c.get() + 1))
        .unwrap();
    let l = lp.clone();
    let (a, b, extra) = lp
        .run_until_complete(async move {
            let mut first = l.signals(SIGUSR1).unwrap();
            let mut second = signal::signal(SIGUSR1).unwrap();
            raise_here(libc::SIGUSR1);
            let a = wait_for(first.recv(), Duration::from_secs(10)).await;
            let b = wait_for(second.recv(), Duration::from_secs(10)).await;
            let extra = wait_for(first.recv(), Duration::from_millis(100)).await;
            (a, b, extra)
        })
        .unwrap();
    assert!(matches!(a, Ok(Some(k)) if k == SIGUSR1), "{a:?}");
    assert!(matches!(b, Ok(Some(k)) if k == SIGUSR1), "{b:?}");
    assert!(matches!(extra, Err(Error::TimedOut)), "{extra:?}");
    assert_eq!(calls.get(), 1, "the handler ran once");
    // The listeners are gone; the handler keeps the signal until removed.
    assert_ne!(disposition(libc::SIGUSR1), libc::SIG_DFL);
    assert!(lp.remove_signal_handler(SIGUSR1).unwrap());
    assert_eq!(disposition(libc::SIGUSR1), libc::SIG_DFL);
    lp.close().unwrap();
}

/// The exported constants are the platform's numbers, with their names;
/// a listener for an uncatchable or invalid signal is a typed error.
pub fn signal_constants_name_the_signals(factory: impl Factory) {
    assert_eq!(SIGINT.as_raw(), libc::SIGINT);
    assert_eq!(signal::SIGTERM.as_raw(), libc::SIGTERM);
    assert_eq!(signal::SIGHUP.as_raw(), libc::SIGHUP);
    assert_eq!(signal::SIGCHLD.as_raw(), libc::SIGCHLD);
    assert_eq!(signal::SIGWINCH.as_raw(), libc::SIGWINCH);
    assert_eq!(SignalKind::from(libc::SIGQUIT), signal::SIGQUIT);
    assert_eq!(format!("{:?}", signal::SIGPIPE), "SIGPIPE");
    assert_eq!(SignalKind::from(40).to_string(), "signal 40");
    let lp = new_loop(factory);
    for bad in [signal::SIGKILL, SignalKind::from(0), SignalKind::from(NSIG)] {
        assert!(
            matches!(lp.signals(bad), Err(Error::InvalidArgument(_))),
            "{bad:?}"
        );
    }
    let outside = poll_once(signal::ctrl_c());
    assert!(matches!(outside, Err(Error::NoRunningLoop)), "{outside:?}");
    lp.close().unwrap();
}

/// Polls `fut` once with a no-op waker (it must be ready at once).
fn poll_once<F: std::future::Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("not ready at once"),
    }
}
