//! Section 1 — scheduling order (SCH-*).

use std::cell::Cell;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use loop_api::EventLoop;

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
            busy_chain_does_not_starve_io,
            busy_chain_does_not_delay_timers,
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

/// How long a busy chain may run before a test gives up on the event it waits for.
const CHAIN_LIMIT: Duration = Duration::from_secs(5);

/// Starts a `call_soon` chain that keeps the ready queue non-empty: every
/// step schedules the next and counts itself in `steps`. It ends when
/// `done` is set or after [`CHAIN_LIMIT`], then stops the loop.
fn busy_chain(lp: &EventLoop, steps: Rc<Cell<u64>>, done: Rc<Cell<bool>>) {
    fn step(lp: &EventLoop, steps: Rc<Cell<u64>>, done: Rc<Cell<bool>>, limit: Instant) {
        steps.set(steps.get() + 1);
        if done.get() || (steps.get().is_multiple_of(1024) && Instant::now() >= limit) {
            lp.stop();
            return;
        }
        let next = lp.clone();
        lp.call_soon(move || step(&next, steps, done, limit))
            .unwrap();
    }
    let limit = Instant::now() + CHAIN_LIMIT;
    let next = lp.clone();
    lp.call_soon(move || step(&next, steps, done, limit))
        .unwrap();
}

/// Our own rule (asyncio polls for I/O on every iteration; evloop, like
/// tokio, polls less often while ready work keeps coming): a `call_soon`
/// chain that never lets the ready queue empty does not starve I/O. Data
/// written by another thread while the chain runs reaches its reader
/// promptly, and the chain is still running then.
pub fn busy_chain_does_not_starve_io(factory: impl Factory) {
    let lp = new_loop(factory);
    let (mut a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let steps = Rc::new(Cell::new(0u64));
    let done = Rc::new(Cell::new(false));
    let seen = Rc::new(Cell::new(None::<(Instant, u64)>));
    let (s, d, fd) = (seen.clone(), done.clone(), a.as_raw_fd());
    let st = steps.clone();
    lp.add_reader(fd, move || {
        let mut byte = [0u8; 1];
        if s.get().is_none() && a.read(&mut byte).is_ok() {
            s.set(Some((Instant::now(), st.get())));
            d.set(true);
        }
    })
    .unwrap();
    busy_chain(&lp, steps.clone(), done.clone());
    let (sent_tx, sent_rx) = std::sync::mpsc::channel();
    let writer = std::thread::spawn(move || {
        let mut b = b;
        std::thread::sleep(Duration::from_millis(50));
        let sent = Instant::now();
        b.write_all(b"x").unwrap();
        sent_tx.send(sent).unwrap();
        b
    });
    lp.run_forever().unwrap();
    let _b = writer.join().unwrap();
    let sent = sent_rx.recv().unwrap();
    let (read_at, steps_then) = seen
        .get()
        .expect("the reader never ran while the chain was busy: I/O starved");
    let delay = read_at.saturating_duration_since(sent);
    assert!(
        delay < Duration::from_millis(500),
        "the reader ran {delay:?} after the write"
    );
    assert!(steps_then > 0, "the chain ran before the data arrived");
    assert!(lp.remove_reader(fd));
    lp.close().unwrap();
}

/// A timer comes due while a `call_soon` chain keeps the loop busy: it runs
/// on time (never early, and promptly), interleaved with the chain.
pub fn busy_chain_does_not_delay_timers(factory: impl Factory) {
    let lp = new_loop(factory);
    let steps = Rc::new(Cell::new(0u64));
    let done = Rc::new(Cell::new(false));
    let fired = Rc::new(Cell::new(None::<(Instant, u64)>));
    let (f, d, st) = (fired.clone(), done.clone(), steps.clone());
    let delay = Duration::from_millis(20);
    let handle = lp
        .call_later(delay, move || {
            f.set(Some((Instant::now(), st.get())));
            d.set(true);
        })
        .unwrap();
    busy_chain(&lp, steps.clone(), done.clone());
    lp.run_forever().unwrap();
    let (at, steps_then) = fired
        .get()
        .expect("the timer never ran while the chain was busy");
    assert!(at >= handle.when(), "the timer ran early");
    let late = at - handle.when();
    assert!(
        late < Duration::from_millis(500),
        "the timer ran {late:?} late"
    );
    assert!(steps_then > 0, "the chain ran before the timer");
    lp.close().unwrap();
}
