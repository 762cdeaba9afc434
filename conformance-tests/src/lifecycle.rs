//! Section 4 — run / stop / close lifecycle (LIF-*).

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use loop_api::{get_running_loop, sleep, yield_now, Error};

use crate::support::{new_loop, Log};
use crate::Factory;

#[doc(hidden)]
#[macro_export]
macro_rules! __lifecycle_tests {
    ($f:expr) => {
        $crate::__section!($f, lifecycle: [
            run_until_complete_returns_output,
            run_until_complete_future_completed_by_callback,
            nested_run_is_an_error,
            two_loops_on_one_thread_is_an_error,
            stop_before_complete_keeps_task_pending,
            stop_lets_batch_finish,
            stop_before_run_forever_runs_one_iteration,
            no_stale_stop_after_run,
            is_running_and_get_running_loop,
            close_running_loop_is_an_error,
            close_is_idempotent_and_drops_pending_work,
            scheduling_after_close_is_an_error,
            create_task_after_close_drops_future,
            run_helper_cancels_leftover_tasks,
        ]);
    };
}

/// LIF-1: the future's output comes back.
pub fn run_until_complete_returns_output(factory: impl Factory) {
    let lp = new_loop(factory);
    assert_eq!(lp.run_until_complete(async { "out" }).unwrap(), "out");
    let r: Result<u8, String> = lp
        .run_until_complete(async { Err("e".to_owned()) })
        .unwrap();
    assert_eq!(r.unwrap_err(), "e");
    lp.close().unwrap();
}

/// LIF-1: a future completed by a callback (not by the task itself) resolves run_until_complete.
pub fn run_until_complete_future_completed_by_callback(factory: impl Factory) {
    let lp = new_loop(factory);
    let flag = Rc::new(Cell::new(false));
    let f = flag.clone();
    lp.call_later(Duration::from_millis(5), move || f.set(true))
        .unwrap();
    let f = flag.clone();
    lp.run_until_complete(async move {
        while !f.get() {
            sleep(Duration::from_millis(1)).await;
        }
    })
    .unwrap();
    lp.close().unwrap();
}

/// LIF-2: running a loop from inside itself is an error, not a deadlock.
pub fn nested_run_is_an_error(factory: impl Factory) {
    let lp = new_loop(factory);
    let l = lp.clone();
    let (a, b) = lp
        .run_until_complete(async move {
            let a = l.run_until_complete(async {});
            let b = l.run_forever();
            (a, b)
        })
        .unwrap();
    assert!(matches!(a, Err(Error::AlreadyRunning)));
    assert!(matches!(b, Err(Error::AlreadyRunning)));
    lp.close().unwrap();
}

/// LIF-2: running a second loop while one runs on this thread is an error.
pub fn two_loops_on_one_thread_is_an_error(factory: impl Factory) {
    let lp = new_loop(factory);
    let other = new_loop(factory);
    let o = other.clone();
    let r = lp
        .run_until_complete(async move { o.run_until_complete(async { 1 }) })
        .unwrap();
    assert!(matches!(r, Err(Error::AnotherLoopRunning)));
    // Once the first loop is idle, the second one runs fine.
    assert_eq!(other.run_until_complete(async { 2 }).unwrap(), 2);
    other.close().unwrap();
    lp.close().unwrap();
}

/// LIF-3: stop() before the future is done → StoppedBeforeComplete; a later run resumes the task.
pub fn stop_before_complete_keeps_task_pending(factory: impl Factory) {
    let lp = new_loop(factory);
    let done = Rc::new(Cell::new(false));
    let (d, l) = (done.clone(), lp.clone());
    let r = lp.run_until_complete(async move {
        l.stop();
        sleep(Duration::from_millis(10)).await;
        d.set(true);
    });
    assert!(matches!(r, Err(Error::StoppedBeforeComplete)));
    assert!(!done.get());
    assert_eq!(lp.task_count(), 1, "the task stays pending");
    lp.run_until_complete(sleep(Duration::from_millis(50)))
        .unwrap();
    assert!(done.get(), "a later run resumed the task");
    lp.close().unwrap();
}

/// LIF-4: stop() lets the current batch finish; what it scheduled runs on the next run.
pub fn stop_lets_batch_finish(factory: impl Factory) {
    let lp = new_loop(factory);
    let log = Log::new();
    let (l, lg) = (lp.clone(), log.clone());
    lp.call_soon(move || {
        lg.push(1);
        l.stop();
        let lg2 = lg.clone();
        l.call_soon(move || lg2.push(3)).unwrap();
    })
    .unwrap();
    let lg = log.clone();
    lp.call_soon(move || lg.push(2)).unwrap();
    lp.run_forever().unwrap();
    assert_eq!(log.get(), vec![1, 2]);
    lp.stop();
    lp.run_forever().unwrap();
    assert_eq!(log.get(), vec![1, 2, 3]);
    lp.close().unwrap();
}

/// LIF-5: stop() before run_forever → exactly one iteration with no blocking.
pub fn stop_before_run_forever_runs_one_iteration(factory: impl Factory) {
    let lp = new_loop(factory);
    let log = Log::new();
    let lg = log.clone();
    lp.call_later(Duration::from_secs(60), || {}).unwrap();
    lp.call_soon(move || lg.push("ran")).unwrap();
    lp.stop();
    let start = std::time::Instant::now();
    lp.run_forever().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "did not block on the 60 s timer"
    );
    assert_eq!(log.get(), vec!["ran"]);
    assert!(!lp.is_running());
    lp.close().unwrap();
}

