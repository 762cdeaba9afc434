//! The contenders behind one small interface, so every workload is written
//! once ([`crate::sched`], [`crate::echo`]) and each contender runs the
//! same code.
//!
//! | primitive | evloop | tokio (`current_thread`) | smol (`LocalExecutor` + async-io) |
//! |---|---|---|---|
//! | [`Runtime::soon`] | `call_soon` | `tokio::spawn` of a task that runs the callback (no callbacks in tokio) | `LocalExecutor::spawn(..).detach()` of such a task |
//! | [`Runtime::spawn`] | `create_task` | `tokio::spawn` | `LocalExecutor::spawn` |
//! | [`Runtime::yield_now`] | `evloop::yield_now` | `tokio::task::yield_now` | `futures_lite::future::yield_now` |
//! | [`Runtime::timer_cycle`] | `call_later(d, cb).cancel()` | a `sleep(d)` polled once (registered), then dropped | an `async_io::Timer` polled once, then dropped |
//! | [`Runtime::remote_call`] | `LoopHandle::call_soon_threadsafe` | unbounded `tokio::sync::mpsc` drained by a task on the loop | unbounded `async_channel` drained by a task on the loop |
//! | [`Runtime::blocking`] | `run_in_executor` | `spawn_blocking` | `blocking::unblock` |
//! | [`Runtime::serve_echo`] | evloop's TCP types | `tokio::net` | `Async<TcpStream>` |
//!
//! Each contender gets a fresh loop (runtime) per measurement, on a fresh thread.

use std::future::Future;
use std::net::TcpListener;
use std::time::Duration;

mod evloop_rt;
mod smol_rt;
mod tokio_rt;

pub use evloop_rt::Evloop;
pub use smol_rt::Smol;
pub use tokio_rt::Tokio;

/// The size of the buffer each echo connection reads into.
pub const ECHO_BUF: usize = 64 * 1024;

/// Something that stops a running echo server from another thread.
pub type Stopper = Box<dyn FnOnce() + Send>;

/// One contender: a way to run a loop on the calling thread and the few
/// primitives the workloads need.
pub trait Runtime: 'static {
    /// What code on the loop uses to schedule more work on it (the loop
    /// itself, a context marker, an executor).
    type Spawner: Clone + 'static;
    /// A handle other threads use to run closures on the loop.
    type Remote: Send + 'static;

    /// The contender's name in tables and JSON.
    fn name(&self) -> String;

    /// Creates a fresh loop, runs `main(spawner)` on the calling thread until
    /// it completes, then tears the loop down. Errors are the contender's
    /// own (e.g. a backend that cannot be created), as text.
    fn block_on<M, Fut>(&self, main: M) -> Result<Fut::Output, String>
    where
        M: FnOnce(Self::Spawner) -> Fut,
        Fut: Future + 'static,
        Fut::Output: 'static;

    /// Runs `f(spawner, state)` soon, on the loop, in FIFO order with other
    /// such calls (asyncio's `call_soon`, or the peer's closest analogue).
    /// `f` is normally a function item (zero-sized, statically dispatched),
    /// so the scheduled closure holds only the spawner and `state`.
    fn soon<S, F>(sp: &Self::Spawner, f: F, state: S)
    where
        S: Send + 'static,
        F: FnOnce(&Self::Spawner, S) + Send + 'static;

    /// Spawns `fut` as a task; the returned future gives its output.
    fn spawn<F>(sp: &Self::Spawner, fut: F) -> impl Future<Output = F::Output> + 'static
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;

    /// Gives other ready tasks a turn.
    fn yield_now() -> impl Future<Output = ()> + Send + 'static;

    /// Schedules a timer `delay` ahead and cancels it at once.
    fn timer_cycle(sp: &Self::Spawner, delay: Duration);

    /// A handle through which other threads run closures on the loop (for
    /// the peers, this spawns the task that drains their channel).
    fn remote(sp: &Self::Spawner) -> Self::Remote;

    /// Runs `f` on the loop, called from another thread. `false` if the
    /// loop is gone.
    fn remote_call<F: FnOnce() + Send + 'static>(remote: &Self::Remote, f: F) -> bool;

    /// Runs `f` on a thread pool and gives its result back on the loop, or
    /// `Err(reason)` when the contender has no such facility.
    fn blocking<T, F>(
        sp: &Self::Spawner,
        f: F,
    ) -> Result<impl Future<Output = T> + 'static, &'static str>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static;

    /// Whether [`serve_echo`](Self::serve_echo) works; `Err(reason)` if not.
    fn echo_supported(&self) -> Result<(), String>;

    /// Serves TCP echo on `listener` from the calling thread until the
    /// stopper handed to `ready` is called: one task per connection, each
    /// reading into its own [`ECHO_BUF`]-byte buffer and writing every chunk
    /// back in full. `ready` is called once the server is accepting.
    fn serve_echo(
        &self,
        listener: TcpListener,
        ready: Box<dyn FnOnce(Stopper)>,
    ) -> Result<(), String>;
}
