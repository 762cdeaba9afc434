//! Section 6 — executor (EXE-*): `run_in_executor` and the default executor.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use loop_api::{Error, Executor, Job, ThreadPool};

use crate::support::{new_loop, Log};
use crate::Factory;

#[doc(hidden)]
#[macro_export]
macro_rules! __executor_tests {
    ($f:expr) => {
        $crate::__section!($f, executor: [
            runs_on_another_thread_and_returns_value,
            panic_arrives_at_await,
            loop_keeps_running_while_job_blocks,
            custom_executor_as_default_and_per_call,
            dropped_future_discards_late_result,
            dropped_future_skips_unstarted_job,
            shutdown_waits_for_running_jobs,
            shutdown_timeout_returns_while_job_runs,
            close_does_not_wait_for_running_job,
            after_close_run_in_executor_fails,
        ] exclusive [
            default_executor_is_lazy_and_named,
        ]);
    };
}

/// EXE-1: the closure runs on another thread and its value comes back at the await.
pub fn runs_on_another_thread_and_returns_value(factory: impl Factory) {
    let lp = new_loop(factory);
    let lp2 = lp.clone();
    let loop_thread = std::thread::current().id();
    let (value, thread) = lp
        .run_until_complete(async move {
            lp2.run_in_executor(move || (6 * 7, std::thread::current().id()))
                .await
        })
        .unwrap()
        .unwrap();
    assert_eq!(value, 42);
    assert_ne!(
        thread, loop_thread,
        "the job must not run on the loop thread"
    );
    lp.close().unwrap();
}

/// EXE-1: a panic in the job is re-raised at the await as `Error::Panicked`;
/// the loop survives and the pool keeps working.
pub fn panic_arrives_at_await(factory: impl Factory) {
    let lp = new_loop(factory);
    let lp2 = lp.clone();
    let (first, second) = lp
        .run_until_complete(async move {
            let first = lp2
                .run_in_executor(|| -> u32 { panic!("job failed") })
                .await;
            let second = lp2.run_in_executor(|| 7u32).await;
            (first, second)
        })
        .unwrap();
    match first {
        Err(Error::Panicked(msg)) => assert!(msg.contains("job failed"), "message: {msg}"),
        other => panic!("expected Error::Panicked, got {other:?}"),
    }
    assert_eq!(second.unwrap(), 7);
    lp.close().unwrap();
}

/// The loop keeps running callbacks while a job blocks: the job waits for
/// the loop's ticker to release it.
pub fn loop_keeps_running_while_job_blocks(factory: impl Factory) {
    let lp = new_loop(factory);
    let (tx, rx) = mpsc::channel::<()>();
    let ticks = Log::new();
    let tx = Mutex::new(Some(tx));
    fn tick(lp: loop_api::EventLoop, ticks: Log<u32>, tx: Arc<Mutex<Option<mpsc::Sender<()>>>>) {
        ticks.push(0);
        if ticks.len() == 3 {
            if let Some(tx) = tx.lock().unwrap().take() {
                tx.send(()).unwrap();
            }
            return;
        }
        let lp2 = lp.clone();
        lp.call_later(Duration::from_millis(5), move || tick(lp2, ticks, tx))
            .unwrap();
    }
    let tx = Arc::new(tx);
    let (lp2, t2) = (lp.clone(), ticks.clone());
    lp.call_soon(move || tick(lp2.clone(), t2, tx)).unwrap();
    let lp3 = lp.clone();
    let got = lp
        .run_until_complete(async move {
            lp3.run_in_executor(move || rx.recv_timeout(Duration::from_secs(30)).is_ok())
                .await
        })
        .unwrap()
        .unwrap();
    assert!(
        got,
        "the ticker never released the job: the loop was blocked"
    );
    assert_eq!(ticks.len(), 3);
    lp.close().unwrap();
}

