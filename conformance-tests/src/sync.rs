//! Section 20 — asyncio's synchronization primitives (`loop_api::sync`).
//!
//! Queues, `Event`, `Lock`, `Semaphore`/`BoundedSemaphore`, `Condition`
//! and `Barrier` inside the loop's tasks: asyncio's semantics, FIFO
//! fairness, typed errors for bad input, and cancellation safety: a waiter
//! cancelled (its task cancelled, its future dropped, or timed out by
//! `wait_for`) after it was handed an item, a permit, the lock or a
//! notification passes it on; nothing is lost.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use loop_api::sync::{
    Barrier, BoundedSemaphore, Condition, Event, LifoQueue, Lock, PriorityQueue, PutError, Queue,
    Semaphore, SyncError,
};
use loop_api::{wait_for, yield_now, EventLoop};

use crate::support::{new_loop, Log};
use crate::Factory;

#[doc(hidden)]
#[macro_export]
macro_rules! __sync_tests {
    ($f:expr) => {
        $crate::__section!($f, sync: [
            queue_orders_and_unbounded_maxsize_zero,
            queue_put_waits_while_full,
            queue_getters_are_served_in_arrival_order,
            queue_nowait_errors_are_typed,
            queue_join_waits_for_task_done,
            queue_shutdown_fails_waiters_and_drains,
            queue_shutdown_immediate_discards,
            queue_cancelled_getter_passes_its_item_on,
            queue_dropped_get_puts_its_item_back_in_front,
            queue_timed_out_gets_lose_no_item,
            queue_cancelled_putter_frees_its_place,
            event_wakes_every_waiter,
            lock_is_fifo_and_release_unlocked_is_an_error,
            lock_cancelled_waiter_passes_the_lock_on,
            semaphore_bad_values_are_typed_errors,
            semaphore_cancelled_waiter_passes_the_permit_on,
            semaphore_timed_out_acquires_lose_no_permit,
            condition_notify_in_order_and_errors,
            condition_cancelled_notified_waiter_passes_it_on,
            barrier_releases_parties_with_distinct_indices,
            barrier_withdraws_dropped_waiter_and_breaks,
        ]);
    };
}

/// Runs `body` as the main task of a fresh loop, then closes the loop.
fn run<F, Fut>(factory: F, body: impl FnOnce(EventLoop) -> Fut)
where
    F: Factory,
    Fut: Future<Output = ()> + 'static,
{
    let lp = new_loop(factory);
    let fut = body(lp.clone());
    // A lost wake-up fails the test instead of hanging it.
    lp.run_until_complete(wait_for(fut, Duration::from_secs(30)))
        .expect("the test's main task")
        .expect("the test finished within 30 s (a wake-up was lost)");
    lp.close().expect("close");
}

/// Lets every ready task run for a while.
async fn settle() {
    for _ in 0..20 {
        yield_now().await;
    }
}

/// Polls `fut` once (registering it as a waiter); `Some(output)` if it was ready.
async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Option<F::Output> {
    poll_fn(|cx| {
        Poll::Ready(match std::pin::Pin::new(&mut *fut).poll(cx) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        })
    })
    .await
}

/// `Queue` is FIFO, `LifoQueue` LIFO, `PriorityQueue` smallest first; maxsize 0 is unbounded.
pub fn queue_orders_and_unbounded_maxsize_zero(f: impl Factory) {
    run(f, |_| async {
        let q = Queue::new(0);
        for i in 0..10_000 {
            q.put(i).await.unwrap();
        }
        assert_eq!(q.qsize(), 10_000);
        assert!(!q.full());
        for i in 0..10_000 {
            assert_eq!(q.get().await, Ok(i));
        }
        let lifo = LifoQueue::new(0);
        let prio = PriorityQueue::new(0);
        for i in [3, 1, 2] {
            lifo.put(i).await.unwrap();
            prio.put(i).await.unwrap();
        }
        let lifo_out: Vec<i32> = (0..3).map(|_| lifo.get_nowait().unwrap()).collect();
        let prio_out: Vec<i32> = (0..3).map(|_| prio.get_nowait().unwrap()).collect();
        assert_eq!(lifo_out, [2, 1, 3]);
        assert_eq!(prio_out, [1, 2, 3]);
    });
}

