//! [`timeout`] and [`timeout_at`]: asyncio 3.11's `asyncio.timeout` scopes,
//! whose deadline can be read and moved while the work runs.
//!
//! A [`Timeout`] wraps a future. When its deadline passes, the future is
//! dropped (cancelling whatever it awaits) and the awaiter gets
//! [`Error::TimedOut`], as with [`wait_for`](crate::wait_for). The inner
//! future is always polled before the clock is read, so a result that is
//! ready when the time runs out wins. A [`TimeoutScope`] (from
//! [`Timeout::scope`], or made first and handed to the work with
//! [`TimeoutScope::wrap`]) reads and reschedules the deadline from
//! anywhere on the loop's thread: later, earlier (a deadline already past
//! expires the scope on the loop's next iteration), or `None` (never).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::loop_core::error::{Error, Result};
use crate::loop_core::get_running_loop;
use crate::loop_core::handle::TimerHandle;

/// How far in the future a delay too large for the clock lands.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Status {
    /// Not ended yet (maybe not polled yet).
    Active,
    /// The deadline passed; the work was dropped.
    Expired,
    /// The work finished in time.
    Finished,
}

struct ScopeState {
    when: Cell<Option<Instant>>,
    status: Cell<Status>,
    /// The waker of the task awaiting the [`Timeout`], to re-arm its timer
    /// when the deadline moves.
    waker: RefCell<Option<Waker>>,
}

/// A handle on a [`Timeout`]'s deadline (asyncio's `Timeout` object):
/// clone it freely, read it with [`when`](Self::when), move it with
/// [`reschedule`](Self::reschedule).
///
/// ```
/// # evloop::run(async {
/// use evloop::{sleep, Error, TimeoutScope};
/// use std::time::{Duration, Instant};
///
/// let scope = TimeoutScope::after(Duration::from_millis(50));
/// let inner = scope.clone();
/// let result = scope
///     .wrap(async move {
///         // More time is needed: move the deadline later.
///         inner.reschedule(Instant::now() + Duration::from_secs(1));
///         sleep(Duration::from_millis(100)).await;
///         "done"
///     })
///     .await;
/// assert_eq!(result.unwrap(), "done");
/// assert!(!scope.expired());
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct TimeoutScope(Rc<ScopeState>);

impl TimeoutScope {
    /// A scope whose deadline is `when` (`None`: no deadline).
    pub fn at(when: impl Into<Option<Instant>>) -> TimeoutScope {
        TimeoutScope(Rc::new(ScopeState {
            when: Cell::new(when.into()),
            status: Cell::new(Status::Active),
            waker: RefCell::new(None),
        }))
    }

    /// A scope whose deadline is `delay` from now (a delay too large for
    /// the clock lands a century ahead).
    pub fn after(delay: Duration) -> TimeoutScope {
        TimeoutScope::at(deadline_after(delay))
    }

    /// Runs `fut` under this scope's deadline.
    pub fn wrap<F: Future>(&self, fut: F) -> Timeout<F> {
        Timeout {
            fut: Some(fut),
            scope: self.clone(),
            timer: TimerSlot(None),
        }
    }

    /// The deadline, `None` if there is none.
    pub fn when(&self) -> Option<Instant> {
        self.0.when.get()
    }

    /// Moves the deadline (asyncio's `reschedule`): later, earlier, or
    /// `None` for no deadline. A deadline already past expires the scope on
    /// the loop's next iteration. Once the scope has ended (expired, or the
    /// work finished) nothing changes any more.
    pub fn reschedule(&self, when: impl Into<Option<Instant>>) {
        if self.0.status.get() != Status::Active {
            return;
        }
        self.0.when.set(when.into());
        // The awaiting task re-arms its timer for the new deadline.
        let waker = self.0.waker.borrow().clone();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// `true` once the deadline passed and the work was dropped (asyncio's
    /// `expired()`).
    pub fn expired(&self) -> bool {
        self.0.status.get() == Status::Expired
    }
}

impl fmt::Debug for TimeoutScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutScope")
            .field("when", &self.0.when.get())
            .field("status", &self.0.status.get())
            .finish()
    }
}

fn deadline_after(delay: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(delay)
        .or_else(|| now.checked_add(FAR_FUTURE))
        .unwrap_or(now)
}

/// Runs `fut` for at most `delay` from now (asyncio's `timeout(delay)`):
/// on expiry `fut` is dropped and the result is [`Error::TimedOut`]. The
/// deadline can be moved through [`Timeout::scope`].
///
/// Polled outside a running loop while its deadline is still ahead, it
/// gives [`Error::NoRunningLoop`] (no loop could wake it).
///
/// ```
/// use evloop::{sleep, timeout, Error};
/// use std::time::Duration;
///
/// evloop::run(async {
///     // In time: the work's output.
///     assert_eq!(timeout(Duration::from_secs(10), async { 7 }).await?, 7);
///     // Too slow: the work is dropped, and the result is TimedOut.
///     let slow = timeout(Duration::from_millis(10), sleep(Duration::from_secs(60)));
///     assert!(matches!(slow.await, Err(Error::TimedOut)));
///     Ok::<_, Error>(())
/// })??;
/// # Ok::<_, evloop::Error>(())
/// ```
pub fn timeout<F: Future>(delay: Duration, fut: F) -> Timeout<F> {
    TimeoutScope::after(delay).wrap(fut)
}