/// EXE-2: the default executor is created on first use; its threads are
/// named `evloop-executor-N`.
pub fn default_executor_is_lazy_and_named(factory: impl Factory) {
    fn executor_threads() -> usize {
        std::fs::read_dir("/proc/self/task")
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| {
                        std::fs::read_to_string(e.path().join("comm"))
                            .is_ok_and(|c| c.starts_with("evloop-executor"))
                    })
                    .count()
            })
            .unwrap_or(0)
    }
    let before = executor_threads();
    let lp = new_loop(factory);
    lp.call_soon(|| {}).unwrap();
    lp.stop();
    lp.run_forever().unwrap();
    assert_eq!(
        executor_threads(),
        before,
        "no executor thread before the first job"
    );
    let lp2 = lp.clone();
    let name = lp
        .run_until_complete(async move {
            lp2.run_in_executor(|| std::thread::current().name().map(str::to_owned))
                .await
        })
        .unwrap()
        .unwrap()
        .unwrap_or_default();
    assert!(
        name.starts_with("evloop-executor-"),
        "thread name: {name:?}"
    );
    lp.close().unwrap();
}

/// A custom executor: one new thread per job, counting its jobs.
struct Counting(Arc<AtomicUsize>);

impl Executor for Counting {
    fn execute(&self, job: Job) -> loop_api::Result<()> {
        self.0.fetch_add(1, Ordering::SeqCst);
        std::thread::spawn(job);
        Ok(())
    }
    fn shutdown(&self, _wait: bool) {}
}

/// EXE-2: a custom executor set as default serves `run_in_executor`;
/// `run_in_executor_with` uses the one it is given.
pub fn custom_executor_as_default_and_per_call(factory: impl Factory) {
    let lp = new_loop(factory);
    let default_jobs = Arc::new(AtomicUsize::new(0));
    let other_jobs = Arc::new(AtomicUsize::new(0));
    lp.set_default_executor(Arc::new(Counting(default_jobs.clone())))
        .unwrap();
    let other = Counting(other_jobs.clone());
    let lp2 = lp.clone();
    let (a, b) = lp
        .run_until_complete(async move {
            let a = lp2.run_in_executor(|| 1).await.unwrap();
            let b = lp2.run_in_executor_with(&other, || 2).await.unwrap();
            (a, b)
        })
        .unwrap();
    assert_eq!((a, b), (1, 2));
    assert_eq!(default_jobs.load(Ordering::SeqCst), 1);
    assert_eq!(other_jobs.load(Ordering::SeqCst), 1);
    lp.close().unwrap();
}

/// Sets a flag when dropped.
struct DropFlag(Arc<AtomicBool>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Polls `fut` once with a no-op waker.
fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    Pin::new(fut).poll(&mut Context::from_waker(Waker::noop()))
}

/// EXE-3: dropping the awaitable while the job runs discards its late
/// result (it is dropped, never delivered), and the loop carries on.
pub fn dropped_future_discards_late_result(factory: impl Factory) {
    let lp = new_loop(factory);
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let dropped = Arc::new(AtomicBool::new(false));
    let d2 = dropped.clone();
    let mut fut = lp.run_in_executor(move || {
        started_tx.send(()).unwrap();
        release_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        DropFlag(d2)
    });
    assert!(poll_once(&mut fut).is_pending());
    started_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    drop(fut);
    release_tx.send(()).unwrap();
    // Let the late result travel back and be discarded.
    let lp2 = lp.clone();
    lp.run_until_complete(async move {
        for _ in 0..3000 {
            if dropped.load(Ordering::SeqCst) {
                return;
            }
            lp2.sleep(Duration::from_millis(1)).await;
        }
        panic!("the late result was never released");
    })
    .unwrap();
    lp.close().unwrap();
}