/// A bounded queue makes `put` wait until a `get` frees a place.
pub fn queue_put_waits_while_full(f: impl Factory) {
    run(f, |lp| async move {
        let q = Queue::new(2);
        let log = Log::new();
        let producer = {
            let (q, log) = (q.clone(), log.clone());
            lp.create_task(async move {
                for i in 0..4 {
                    q.put(i).await.unwrap();
                    log.push(i);
                }
            })
            .unwrap()
        };
        settle().await;
        assert_eq!(log.get(), [0, 1], "the third put waits");
        assert!(q.full());
        assert_eq!(q.get().await, Ok(0));
        settle().await;
        assert_eq!(log.get(), [0, 1, 2]);
        for i in 1..4 {
            assert_eq!(q.get().await, Ok(i));
        }
        producer.await.unwrap();
    });
}

/// Getters waiting on an empty queue get items in the order they came.
pub fn queue_getters_are_served_in_arrival_order(f: impl Factory) {
    run(f, |lp| async move {
        let q = Queue::new(0);
        let tasks: Vec<_> = (0..5)
            .map(|_| {
                let q = q.clone();
                lp.create_task(async move { q.get().await.unwrap() })
                    .unwrap()
            })
            .collect();
        settle().await;
        for i in 0..5 {
            q.put_nowait(i).unwrap();
        }
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.unwrap(), i);
        }
    });
}

/// `put_nowait`/`get_nowait`/`task_done` refuse with typed errors, never a panic.
pub fn queue_nowait_errors_are_typed(f: impl Factory) {
    run(f, |_| async {
        let q = Queue::new(1);
        assert_eq!(q.get_nowait(), Err(SyncError::QueueEmpty));
        assert_eq!(q.task_done(), Err(SyncError::TaskDoneTooManyTimes));
        q.put_nowait("a").unwrap();
        assert_eq!(q.put_nowait("b"), Err(PutError::Full("b")));
        assert_eq!(q.get_nowait(), Ok("a"));
        assert_eq!(q.task_done(), Ok(()));
        assert_eq!(q.task_done(), Err(SyncError::TaskDoneTooManyTimes));
    });
}

/// `join` returns once every item put was marked done.
pub fn queue_join_waits_for_task_done(f: impl Factory) {
    run(f, |lp| async move {
        let q = Queue::new(0);
        q.join().await; // nothing pending: at once
        q.put_nowait(1).unwrap();
        q.put_nowait(2).unwrap();
        let joined = Event::new();
        let joiner = {
            let (q, joined) = (q.clone(), joined.clone());
            lp.create_task(async move {
                q.join().await;
                joined.set();
            })
            .unwrap()
        };
        q.get().await.unwrap();
        q.get().await.unwrap();
        q.task_done().unwrap();
        settle().await;
        assert!(!joined.is_set(), "one item is not done yet");
        q.task_done().unwrap();
        joiner.await.unwrap();
        assert!(joined.is_set());
    });
}

