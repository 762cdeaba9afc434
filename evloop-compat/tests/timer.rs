//! hyper's timer and executors over evloop, on every backend: plain loop
//! timers, cancelled when their sleep goes, from any thread.

mod common;
use common::*;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop_compat::{EvloopExecutor, EvloopSendExecutor, EvloopTimer};
use hyper::rt::{Executor, Timer};

#[test]
fn sleep_completes_at_its_deadline() {
    on_every_loop(|lp| async move {
        let timer = EvloopTimer::new(&lp);
        let before = lp.timer_count();
        let start = Instant::now();
        Timer::sleep(&timer, Duration::from_millis(20)).await;
        assert!(start.elapsed() >= Duration::from_millis(20));
        // A deadline in the past completes at once, arming nothing.
        let mut past = timer.sleep_until(Instant::now());
        assert!(poll_once(&mut past).await);
        assert_eq!(lp.timer_count(), before, "a fired sleep left a timer");
    });
}

#[test]
fn dropped_sleeps_do_not_pile_up_as_loop_timers() {
    on_every_loop(|lp| async move {
        let timer = EvloopTimer::new(&lp);
        let before = lp.timer_count();
        // Not armed before it is polled.
        let mut sleep = Timer::sleep(&timer, Duration::from_secs(3600));
        assert_eq!(lp.timer_count(), before);
        assert!(!poll_once(&mut sleep).await);
        assert_eq!(lp.timer_count(), before + 1);
        // Polling again (same task) arms nothing more.
        assert!(!poll_once(&mut sleep).await);
        assert_eq!(lp.timer_count(), before + 1);
        drop(sleep);
        // What a keep-alive connection does: one sleep per request, armed
        // and dropped. The loop purges cancelled timers once they dominate
        // its heap (past 100 entries), so their number stays bounded.
        for _ in 0..10_000 {
            let mut sleep = Timer::sleep(&timer, Duration::from_secs(30));
            assert!(!poll_once(&mut sleep).await);
        }
        evloop::yield_now().await;
        let left = lp.timer_count() - before;
        assert!(
            left <= 250,
            "{left} loop timers left by 10000 dropped sleeps"
        );
    });
}

#[test]
fn sleeps_due_in_the_same_millisecond_share_one_loop_timer() {
    on_every_loop(|lp| async move {
        let timer = EvloopTimer::new(&lp);
        let before = lp.timer_count();
        let deadline = Instant::now() + Duration::from_millis(30);
        let mut sleeps: Vec<_> = (0..100).map(|_| timer.sleep_until(deadline)).collect();
        for sleep in &mut sleeps {
            assert!(!poll_once(sleep).await);
        }
        assert_eq!(lp.timer_count(), before + 1, "100 sleeps, one deadline");
        // The shared timer stays while one of its sleeps does, and wakes
        // every sleep still there, none before its deadline.
        let kept = sleeps.split_off(90);
        drop(sleeps);
        assert_eq!(lp.timer_count(), before + 1);
        futures::future::join_all(kept).await;
        assert!(Instant::now() >= deadline, "woken early");
        evloop::yield_now().await;
        assert_eq!(lp.timer_count(), before, "a fired tick left a timer");
        // Deadlines a few milliseconds apart: one timer each, each sleep
        // woken at (not before) its own.
        let start = Instant::now();
        let near = timer.sleep_until(start + Duration::from_millis(5));
        let far = timer.sleep_until(start + Duration::from_millis(300));
        let woke_near = async {
            near.await;
            Instant::now()
        };
        let (near_at, ()) = futures::future::join(woke_near, far).await;
        assert!(near_at >= start + Duration::from_millis(5));
        assert!(
            near_at < start + Duration::from_millis(300),
            "the near sleep waited for the far one's timer"
        );
        assert!(Instant::now() >= start + Duration::from_millis(300));
    });
}

#[test]
fn reset_moves_the_deadline_both_ways() {
    on_every_loop(|lp| async move {
        let timer = EvloopTimer::new(&lp);
        // Earlier: an hour becomes 10 ms.
        let mut sleep = Timer::sleep(&timer, Duration::from_secs(3600));
        assert!(!poll_once(&mut sleep).await);
        let start = Instant::now();
        timer.reset(&mut sleep, Instant::now() + Duration::from_millis(10));
        sleep.as_mut().await;
        assert!(start.elapsed() >= Duration::from_millis(10));
        // Later: the old 20 ms timer passing must not end it.
        let mut sleep = Timer::sleep(&timer, Duration::from_millis(20));
        assert!(!poll_once(&mut sleep).await);
        timer.reset(&mut sleep, Instant::now() + Duration::from_secs(3600));
        assert!(!poll_once(&mut sleep).await);
        lp.sleep(Duration::from_millis(60)).await;
        assert!(!poll_once(&mut sleep).await, "ended by its old deadline");
        // A sleep that is not ours is replaced.
        let mut foreign: std::pin::Pin<Box<dyn hyper::rt::Sleep>> = Box::pin(Forever);
        timer.reset(&mut foreign, Instant::now() + Duration::from_millis(5));
        foreign.await;
    });
}

