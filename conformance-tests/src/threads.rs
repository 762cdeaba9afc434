//! Section 5 — thread safety (THR-*).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use loop_api::Error;

use crate::support::new_loop;
use crate::Factory;

#[doc(hidden)]
#[macro_export]
macro_rules! __threads_tests {
    ($f:expr) => {
        $crate::__section!($f, threads: [
            threadsafe_call_wakes_blocked_loop,
            threadsafe_stop_wakes_idle_loop,
            many_threads_many_calls_all_run,
            threadsafe_racing_close_is_an_error_not_ub,
            loop_handle_is_send_and_sync,
        ]);
    };
}

/// THR-1: a call from another thread wakes a loop blocked with only a 60 s timer pending.
pub fn threadsafe_call_wakes_blocked_loop(factory: impl Factory) {
    let lp = new_loop(factory);
    lp.call_later(Duration::from_secs(60), || {}).unwrap();
    let handle = lp.handle();
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        let sent = Instant::now();
        let h2 = handle.clone();
        handle
            .call_soon_threadsafe(move || {
                tx.send(sent.elapsed()).unwrap();
                h2.stop().unwrap();
            })
            .unwrap();
    });
    let start = Instant::now();
    lp.run_forever().unwrap();
    t.join().unwrap();
    let latency = rx.recv().unwrap();
    assert!(latency < Duration::from_secs(1), "woke after {latency:?}");
    assert!(start.elapsed() < Duration::from_secs(5));
    lp.close().unwrap();
}

/// THR-3: `stop()` through the handle from another thread stops an idle loop promptly.
pub fn threadsafe_stop_wakes_idle_loop(factory: impl Factory) {
    let lp = new_loop(factory);
    let handle = lp.handle();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        handle.stop().unwrap();
    });
    let start = Instant::now();
    lp.run_forever().unwrap();
    assert!(start.elapsed() < Duration::from_secs(5));
    t.join().unwrap();
    lp.close().unwrap();
}

/// Calls from several threads all run, each thread's calls in its order.
pub fn many_threads_many_calls_all_run(factory: impl Factory) {
    let lp = new_loop(factory);
    let (tx, rx) = mpsc::channel::<(usize, usize)>();
    let mut threads = Vec::new();
    for t in 0..4 {
        let handle = lp.handle();
        let tx = tx.clone();
        threads.push(std::thread::spawn(move || {
            for i in 0..1000 {
                let tx = tx.clone();
                handle
                    .call_soon_threadsafe(move || tx.send((t, i)).unwrap())
                    .unwrap();
            }
        }));
    }
    drop(tx);
    let handle = lp.handle();
    let joiner = std::thread::spawn(move || {
        for t in threads {
            t.join().unwrap();
        }
        handle.call_soon_threadsafe({
            let h = handle.clone();
            move || h.stop().unwrap()
        })
    });
    lp.run_forever().unwrap();
    joiner.join().unwrap().unwrap();
    let got: Vec<(usize, usize)> = rx.try_iter().collect();
    assert_eq!(got.len(), 4000);
    for t in 0..4 {
        let mine: Vec<usize> = got
            .iter()
            .filter(|(x, _)| *x == t)
            .map(|(_, i)| *i)
            .collect();
        assert_eq!(mine, (0..1000).collect::<Vec<_>>());
    }
    lp.close().unwrap();
}

/// THR-4: a call racing close() either runs or gets `Closed`; never undefined behaviour.
pub fn threadsafe_racing_close_is_an_error_not_ub(factory: impl Factory) {
    for _ in 0..20 {
        let lp = new_loop(factory);
        let handle = lp.handle();
        let t = std::thread::spawn(move || {
            let mut closed = 0;
            for _ in 0..200 {
                match handle.call_soon_threadsafe(|| {}) {
                    Ok(()) => {}
                    Err(Error::Closed) => closed += 1,
                    Err(e) => panic!("unexpected error {e}"),
                }
            }
            closed
        });
        lp.stop();
        lp.run_forever().unwrap();
        lp.close().unwrap();
        let _ = t.join().unwrap();
    }
}

/// The handle crosses threads (compile-time check, exercised at run time).
pub fn loop_handle_is_send_and_sync(factory: impl Factory) {
    fn assert_send_sync<T: Send + Sync>(_: &T) {}
    let lp = new_loop(factory);
    let h = lp.handle();
    assert_send_sync(&h);
    lp.close().unwrap();
    assert!(h.is_closed());
}
