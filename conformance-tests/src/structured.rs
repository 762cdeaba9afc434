//! Structured concurrency: `TaskGroup` (asyncio 3.11 semantics), `timeout`
//! scopes that can be rescheduled, `wait`, `as_completed`, `shield` and the
//! free `spawn`. Cancellation is drop: a cancelled child's destructors run.
//!
//! A test that would hang if the feature broke is bounded by a generous
//! `wait_for` (10 s), so it fails instead.

use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use loop_api::{
    as_completed, shield, sleep, spawn, timeout, timeout_at, wait, wait_for, yield_now, Error,
    ReturnWhen, TaskGroup, TimeoutScope,
};

use crate::support::{capture_exceptions, new_loop};
use crate::Factory;

#[doc(hidden)]
#[macro_export]
macro_rules! __structured_tests {
    ($f:expr) => {
        $crate::__section!($f, structured: [
            group_first_failure_cancels_siblings,
            group_waits_for_all_children,
            group_collects_errors_of_one_iteration,
            group_panic_is_a_failure,
            group_nested_cancelled_with_parent,
            group_nested_failure_propagates,
            group_dropped_cancels_children,
            timeout_fires_and_drops_work,
            timeout_rescheduled_later,
            timeout_rescheduled_earlier,
            timeout_removed,
            timeout_outside_loop_is_an_error,
            wait_first_completed,
            wait_first_exception,
            wait_all_completed_and_timeout,
            wait_empty_is_invalid,
            as_completed_gives_completion_order,
            shield_survives_outer_drop,
            spawn_needs_a_running_loop,
        ]);
    };
}

