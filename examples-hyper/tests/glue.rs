//! hyper's timer and executor over evloop, on every backend.

#[path = "../../examples-ecosystem/tests/common/mod.rs"]
mod common;
use common::*;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use examples_hyper::hyper_rt::{EvloopExecutor, EvloopTimer};
use hyper::rt::{Executor, Timer};

#[test]
fn timer_sleep_completes_at_its_deadline() {
    on_every_loop(|lp| async move {
        let timer = EvloopTimer::new(&lp);
        let start = Instant::now();
        timer.sleep(Duration::from_millis(20)).await;
        assert!(start.elapsed() >= Duration::from_millis(20));
        // A deadline in the past completes at once.
        timer.sleep_until(Instant::now()).await;
    });
}

#[test]
fn dropping_a_timer_sleep_cancels_its_loop_timer() {
    on_every_loop(|lp| async move {
        let timer = EvloopTimer::new(&lp);
        let before = lp.timer_count();
        let mut sleep = timer.sleep(Duration::from_secs(3600));
        assert!(!poll_once(&mut sleep).await);
        // Let the timer task start and arm its timer.
        for _ in 0..3 {
            evloop::yield_now().await;
        }
        assert_eq!(lp.timer_count(), before + 1);
        drop(sleep);
        for _ in 0..3 {
            evloop::yield_now().await;
        }
        assert_eq!(
            lp.timer_count(),
            before,
            "the loop timer outlived its sleep"
        );
    });
}

#[test]
fn timer_is_send_and_sync_as_hyper_requires() {
    fn assert_send_sync<T: Send + Sync + 'static>(_: &T) {}
    on_every_loop(|lp| async move {
        let timer = EvloopTimer::new(&lp);
        assert_send_sync(&timer);
        // A sleep made on another thread is still driven by this loop.
        let sleep = std::thread::spawn(move || timer.sleep(Duration::from_millis(5)))
            .join()
            .unwrap();
        sleep.await;
    });
}

#[test]
fn executor_runs_futures_that_are_not_send() {
    on_every_loop(|lp| async move {
        let ran = Rc::new(Cell::new(false));
        let (tx, rx) = futures::channel::oneshot::channel();
        let flag = ran.clone();
        EvloopExecutor::new(&lp).execute(async move {
            flag.set(true);
            let _ = tx.send(());
        });
        rx.await.unwrap();
        assert!(ran.get());
    });
}
