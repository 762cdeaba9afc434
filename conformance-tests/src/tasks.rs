//! Section 3 — futures, tasks, cancellation (FUT-*), as they map to Rust:
//! a task is cancelled by dropping its future at its next step.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use loop_api::{gather, sleep, wait_for, yield_now, Error};

use crate::support::{capture_exceptions, new_loop, Log};
use crate::Factory;

#[doc(hidden)]
#[macro_export]
macro_rules! __tasks_tests {
    ($f:expr) => {
        $crate::__section!($f, tasks: [
            create_task_does_not_run_synchronously,
            task_result_is_awaitable,
            non_send_futures_run,
            cancel_reaches_inner_future,
            cancel_sleeping_task_is_prompt,
            cancel_before_first_step,
            cancel_finished_task_returns_false,
            awaiting_a_cancelled_task_gives_cancelled,
            run_until_complete_of_cancelled_task_errors,
            detached_task_keeps_running,
            dropped_task_handle_keeps_running,
            panicking_task_reports_and_errors,
            wait_for_times_out_and_drops_inner,
            wait_for_result_wins_race,
            wait_for_zero_with_ready_future,
            gather_joins_in_order,
            yield_now_lets_others_run,
            sleep_zero_and_sleep_order,
            pending_task_destroyed_at_close_is_reported,
        ]);
    };
}

/// FUT-3: `create_task` never runs the first step inside the call.
pub fn create_task_does_not_run_synchronously(factory: impl Factory) {
    let lp = new_loop(factory);
    let started = Rc::new(Cell::new(false));
    let s = started.clone();
    let task = lp.create_task(async move { s.set(true) }).unwrap();
    assert!(!started.get());
    lp.run_until_complete(task).unwrap().unwrap();
    assert!(started.get());
    lp.close().unwrap();
}

/// LIF-1: `run_until_complete` returns the output; a task's output is awaitable.
pub fn task_result_is_awaitable(factory: impl Factory) {
    let lp = new_loop(factory);
    let l = lp.clone();
    let out = lp
        .run_until_complete(async move {
            let t = l.create_task(async { 40 + 2 }).unwrap();
            t.await.unwrap()
        })
        .unwrap();
    assert_eq!(out, 42);
    lp.close().unwrap();
}

/// Futures need not be `Send`: `Rc` across an await works.
pub fn non_send_futures_run(factory: impl Factory) {
    let lp = new_loop(factory);
    let rc = Rc::new(Cell::new(1));
    let r = rc.clone();
    lp.run_until_complete(async move {
        yield_now().await;
        r.set(r.get() + 1);
    })
    .unwrap();
    assert_eq!(rc.get(), 2);
    lp.close().unwrap();
}

/// A future that records when it is dropped.
struct DropFlag<F> {
    inner: Pin<Box<F>>,
    dropped: Rc<Cell<bool>>,
}
impl<F: Future> Future for DropFlag<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.inner.as_mut().poll(cx)
    }
}
impl<F> Drop for DropFlag<F> {
    fn drop(&mut self) {
        self.dropped.set(true);
    }
}

/// FUT-4: cancelling a task blocked on an inner future drops (cancels) that future.
pub fn cancel_reaches_inner_future(factory: impl Factory) {
    let lp = new_loop(factory);
    let dropped = Rc::new(Cell::new(false));
    let d = dropped.clone();
    let l = lp.clone();
    let result = lp
        .run_until_complete(async move {
            let inner = DropFlag {
                inner: Box::pin(sleep(Duration::from_secs(3600))),
                dropped: d,
            };
            let task = l.create_task(inner).unwrap();
            sleep(Duration::from_millis(5)).await;
            assert!(task.cancel());
            task.await
        })
        .unwrap();
    assert!(matches!(result, Err(Error::Cancelled)));
    assert!(dropped.get(), "the awaited inner future was dropped");
    assert_eq!(
        lp.timer_count(),
        0,
        "the sleep's timer was cancelled and purged"
    );
    lp.close().unwrap();
}

/// FUT-7: cancelling `sleep(5000 s)` at t≈0.1 s completes at ≈0.1 s.
pub fn cancel_sleeping_task_is_prompt(factory: impl Factory) {
    let lp = new_loop(factory);
    let l = lp.clone();
    let start = Instant::now();
    let took = lp
        .run_until_complete(async move {
            let task = l.create_task(sleep(Duration::from_secs(5000))).unwrap();
            sleep(Duration::from_millis(100)).await;
            task.cancel();
            let r = task.await;
            assert!(matches!(r, Err(Error::Cancelled)));
            start.elapsed()
        })
        .unwrap();
    assert!(took >= Duration::from_millis(100) && took < Duration::from_secs(3));
    lp.close().unwrap();
}

