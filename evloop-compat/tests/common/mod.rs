//! Helpers shared by this crate's integration tests.
#![allow(dead_code)] // each test file uses its own subset

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Runs `f` on a fresh loop of every compiled-in backend.
pub fn on_every_loop<F, Fut>(f: F)
where
    F: Fn(evloop::EventLoop) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    let backends = evloop::available_backends();
    assert!(!backends.is_empty());
    for backend in backends {
        let lp = evloop::new_event_loop_for(backend).unwrap();
        lp.run_until_complete(f(lp.clone())).unwrap();
        lp.close().unwrap();
    }
}

/// Polls `fut` once and reports whether it was ready.
pub async fn poll_once<F: Future + Unpin>(fut: &mut F) -> bool {
    std::future::poll_fn(|cx: &mut Context<'_>| {
        Poll::Ready(Pin::new(&mut *fut).poll(cx).is_ready())
    })
    .await
}

/// Lets the loop run a few iterations (cross-thread callbacks land).
pub async fn settle(lp: &evloop::EventLoop) {
    for _ in 0..5 {
        lp.sleep(std::time::Duration::from_millis(2)).await;
    }
}
