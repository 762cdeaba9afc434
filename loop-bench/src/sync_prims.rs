//! Synchronization primitives: evloop's `evloop::sync` against
//! async-channel (on evloop) and `tokio::sync` (on tokio's
//! `current_thread` runtime), operations per second.
//!
//! Each workload is written once, over [`Tx`]/[`Rx`] (a queue or channel) or
//! [`Mutexish`] (a lock or a semaphore of one permit), and run by each
//! contender on a fresh loop of its own runtime, on the calling thread. The
//! tasks are `!Send` (evloop's primitives are loop-local), so tokio runs
//! them in a `LocalSet`.
//!
//! - `queue ping-pong`: two tasks and two queues of capacity 1 (or
//!   unbounded); one message there and back is one operation.
//! - `lock handoff`: two tasks take the lock in turn, each yielding while
//!   it holds it, so every acquire waits and is handed the lock; one
//!   acquire + release is one operation.
//! - `lock uncontended`: one task acquires and releases in a loop.
//!
//! `cargo run --release -p loop-bench --example sync_prims [-- MS]`
//! prints the table; nothing here asserts speed.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// Operations between two looks at the clock.
const CHECK_EVERY: u64 = 256;
/// The message that ends a ping-pong.
const STOP: u64 = u64::MAX;

/// The sending end of a queue or channel carrying `u64`s.
pub trait Tx: 'static {
    /// Sends (puts) `v`, waiting for room.
    fn send(&self, v: u64) -> impl Future<Output = ()>;
}

/// The receiving end.
pub trait Rx: 'static {
    /// Receives (gets) the next value.
    fn recv(&mut self) -> impl Future<Output = u64>;
}

/// A lock, or a semaphore of one permit.
pub trait Mutexish: Clone + 'static {
    /// Acquires; the guard releases on drop.
    fn hold(&self) -> impl Future<Output = impl Sized>;
}

/// A boxed task, spawned on the contender's loop.
pub type BoxFut = Pin<Box<dyn Future<Output = u64>>>;

/// How a contender spawns a `!Send` task and awaits its result.
pub type Spawn = fn(BoxFut) -> BoxFut;

/// evloop's queue: `Queue::put`.
impl Tx for evloop::sync::Queue<u64> {
    async fn send(&self, v: u64) {
        self.put(v).await.expect("never shut down");
    }
}

/// evloop's queue: `Queue::get`.
impl Rx for evloop::sync::Queue<u64> {
    async fn recv(&mut self) -> u64 {
        self.get().await.expect("never shut down")
    }
}

impl Tx for async_channel::Sender<u64> {
    async fn send(&self, v: u64) {
        async_channel::Sender::send(self, v).await.expect("open");
    }
}

impl Rx for async_channel::Receiver<u64> {
    async fn recv(&mut self) -> u64 {
        async_channel::Receiver::recv(self).await.expect("open")
    }
}

impl Tx for tokio::sync::mpsc::Sender<u64> {
    async fn send(&self, v: u64) {
        tokio::sync::mpsc::Sender::send(self, v)
            .await
            .expect("open");
    }
}

impl Rx for tokio::sync::mpsc::Receiver<u64> {
    async fn recv(&mut self) -> u64 {
        tokio::sync::mpsc::Receiver::recv(self).await.expect("open")
    }
}

impl Tx for tokio::sync::mpsc::UnboundedSender<u64> {
    async fn send(&self, v: u64) {
        tokio::sync::mpsc::UnboundedSender::send(self, v).expect("open");
    }
}

impl Rx for tokio::sync::mpsc::UnboundedReceiver<u64> {
    async fn recv(&mut self) -> u64 {
        tokio::sync::mpsc::UnboundedReceiver::recv(self)
            .await
            .expect("open")
    }
}

impl Mutexish for evloop::sync::Lock {
    fn hold(&self) -> impl Future<Output = impl Sized> {
        self.lock()
    }
}

impl Mutexish for evloop::sync::Semaphore {
    fn hold(&self) -> impl Future<Output = impl Sized> {
        self.permit()
    }
}

/// `tokio::sync::Mutex<()>`.
#[derive(Clone, Debug, Default)]
pub struct TokioMutex(std::rc::Rc<tokio::sync::Mutex<()>>);

impl Mutexish for TokioMutex {
    async fn hold(&self) -> impl Sized {
        self.0.lock().await
    }
}

