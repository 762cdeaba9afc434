//! Section 5 — thread safety (THR-*).

use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use loop_api::{Error, EventLoop};

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
            threadsafe_and_call_soon_share_one_fifo_before_run,
            threadsafe_and_call_soon_share_one_fifo_in_callback,
            threadsafe_and_call_soon_share_one_fifo_in_task,
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

/// What the callbacks of the FIFO tests record (`Send`, for `call_soon_threadsafe`).
type Order = Arc<Mutex<Vec<&'static str>>>;

fn note(order: &Order, what: &'static str) -> impl FnOnce() + Send + 'static {
    let order = order.clone();
    move || order.lock().unwrap().push(what)
}

/// From the loop's thread, alternates `call_soon_threadsafe` (the loop's
/// and its handle's) with `call_soon`; the callbacks record "1" to "5".
fn interleave_threadsafe_and_call_soon(lp: &EventLoop, order: &Order) {
    let handle = lp.handle();
    lp.call_soon_threadsafe(note(order, "1")).unwrap();
    lp.call_soon(note(order, "2")).unwrap();
    handle.call_soon_threadsafe(note(order, "3")).unwrap();
    lp.call_soon(note(order, "4")).unwrap();
    handle.call_soon_threadsafe(note(order, "5")).unwrap();
}

const FIFO: [&str; 5] = ["1", "2", "3", "4", "5"];

/// THR-5 (CPython's `test_call_soon_threadsafe_same_thread`): on the loop's
/// thread, before `run_forever`, `call_soon_threadsafe` joins the same FIFO
/// as `call_soon`, through the loop and through its handle.
pub fn threadsafe_and_call_soon_share_one_fifo_before_run(factory: impl Factory) {
    let lp = new_loop(factory);
    let order = Order::default();
    // CPython's test, as written there.
    lp.handle()
        .call_soon_threadsafe(note(&order, "hello"))
        .unwrap();
    lp.call_soon(note(&order, "world")).unwrap();
    let stopper = lp.clone();
    lp.call_soon(move || stopper.stop()).unwrap();
    lp.run_forever().unwrap();
    assert_eq!(*order.lock().unwrap(), ["hello", "world"]);

    let order = Order::default();
    interleave_threadsafe_and_call_soon(&lp, &order);
    let stopper = lp.clone();
    lp.call_soon(move || stopper.stop()).unwrap();
    lp.run_forever().unwrap();
    assert_eq!(*order.lock().unwrap(), FIFO);
    lp.close().unwrap();
}

/// THR-5, from inside a running callback.
pub fn threadsafe_and_call_soon_share_one_fifo_in_callback(factory: impl Factory) {
    let lp = new_loop(factory);
    let order = Order::default();
    let (inner_lp, inner_order) = (lp.clone(), order.clone());
    lp.call_soon(move || {
        interleave_threadsafe_and_call_soon(&inner_lp, &inner_order);
        let stopper = inner_lp.clone();
        inner_lp.call_soon(move || stopper.stop()).unwrap();
    })
    .unwrap();
    lp.run_forever().unwrap();
    assert_eq!(*order.lock().unwrap(), FIFO);
    lp.close().unwrap();
}

/// THR-5, from inside a running task.
pub fn threadsafe_and_call_soon_share_one_fifo_in_task(factory: impl Factory) {
    let lp = new_loop(factory);
    let order = Order::default();
    let (inner_lp, inner_order) = (lp.clone(), order.clone());
    lp.run_until_complete(async move {
        interleave_threadsafe_and_call_soon(&inner_lp, &inner_order);
        // The task's next step is queued behind the five callbacks.
        loop_api::yield_now().await;
        inner_order.lock().unwrap().clone()
    })
    .map(|seen| assert_eq!(seen, FIFO))
    .unwrap();
    assert_eq!(*order.lock().unwrap(), FIFO);
    lp.close().unwrap();
}
