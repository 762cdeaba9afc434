//! Section 2 — timers and `time()` (TIM-*).

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use loop_api::sleep;

use crate::support::{new_loop, Log};
use crate::Factory;

#[doc(hidden)]
#[macro_export]
macro_rules! __timers_tests {
    ($f:expr) => {
        $crate::__section!($f, timers: [
            call_later_never_early,
            call_at_cancelled_never_runs,
            float_rounding_never_fires_early,
            sub_millisecond_delay_is_honoured,
            past_deadlines_fire_earliest_first,
            equal_deadlines_fire_in_scheduling_order,
            pending_far_timer_does_not_block_stop,
            handle_when_is_stable,
            time_is_monotonic_and_fresh,
            huge_delay_does_not_panic,
            poll_timeout_follows_earliest_live_timer,
            many_cancelled_timers_are_purged,
            busy_loop_purges_cancelled_timers,
        ]);
    };
}

fn run_for(lp: &loop_api::EventLoop, d: Duration) {
    let l = lp.clone();
    lp.call_later(d, move || l.stop()).unwrap();
    lp.run_forever().unwrap();
}

/// TIM-1: `call_later` runs once, never before the delay has elapsed.
pub fn call_later_never_early(factory: impl Factory) {
    let lp = new_loop(factory);
    let fired = Rc::new(Cell::new(None));
    let start = lp.time();
    let (f, l) = (fired.clone(), lp.clone());
    let h = lp
        .call_later(Duration::from_millis(50), move || {
            f.set(Some(l.time()));
            l.stop();
        })
        .unwrap();
    lp.run_forever().unwrap();
    let at = fired.get().expect("timer fired");
    let elapsed = at - start;
    assert!(
        elapsed >= Duration::from_millis(50),
        "fired early: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(2),
        "fired far too late: {elapsed:?}"
    );
    assert!(h.when() >= start + Duration::from_millis(50));
    lp.close().unwrap();
}

/// TIM-1: of two `call_at(t)` calls, the cancelled one never runs.
pub fn call_at_cancelled_never_runs(factory: impl Factory) {
    let lp = new_loop(factory);
    let log = Log::new();
    let when = lp.time() + Duration::from_millis(10);
    let l = log.clone();
    let a = lp.call_at(when, move || l.push("a")).unwrap();
    let l = log.clone();
    lp.call_at(when, move || l.push("b")).unwrap();
    a.cancel();
    assert!(a.cancelled());
    run_for(&lp, Duration::from_millis(30));
    assert_eq!(log.get(), vec!["b"]);
    lp.close().unwrap();
}

/// TIM-2: a delay of 60 ms + 10 ms is at least 69 ms in whole milliseconds, 8 runs in a row.
pub fn float_rounding_never_fires_early(factory: impl Factory) {
    let lp = new_loop(factory);
    for _ in 0..8 {
        let start = Instant::now();
        let fired = Rc::new(Cell::new(None));
        let (f, l) = (fired.clone(), lp.clone());
        lp.call_later(Duration::from_secs_f64(0.06 + 0.01), move || {
            f.set(Some(Instant::now()));
            l.stop();
        })
        .unwrap();
        lp.run_forever().unwrap();
        let ms = (fired.get().unwrap() - start).as_millis();
        assert!(ms >= 69, "fired after {ms} ms");
    }
    lp.close().unwrap();
}