/// `tokio::sync::Semaphore` of one permit.
#[derive(Clone, Debug)]
pub struct TokioSemaphore(std::rc::Rc<tokio::sync::Semaphore>);

impl Mutexish for TokioSemaphore {
    async fn hold(&self) -> impl Sized {
        self.0.acquire().await.expect("never closed")
    }
}

/// Ping-pong between this task and an echo task over `there` and `back`
/// until `deadline`; returns the round trips.
pub async fn ping_pong<T: Tx, R: Rx>(
    there: (T, R),
    back: (T, R),
    spawn: Spawn,
    deadline: Instant,
) -> u64 {
    let (tx_there, mut rx_there) = there;
    let (tx_back, mut rx_back) = back;
    let echo = spawn(Box::pin(async move {
        loop {
            let v = rx_there.recv().await;
            tx_back.send(v).await;
            if v == STOP {
                return 0;
            }
        }
    }));
    let mut n = 0u64;
    loop {
        for _ in 0..CHECK_EVERY {
            tx_there.send(n).await;
            std::hint::black_box(rx_back.recv().await);
            n += 1;
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    tx_there.send(STOP).await;
    rx_back.recv().await;
    echo.await;
    n
}

/// Two tasks take `m` in turn, yielding while they hold it; returns the
/// acquisitions.
pub async fn lock_handoff<M, Y, YF>(m: M, yield_now: Y, spawn: Spawn, deadline: Instant) -> u64
where
    M: Mutexish,
    Y: Fn() -> YF + Copy + 'static,
    YF: Future<Output = ()>,
{
    let worker = move |m: M| async move {
        let mut n = 0u64;
        loop {
            for _ in 0..CHECK_EVERY {
                let g = m.hold().await;
                yield_now().await;
                drop(g);
            }
            n += CHECK_EVERY;
            if Instant::now() >= deadline {
                return n;
            }
        }
    };
    let other = spawn(Box::pin(worker(m.clone())));
    let mine = worker(m).await;
    mine + other.await
}

/// One task acquires and releases `m` until `deadline`.
pub async fn lock_uncontended<M: Mutexish>(m: M, deadline: Instant) -> u64 {
    let mut n = 0u64;
    loop {
        for _ in 0..CHECK_EVERY {
            drop(std::hint::black_box(m.hold().await));
        }
        n += CHECK_EVERY;
        if Instant::now() >= deadline {
            return n;
        }
    }
}

/// The workloads of this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncWorkload {
    /// Queue (channel) ping-pong, capacity 1.
    PingPongBounded,
    /// Queue (channel) ping-pong, unbounded.
    PingPongUnbounded,
    /// Lock handed between two tasks.
    LockHandoff,
    /// Semaphore of one permit handed between two tasks.
    SemaphoreHandoff,
    /// Lock acquired and released by one task.
    LockUncontended,
}

impl SyncWorkload {
    /// All of them, in report order.
    pub const ALL: [SyncWorkload; 5] = [
        SyncWorkload::PingPongBounded,
        SyncWorkload::PingPongUnbounded,
        SyncWorkload::LockHandoff,
        SyncWorkload::SemaphoreHandoff,
        SyncWorkload::LockUncontended,
    ];

    /// What one operation is, for tables.
    pub fn describe(self) -> &'static str {
        match self {
            SyncWorkload::PingPongBounded => "queue ping-pong, capacity 1 (round trips/s)",
            SyncWorkload::PingPongUnbounded => "queue ping-pong, unbounded (round trips/s)",
            SyncWorkload::LockHandoff => "lock handoff, 2 tasks (acquires/s)",
            SyncWorkload::SemaphoreHandoff => "semaphore(1) handoff, 2 tasks (acquires/s)",
            SyncWorkload::LockUncontended => "lock uncontended (acquire+release/s)",
        }
    }
}

/// The contenders of this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncContender {
    /// `evloop::sync` on evloop (mio backend).
    Evloop,
    /// async-channel on evloop (mio backend); queues only.
    AsyncChannel,
    /// `tokio::sync` on tokio's `current_thread` runtime.
    Tokio,
}

impl SyncContender {
    /// All of them.
    pub const ALL: [SyncContender; 3] = [
        SyncContender::Evloop,
        SyncContender::AsyncChannel,
        SyncContender::Tokio,
    ];

