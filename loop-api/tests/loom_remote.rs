//! A loom model of the cross-thread wake-up protocol (`src/remote.rs`):
//! `call_soon_threadsafe` and `LoopHandle::stop` (pushes from other
//! threads) racing the loop going to sleep, and racing `close()`.
//!
//! Run it with (a few seconds):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p loop-api --release --test loom_remote
//! ```
//!
//! `LOOM_MAX_PREEMPTIONS` bounds the search (3 unless set). Under
//! `--cfg loom` the protocol's atomics, fences and lock come from loom and
//! its queue is a stand-in whose emptiness check may read stale (see
//! `remote.rs`), so only the protocol's own fences can make it correct.
//!
//! The backend is modelled by [`Backend`]: a sticky "notification pending"
//! flag (an eventfd) that every wait consumes. A wait that finds nothing
//! queued and no notification pending blocks; the model stops the loop
//! thread there and, once every producer has finished, checks that a
//! notification is pending to wake it, or that nothing was left queued.
//! A blocked loop with work queued and no notification pending is a lost
//! wake-up.
#![cfg(loom)]

use std::sync::Arc as StdArc;

use loom::model::Builder;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use loop_api::remote::RemoteQueue;
use loop_driver::Notify;

/// The item a `stop()` sends; callbacks are numbered from 1.
const STOP: u32 = 0;

/// The backend's wake-up side: an eventfd-like sticky flag.
#[derive(Default)]
struct Backend {
    /// A notification is pending: the current or next wait returns.
    pending: AtomicBool,
    /// Notifications sent in all.
    sent: AtomicUsize,
    /// The notifier has been dropped (its descriptor closed).
    gone: AtomicBool,
}

/// The `Notify` the queue holds.
struct Notifier(Arc<Backend>);

impl Notify for Notifier {
    fn notify(&self) {
        assert!(
            !self.0.gone.load(Ordering::SeqCst),
            "notified through a notifier that close() dropped"
        );
        self.0.sent.fetch_add(1, Ordering::Relaxed);
        // An eventfd write adds to a counter: a read-modify-write. (It must
        // be one here too: loom does not keep a plain store in modification
        // order with a concurrent read-modify-write, tokio-rs/loom#254.)
        self.0.pending.swap(true, Ordering::Release);
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.0.gone.store(true, Ordering::SeqCst);
    }
}

fn setup() -> (Arc<RemoteQueue<u32>>, Arc<Backend>) {
    let backend = Arc::new(Backend::default());
    let rq = RemoteQueue::new(StdArc::new(Notifier(backend.clone())) as StdArc<dyn Notify>);
    (Arc::new(rq), backend)
}

/// What the loop thread has seen.
#[derive(Default)]
struct LoopState {
    got: Vec<u32>,
    /// Times it announced a sleep.
    announced: usize,
    /// Each wait, for the failure message.
    waits: Vec<String>,
}

/// The loop's iterations (`poll_backend`, then `drain_remote`), until it
/// has taken in `want` items (`true`), or until a wait would block: nothing
/// queued and no notification pending (`false`: the loop sleeps there).
fn run_loop(rq: &RemoteQueue<u32>, backend: &Backend, st: &mut LoopState, want: usize) -> bool {
    loop {
        st.announced += 1;
        let queued = rq.announce_sleep();
        // Any wait, even with timeout 0, consumes a pending notification.
        let notified = backend.pending.swap(false, Ordering::Acquire);
        st.waits.push(format!(
            "wait after taking in {:?}: queued {queued}, notified {notified}",
            st.got
        ));
        if !queued && !notified {
            return false;
        }
        rq.awake();
        while let Some(item) = rq.pop() {
            st.got.push(item);
        }
        if st.got.len() == want {
            return true;
        }
    }
}