/// EXE-3: a job whose awaitable is dropped before it started never runs.
pub fn dropped_future_skips_unstarted_job(factory: impl Factory) {
    let lp = new_loop(factory);
    let pool = ThreadPool::new(1);
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let ran = Arc::new(AtomicBool::new(false));
    let r2 = ran.clone();
    let blocker = lp.run_in_executor_with(&pool, move || {
        release_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    });
    let queued = lp.run_in_executor_with(&pool, move || r2.store(true, Ordering::SeqCst));
    drop(queued);
    release_tx.send(()).unwrap();
    let marker = lp.run_in_executor_with(&pool, || ());
    lp.run_until_complete(async move {
        blocker.await.unwrap();
        // The pool runs jobs in order: once this one is done, the skipped one had its turn.
        marker.await.unwrap();
    })
    .unwrap();
    assert!(!ran.load(Ordering::SeqCst), "an abandoned job must not run");
    pool.shutdown(true);
    lp.close().unwrap();
}

/// EXE-4: `shutdown_default_executor()` waits for running jobs; afterwards
/// `run_in_executor` fails with `Error::ExecutorShutdown`.
pub fn shutdown_waits_for_running_jobs(factory: impl Factory) {
    let lp = new_loop(factory);
    let finished = Arc::new(AtomicBool::new(false));
    let f2 = finished.clone();
    let lp2 = lp.clone();
    let after = lp
        .run_until_complete(async move {
            let (started_tx, started_rx) = mpsc::channel::<()>();
            let job = lp2.run_in_executor(move || {
                started_tx.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(50));
                f2.store(true, Ordering::SeqCst);
            });
            started_rx.recv_timeout(Duration::from_secs(30)).unwrap();
            lp2.shutdown_default_executor().await.unwrap();
            assert!(
                finished.load(Ordering::SeqCst),
                "shutdown returned before the job finished"
            );
            job.await.unwrap();
            lp2.run_in_executor(|| ()).await
        })
        .unwrap();
    assert!(
        matches!(after, Err(Error::ExecutorShutdown)),
        "got {after:?}"
    );
    lp.close().unwrap();
}

/// EXE-4: with a timeout, shutdown returns `TimedOut` while a job still runs.
pub fn shutdown_timeout_returns_while_job_runs(factory: impl Factory) {
    let lp = new_loop(factory);
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let lp2 = lp.clone();
    let (res, job) = lp
        .run_until_complete(async move {
            let job = lp2.run_in_executor(move || {
                release_rx.recv_timeout(Duration::from_secs(30)).unwrap();
            });
            let res = lp2
                .shutdown_default_executor_timeout(Duration::from_millis(50))
                .await;
            (res, job)
        })
        .unwrap();
    assert!(matches!(res, Err(Error::TimedOut)), "got {res:?}");
    release_tx.send(()).unwrap();
    lp.run_until_complete(job).unwrap().unwrap();
    lp.close().unwrap();
}

/// LIF-9: `close()` shuts the default executor down without waiting for a running job.
pub fn close_does_not_wait_for_running_job(factory: impl Factory) {
    let lp = new_loop(factory);
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let mut fut = lp.run_in_executor(move || {
        started_tx.send(()).unwrap();
        release_rx.recv_timeout(Duration::from_secs(30)).is_ok()
    });
    assert!(poll_once(&mut fut).is_pending());
    started_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    // Would hang for 30 s if close() joined the pool.
    let t0 = std::time::Instant::now();
    lp.close().unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "close() waited for the job"
    );
    release_tx.send(()).unwrap();
    drop(fut);
}

/// LIF-10 / EXE-3: after `close()`, `run_in_executor` fails with `Error::Closed`
/// and schedules nothing.
pub fn after_close_run_in_executor_fails(factory: impl Factory) {
    let lp = new_loop(factory);
    lp.close().unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let r2 = ran.clone();
    let mut fut = lp.run_in_executor(move || r2.store(true, Ordering::SeqCst));
    match poll_once(&mut fut) {
        Poll::Ready(Err(Error::Closed)) => {}
        other => panic!("expected Error::Closed, got {other:?}"),
    }
    std::thread::sleep(Duration::from_millis(20));
    assert!(!ran.load(Ordering::SeqCst));
    assert!(lp
        .set_default_executor(Arc::new(ThreadPool::new(1)))
        .is_err());
}