/// No millisecond rounding in the deadline: a 300 µs timer fires after at
/// least 300 µs, and timers 100 µs apart fire in deadline order.
pub fn sub_millisecond_delay_is_honoured(factory: impl Factory) {
    let lp = new_loop(factory);
    let log = Log::new();
    let start = Instant::now();
    for i in (0..5u64).rev() {
        let l = log.clone();
        lp.call_at(start + Duration::from_micros(300 + 100 * i), move || {
            l.push((i, Instant::now()))
        })
        .unwrap();
    }
    run_for(&lp, Duration::from_millis(20));
    let got = log.get();
    assert_eq!(
        got.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    for (i, at) in got {
        assert!(
            at - start >= Duration::from_micros(300 + 100 * i),
            "timer {i} early"
        );
    }
    lp.close().unwrap();
}

/// TIM-3: overdue timers fire on the next iteration, earliest deadline first.
pub fn past_deadlines_fire_earliest_first(factory: impl Factory) {
    let lp = new_loop(factory);
    let log = Log::new();
    let now = lp.time();
    let l = log.clone();
    lp.call_at(now - Duration::from_secs(1), move || l.push("a"))
        .unwrap();
    let l = log.clone();
    lp.call_at(now - Duration::from_secs(2), move || l.push("b"))
        .unwrap();
    let l = log.clone();
    lp.call_later(Duration::ZERO, move || l.push("c")).unwrap();
    lp.stop();
    lp.run_forever().unwrap();
    assert_eq!(log.get(), vec!["b", "a", "c"]);
    lp.close().unwrap();
}

/// TIM-4 (our rule): 1000 timers with one deadline fire in insertion order.
pub fn equal_deadlines_fire_in_scheduling_order(factory: impl Factory) {
    let lp = new_loop(factory);
    let log = Log::new();
    let when = lp.time() + Duration::from_millis(5);
    for i in 0..1000 {
        let l = log.clone();
        lp.call_at(when, move || l.push(i)).unwrap();
    }
    run_for(&lp, Duration::from_millis(20));
    assert_eq!(log.get(), (0..1000).collect::<Vec<_>>());
    lp.close().unwrap();
}

/// TIM-5: a pending `call_later(1000 s)` does not keep `run_forever` from returning after `stop()`.
pub fn pending_far_timer_does_not_block_stop(factory: impl Factory) {
    let lp = new_loop(factory);
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    lp.call_later(Duration::from_secs(1000), move || f.set(true))
        .unwrap();
    let l = lp.clone();
    lp.call_later(Duration::from_millis(5), move || l.stop())
        .unwrap();
    let start = Instant::now();
    lp.run_forever().unwrap();
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(!fired.get());
    lp.close().unwrap();
}

/// TIM-5: `when()` is time()+delay and does not change on cancel or after firing.
pub fn handle_when_is_stable(factory: impl Factory) {
    let lp = new_loop(factory);
    let before = lp.time();
    let h = lp.call_later(Duration::from_millis(10), || {}).unwrap();
    let after = lp.time();
    let when = h.when();
    assert!(when >= before + Duration::from_millis(10));
    assert!(when <= after + Duration::from_millis(20));
    let h2 = lp.call_later(Duration::from_secs(10), || {}).unwrap();
    let w2 = h2.when();
    h2.cancel();
    assert_eq!(h2.when(), w2);
    run_for(&lp, Duration::from_millis(30));
    assert_eq!(h.when(), when);
    assert!(!h.cancelled());
    lp.close().unwrap();
}

/// TIM-6: after a 50 ms blocking sleep inside a task, `time()` moved 49–600 ms.
pub fn time_is_monotonic_and_fresh(factory: impl Factory) {
    let lp = new_loop(factory);
    let l = lp.clone();
    let moved = lp
        .run_until_complete(async move {
            let t0 = l.time();
            std::thread::sleep(Duration::from_millis(50));
            let t1 = l.time();
            assert!(t1 >= t0);
            t1 - t0
        })
        .unwrap();
    assert!(moved >= Duration::from_millis(49) && moved <= Duration::from_millis(600));
    lp.close().unwrap();
}

/// Huge delays neither panic nor fire; `sleep(Duration::MAX)` can be cancelled.
pub fn huge_delay_does_not_panic(factory: impl Factory) {
    let lp = new_loop(factory);
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    let h = lp.call_later(Duration::MAX, move || f.set(true)).unwrap();
    assert!(h.when() > lp.time() + Duration::from_secs(365 * 24 * 3600));
    let out = lp
        .run_until_complete(loop_api::wait_for(
            sleep(Duration::MAX),
            Duration::from_millis(10),
        ))
        .unwrap();
    assert!(matches!(out, Err(loop_api::Error::TimedOut)));
    assert!(!fired.get());
    lp.close().unwrap();
}

/// SCH-7: with a cancelled 5 s timer and a live 150 ms timer, the loop sleeps ≈150 ms,
/// not 5 s and not a busy loop.
pub fn poll_timeout_follows_earliest_live_timer(factory: impl Factory) {
    let lp = new_loop(factory);
    let early = lp.call_later(Duration::from_millis(20), || {}).unwrap();
    early.cancel();
    let l = lp.clone();
    let start = Instant::now();
    lp.call_later(Duration::from_millis(150), move || l.stop())
        .unwrap();
    let _far = lp.call_later(Duration::from_secs(5), || {}).unwrap();
    lp.run_forever().unwrap();
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_secs(3),
        "{took:?}"
    );
    lp.close().unwrap();
}

/// Cancelled timers do not accumulate: once they dominate, the heap is purged.
pub fn many_cancelled_timers_are_purged(factory: impl Factory) {
    let lp = new_loop(factory);
    for _ in 0..1000 {
        lp.call_later(Duration::from_secs(3600), || {})
            .unwrap()
            .cancel();
    }
    lp.stop();
    lp.run_forever().unwrap();
    assert!(lp.timer_count() < 100, "{} timers left", lp.timer_count());
    lp.close().unwrap();
}

/// Cancelled timers are purged whenever they exceed half of a heap of more
/// than 100, busy or not: a `call_soon` chain (the loop never blocks, so
/// it never asks for its next deadline) with 200 far timers, 150 of them
/// cancelled, sees the heap shrink within a few iterations.
pub fn busy_loop_purges_cancelled_timers(factory: impl Factory) {
    let lp = new_loop(factory);
    let handles: Vec<_> = (0..200u64)
        .map(|i| lp.call_later(Duration::from_secs(3600 + i), || {}).unwrap())
        .collect();
    assert_eq!(lp.timer_count(), 200);
    // The chain: step 0 cancels three timers in four (the earliest stays
    // live, so no cancelled entry is ever on top of the heap), later steps
    // record the heap size; the tenth stops the loop.
    let counts = Log::new();
    fn step(
        lp: &loop_api::EventLoop,
        n: usize,
        handles: Rc<Vec<loop_api::TimerHandle>>,
        counts: Log<usize>,
    ) {
        if n == 0 {
            for (i, h) in handles.iter().enumerate() {
                if i % 4 != 0 {
                    h.cancel();
                }
            }
        } else {
            counts.push(lp.timer_count());
        }
        if n == 10 {
            lp.stop();
            return;
        }
        let l = lp.clone();
        lp.call_soon(move || step(&l, n + 1, handles, counts))
            .unwrap();
    }
    let (l, h, c) = (lp.clone(), Rc::new(handles), counts.clone());
    lp.call_soon(move || step(&l, 0, h, c)).unwrap();
    let start = Instant::now();
    lp.run_forever().unwrap();
    let took = start.elapsed();
    let counts = counts.get();
    assert_eq!(counts.len(), 10, "{counts:?}");
    assert!(
        counts[2..].iter().all(|&n| n <= 100),
        "cancelled timers kept by a busy loop: heap sizes {counts:?}"
    );
    assert!(took < Duration::from_secs(1), "the loop blocked: {took:?}");
    lp.close().unwrap();
}