/// `shutdown()` fails waiting getters and putters (the putter's item comes
/// back), refuses later puts, and lets the items left be taken.
pub fn queue_shutdown_fails_waiters_and_drains(f: impl Factory) {
    run(f, |lp| async move {
        let empty: Queue<u32> = Queue::new(1);
        let getter = {
            let q = empty.clone();
            lp.create_task(async move { q.get().await }).unwrap()
        };
        let full = Queue::new(1);
        full.put_nowait(1).unwrap();
        let putter = {
            let q = full.clone();
            lp.create_task(async move { q.put(2).await }).unwrap()
        };
        settle().await;
        empty.shutdown(false);
        full.shutdown(false);
        assert_eq!(getter.await.unwrap(), Err(SyncError::QueueShutDown));
        assert_eq!(putter.await.unwrap(), Err(PutError::ShutDown(2)));
        assert_eq!(full.put(3).await, Err(PutError::ShutDown(3)));
        assert_eq!(full.put_nowait(3), Err(PutError::ShutDown(3)));
        assert_eq!(full.get().await, Ok(1));
        assert_eq!(full.get().await, Err(SyncError::QueueShutDown));
        assert_eq!(full.get_nowait(), Err(SyncError::QueueShutDown));
    });
}

/// `shutdown(true)` discards the items (counted done) so `join` returns.
pub fn queue_shutdown_immediate_discards(f: impl Factory) {
    run(f, |_| async {
        let q = Queue::new(0);
        q.put_nowait(1).unwrap();
        q.put_nowait(2).unwrap();
        q.shutdown(true);
        assert_eq!(q.qsize(), 0);
        assert_eq!(q.get().await, Err(SyncError::QueueShutDown));
        q.join().await;
    });
}

/// A getter handed an item and cancelled (`Task::cancel`) before it ran
/// passes the item to the next getter, or back into the queue.
pub fn queue_cancelled_getter_passes_its_item_on(f: impl Factory) {
    run(f, |lp| async move {
        let q = Queue::new(0);
        let spawn_getter = || {
            let q = q.clone();
            lp.create_task(async move { q.get().await.unwrap() })
                .unwrap()
        };
        let a = spawn_getter();
        let b = spawn_getter();
        settle().await;
        q.put_nowait("x").unwrap(); // handed to a
        q.put_nowait("y").unwrap(); // handed to b
        assert!(a.cancel());
        assert_eq!(b.await.unwrap(), "y");
        // a's item went back to the front.
        assert_eq!(q.qsize(), 1);
        assert_eq!(q.get_nowait(), Ok("x"));

        let a = spawn_getter();
        let b = spawn_getter();
        settle().await;
        q.put_nowait("z").unwrap(); // handed to a
        assert!(a.cancel()); // passes it to b
        assert_eq!(b.await.unwrap(), "z");
        assert!(q.empty());
    });
}

/// A `get` future dropped after it was handed an item puts the item back
/// in front of the others.
pub fn queue_dropped_get_puts_its_item_back_in_front(f: impl Factory) {
    run(f, |_| async {
        let q = Queue::new(0);
        let mut get = q.get();
        assert_eq!(poll_once(&mut get).await, None); // waiting
        q.put_nowait(1).unwrap(); // handed to `get`
        q.put_nowait(2).unwrap();
        drop(get);
        assert_eq!(q.get_nowait(), Ok(1));
        assert_eq!(q.get_nowait(), Ok(2));
    });
}

/// Gets timed out by `wait_for` at random moments against a producer lose
/// no item and take none twice.
pub fn queue_timed_out_gets_lose_no_item(f: impl Factory) {
    const N: u32 = 2000;
    run(f, |lp| async move {
        let q = Queue::new(4);
        let producer = {
            let q = q.clone();
            lp.create_task(async move {
                for i in 0..N {
                    q.put(i).await.unwrap();
                    if i % 3 == 0 {
                        yield_now().await;
                    }
                }
            })
            .unwrap()
        };
        let mut got = Vec::new();
        let mut timeouts = 0u32;
        while got.len() < N as usize {
            match wait_for(q.get(), Duration::from_nanos(u64::from(timeouts % 5))).await {
                Ok(item) => got.push(item.unwrap()),
                Err(_) => timeouts += 1,
            }
        }
        producer.await.unwrap();
        assert_eq!(got, (0..N).collect::<Vec<_>>());
        assert!(q.empty());
    });
}