/// Called once every producer has finished: the loop, if it went to sleep,
/// is woken only by a pending notification.
fn finish(
    rq: &RemoteQueue<u32>,
    backend: &Backend,
    mut st: LoopState,
    mut done: bool,
    want: usize,
) -> LoopState {
    while !done {
        assert!(
            backend.pending.load(Ordering::Relaxed),
            "lost wake-up: the loop sleeps with {} item(s) queued and no notification \
             pending ({} sent in all); its waits: {:#?}",
            want - st.got.len(),
            backend.sent.load(Ordering::Relaxed),
            st.waits
        );
        done = run_loop(rq, backend, &mut st, want);
    }
    assert!(rq.is_empty());
    st
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

/// (i) One thread calls `call_soon_threadsafe` twice while the loop goes to
/// sleep: no lost wake-up, the items come out in order, and the burst costs
/// at most one notification per sleep announced.
#[test]
fn push_races_sleep() {
    model(|| {
        let (rq, backend) = setup();
        let producer = {
            let rq = rq.clone();
            thread::spawn(move || {
                rq.push(1).unwrap();
                rq.push(2).unwrap();
            })
        };
        let lp = {
            let (rq, backend) = (rq.clone(), backend.clone());
            thread::spawn(move || {
                let mut st = LoopState::default();
                let done = run_loop(&rq, &backend, &mut st, 2);
                (st, done)
            })
        };
        producer.join().unwrap();
        let (st, done) = lp.join().unwrap();
        let st = finish(&rq, &backend, st, done, 2);
        assert_eq!(st.got, [1, 2]);
        assert!(backend.sent.load(Ordering::Relaxed) <= st.announced);
    });
}

/// (ii) `call_soon_threadsafe` and `LoopHandle::stop` from two threads
/// while the loop goes to sleep: both arrive, neither wake-up is lost.
#[test]
fn two_producers_race_sleep() {
    model(|| {
        let (rq, backend) = setup();
        let callback = {
            let rq = rq.clone();
            thread::spawn(move || rq.push(1).unwrap())
        };
        let stop = {
            let rq = rq.clone();
            thread::spawn(move || rq.push(STOP).unwrap())
        };
        let lp = {
            let (rq, backend) = (rq.clone(), backend.clone());
            thread::spawn(move || {
                let mut st = LoopState::default();
                let done = run_loop(&rq, &backend, &mut st, 2);
                (st, done)
            })
        };
        callback.join().unwrap();
        stop.join().unwrap();
        let (st, done) = lp.join().unwrap();
        let mut st = finish(&rq, &backend, st, done, 2);
        st.got.sort_unstable();
        assert_eq!(st.got, [STOP, 1]);
        assert!(backend.sent.load(Ordering::Relaxed) <= st.announced);
    });
}

/// (iii) A push racing `close()`: the loop has just slept and woken (so a
/// producer may still read its stale "may block"), takes in what is queued,
/// then closes: closes the queue, takes the notifier out, drops what is
/// left, drops the notifier. Every item is taken in by the loop, dropped
/// by close, or handed back to its sender, exactly once; no notification
/// goes through a dropped notifier.
#[test]
fn push_races_close() {
    model(|| {
        let (rq, backend) = setup();
        let producer = {
            let rq = rq.clone();
            thread::spawn(move || rq.push(1).err())
        };
        let lp = {
            let (rq, backend) = (rq.clone(), backend.clone());
            thread::spawn(move || {
                let _ = rq.announce_sleep();
                backend.pending.swap(false, Ordering::Acquire);
                rq.awake();
                let mut taken = Vec::new();
                while let Some(item) = rq.pop() {
                    taken.push(item);
                }
                let notifier = rq.close();
                assert!(notifier.is_some());
                assert!(rq.close().is_none(), "close is idempotent");
                let mut dropped = Vec::new();
                while let Some(item) = rq.pop() {
                    dropped.push(item);
                }
                drop(notifier);
                (taken, dropped)
            })
        };
        let returned = producer.join().unwrap();
        let (taken, dropped) = lp.join().unwrap();
        assert!(backend.gone.load(Ordering::SeqCst));
        assert!(rq.is_closed());
        assert!(rq.is_empty());
        let all: Vec<u32> = taken.into_iter().chain(dropped).chain(returned).collect();
        assert_eq!(all, [1], "an item lost or duplicated");
    });
}

/// (iii, two producers) `call_soon_threadsafe` and `stop` racing `close()`.
#[test]
fn two_pushes_race_close() {
    model(|| {
        let (rq, backend) = setup();
        let producers: Vec<_> = [1, STOP]
            .into_iter()
            .map(|item| {
                let rq = rq.clone();
                thread::spawn(move || rq.push(item).err())
            })
            .collect();
        let _ = rq.announce_sleep();
        rq.awake();
        let notifier = rq.close();
        let mut all = Vec::new();
        while let Some(item) = rq.pop() {
            all.push(item);
        }
        drop(notifier);
        for p in producers {
            all.extend(p.join().unwrap());
        }
        assert!(backend.gone.load(Ordering::SeqCst));
        all.sort_unstable();
        assert_eq!(all, [STOP, 1], "an item lost or duplicated");
    });
}
