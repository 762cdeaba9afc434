//! Section 1 — scheduling order (SCH-*).

use std::rc::Rc;

use crate::support::{new_loop, Log};
use crate::Factory;

#[doc(hidden)]
#[macro_export]
macro_rules! __scheduling_tests {
    ($f:expr) => {
        $crate::__section!($f, scheduling: [
            call_soon_runs_fifo_once,
            scheduled_during_batch_runs_next_iteration,
            cancelled_handle_never_runs,
            threadsafe_and_call_soon_share_fifo,
            ready_before_io_before_timers,
            callback_released_after_run_or_cancel,
        ]);
    };
}

/// SCH-1: FIFO order, each exactly once, with the captured arguments.
pub fn call_soon_runs_fifo_once(factory: impl Factory) {
    let lp = new_loop(factory);
    let log = Log::new();
    for i in 0..100 {
        let log = log.clone();
        lp.call_soon(move || log.push(i)).unwrap();
    }
    let l2 = lp.clone();
    lp.call_soon(move || l2.stop()).unwrap();
    lp.run_forever().unwrap();
    assert_eq!(log.get(), (0..100).collect::<Vec<_>>());
    lp.close().unwrap();
}

/// SCH-2: work scheduled during iteration N runs in N+1; the batch length is fixed at its start.
pub fn scheduled_during_batch_runs_next_iteration(factory: impl Factory) {
    let lp = new_loop(factory);
    let log = Log::new();
    let (l, lp2) = (log.clone(), lp.clone());
    lp.call_soon(move || {
        l.push("a");
        let l3 = l.clone();
        lp2.call_soon(move || l3.push("c")).unwrap();
    })
    .unwrap();
    let l = log.clone();
    lp.call_soon(move || l.push("b")).unwrap();
    // stop() before run_forever: exactly one iteration.
    lp.stop();
    lp.run_forever().unwrap();
    assert_eq!(log.get(), vec!["a", "b"]);
    lp.stop();
    lp.run_forever().unwrap();
    assert_eq!(log.get(), vec!["a", "b", "c"]);
    lp.close().unwrap();
}

/// SCH-3: a cancelled handle never runs; a handle that ran reports `cancelled() == false`.
pub fn cancelled_handle_never_runs(factory: impl Factory) {
    let lp = new_loop(factory);
    let log = Log::new();
    let l = log.clone();
    let h1 = lp.call_soon(move || l.push(1)).unwrap();
    let l = log.clone();
    let h2 = lp.call_soon(move || l.push(2)).unwrap();
    h1.cancel();
    assert!(h1.cancelled());
    lp.stop();
    lp.run_forever().unwrap();
    assert_eq!(log.get(), vec![2]);
    assert!(!h2.cancelled());
    assert!(h2.has_run());
    h2.cancel();
    assert!(
        !h2.cancelled(),
        "cancel after running must not mark it cancelled"
    );
    lp.close().unwrap();
}

/// SCH-5: `call_soon_threadsafe` and `call_soon` share one FIFO on the loop's thread.
pub fn threadsafe_and_call_soon_share_fifo(factory: impl Factory) {
    let lp = new_loop(factory);
    let log = Log::new();
    let order = Rc::new(std::cell::RefCell::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel::<&'static str>();
    let tx2 = tx.clone();
    lp.handle()
        .call_soon_threadsafe(move || tx.send("hello").unwrap())
        .unwrap();
    let l = log.clone();
    lp.call_soon(move || {
        tx2.send("world").unwrap();
        l.push(());
    })
    .unwrap();
    lp.stop();
    lp.run_forever().unwrap();
    order.borrow_mut().extend(rx.try_iter());
    assert_eq!(*order.borrow(), vec!["hello", "world"]);
    lp.close().unwrap();
}

/// SCH-6: in one iteration, callbacks already ready run before timers that came due.
pub fn ready_before_io_before_timers(factory: impl Factory) {
    let lp = new_loop(factory);
    let log = Log::new();
    let l = log.clone();
    lp.call_at(lp.time() - std::time::Duration::from_millis(1), move || {
        l.push("timer")
    })
    .unwrap();
    let l = log.clone();
    lp.call_soon(move || l.push("ready")).unwrap();
    lp.stop();
    lp.run_forever().unwrap();
    assert_eq!(log.get(), vec!["ready", "timer"]);
    lp.close().unwrap();
}

/// SCH-9: a callback's captured values are released once it ran or was cancelled.
pub fn callback_released_after_run_or_cancel(factory: impl Factory) {
    let lp = new_loop(factory);
    let ran = Rc::new(());
    let cancelled = Rc::new(());
    let timer_cancelled = Rc::new(());
    let (r, c, t) = (ran.clone(), cancelled.clone(), timer_cancelled.clone());
    lp.call_soon(move || drop(r)).unwrap();
    let h = lp.call_soon(move || drop(c)).unwrap();
    let th = lp
        .call_later(std::time::Duration::from_secs(60), move || drop(t))
        .unwrap();
    h.cancel();
    th.cancel();
    assert_eq!(
        Rc::strong_count(&cancelled),
        1,
        "cancel releases the closure at once"
    );
    assert_eq!(Rc::strong_count(&timer_cancelled), 1);
    lp.stop();
    lp.run_forever().unwrap();
    assert_eq!(Rc::strong_count(&ran), 1, "running releases the closure");
    // The handles are still alive, yet the closures are gone.
    drop((h, th));
    lp.close().unwrap();
}