/// A putter cancelled while it waits puts nothing, and a place reserved for
/// a cancelled putter goes to the next one.
pub fn queue_cancelled_putter_frees_its_place(f: impl Factory) {
    run(f, |lp| async move {
        let q = Queue::new(1);
        q.put_nowait(0).unwrap();
        let spawn_putter = |v| {
            let q = q.clone();
            lp.create_task(async move { q.put(v).await.unwrap() })
                .unwrap()
        };
        let a = spawn_putter(1);
        let b = spawn_putter(2);
        settle().await;
        assert_eq!(q.get_nowait(), Ok(0)); // the place is reserved for a
        assert!(a.cancel()); // passes it to b
        b.await.unwrap();
        assert_eq!(q.get_nowait(), Ok(2));
        assert_eq!(q.get_nowait(), Err(SyncError::QueueEmpty));
    });
}

/// `set()` wakes every waiter, even if `clear()` follows before they run.
pub fn event_wakes_every_waiter(f: impl Factory) {
    run(f, |lp| async move {
        let ev = Event::new();
        let woken = Log::new();
        let tasks: Vec<_> = (0..3)
            .map(|i| {
                let (ev, woken) = (ev.clone(), woken.clone());
                lp.create_task(async move {
                    ev.wait().await;
                    woken.push(i);
                })
                .unwrap()
            })
            .collect();
        settle().await;
        assert!(woken.is_empty());
        ev.set();
        ev.clear();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(woken.get(), [0, 1, 2]);
        assert!(!ev.is_set());
        ev.set();
        ev.wait().await; // set: at once
    });
}

/// Waiters get the lock in arrival order; releasing an unlocked lock is `NotLocked`.
pub fn lock_is_fifo_and_release_unlocked_is_an_error(f: impl Factory) {
    run(f, |lp| async move {
        let lock = Lock::new();
        assert_eq!(lock.release(), Err(SyncError::NotLocked));
        let order = Log::new();
        let guard = lock.lock().await;
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                let (lock, order) = (lock.clone(), order.clone());
                lp.create_task(async move {
                    let _g = lock.lock().await;
                    order.push(i);
                    yield_now().await;
                })
                .unwrap()
            })
            .collect();
        settle().await;
        assert!(!lock.try_acquire(), "held");
        drop(guard);
        assert!(
            !lock.try_acquire(),
            "handed to the first waiter: no barging"
        );
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(order.get(), [0, 1, 2, 3]);
        assert!(!lock.locked());
        lock.acquire().await;
        assert_eq!(lock.release(), Ok(()));
    });
}

/// A waiter handed the lock and cancelled before it ran passes the lock on.
pub fn lock_cancelled_waiter_passes_the_lock_on(f: impl Factory) {
    run(f, |lp| async move {
        let lock = Lock::new();
        lock.acquire().await;
        let spawn_waiter = || {
            let lock = lock.clone();
            lp.create_task(async move {
                lock.acquire().await;
                lock.release().unwrap();
            })
            .unwrap()
        };
        let a = spawn_waiter();
        let b = spawn_waiter();
        settle().await;
        lock.release().unwrap(); // handed to a
        assert!(a.cancel()); // a passes it to b
        wait_for(b, Duration::from_secs(10))
            .await
            .expect("b got the lock")
            .unwrap();
        assert!(!lock.locked());
        // A dropped lock() future, handed the lock, passes it on too.
        lock.acquire().await;
        let mut fut = lock.lock();
        assert!(poll_once(&mut fut).await.is_none());
        lock.release().unwrap(); // handed to fut
        drop(fut);
        assert!(!lock.locked());
    });
}

