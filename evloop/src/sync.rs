//! asyncio's synchronization primitives, loop-local (see [`loop_api::sync`]
//! for the decisions): [`Queue`], [`LifoQueue`], [`PriorityQueue`],
//! [`Event`], [`Lock`], [`Semaphore`], [`BoundedSemaphore`], [`Condition`],
//! [`Barrier`]. Cheap `Clone` handles, `!Send`, for the tasks of one loop;
//! strict FIFO; a waiter cancelled after it was handed an item, permit or
//! wake-up passes it on.
//!
//! A producer and a consumer over a bounded queue, with `join`:
//!
//! ```
//! use evloop::sync::Queue;
//! let got = evloop::run(async {
//!     let lp = evloop::get_running_loop().unwrap();
//!     let q = Queue::new(2); // at most 2 items queued: put() waits
//!     let consumer = lp.create_task({
//!         let q = q.clone();
//!         async move {
//!             let mut got = Vec::new();
//!             while let Ok(item) = q.get().await {
//!                 got.push(item);
//!                 q.task_done().unwrap();
//!             }
//!             got // get() failed: the queue was shut down and is empty
//!         }
//!     }).unwrap();
//!     for i in 0..10 {
//!         q.put(i).await.unwrap();
//!     }
//!     q.join().await; // every item was taken and marked done
//!     q.shutdown(false);
//!     consumer.await.unwrap()
//! })
//! .unwrap();
//! assert_eq!(got, (0..10).collect::<Vec<_>>());
//! ```
//!
//! A lock and a semaphore, with guards:
//!
//! ```
//! use evloop::sync::{Lock, Semaphore};
//! evloop::run(async {
//!     let lp = evloop::get_running_loop().unwrap();
//!     let lock = Lock::new();
//!     let sem = Semaphore::new(2).unwrap();
//!     let tasks: Vec<_> = (0..4)
//!         .map(|_| {
//!             let (lock, sem) = (lock.clone(), sem.clone());
//!             lp.create_task(async move {
//!                 let _permit = sem.permit().await; // at most 2 at a time
//!                 let _guard = lock.lock().await; // one at a time
//!                 evloop::sleep(std::time::Duration::from_millis(1)).await;
//!             })
//!             .unwrap()
//!         })
//!         .collect();
//!     for t in tasks {
//!         t.await.unwrap();
//!     }
//!     assert!(!lock.locked());
//!     assert_eq!(sem.value(), 2);
//! })
//! .unwrap();
//! ```

pub use loop_api::sync::{
    Barrier, BarrierWait, BoundedSemaphore, Condition, ConditionWait, Event, EventWait, Get, Join,
    LifoQueue, Lock, LockAcquire, LockGuard, PriorityQueue, Put, PutError, Queue, QueueKind,
    Semaphore, SemaphoreAcquire, SemaphorePermit, SyncError,
};