    /// The contender's name in tables.
    pub fn name(self) -> &'static str {
        match self {
            SyncContender::Evloop => "evloop::sync",
            SyncContender::AsyncChannel => "async-channel (evloop)",
            SyncContender::Tokio => "tokio::sync",
        }
    }
}

fn evloop_spawn(fut: BoxFut) -> BoxFut {
    let lp = evloop::get_running_loop().expect("inside the loop");
    let task = lp.create_task(fut).expect("loop open");
    Box::pin(async move { task.await.expect("no panic") })
}

fn tokio_spawn(fut: BoxFut) -> BoxFut {
    let task = tokio::task::spawn_local(fut);
    Box::pin(async move { task.await.expect("no panic") })
}

fn on_evloop<F: Future<Output = u64> + 'static>(fut: F) -> Result<u64, String> {
    evloop::run_with(|| evloop::new_event_loop_for("mio"), fut).map_err(|e| e.to_string())
}

fn on_tokio<F: Future<Output = u64> + 'static>(fut: F) -> Result<u64, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    Ok(tokio::task::LocalSet::new().block_on(&rt, fut))
}

/// Runs `w` on `c` for a warm-up of `window / 4`, then `window`; returns
/// operations per second, or `Err(reason)` (a contender that has no such
/// primitive says so).
pub fn measure(c: SyncContender, w: SyncWorkload, window: Duration) -> Result<f64, String> {
    let once = |d: Duration| -> Result<(u64, Duration), String> {
        let start = Instant::now();
        let deadline = start + d;
        let ops = run_once(c, w, deadline)?;
        Ok((ops, start.elapsed()))
    };
    once(window / 4)?;
    let (ops, took) = once(window)?;
    Ok(ops as f64 / took.as_secs_f64())
}

fn run_once(c: SyncContender, w: SyncWorkload, deadline: Instant) -> Result<u64, String> {
    use evloop::sync::{Lock, Queue, Semaphore};
    use SyncContender as C;
    use SyncWorkload as W;
    let cap = |w: W| if w == W::PingPongBounded { 1 } else { 0 };
    match (c, w) {
        (C::Evloop, W::PingPongBounded | W::PingPongUnbounded) => {
            let chan = || {
                let q = Queue::new(cap(w));
                (q.clone(), q)
            };
            on_evloop(ping_pong(chan(), chan(), evloop_spawn, deadline))
        }
        (C::Evloop, W::LockHandoff) => on_evloop(lock_handoff(
            Lock::new(),
            evloop::yield_now,
            evloop_spawn,
            deadline,
        )),
        (C::Evloop, W::SemaphoreHandoff) => on_evloop(lock_handoff(
            Semaphore::new(1).expect("1 is valid"),
            evloop::yield_now,
            evloop_spawn,
            deadline,
        )),
        (C::Evloop, W::LockUncontended) => on_evloop(lock_uncontended(Lock::new(), deadline)),
        (C::AsyncChannel, W::PingPongBounded | W::PingPongUnbounded) => {
            let chan = || {
                if w == W::PingPongBounded {
                    async_channel::bounded(1)
                } else {
                    async_channel::unbounded()
                }
            };
            on_evloop(ping_pong(chan(), chan(), evloop_spawn, deadline))
        }
        (C::AsyncChannel, _) => Err("async-channel has no lock or semaphore".to_owned()),
        (C::Tokio, W::PingPongBounded) => {
            let chan = || tokio::sync::mpsc::channel(1);
            on_tokio(ping_pong(chan(), chan(), tokio_spawn, deadline))
        }
        (C::Tokio, W::PingPongUnbounded) => {
            let chan = tokio::sync::mpsc::unbounded_channel;
            on_tokio(ping_pong(chan(), chan(), tokio_spawn, deadline))
        }
        (C::Tokio, W::LockHandoff) => on_tokio(lock_handoff(
            TokioMutex::default(),
            tokio::task::yield_now,
            tokio_spawn,
            deadline,
        )),
        (C::Tokio, W::SemaphoreHandoff) => on_tokio(lock_handoff(
            TokioSemaphore(std::rc::Rc::new(tokio::sync::Semaphore::new(1))),
            tokio::task::yield_now,
            tokio_spawn,
            deadline,
        )),
        (C::Tokio, W::LockUncontended) => {
            on_tokio(lock_uncontended(TokioMutex::default(), deadline))
        }
    }
}