/// Negative semaphore values and over-releases are typed errors.
pub fn semaphore_bad_values_are_typed_errors(f: impl Factory) {
    run(f, |_| async {
        assert!(matches!(
            Semaphore::new(-1),
            Err(SyncError::InvalidArgument(_))
        ));
        assert!(matches!(
            BoundedSemaphore::new(-5),
            Err(SyncError::InvalidArgument(_))
        ));
        let b = BoundedSemaphore::new(2).unwrap();
        assert_eq!(b.release(), Err(SyncError::ReleasedTooManyTimes));
        b.acquire().await;
        assert_eq!(b.value(), 1);
        assert_eq!(b.release(), Ok(()));
        let s = Semaphore::new(0).unwrap();
        assert!(s.locked());
        s.release(); // unbounded: above the initial value is allowed
        assert_eq!(s.value(), 1);
        {
            let _p = s.permit().await;
            assert_eq!(s.value(), 0);
        }
        assert_eq!(s.value(), 1);
    });
}

/// A waiter granted a permit and cancelled before it ran passes the permit on.
pub fn semaphore_cancelled_waiter_passes_the_permit_on(f: impl Factory) {
    run(f, |lp| async move {
        let sem = Semaphore::new(0).unwrap();
        let spawn_waiter = |i| {
            let sem = sem.clone();
            lp.create_task(async move {
                sem.acquire().await;
                i
            })
            .unwrap()
        };
        let a = spawn_waiter(1);
        let b = spawn_waiter(2);
        settle().await;
        sem.release(); // granted to a
        assert!(a.cancel()); // passes it to b
        assert_eq!(b.await.unwrap(), 2);
        assert_eq!(sem.value(), 0);
    });
}

/// Acquires timed out at random moments against releasers lose no permit.
pub fn semaphore_timed_out_acquires_lose_no_permit(f: impl Factory) {
    run(f, |lp| async move {
        let sem = BoundedSemaphore::new(3).unwrap();
        let workers: Vec<_> = (0..6)
            .map(|w| {
                let sem = sem.clone();
                lp.create_task(async move {
                    let mut held = 0u32;
                    for k in 0..300u64 {
                        let t = Duration::from_nanos((k + w) % 4);
                        if let Ok(permit) = wait_for(sem.permit(), t).await {
                            held += 1;
                            yield_now().await;
                            drop(permit);
                        }
                    }
                    held
                })
                .unwrap()
            })
            .collect();
        let mut total = 0;
        for t in workers {
            total += t.await.unwrap();
        }
        assert!(total > 0);
        assert_eq!(sem.value(), 3, "every permit came back");
        assert!(!sem.locked());
    });
}

/// `notify(n)` wakes the n oldest waiters, each returning with the lock
/// held; without the lock, `wait`/`notify` are `NotLocked`.
pub fn condition_notify_in_order_and_errors(f: impl Factory) {
    run(f, |lp| async move {
        let cond = Condition::new();
        assert_eq!(cond.wait().await, Err(SyncError::NotLocked));
        assert_eq!(cond.notify(1), Err(SyncError::NotLocked));
        let order = Log::new();
        let tasks: Vec<_> = (0..3)
            .map(|i| {
                let (cond, order) = (cond.clone(), order.clone());
                lp.create_task(async move {
                    cond.acquire().await;
                    cond.wait().await.unwrap();
                    assert!(cond.locked());
                    order.push(i);
                    cond.release().unwrap();
                })
                .unwrap()
            })
            .collect();
        settle().await;
        cond.acquire().await;
        cond.notify(2).unwrap();
        cond.release().unwrap();
        settle().await;
        assert_eq!(order.get(), [0, 1]);
        cond.acquire().await;
        cond.notify_all().unwrap();
        cond.release().unwrap();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(order.get(), [0, 1, 2]);
        // wait_for: checked with the lock held.
        let flag = std::rc::Rc::new(std::cell::Cell::new(false));
        let setter = {
            let (cond, flag) = (cond.clone(), flag.clone());
            lp.create_task(async move {
                cond.acquire().await;
                flag.set(true);
                cond.notify(1).unwrap();
                cond.release().unwrap();
            })
            .unwrap()
        };
        cond.acquire().await;
        cond.wait_for(|| flag.get()).await.unwrap();
        cond.release().unwrap();
        setter.await.unwrap();
    });
}