/// Sets its flag when dropped: a child's Drop guard.
struct Guard(Rc<Cell<bool>>);
impl Drop for Guard {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

fn flag() -> Rc<Cell<bool>> {
    Rc::new(Cell::new(false))
}

const BOUND: Duration = Duration::from_secs(10);

/// The first failure cancels the siblings (their Drop guards run), their
/// handles see `Cancelled`, and later spawns are refused.
pub fn group_first_failure_cancels_siblings(factory: impl Factory) {
    let lp = new_loop(factory);
    let dropped = flag();
    let d = dropped.clone();
    let out = lp
        .run_until_complete(async move {
            let group = TaskGroup::<Error>::new().unwrap();
            let sibling = group
                .spawn(async move {
                    let _guard = Guard(d);
                    sleep(Duration::from_secs(3600)).await;
                    Ok(())
                })
                .unwrap();
            group
                .spawn(async {
                    sleep(Duration::from_millis(10)).await;
                    Err::<(), _>(Error::InvalidArgument("child failed".into()))
                })
                .unwrap();
            sleep(Duration::from_millis(20)).await;
            assert!(group.is_aborting());
            let refused = group.spawn(async { Ok(()) });
            assert!(matches!(refused, Err(Error::Cancelled)), "{refused:?}");
            let joined = wait_for(group.join(), BOUND).await.expect("join ended");
            (joined, sibling.await)
        })
        .unwrap();
    let (joined, sibling) = out;
    let errors = joined.expect_err("the group failed").into_errors();
    assert_eq!(errors.len(), 1);
    assert!(matches!(&errors[0], Error::InvalidArgument(m) if m == "child failed"));
    assert!(matches!(sibling, Err(Error::Cancelled)), "{sibling:?}");
    assert!(dropped.get(), "the sibling's destructors ran");
    lp.close().unwrap();
}

/// `join` returns only once every child has ended, with their results.
pub fn group_waits_for_all_children(factory: impl Factory) {
    let lp = new_loop(factory);
    let done = Rc::new(Cell::new(0));
    let d = done.clone();
    let values = lp
        .run_until_complete(async move {
            let group = TaskGroup::<Error>::new().unwrap();
            let mut handles = Vec::new();
            for ms in [30u64, 10, 20] {
                let d = d.clone();
                handles.push(
                    group
                        .spawn(async move {
                            sleep(Duration::from_millis(ms)).await;
                            d.set(d.get() + 1);
                            Ok(ms)
                        })
                        .unwrap(),
                );
            }
            assert_eq!(group.len(), 3);
            wait_for(group.join(), BOUND).await.unwrap().unwrap();
            assert_eq!(d.get(), 3, "every child ended before join returned");
            let mut values = Vec::new();
            for h in handles {
                values.push(h.await.unwrap());
            }
            values
        })
        .unwrap();
    assert_eq!(values, vec![Some(30), Some(10), Some(20)]);
    assert_eq!(done.get(), 3);
    lp.close().unwrap();
}

/// Children failing in the same loop iteration are all collected, in the
/// order they failed; the one still running is cancelled.
pub fn group_collects_errors_of_one_iteration(factory: impl Factory) {
    let lp = new_loop(factory);
    let dropped = flag();
    let d = dropped.clone();
    let (joined, failed_handle) = lp
        .run_until_complete(async move {
            let group = TaskGroup::<Error>::new().unwrap();
            let mut first = None;
            for name in ["a", "b"] {
                let h = group
                    .spawn(async move {
                        yield_now().await;
                        Err::<(), _>(Error::InvalidArgument(name.into()))
                    })
                    .unwrap();
                first.get_or_insert(h);
            }
            group
                .spawn(async move {
                    let _guard = Guard(d);
                    sleep(Duration::from_secs(3600)).await;
                    Ok(())
                })
                .unwrap();
            let joined = wait_for(group.join(), BOUND).await.expect("join ended");
            (joined, first.unwrap().await)
        })
        .unwrap();
    let errors = joined.expect_err("the group failed").into_errors();
    let names: Vec<String> = errors
        .iter()
        .map(|e| match e {
            Error::InvalidArgument(m) => m.clone(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(
        failed_handle.unwrap(),
        None,
        "a failed child's handle gives None"
    );
    assert!(dropped.get());
    lp.close().unwrap();
}

/// A panicking child is a failure (`Error::Panicked`), still reported to
/// the exception handler, and cancels its siblings.
pub fn group_panic_is_a_failure(factory: impl Factory) {
    let lp = new_loop(factory);
    let reports = capture_exceptions(&lp);
    let dropped = flag();
    let d = dropped.clone();
    let joined = lp
        .run_until_complete(async move {
            let group = TaskGroup::<Error>::new().unwrap();
            group
                .spawn(async move {
                    let _guard = Guard(d);
                    sleep(Duration::from_secs(3600)).await;
                    Ok(())
                })
                .unwrap();
            group
                .spawn(async {
                    yield_now().await;
                    if true {
                        panic!("boom in child");
                    }
                    Ok(())
                })
                .unwrap();
            wait_for(group.join(), BOUND).await.expect("join ended")
        })
        .unwrap();
    let errors = joined.expect_err("the group failed").into_errors();
    assert!(matches!(&errors[..], [Error::Panicked(m)] if m.contains("boom in child")));
    assert!(dropped.get());
    assert!(reports.get().iter().any(|c| c
        .payload
        .as_deref()
        .is_some_and(|p| p.contains("boom in child"))));
    lp.close().unwrap();
}

/// A child holding its own group is cancelled by the outer failure; the
/// inner group, dropped with it, cancels the grandchildren.
pub fn group_nested_cancelled_with_parent(factory: impl Factory) {
    let lp = new_loop(factory);
    let grandchild_dropped = flag();
    let g = grandchild_dropped.clone();
    let joined = lp
        .run_until_complete(async move {
            let outer = TaskGroup::<Error>::new().unwrap();
            outer
                .spawn(async move {
                    let inner = TaskGroup::<Error>::new()?;
                    inner.spawn(async move {
                        let _guard = Guard(g);
                        sleep(Duration::from_secs(3600)).await;
                        Ok(())
                    })?;
                    inner.join().await.map_err(|_| Error::Cancelled)
                })
                .unwrap();
            outer
                .spawn(async {
                    sleep(Duration::from_millis(10)).await;
                    Err::<(), _>(Error::TimedOut)
                })
                .unwrap();
            wait_for(outer.join(), BOUND).await.expect("join ended")
        })
        .unwrap();
    let errors = joined.expect_err("the outer group failed").into_errors();
    assert!(matches!(&errors[..], [Error::TimedOut]), "{errors:?}");
    assert!(
        grandchild_dropped.get(),
        "the inner group's child was cancelled"
    );
    assert_eq!(lp.task_count(), 0);
    lp.close().unwrap();
}

/// A user's error type for a group: it takes the loop's errors (panics).
#[derive(Debug, PartialEq)]
struct AppError(String);
impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        AppError(e.to_string())
    }
}

/// An inner group's failure reaches the outer one through its child; a
/// group works with the user's own error type.
pub fn group_nested_failure_propagates(factory: impl Factory) {
    let lp = new_loop(factory);
    let sibling_dropped = flag();
    let s = sibling_dropped.clone();
    let joined = lp
        .run_until_complete(async move {
            let outer = TaskGroup::<AppError>::with_loop(&loop_api::get_running_loop().unwrap());
            outer
                .spawn(async move {
                    let _guard = Guard(s);
                    sleep(Duration::from_secs(3600)).await;
                    Ok(())
                })
                .unwrap();
            outer
                .spawn(async {
                    let inner = TaskGroup::<AppError>::new()?;
                    inner.spawn(async { Err::<(), _>(AppError("deep".to_owned())) })?;
                    inner.join().await.map_err(|e| {
                        let names: Vec<&str> = e.errors().iter().map(|e| e.0.as_str()).collect();
                        AppError(format!("inner: {}", names.join(",")))
                    })
                })
                .unwrap();
            wait_for(outer.join(), BOUND).await.expect("join ended")
        })
        .unwrap();
    let errors = joined.expect_err("the outer group failed").into_errors();
    assert_eq!(errors, [AppError("inner: deep".to_owned())]);
    assert!(sibling_dropped.get());
    lp.close().unwrap();
}

/// Dropping a group's `join` (its awaiter was cancelled) cancels the
/// children: their destructors run at once, their handles see `Cancelled`.
pub fn group_dropped_cancels_children(factory: impl Factory) {
    let lp = new_loop(factory);
    let dropped = flag();
    let d = dropped.clone();
    let (timed_out, child) = lp
        .run_until_complete(async move {
            let group = TaskGroup::<Error>::new().unwrap();
            let child = group
                .spawn(async move {
                    let _guard = Guard(d);
                    sleep(Duration::from_secs(3600)).await;
                    Ok(())
                })
                .unwrap();
            let timed_out = wait_for(group.join(), Duration::from_millis(20)).await;
            (
                timed_out,
                wait_for(child, BOUND).await.expect("the child ended"),
            )
        })
        .unwrap();
    assert!(matches!(timed_out, Err(Error::TimedOut)));
    assert!(matches!(child, Err(Error::Cancelled)), "{child:?}");
    assert!(dropped.get());
    lp.close().unwrap();
}

/// On expiry the work is dropped, the result is `TimedOut`, the scope says
/// `expired()`.
pub fn timeout_fires_and_drops_work(factory: impl Factory) {
    let lp = new_loop(factory);
    let dropped = flag();
    let d = dropped.clone();
    let (result, expired) = lp
        .run_until_complete(async move {
            let t = timeout(Duration::from_millis(20), async move {
                let _guard = Guard(d);
                sleep(Duration::from_secs(3600)).await;
            });
            let scope = t.scope();
            assert!(scope.when().is_some());
            let result = wait_for(t, BOUND).await.expect("the timeout fired");
            (result, scope.expired())
        })
        .unwrap();
    assert!(matches!(result, Err(Error::TimedOut)));
    assert!(expired);
    assert!(dropped.get());
    lp.close().unwrap();
}

/// Rescheduled later from inside the work, the scope lets it finish.
pub fn timeout_rescheduled_later(factory: impl Factory) {
    let lp = new_loop(factory);
    let (result, expired) = lp
        .run_until_complete(async move {
            let scope = TimeoutScope::after(Duration::from_millis(20));
            let inner = scope.clone();
            let result = scope
                .wrap(async move {
                    let later = Instant::now() + Duration::from_secs(3600);
                    inner.reschedule(later);
                    assert_eq!(inner.when(), Some(later));
                    sleep(Duration::from_millis(60)).await;
                    "finished"
                })
                .await;
            (result, scope.expired())
        })
        .unwrap();
    assert_eq!(result.unwrap(), "finished");
    assert!(!expired);
    lp.close().unwrap();
}

/// Rescheduled earlier by another task, the scope fires at the new deadline
/// (well before the 10 s bound, whose wake-up would also end it).
pub fn timeout_rescheduled_earlier(factory: impl Factory) {
    let lp = new_loop(factory);
    let start = Instant::now();
    let result = lp
        .run_until_complete(async move {
            let t = timeout_at(
                Instant::now() + Duration::from_secs(3600),
                sleep(Duration::from_secs(3600)),
            );
            let scope = t.scope();
            spawn(async move {
                sleep(Duration::from_millis(10)).await;
                scope.reschedule(Instant::now() + Duration::from_millis(10));
            })
            .unwrap()
            .detach();
            wait_for(t, BOUND)
                .await
                .expect("the earlier deadline fired")
        })
        .unwrap();
    assert!(matches!(result, Err(Error::TimedOut)));
    assert!(start.elapsed() < BOUND / 2, "fired at the new deadline");
    lp.close().unwrap();
}

/// `reschedule(None)` removes the deadline; `timeout_at(None, ..)` has none.
pub fn timeout_removed(factory: impl Factory) {
    let lp = new_loop(factory);
    let (removed, none) = lp
        .run_until_complete(async move {
            let t = timeout(Duration::from_millis(20), sleep(Duration::from_millis(60)));
            t.reschedule(None);
            assert_eq!(t.when(), None);
            let removed = t.await;
            let none = timeout_at(None, async { 5 }).await;
            (removed, none)
        })
        .unwrap();
    assert!(removed.is_ok(), "{removed:?}");
    assert_eq!(none.unwrap(), 5);
    lp.close().unwrap();
}

/// Polled outside a loop with a deadline ahead, a timeout gives
/// `NoRunningLoop` instead of panicking.
pub fn timeout_outside_loop_is_an_error(factory: impl Factory) {
    let _lp = new_loop(factory);
    let mut t = Box::pin(timeout(
        Duration::from_secs(60),
        std::future::pending::<()>(),
    ));
    let mut cx = Context::from_waker(Waker::noop());
    match t.as_mut().poll(&mut cx) {
        Poll::Ready(Err(Error::NoRunningLoop)) => {}
        other => panic!("expected NoRunningLoop, got {other:?}"),
    }
}

/// FIRST_COMPLETED returns as soon as one task ended; the others stay
/// pending and keep running.
pub fn wait_first_completed(factory: impl Factory) {
    let lp = new_loop(factory);
    let out = lp
        .run_until_complete(async move {
            let quick = spawn(async {
                sleep(Duration::from_millis(10)).await;
                1
            })
            .unwrap();
            let slow = spawn(async {
                sleep(Duration::from_millis(200)).await;
                2
            })
            .unwrap();
            let (done, pending) =
                wait_for(wait([slow, quick], ReturnWhen::FirstCompleted, None), BOUND)
                    .await
                    .unwrap()
                    .unwrap();
            assert_eq!((done.len(), pending.len()), (1, 1));
            let mut values = Vec::new();
            for t in done.into_iter().chain(pending) {
                values.push(t.await.unwrap());
            }
            values
        })
        .unwrap();
    assert_eq!(out, vec![1, 2]);
    lp.close().unwrap();
}

/// FIRST_EXCEPTION returns when a task panicked, not when one merely
/// completed; the panic is still the done task's result.
pub fn wait_first_exception(factory: impl Factory) {
    let lp = new_loop(factory);
    let _reports = capture_exceptions(&lp);
    let out = lp
        .run_until_complete(async move {
            let ok = spawn(async {
                yield_now().await;
                1
            })
            .unwrap();
            let bad = spawn(async {
                sleep(Duration::from_millis(20)).await;
                if true {
                    panic!("boom");
                }
                2
            })
            .unwrap();
            let slow = spawn(async {
                sleep(Duration::from_secs(3600)).await;
                3
            })
            .unwrap();
            let (done, pending) = wait_for(
                wait([ok, bad, slow], ReturnWhen::FirstException, None),
                BOUND,
            )
            .await
            .unwrap()
            .unwrap();
            assert_eq!((done.len(), pending.len()), (2, 1));
            let mut results = Vec::new();
            for t in done {
                results.push(t.await);
            }
            for t in &pending {
                t.cancel();
            }
            results
        })
        .unwrap();
    assert_eq!(*out[0].as_ref().unwrap(), 1);
    assert!(matches!(&out[1], Err(Error::Panicked(m)) if m.contains("boom")));
    lp.close().unwrap();
}

/// ALL_COMPLETED waits for every task; a timeout returns what is done and
/// cancels nothing.
pub fn wait_all_completed_and_timeout(factory: impl Factory) {
    let lp = new_loop(factory);
    lp.run_until_complete(async move {
        let tasks: Vec<_> = [10u64, 20, 30]
            .map(|ms| {
                spawn(async move {
                    sleep(Duration::from_millis(ms)).await;
                    ms
                })
                .unwrap()
            })
            .into();
        let (done, pending) = wait_for(wait(tasks, ReturnWhen::AllCompleted, None), BOUND)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((done.len(), pending.len()), (3, 0));

        let quick = spawn(async {}).unwrap();
        let slow = spawn(sleep(Duration::from_secs(3600))).unwrap();
        let (done, pending) = wait_for(
            wait(
                [quick, slow],
                ReturnWhen::AllCompleted,
                Some(Duration::from_millis(20)),
            ),
            BOUND,
        )
        .await
        .expect("the wait's timeout fired")
        .unwrap();
        assert_eq!((done.len(), pending.len()), (1, 1));
        assert!(!pending[0].is_finished(), "the timeout cancelled nothing");
        pending[0].cancel();
    })
    .unwrap();
    lp.close().unwrap();
}

/// `wait` on no task is a typed error (asyncio's ValueError).
pub fn wait_empty_is_invalid(factory: impl Factory) {
    let lp = new_loop(factory);
    let r = lp
        .run_until_complete(wait(
            Vec::<loop_api::Task<()>>::new(),
            ReturnWhen::AllCompleted,
            None,
        ))
        .unwrap();
    assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
    lp.close().unwrap();
}

/// `as_completed` gives results in the order the tasks finish.
pub fn as_completed_gives_completion_order(factory: impl Factory) {
    let lp = new_loop(factory);
    let order = lp
        .run_until_complete(async move {
            let tasks: Vec<_> = [60u64, 20, 40]
                .map(|ms| {
                    spawn(async move {
                        sleep(Duration::from_millis(ms)).await;
                        ms
                    })
                    .unwrap()
                })
                .into();
            let mut results = as_completed(tasks);
            assert_eq!(results.len(), 3);
            let mut order = Vec::new();
            while let Some(r) = wait_for(results.next(), BOUND).await.unwrap() {
                order.push(r.unwrap());
            }
            order
        })
        .unwrap();
    assert_eq!(order, vec![20, 40, 60]);
    lp.close().unwrap();
}

/// The outer future dropped (by a timeout, or with a cancelled task), the
/// shielded work runs on, and its result is still there to await.
pub fn shield_survives_outer_drop(factory: impl Factory) {
    let lp = new_loop(factory);
    let finished = flag();
    let f = finished.clone();
    let detached_finished = flag();
    let df = detached_finished.clone();
    let (early, late) = lp
        .run_until_complete(async move {
            let mut work = shield(async move {
                sleep(Duration::from_millis(30)).await;
                f.set(true);
                "saved"
            })
            .unwrap();
            let early = timeout(Duration::from_millis(1), &mut work).await;
            let late = wait_for(&mut work, BOUND).await.unwrap();

            // A task awaiting a shield is cancelled: the shield is dropped,
            // the work still completes.
            let outer = spawn(async move {
                shield(async move {
                    sleep(Duration::from_millis(20)).await;
                    df.set(true);
                })
                .unwrap()
                .await
            })
            .unwrap();
            yield_now().await;
            yield_now().await;
            outer.cancel();
            assert!(matches!(outer.await, Err(Error::Cancelled)));
            sleep(Duration::from_millis(60)).await;
            (early, late)
        })
        .unwrap();
    assert!(matches!(early, Err(Error::TimedOut)));
    assert_eq!(late.unwrap(), "saved");
    assert!(finished.get());
    assert!(
        detached_finished.get(),
        "the shielded work outlived its awaiter"
    );
    lp.close().unwrap();
}

/// The free `spawn` (and a group, and `shield`) need a running loop:
/// outside one they give `NoRunningLoop`; inside they run on it.
pub fn spawn_needs_a_running_loop(factory: impl Factory) {
    let lp = new_loop(factory);
    assert!(matches!(spawn(async {}), Err(Error::NoRunningLoop)));
    assert!(matches!(shield(async {}), Err(Error::NoRunningLoop)));
    assert!(matches!(
        TaskGroup::<Error>::new(),
        Err(Error::NoRunningLoop)
    ));
    let out = lp
        .run_until_complete(async { spawn(async { 6 * 7 }).unwrap().await })
        .unwrap();
    assert_eq!(out.unwrap(), 42);
    lp.close().unwrap();
}
