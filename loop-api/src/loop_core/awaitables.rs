//! Awaitables that ride on the running loop: `sleep`, `yield_now`,
//! `wait_for` and `gather`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::loop_core::error::{Error, Result};
use crate::loop_core::handle::TimerHandle;
use crate::loop_core::{get_running_loop, EventLoop};

/// Completes once `delay` has elapsed on the running loop's clock (measured
/// from the first poll). Dropping it cancels its timer.
///
/// ```
/// use std::time::{Duration, Instant};
/// let start = Instant::now();
/// evloop::run(evloop::sleep(Duration::from_millis(20))).unwrap();
/// assert!(start.elapsed() >= Duration::from_millis(20));
/// ```
///
/// # Panics
/// Polling it outside a running evloop loop panics, as no loop could wake it;
/// use [`EventLoop::sleep`] to bind it to a loop explicitly.
pub fn sleep(delay: Duration) -> Sleep {
    Sleep {
        lp: None,
        delay,
        deadline: None,
        timer: None,
    }
}

impl EventLoop {
    /// Like [`sleep`], bound to this loop.
    pub fn sleep(&self, delay: Duration) -> Sleep {
        Sleep {
            lp: Some(self.clone()),
            delay,
            deadline: None,
            timer: None,
        }
    }
}

/// The future returned by [`sleep`].
#[derive(Debug)]
pub struct Sleep {
    lp: Option<EventLoop>,
    delay: Duration,
    deadline: Option<Instant>,
    timer: Option<(TimerHandle, Waker)>,
}

impl Sleep {
    /// The deadline, once the sleep has been polled.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let now = Instant::now();
        let delay = self.delay;
        let deadline = *self.deadline.get_or_insert_with(|| {
            now.checked_add(delay)
                .unwrap_or(now + Duration::from_secs(3_153_600_000))
        });
        if now >= deadline {
            if let Some((timer, _)) = self.timer.take() {
                timer.cancel();
            }
            return Poll::Ready(());
        }
        if let Some((timer, waker)) = &self.timer {
            if waker.will_wake(cx.waker()) && !timer.cancelled() {
                return Poll::Pending;
            }
            timer.cancel();
        }
        let lp = match &self.lp {
            Some(lp) => lp.clone(),
            None => get_running_loop().expect("evloop::sleep polled outside a running event loop"),
        };
        let waker = cx.waker().clone();
        let wake = waker.clone();
        // A closed loop cannot wake us; the task holding this sleep is being torn down.
        if let Ok(timer) = lp.call_at(deadline, move || wake.wake()) {
            self.timer = Some((timer, waker));
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some((timer, _)) = self.timer.take() {
            timer.cancel();
        }
    }
}

/// Gives the other ready tasks and callbacks a turn: completes on the next
/// iteration of the loop.
///
/// ```
/// use std::{cell::Cell, rc::Rc};
/// let order = Rc::new(Cell::new(0));
/// evloop::run({
///     let order = order.clone();
///     async move {
///         let lp = evloop::get_running_loop().unwrap();
///         let o = order.clone();
///         lp.call_soon(move || o.set(1)).unwrap();
///         assert_eq!(order.get(), 0); // the callback waits for a turn
///         evloop::yield_now().await;
///         assert_eq!(order.get(), 1); // ... which the task just gave it
///     }
/// })
/// .unwrap();
/// ```
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future returned by [`yield_now`].
#[derive(Debug)]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

pin_project_lite::pin_project! {
    /// The future returned by [`wait_for`].
    #[derive(Debug)]
    pub struct WaitFor<F> {
        #[pin]
        fut: Option<F>,
        sleep: Sleep,
    }
}

/// Awaits `fut` for at most `timeout`. On timeout the inner future is
/// dropped (which cancels what it awaits) and [`Error::TimedOut`] returned.
/// The future is always polled before the clock is checked, so a result
/// that is ready when the time runs out wins.
///
/// ```
/// use evloop::{sleep, wait_for, Error};
/// use std::time::Duration;
/// evloop::run(async {
///     let quick = wait_for(async { 7 }, Duration::from_secs(5)).await;
///     assert_eq!(quick.unwrap(), 7);
///     let slow = wait_for(sleep(Duration::from_secs(60)), Duration::from_millis(10)).await;
///     assert!(matches!(slow, Err(Error::TimedOut)));
/// })
/// .unwrap();
/// ```
pub fn wait_for<F: Future>(fut: F, timeout: Duration) -> WaitFor<F> {
    WaitFor {
        fut: Some(fut),
        sleep: sleep(timeout),
    }
}

impl<F: Future> Future for WaitFor<F> {
    type Output = Result<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(fut) = this.fut.as_mut().as_pin_mut() else {
            return Poll::Ready(Err(Error::TimedOut));
        };
        if let Poll::Ready(value) = fut.poll(cx) {
            this.fut.set(None);
            return Poll::Ready(Ok(value));
        }
        match Pin::new(this.sleep).poll(cx) {
            Poll::Ready(()) => {
                this.fut.set(None);
                Poll::Ready(Err(Error::TimedOut))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Awaits every future concurrently and returns their outputs in order
/// (asyncio's `gather`). Pass tasks to run them in parallel with others;
/// each element's result is its own.
///
/// ```
/// use evloop::{gather, sleep};
/// use std::time::Duration;
/// let out = evloop::run(async {
///     // All three sleep at once: about 30 ms in total, not 60.
///     gather([30u64, 10, 20].map(|ms| async move {
///         sleep(Duration::from_millis(ms)).await;
///         ms
///     }))
///     .await
/// })
/// .unwrap();
/// assert_eq!(out, [30, 10, 20]); // in the order given
/// ```
pub fn gather<I>(futures: I) -> Gather<I::Item>
where
    I: IntoIterator,
    I::Item: Future,
{
    let futs: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let outputs = futs.iter().map(|_| None).collect();
    Gather { futs, outputs }
}

/// The future returned by [`gather`].
pub struct Gather<F: Future> {
    futs: Vec<Pin<Box<F>>>,
    outputs: Vec<Option<F::Output>>,
}

impl<F: Future> std::fmt::Debug for Gather<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gather")
            .field("len", &self.futs.len())
            .finish()
    }
}

impl<F: Future> Future for Gather<F> {
    type Output = Vec<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Gather owns its futures through `Pin<Box<_>>`, so it is Unpin.
        let this = self.get_mut();
        let mut pending = false;
        for (fut, out) in this.futs.iter_mut().zip(this.outputs.iter_mut()) {
            if out.is_none() {
                match fut.as_mut().poll(cx) {
                    Poll::Ready(v) => *out = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            return Poll::Pending;
        }
        Poll::Ready(this.outputs.iter_mut().filter_map(Option::take).collect())
    }
}

impl<F: Future> Unpin for Gather<F> {}