/// LIF-7: no stale stop survives a run: the next run_forever runs until its own stop.
pub fn no_stale_stop_after_run(factory: impl Factory) {
    let lp = new_loop(factory);
    let l = lp.clone();
    let _ = lp.run_until_complete(async move {
        l.stop();
    });
    let count = Rc::new(Cell::new(0));
    let (c, l) = (count.clone(), lp.clone());
    lp.call_later(Duration::from_millis(20), move || {
        c.set(c.get() + 1);
        l.stop();
    })
    .unwrap();
    lp.run_forever().unwrap();
    assert_eq!(count.get(), 1, "run_forever ran until its own stop");
    assert_eq!(lp.run_until_complete(async { 3 }).unwrap(), 3);
    lp.close().unwrap();
}

/// LIF-8: is_running() inside callbacks; get_running_loop() inside and outside.
pub fn is_running_and_get_running_loop(factory: impl Factory) {
    let lp = new_loop(factory);
    assert!(!lp.is_running());
    assert!(matches!(get_running_loop(), Err(Error::NoRunningLoop)));
    let seen = Rc::new(Cell::new(false));
    let (s, l) = (seen.clone(), lp.clone());
    lp.call_soon(move || {
        assert!(l.is_running());
        let running = get_running_loop().unwrap();
        assert_eq!(running.backend_name(), l.backend_name());
        s.set(true);
        l.stop();
    })
    .unwrap();
    lp.run_forever().unwrap();
    assert!(seen.get());
    assert!(!lp.is_running());
    assert!(get_running_loop().is_err());
    lp.close().unwrap();
}

/// LIF-9: close() on a running loop is an error.
pub fn close_running_loop_is_an_error(factory: impl Factory) {
    let lp = new_loop(factory);
    let l = lp.clone();
    let r = lp.run_until_complete(async move { l.close() }).unwrap();
    assert!(matches!(r, Err(Error::CloseWhileRunning)));
    assert!(!lp.is_closed());
    lp.close().unwrap();
}

/// LIF-9: close() is idempotent and drops pending callbacks and timers unrun.
pub fn close_is_idempotent_and_drops_pending_work(factory: impl Factory) {
    let lp = new_loop(factory);
    let token = Rc::new(());
    let (t1, t2) = (token.clone(), token.clone());
    let ran = Rc::new(Cell::new(false));
    let (r1, r2) = (ran.clone(), ran.clone());
    lp.call_soon(move || {
        drop(t1);
        r1.set(true)
    })
    .unwrap();
    lp.call_later(Duration::from_millis(1), move || {
        drop(t2);
        r2.set(true)
    })
    .unwrap();
    lp.close().unwrap();
    assert!(lp.is_closed());
    lp.close().unwrap();
    assert!(!ran.get());
    assert_eq!(Rc::strong_count(&token), 1, "pending closures were dropped");
}

/// LIF-10: after close(), scheduling and running return `Closed`; nothing panics.
pub fn scheduling_after_close_is_an_error(factory: impl Factory) {
    let lp = new_loop(factory);
    lp.close().unwrap();
    assert!(matches!(lp.call_soon(|| {}), Err(Error::Closed)));
    assert!(matches!(lp.call_soon_threadsafe(|| {}), Err(Error::Closed)));
    assert!(matches!(
        lp.handle().call_soon_threadsafe(|| {}),
        Err(Error::Closed)
    ));
    assert!(matches!(
        lp.call_later(Duration::ZERO, || {}),
        Err(Error::Closed)
    ));
    assert!(matches!(lp.call_at(lp.time(), || {}), Err(Error::Closed)));
    assert!(matches!(lp.run_forever(), Err(Error::Closed)));
    assert!(matches!(
        lp.run_until_complete(async {}),
        Err(Error::Closed)
    ));
    assert!(lp.handle().stop().is_err());
    assert!(lp.handle().is_closed());
}

/// LIF-11: create_task on a closed loop errors and drops the future right away.
pub fn create_task_after_close_drops_future(factory: impl Factory) {
    let lp = new_loop(factory);
    lp.close().unwrap();
    let token = Rc::new(());
    let t = token.clone();
    let r = lp.create_task(async move {
        let _t = t;
    });
    assert!(matches!(r, Err(Error::Closed)));
    assert_eq!(Rc::strong_count(&token), 1);
}

/// LIF-12: the run helper returns the output, cancels leftover tasks and closes the loop.
pub fn run_helper_cancels_leftover_tasks(factory: impl Factory) {
    let finished_leftover = Rc::new(Cell::new(false));
    let dropped = Rc::new(Cell::new(false));
    let (f, d) = (finished_leftover.clone(), dropped.clone());
    let captured = Rc::new(std::cell::RefCell::new(None));
    let cap = captured.clone();
    let out = loop_api::run_with(factory, async move {
        let lp = get_running_loop().unwrap();
        *cap.borrow_mut() = Some(lp.clone());
        struct OnDrop(Rc<Cell<bool>>);
        impl Drop for OnDrop {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        lp.create_task(async move {
            let _guard = OnDrop(d);
            sleep(Duration::from_secs(3600)).await;
            f.set(true);
        })
        .unwrap()
        .detach();
        yield_now().await;
        "main"
    })
    .unwrap();
    assert_eq!(out, "main");
    assert!(!finished_leftover.get());
    assert!(dropped.get(), "leftover task was cancelled");
    let lp = captured.borrow_mut().take().unwrap();
    assert!(lp.is_closed());
    // Called from inside a running loop, run_with is an error.
    let lp2 = new_loop(factory);
    let r = lp2
        .run_until_complete(async move { loop_api::run_with(factory, async { 1 }).map(|_| ()) })
        .unwrap();
    assert!(matches!(r, Err(Error::AnotherLoopRunning)));
    lp2.close().unwrap();
}
