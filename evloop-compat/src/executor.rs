//! hyper's `rt::Executor` on an evloop loop, local and `Send`.

use std::future::Future;

use evloop::{EventLoop, LoopHandle};

/// Runs the futures hyper hands it (client connection drivers, HTTP/2
/// streams, upgrades) as detached tasks on an evloop loop, on the loop's
/// thread.
///
/// The futures need not be `Send` (the loop is single-threaded, like
/// asyncio's), which is what hyper's HTTP/2 server asks for when the
/// service's futures are `!Send`. The executor itself is `!Send`: make it
/// on the loop's thread. For APIs that insist on a `Send + Sync` executor,
/// use [`EvloopSendExecutor`]. A future handed over after the loop closed
/// is dropped, as asyncio drops callbacks scheduled on a closed loop.
///
/// ```no_run
/// # fn f() -> evloop::Result<()> {
/// let exec = evloop_compat::EvloopExecutor::current()?;
/// let http2 = hyper::server::conn::http2::Builder::new(exec);
/// # let _ = http2;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct EvloopExecutor {
    lp: EventLoop,
}

impl EvloopExecutor {
    /// An executor spawning onto `lp`.
    pub fn new(lp: &EventLoop) -> Self {
        EvloopExecutor { lp: lp.clone() }
    }

    /// An executor spawning onto the loop running on this thread
    /// (`Error::NoRunningLoop` if none is).
    pub fn current() -> evloop::Result<Self> {
        Ok(EvloopExecutor {
            lp: evloop::get_running_loop()?,
        })
    }
}

impl<F> hyper::rt::Executor<F> for EvloopExecutor
where
    F: Future + 'static,
    F::Output: 'static,
{
    fn execute(&self, fut: F) {
        if let Ok(task) = self.lp.create_task(fut) {
            task.detach();
        }
    }
}

/// A `Send + Sync` executor: spawns `Send` futures onto an evloop loop from
/// any thread, through its [`LoopHandle`] (`call_soon_threadsafe`, then
/// `create_task` on the loop's thread; one cross-thread hop per future).
///
/// Use it where an API wants `Executor: Send + Sync`; on the loop's own
/// thread with `!Send` futures, [`EvloopExecutor`] is the direct path.
/// A future handed over after the loop closed is dropped.
#[derive(Clone, Debug)]
pub struct EvloopSendExecutor {
    handle: LoopHandle,
}

impl EvloopSendExecutor {
    /// An executor spawning onto `lp` (usable from any thread).
    pub fn new(lp: &EventLoop) -> Self {
        EvloopSendExecutor {
            handle: lp.handle(),
        }
    }

    /// An executor spawning onto the loop `handle` refers to.
    pub fn from_handle(handle: LoopHandle) -> Self {
        EvloopSendExecutor { handle }
    }
}

impl<F> hyper::rt::Executor<F> for EvloopSendExecutor
where
    F: Future + Send + 'static,
    F::Output: 'static,
{
    fn execute(&self, fut: F) {
        let _ = self.handle.call_soon_threadsafe(move || {
            if let Ok(lp) = evloop::get_running_loop() {
                if let Ok(task) = lp.create_task(fut) {
                    task.detach();
                }
            }
        });
    }
}