/// A task cancelled before its first step never runs its body.
pub fn cancel_before_first_step(factory: impl Factory) {
    let lp = new_loop(factory);
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let task = lp.create_task(async move { r.set(true) }).unwrap();
    assert!(task.cancel());
    let out = lp.run_until_complete(task).unwrap();
    assert!(matches!(out, Err(Error::Cancelled)));
    assert!(!ran.get());
    lp.close().unwrap();
}

/// FUT-1: `cancel()` on a finished task returns false and the result stands.
pub fn cancel_finished_task_returns_false(factory: impl Factory) {
    let lp = new_loop(factory);
    let l = lp.clone();
    lp.run_until_complete(async move {
        let task = l.create_task(async { 7 }).unwrap();
        sleep(Duration::from_millis(1)).await;
        yield_now().await;
        assert!(task.is_finished());
        assert!(!task.cancel());
        assert!(!task.cancelled());
        assert_eq!(task.await.unwrap(), 7);
    })
    .unwrap();
    lp.close().unwrap();
}

/// FUT-1: awaiting a cancelled task gives `Cancelled`, and `cancelled()` is true.
pub fn awaiting_a_cancelled_task_gives_cancelled(factory: impl Factory) {
    let lp = new_loop(factory);
    let l = lp.clone();
    lp.run_until_complete(async move {
        let mut task = l.create_task(sleep(Duration::from_secs(60))).unwrap();
        yield_now().await;
        task.cancel();
        let r = (&mut task).await;
        assert!(r.unwrap_err().is_cancelled());
        assert!(task.cancelled());
    })
    .unwrap();
    lp.close().unwrap();
}

/// FUT-4: `run_until_complete` of a task that gets cancelled returns `Cancelled`.
pub fn run_until_complete_of_cancelled_task_errors(factory: impl Factory) {
    let lp = new_loop(factory);
    let task = lp.create_task(sleep(Duration::from_secs(60))).unwrap();
    let l = lp.clone();
    let canceller = lp.create_task(async move { yield_now().await }).unwrap();
    let _ = l;
    task.cancel();
    let r = lp.run_until_complete(task).unwrap();
    assert!(matches!(r, Err(Error::Cancelled)));
    lp.run_until_complete(canceller).unwrap().unwrap();
    lp.close().unwrap();
}

/// `detach()` lets a task finish on its own.
pub fn detached_task_keeps_running(factory: impl Factory) {
    let lp = new_loop(factory);
    let done = Rc::new(Cell::new(false));
    let d = done.clone();
    lp.create_task(async move {
        sleep(Duration::from_millis(5)).await;
        d.set(true);
    })
    .unwrap()
    .detach();
    lp.run_until_complete(sleep(Duration::from_millis(30)))
        .unwrap();
    assert!(done.get());
    lp.close().unwrap();
}

/// Dropping a `Task` handle detaches it, as in asyncio and tokio.
pub fn dropped_task_handle_keeps_running(factory: impl Factory) {
    let lp = new_loop(factory);
    let done = Rc::new(Cell::new(false));
    let d = done.clone();
    drop(
        lp.create_task(async move {
            yield_now().await;
            d.set(true);
        })
        .unwrap(),
    );
    lp.run_until_complete(sleep(Duration::from_millis(10)))
        .unwrap();
    assert!(done.get());
    lp.close().unwrap();
}

/// A panic in a task goes to the exception handler; its awaiter gets `Panicked`; the loop lives on.
pub fn panicking_task_reports_and_errors(factory: impl Factory) {
    let lp = new_loop(factory);
    let reports = capture_exceptions(&lp);
    let l = lp.clone();
    let (result, id) = lp
        .run_until_complete(async move {
            let task = l
                .create_task(async {
                    yield_now().await;
                    panic!("boom in task");
                })
                .unwrap();
            let id = task.id();
            (task.await, id)
        })
        .unwrap();
    match result {
        Err(Error::Panicked(msg)) => assert!(msg.contains("boom in task")),
        other => panic!("expected Panicked, got {other:?}"),
    }
    let reports = reports.get();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].task, Some(id));
    assert!(reports[0]
        .payload
        .as_deref()
        .unwrap()
        .contains("boom in task"));
    // The loop still works.
    assert_eq!(lp.run_until_complete(async { 1 }).unwrap(), 1);
    lp.close().unwrap();
}

/// FUT-8: on timeout, `wait_for` drops the inner future and returns `TimedOut`.
pub fn wait_for_times_out_and_drops_inner(factory: impl Factory) {
    let lp = new_loop(factory);
    let dropped = Rc::new(Cell::new(false));
    let d = dropped.clone();
    let start = Instant::now();
    let r = lp
        .run_until_complete(wait_for(
            DropFlag {
                inner: Box::pin(sleep(Duration::from_secs(60))),
                dropped: d,
            },
            Duration::from_millis(50),
        ))
        .unwrap();
    assert!(matches!(r, Err(Error::TimedOut)));
    assert!(dropped.get());
    assert!(start.elapsed() >= Duration::from_millis(50));
    assert!(start.elapsed() < Duration::from_secs(3));
    let ok = lp
        .run_until_complete(wait_for(async { 5 }, Duration::from_secs(1)))
        .unwrap();
    assert_eq!(ok.unwrap(), 5);
    lp.close().unwrap();
}