/// A hyper sleep of another timer, which never ends.
struct Forever;

impl std::future::Future for Forever {
    type Output = ();
    fn poll(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        std::task::Poll::Pending
    }
}

impl hyper::rt::Sleep for Forever {}

#[test]
fn timer_and_sleep_are_send_and_sync_as_hyper_requires() {
    fn assert_send_sync<T: Send + Sync + 'static>(_: &T) {}
    on_every_loop(|lp| async move {
        let timer = EvloopTimer::new(&lp);
        assert_send_sync(&timer);
        let sleep = timer.sleep(Duration::from_millis(1));
        assert_send_sync(&sleep);
        // A sleep made on another thread is still driven by this loop.
        let sleep = std::thread::spawn(move || Timer::sleep(&timer, Duration::from_millis(5)))
            .join()
            .unwrap();
        sleep.await;
    });
}

#[test]
fn a_sleep_awaited_off_the_loop_thread_fires_through_the_handle() {
    on_every_loop(|lp| async move {
        let timer = EvloopTimer::new(&lp);
        let before = lp.timer_count();
        let (tx, rx) = futures::channel::oneshot::channel();
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            futures::executor::block_on(Timer::sleep(&timer, Duration::from_millis(20)));
            let _ = tx.send(start.elapsed());
        });
        let waited = rx.await.expect("the thread's sleep completed");
        assert!(waited >= Duration::from_millis(20), "{waited:?}");
        thread.join().unwrap();
        assert_eq!(lp.timer_count(), before);
    });
}

#[test]
fn a_sleep_dropped_off_its_loop_thread_cancels_its_timer() {
    on_every_loop(|lp| async move {
        let timer = EvloopTimer::new(&lp);
        let before = lp.timer_count();
        // Armed on the loop thread, dropped on another.
        let mut sleep = timer.sleep(Duration::from_secs(3600));
        assert!(!poll_once(&mut sleep).await);
        assert_eq!(lp.timer_count(), before + 1);
        std::thread::spawn(move || drop(sleep)).join().unwrap();
        settle(&lp).await;
        // The cancelled timer left the heap as the loop looked for its next deadline.
        assert_eq!(lp.timer_count(), before, "the foreign drop left the timer");

        // Armed from another thread (through the handle), dropped there.
        let (armed_tx, armed_rx) = futures::channel::oneshot::channel();
        let (drop_tx, drop_rx) = std::sync::mpsc::channel::<()>();
        let t = timer.clone();
        let thread = std::thread::spawn(move || {
            let mut sleep = Timer::sleep(&t, Duration::from_secs(3600));
            let waker = futures::task::noop_waker();
            let pending = sleep
                .as_mut()
                .poll(&mut std::task::Context::from_waker(&waker))
                .is_pending();
            let _ = armed_tx.send(pending);
            drop_rx.recv().unwrap();
            drop(sleep);
        });
        assert!(armed_rx.await.unwrap());
        settle(&lp).await;
        assert_eq!(lp.timer_count(), before + 1, "not armed through the handle");
        drop_tx.send(()).unwrap();
        thread.join().unwrap();
        settle(&lp).await;
        assert_eq!(lp.timer_count(), before, "the remote drop left the timer");
    });
}

#[test]
fn a_sleep_on_a_closed_loop_completes_instead_of_hanging() {
    for backend in evloop::available_backends() {
        let lp = evloop::new_event_loop_for(backend).unwrap();
        let timer = EvloopTimer::new(&lp);
        lp.close().unwrap();
        // Polled on a thread with no loop: the handle refuses, the sleep ends.
        futures::executor::block_on(Timer::sleep(&timer, Duration::from_secs(3600)));
    }
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

#[test]
fn send_executor_spawns_from_another_thread() {
    on_every_loop(|lp| async move {
        let exec = EvloopSendExecutor::new(&lp);
        let (tx, rx) = futures::channel::oneshot::channel();
        std::thread::spawn(move || {
            exec.execute(async move {
                // Runs on the loop's thread, as a task of its loop.
                let _ = tx.send(evloop::get_running_loop().is_ok());
            });
        })
        .join()
        .unwrap();
        assert!(rx.await.unwrap());
    });
}