/// Like [`timeout`] with an absolute deadline on the loop's clock
/// (asyncio's `timeout_at`); `None` means no deadline (until rescheduled).
///
/// One deadline shared by several steps, and one moved from elsewhere through the
/// [`Timeout`]'s scope:
///
/// ```
/// use evloop::{sleep, timeout_at, Error};
/// use std::time::{Duration, Instant};
///
/// evloop::run(async {
///     let deadline = Instant::now() + Duration::from_secs(10);
///     let first = timeout_at(deadline, async { 1 }).await?;
///     let second = timeout_at(deadline, async { 2 }).await?; // what is left of it
///     assert_eq!(first + second, 3);
///
///     // No deadline at first (`None`); the work sets one that has passed.
///     let work = timeout_at(None, sleep(Duration::from_secs(60)));
///     let scope = work.scope();
///     assert_eq!(work.when(), None);
///     let (res, ()) = futures::join!(work, async move { scope.reschedule(Instant::now()) });
///     assert!(matches!(res, Err(Error::TimedOut)));
///     Ok::<_, Error>(())
/// })??;
/// # Ok::<_, evloop::Error>(())
/// ```
pub fn timeout_at<F: Future>(when: impl Into<Option<Instant>>, fut: F) -> Timeout<F> {
    TimeoutScope::at(when).wrap(fut)
}

/// The loop timer armed for the current deadline; cancelled when replaced
/// or dropped.
struct TimerSlot(Option<(TimerHandle, Waker)>);

impl TimerSlot {
    fn clear(&mut self) {
        if let Some((timer, _)) = self.0.take() {
            timer.cancel();
        }
    }
}

impl Drop for TimerSlot {
    fn drop(&mut self) {
        self.clear();
    }
}

pin_project_lite::pin_project! {
    /// The future returned by [`timeout`], [`timeout_at`] and
    /// [`TimeoutScope::wrap`]: the work's output, or [`Error::TimedOut`].
    /// Examples: [`timeout`], [`timeout_at`] (reading and moving the
    /// deadline through [`scope`](Timeout::scope)), [`TimeoutScope`].
    pub struct Timeout<F> {
        #[pin]
        fut: Option<F>,
        scope: TimeoutScope,
        timer: TimerSlot,
    }
}

impl<F> Timeout<F> {
    /// A handle on this timeout's deadline, to read or move it from
    /// elsewhere (the same scope as the one it was made from).
    pub fn scope(&self) -> TimeoutScope {
        self.scope.clone()
    }

    /// The deadline, `None` if there is none.
    pub fn when(&self) -> Option<Instant> {
        self.scope.when()
    }

    /// Moves the deadline; see [`TimeoutScope::reschedule`].
    pub fn reschedule(&self, when: impl Into<Option<Instant>>) {
        self.scope.reschedule(when)
    }

    /// `true` once the deadline passed.
    pub fn expired(&self) -> bool {
        self.scope.expired()
    }
}

impl<F> fmt::Debug for Timeout<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let state = &this.scope.0;
        let Some(fut) = this.fut.as_mut().as_pin_mut() else {
            return Poll::Ready(Err(Error::TimedOut));
        };
        if let Poll::Ready(value) = fut.poll(cx) {
            this.fut.set(None);
            this.timer.clear();
            state.status.set(Status::Finished);
            state.waker.borrow_mut().take();
            return Poll::Ready(Ok(value));
        }
        {
            let mut waker = state.waker.borrow_mut();
            if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *waker = Some(cx.waker().clone());
            }
        }
        let Some(when) = state.when.get() else {
            this.timer.clear();
            return Poll::Pending;
        };
        if Instant::now() >= when {
            this.fut.set(None);
            this.timer.clear();
            state.status.set(Status::Expired);
            state.waker.borrow_mut().take();
            return Poll::Ready(Err(Error::TimedOut));
        }
        if let Some((timer, waker)) = &this.timer.0 {
            if timer.when() == when && !timer.cancelled() && waker.will_wake(cx.waker()) {
                return Poll::Pending;
            }
        }
        this.timer.clear();
        let lp = match get_running_loop() {
            Ok(lp) => lp,
            Err(e) => {
                this.fut.set(None);
                state.waker.borrow_mut().take();
                return Poll::Ready(Err(e));
            }
        };
        let waker = cx.waker().clone();
        let wake = waker.clone();
        // A closed loop cannot wake us; the task holding this is being torn down.
        if let Ok(timer) = lp.call_at(when, move || wake.wake()) {
            this.timer.0 = Some((timer, waker));
        }
        Poll::Pending
    }
}