/// FUT-9: if the result and the timeout are due in the same iteration, the result wins.
pub fn wait_for_result_wins_race(factory: impl Factory) {
    let lp = new_loop(factory);
    let r = lp
        .run_until_complete(async {
            // Both the inner sleep and the timeout are due at the same moment;
            // by the time either is noticed both have expired.
            wait_for(sleep(Duration::from_millis(10)), Duration::from_millis(10)).await
        })
        .unwrap();
    assert!(r.is_ok(), "result must win the race: {r:?}");
    lp.close().unwrap();
}

/// FUT-8: a zero timeout still returns the result of a future that is already done.
pub fn wait_for_zero_with_ready_future(factory: impl Factory) {
    let lp = new_loop(factory);
    let r = lp
        .run_until_complete(wait_for(async { "done" }, Duration::ZERO))
        .unwrap();
    assert_eq!(r.unwrap(), "done");
    let r = lp
        .run_until_complete(wait_for(sleep(Duration::from_secs(1)), Duration::ZERO))
        .unwrap();
    assert!(matches!(r, Err(Error::TimedOut)));
    lp.close().unwrap();
}

/// `gather` joins tasks concurrently and keeps the input order.
pub fn gather_joins_in_order(factory: impl Factory) {
    let lp = new_loop(factory);
    let l = lp.clone();
    let start = Instant::now();
    let out = lp
        .run_until_complete(async move {
            let tasks: Vec<_> = (0..5u64)
                .map(|i| {
                    l.create_task(async move {
                        sleep(Duration::from_millis(50 - 10 * i)).await;
                        i
                    })
                    .unwrap()
                })
                .collect();
            gather(tasks).await
        })
        .unwrap();
    let out: Vec<u64> = out.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(out, vec![0, 1, 2, 3, 4]);
    assert!(
        start.elapsed() < Duration::from_millis(1000),
        "ran concurrently"
    );
    lp.close().unwrap();
}

/// `yield_now` lets the other ready tasks run before continuing.
pub fn yield_now_lets_others_run(factory: impl Factory) {
    let lp = new_loop(factory);
    let log = Log::new();
    let l = lp.clone();
    let lg = log.clone();
    lp.run_until_complete(async move {
        let mut tasks = Vec::new();
        for name in ["a", "b"] {
            let lg = lg.clone();
            tasks.push(
                l.create_task(async move {
                    for i in 0..3 {
                        lg.push(format!("{name}{i}"));
                        yield_now().await;
                    }
                })
                .unwrap(),
            );
        }
        gather(tasks).await;
    })
    .unwrap();
    assert_eq!(log.get(), vec!["a0", "b0", "a1", "b1", "a2", "b2"]);
    lp.close().unwrap();
}

/// Sleeps wake in deadline order; `sleep(0)` completes at once.
pub fn sleep_zero_and_sleep_order(factory: impl Factory) {
    let lp = new_loop(factory);
    let log = Log::new();
    let l = lp.clone();
    let lg = log.clone();
    lp.run_until_complete(async move {
        sleep(Duration::ZERO).await;
        let mut tasks = Vec::new();
        for ms in [30u64, 10, 20] {
            let lg = lg.clone();
            tasks.push(
                l.create_task(async move {
                    sleep(Duration::from_millis(ms)).await;
                    lg.push(ms);
                })
                .unwrap(),
            );
        }
        gather(tasks).await;
    })
    .unwrap();
    assert_eq!(log.get(), vec![10, 20, 30]);
    lp.close().unwrap();
}

/// FUT-10: a task still pending when the loop closes is destroyed and reported.
pub fn pending_task_destroyed_at_close_is_reported(factory: impl Factory) {
    let lp = new_loop(factory);
    let reports = capture_exceptions(&lp);
    let dropped = Rc::new(Cell::new(false));
    let d = dropped.clone();
    lp.create_task(DropFlag {
        inner: Box::pin(sleep(Duration::from_secs(60))),
        dropped: d,
    })
    .unwrap()
    .detach();
    lp.run_until_complete(sleep(Duration::from_millis(5)))
        .unwrap();
    assert_eq!(lp.task_count(), 1);
    lp.close().unwrap();
    assert!(dropped.get(), "close() released the pending task's future");
    let reports = reports.get();
    assert!(
        reports
            .iter()
            .any(|c| c.message.contains("destroyed but it is pending")),
        "{reports:?}"
    );
}
