//! The library glue on every backend: hyper's timer and executor over
//! evloop, and the SQLite wrapper's lifecycle.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use examples_ecosystem::hyper_rt::{EvloopExecutor, EvloopTimer};
use examples_ecosystem::sqlite::{AsyncConnection, DbError};
use hyper::rt::{Executor, Timer};

/// Runs `f` on a fresh loop of every compiled-in backend.
fn on_every_backend<F, Fut>(f: F)
where
    F: Fn(evloop::EventLoop) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    for backend in evloop::available_backends() {
        let lp = evloop::new_event_loop_for(backend).unwrap();
        lp.run_until_complete(f(lp.clone())).unwrap();
        lp.close().unwrap();
    }
}

/// Polls `fut` once and reports whether it was ready.
async fn poll_once<F: Future + Unpin>(fut: &mut F) -> bool {
    std::future::poll_fn(|cx: &mut Context<'_>| {
        Poll::Ready(Pin::new(&mut *fut).poll(cx).is_ready())
    })
    .await
}

#[test]
fn timer_sleep_completes_at_its_deadline() {
    on_every_backend(|lp| async move {
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
    on_every_backend(|lp| async move {
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
    on_every_backend(|lp| async move {
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
    on_every_backend(|lp| async move {
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
fn sqlite_calls_after_close_fail_cleanly() {
    on_every_backend(|_lp| async move {
        let db = AsyncConnection::open_in_memory().await.unwrap();
        let other = db.clone();
        db.execute("CREATE TABLE t (x)", ()).await.unwrap();
        db.close().await.unwrap();
        assert!(matches!(
            other.execute("INSERT INTO t VALUES (1)", ()).await,
            Err(DbError::Closed)
        ));
        assert!(matches!(
            other.execute("nonsense", ()).await,
            Err(DbError::Closed)
        ));
    });
}

#[test]
fn sqlite_errors_reach_the_awaiter() {
    on_every_backend(|_lp| async move {
        let db = AsyncConnection::open_in_memory().await.unwrap();
        let err = db.execute("SELEKT 1", ()).await.unwrap_err();
        assert!(matches!(err, DbError::Sqlite(_)), "{err}");
        // The connection is still usable afterwards.
        let one = db
            .call(|c| c.query_row("SELECT 1", (), |r| r.get::<_, i64>(0)))
            .await
            .unwrap();
        assert_eq!(one, 1);
    });
}