/// A waiter notified and cancelled (task cancel, or dropped future) before
/// it returned passes the notification to the next waiter.
pub fn condition_cancelled_notified_waiter_passes_it_on(f: impl Factory) {
    run(f, |lp| async move {
        let cond = Condition::new();
        let spawn_waiter = |i| {
            let cond = cond.clone();
            lp.create_task(async move {
                cond.acquire().await;
                cond.wait().await.unwrap();
                cond.release().unwrap();
                i
            })
            .unwrap()
        };
        let a = spawn_waiter(1);
        let b = spawn_waiter(2);
        settle().await;
        cond.acquire().await;
        cond.notify(1).unwrap(); // a is notified
        assert!(a.cancel()); // passes it to b
        cond.release().unwrap();
        assert_eq!(
            wait_for(b, Duration::from_secs(10))
                .await
                .expect("b was notified")
                .unwrap(),
            2
        );
        // The same with a dropped wait() future.
        cond.acquire().await;
        let mut w = cond.wait();
        assert!(poll_once(&mut w).await.is_none()); // releases the lock, waits first
        let c = spawn_waiter(3);
        settle().await;
        cond.acquire().await;
        cond.notify(1).unwrap(); // w is notified
        cond.release().unwrap();
        drop(w); // notified, never returned: passes it to c
        assert_eq!(
            wait_for(c, Duration::from_secs(10))
                .await
                .expect("c was notified")
                .unwrap(),
            3
        );
        assert!(!cond.locked());
    });
}

/// A barrier of n releases its n waiters together with indices 0..n, and
/// is ready for the next round.
pub fn barrier_releases_parties_with_distinct_indices(f: impl Factory) {
    run(f, |lp| async move {
        let barrier = Barrier::new(3).unwrap();
        for _round in 0..3 {
            let tasks: Vec<_> = (0..2)
                .map(|_| {
                    let b = barrier.clone();
                    lp.create_task(async move { b.wait().await.unwrap() })
                        .unwrap()
                })
                .collect();
            settle().await;
            assert_eq!(barrier.n_waiting(), 2);
            let mut idx = vec![barrier.wait().await.unwrap()];
            for t in tasks {
                idx.push(t.await.unwrap());
            }
            idx.sort();
            assert_eq!(idx, [0, 1, 2]);
            assert_eq!(barrier.n_waiting(), 0);
        }
        assert!(matches!(
            Barrier::new(0),
            Err(SyncError::InvalidArgument(_))
        ));
    });
}

/// A waiter dropped before the barrier filled withdraws; `abort()` fails
/// waiters and later waits until `reset()`.
pub fn barrier_withdraws_dropped_waiter_and_breaks(f: impl Factory) {
    run(f, |lp| async move {
        let barrier = Barrier::new(2).unwrap();
        {
            let mut w = pin!(barrier.wait());
            assert!(poll_fn(|cx| Poll::Ready(w.as_mut().poll(cx).is_pending())).await);
            assert_eq!(barrier.n_waiting(), 1);
        }
        assert_eq!(barrier.n_waiting(), 0, "the dropped waiter withdrew");
        let waiter = {
            let b = barrier.clone();
            lp.create_task(async move { b.wait().await }).unwrap()
        };
        settle().await;
        barrier.abort();
        assert_eq!(waiter.await.unwrap(), Err(SyncError::BrokenBarrier));
        assert_eq!(barrier.wait().await, Err(SyncError::BrokenBarrier));
        barrier.reset();
        let waiter = {
            let b = barrier.clone();
            lp.create_task(async move { b.wait().await }).unwrap()
        };
        settle().await;
        let me = barrier.wait().await;
        assert_eq!(me, Ok(1));
        assert_eq!(waiter.await.unwrap(), Ok(0));
    });
}
