//! A loop per core: [`LoopGroup`] and [`run_per_core`].
//!
//! An [`EventLoop`] runs on one thread and its futures need not be `Send`.
//! To use every core, a server runs one loop per thread, each with its own
//! listening socket on the same port (`SO_REUSEPORT`): the kernel spreads
//! new connections over the sockets, and no task or socket ever crosses a
//! thread. A [`LoopGroup`] starts such a set of loops, lets any thread post
//! work to any of them, and stops them all.
//!
//! Decisions:
//! - **No acceptor thread handing sockets across.** Each loop accepts on
//!   its own `SO_REUSEPORT` listener ([`LoopGroup::serve`]), so the
//!   accepting loop is the serving loop and a connection costs no
//!   cross-thread wake-up. The price: the kernel hashes connections over
//!   the listeners (by address and port), so a busy loop is not relieved
//!   by an idle one as with tokio's work stealing.
//! - **Work is posted as a closure that builds the future on the target
//!   loop** ([`LoopGroup::spawn_on`]): the closure must be `Send`, the
//!   future it builds need not be, so loop-local types (`Rc`, evloop's
//!   streams) work inside.
//! - **A member loop runs until the group shuts down.** `stop()` on a
//!   member (from its [`LoopHandle`] or its own thread) only ends one
//!   `run_forever`, which the thread starts again; [`LoopGroup::shutdown`]
//!   (or dropping the group) stops every loop, cancels its tasks as
//!   [`run`](crate::run) does, closes it and joins its thread.
//! - **Shutdown is bounded.** A loop thread that has not finished
//!   [`SHUTDOWN_TIMEOUT`] after shutdown began (a callback that blocks
//!   forever) is reported as [`Error::TimedOut`] and left to finish on its
//!   own instead of hanging the caller.

use std::fmt;
use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use crate::net::{TcpSocket, TcpStream};
use crate::{Error, EventLoop, LoopHandle, Result};

/// How long [`LoopGroup::shutdown`] (and dropping a group) waits for the
/// loop threads to finish before reporting the late ones as
/// [`Error::TimedOut`].
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// The backlog of each listener [`LoopGroup::serve`] makes.
const BACKLOG: u32 = 1024;

type Factory = Arc<dyn Fn() -> Result<EventLoop> + Send + Sync>;

/// Options for a [`LoopGroup`]: how many loops, on which backend, pinned or
/// not. Made by [`LoopGroup::builder`].
///
/// ```
/// let group = evloop::LoopGroup::builder()
///     .threads(2)
///     .backend("mio")
///     .thread_name("web")
///     .build()?;
/// assert_eq!(group.len(), 2);
/// assert_eq!(group.backend(1), Some("mio"));
/// group.shutdown()?;
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct LoopGroupBuilder {
    threads: Option<usize>,
    factory: Option<(String, Factory)>,
    pin: bool,
    name: String,
}

impl fmt::Debug for LoopGroupBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopGroupBuilder")
            .field("threads", &self.threads)
            .field(
                "factory",
                &self.factory.as_ref().map_or("default policy", |(d, _)| d),
            )
            .field("pin", &self.pin)
            .field("name", &self.name)
            .finish()
    }
}

impl Default for LoopGroupBuilder {
    fn default() -> Self {
        LoopGroupBuilder {
            threads: None,
            factory: None,
            pin: false,
            name: "evloop-group".to_owned(),
        }
    }
}

impl LoopGroupBuilder {
    /// The number of loops (threads). Default: the number of CPUs this
    /// process may use ([`std::thread::available_parallelism`], which
    /// honours the affinity mask and cgroup quotas). Zero is an
    /// [`Error::InvalidArgument`] from [`build`](Self::build).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = Some(n);
        self
    }

    /// Makes every loop on the backend called `name` (`mio`, `polling`,
    /// `uring`), as [`new_event_loop_for`](crate::new_event_loop_for)
    /// does. Default: the policy in force, so `EVLOOP_BACKEND` applies.
    pub fn backend(mut self, name: &str) -> Self {
        let owned = name.to_owned();
        self.factory = Some((
            format!("backend {name}"),
            Arc::new(move || crate::new_event_loop_for(&owned)),
        ));
        self
    }

    /// Makes every loop with `factory`, called once on each loop's thread
    /// (a backend's `new_event_loop`, or a closure setting ring options).
    pub fn factory<F>(mut self, factory: F) -> Self
    where
        F: Fn() -> Result<EventLoop> + Send + Sync + 'static,
    {
        self.factory = Some(("a factory".to_owned(), Arc::new(factory)));
        self
    }

    /// Pins loop `i` to the `i`-th CPU this process may use (wrapping
    /// around when there are more loops than CPUs). Off by default: the
    /// scheduler places the threads. A pin the kernel refuses fails
    /// [`build`](Self::build).
    pub fn pin_to_cores(mut self, on: bool) -> Self {
        self.pin = on;
        self
    }

    /// The loop threads' names: `{prefix}-{i}` (default `evloop-group-{i}`).
    pub fn thread_name(mut self, prefix: &str) -> Self {
        self.name = prefix.to_owned();
        self
    }

    /// Starts the threads and makes a loop on each; returns once every loop
    /// is running. If a loop cannot be made (the factory's error, such as
    /// [`Error::BackendUnavailable`], or [`Error::Panicked`] if it
    /// panicked) or a thread cannot be started or pinned, the loops already
    /// started are shut down and that error is returned.
    pub fn build(self) -> Result<LoopGroup> {
        let n = match self.threads {
            Some(0) => {
                return Err(Error::InvalidArgument(
                    "a loop group needs at least one thread".to_owned(),
                ))
            }
            Some(n) => n,
            None => thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let cpus = if self.pin {
            let cpus = allowed_cpus()?;
            if cpus.is_empty() {
                return Err(Error::InvalidArgument(
                    "pin_to_cores: this process may run on no CPU".to_owned(),
                ));
            }
            cpus
        } else {
            Vec::new()
        };
        let factory: Factory = match self.factory {
            Some((_, f)) => f,
            None => Arc::new(crate::new_event_loop),
        };
        let mut group = LoopGroup {
            members: Vec::with_capacity(n),
            stopping: Arc::new(AtomicBool::new(false)),
            joined: false,
        };
        for i in 0..n {
            let cpu = cpus.get(i % cpus.len().max(1)).copied();
            match start_member(i, cpu, &self.name, factory.clone(), &group.stopping) {
                Ok(member) => group.members.push(member),
                Err(e) => {
                    // `group` drops here: the loops already started shut down.
                    return Err(e);
                }
            }
        }
        Ok(group)
    }
}

/// Set when a loop thread ends (dropped at the end of its closure, on
/// unwinding too), so shutdown can wait with a bound.
#[derive(Debug, Default)]
struct Finished {
    done: Mutex<bool>,
    cv: Condvar,
}

impl Finished {
    fn wait_until(&self, deadline: Instant) -> bool {
        let mut done = lock(&self.done);
        while !*done {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            done = match self.cv.wait_timeout(done, deadline - now) {
                Ok((g, _)) => g,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        true
    }

    fn is_done(&self) -> bool {
        *lock(&self.done)
    }
}

struct FinishOnDrop(Arc<Finished>);

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        *lock(&self.0.done) = true;
        self.0.cv.notify_all();
    }
}

/// A poisoned lock only means a thread panicked while holding it; the data
/// here (flags, a result slot) stays valid.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Debug)]
struct Member {
    handle: LoopHandle,
    backend: &'static str,
    cpu: Option<usize>,
    thread: ThreadId,
    finished: Arc<Finished>,
    join: Option<JoinHandle<Result<()>>>,
}

fn start_member(
    index: usize,
    cpu: Option<usize>,
    prefix: &str,
    factory: Factory,
    stopping: &Arc<AtomicBool>,
) -> Result<Member> {
    let (tx, rx) = mpsc::channel::<Result<(LoopHandle, &'static str)>>();
    let finished = Arc::new(Finished::default());
    let guard = FinishOnDrop(finished.clone());
    let stopping = stopping.clone();
    let join = thread::Builder::new()
        .name(format!("{prefix}-{index}"))
        .spawn(move || {
            let _finished = guard;
            if let Some(cpu) = cpu {
                if let Err(e) = pin_current_thread(cpu) {
                    let _ = tx.send(Err(Error::io(format!("pin loop {index} to cpu {cpu}"), e)));
                    return Ok(());
                }
            }
            let lp = match factory() {
                Ok(lp) => lp,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return Ok(());
                }
            };
            let _ = tx.send(Ok((lp.handle(), lp.backend_name())));
            drop(tx);
            serve_loop(&lp, &stopping)
        })
        .map_err(|e| Error::io(format!("start loop thread {index}"), e))?;
    let thread = join.thread().id();
    match rx.recv() {
        Ok(Ok((handle, backend))) => Ok(Member {
            handle,
            backend,
            cpu,
            thread,
            finished,
            join: Some(join),
        }),
        Ok(Err(e)) => {
            let _ = join.join();
            Err(e)
        }
        // The thread ended without a word: the factory panicked.
        Err(mpsc::RecvError) => Err(match join.join() {
            Err(payload) => Error::Panicked(format!(
                "loop {index}'s factory panicked: {}",
                panic_message(&*payload)
            )),
            Ok(Err(e)) => e,
            Ok(Ok(())) => Error::Panicked(format!("loop {index}'s thread ended at start")),
        }),
    }
}

/// A member thread's life after its loop is made: run until the group
/// stops, then cancel the tasks and close the loop (also after a panic out
/// of the loop itself, which is then this thread's error).
fn serve_loop(lp: &EventLoop, stopping: &AtomicBool) -> Result<()> {
    let ran = catch_unwind(AssertUnwindSafe(|| loop {
        lp.run_forever()?;
        if stopping.load(Ordering::SeqCst) {
            return Ok(());
        }
    }));
    let ran = match ran {
        Ok(r) => r,
        Err(payload) => Err(Error::Panicked(format!(
            "the loop panicked: {}",
            panic_message(&*payload)
        ))),
    };
    let tasks = catch_unwind(AssertUnwindSafe(|| lp.shutdown_tasks())).unwrap_or_else(|p| {
        Err(Error::Panicked(format!(
            "cancelling the loop's tasks panicked: {}",
            panic_message(&*p)
        )))
    });
    let closed = lp.close();
    ran?;
    tasks?;
    closed
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}

/// N threads, each running its own [`EventLoop`] (a loop per core).
///
/// Build one with [`LoopGroup::new`] (one loop per CPU, on the default
/// policy's backend) or [`LoopGroup::builder`]; serve a port on every loop
/// with [`serve`](Self::serve); run work on a loop with
/// [`spawn_on`](Self::spawn_on) or [`spawn_each`](Self::spawn_each), or
/// through its [`LoopHandle`] ([`handle`](Self::handle)); stop them all
/// with [`shutdown`](Self::shutdown) or by dropping the group. The group is
/// `Send + Sync`: share it (in an `Arc`) with threads that post work.
///
/// An echo server on two loops, a client per loop's connection, and a
/// result computed on loop 1:
///
/// ```
/// use evloop::net::TcpStream;
/// use evloop::LoopGroup;
///
/// let group = LoopGroup::builder().threads(2).build()?;
/// // One SO_REUSEPORT listener per loop, all on the port picked for the first.
/// let addr = group.serve("127.0.0.1:0".parse()?, |conn: TcpStream| async move {
///     let mut buf = Vec::with_capacity(1024);
///     loop {
///         let (n, b) = conn.read_owned(buf).await;
///         match n {
///             Ok(n) if n > 0 => {
///                 let (res, b) = conn.write_all_owned(b).await;
///                 if res.is_err() {
///                     return;
///                 }
///                 buf = b;
///                 buf.clear();
///             }
///             _ => return,
///         }
///     }
/// })?;
/// // Any thread can post work; the closure builds the (!Send) future on loop 1.
/// let echoed = group
///     .spawn_on(1, move || async move {
///         let client = TcpStream::connect(addr).await?;
///         let (res, _) = client.write_all_owned(b"ping".to_vec()).await;
///         res?;
///         let (n, buf) = client.read_owned(Vec::with_capacity(4)).await;
///         n?;
///         Ok::<_, evloop::Error>(buf)
///     })?
///     .wait()??;
/// assert_eq!(echoed, b"ping");
/// // Stops every loop, cancels their tasks (the servers too), joins the threads.
/// group.shutdown()?;
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct LoopGroup {
    members: Vec<Member>,
    stopping: Arc<AtomicBool>,
    joined: bool,
}

impl LoopGroup {
    /// A group of one loop per CPU this process may use, each from the
    /// policy in force (so `EVLOOP_BACKEND` applies).
    pub fn new() -> Result<LoopGroup> {
        Self::builder().build()
    }

    /// Options for a group: [`LoopGroupBuilder`].
    pub fn builder() -> LoopGroupBuilder {
        LoopGroupBuilder::default()
    }

    /// The number of loops.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// `true` if the group has no loop (never, for a group that was built).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Loop `index`'s [`LoopHandle`] (`call_soon_threadsafe`, `stop`),
    /// `None` past the last loop.
    pub fn handle(&self, index: usize) -> Option<&LoopHandle> {
        self.members.get(index).map(|m| &m.handle)
    }

    /// Every loop's handle, in index order.
    pub fn handles(&self) -> impl Iterator<Item = &LoopHandle> {
        self.members.iter().map(|m| &m.handle)
    }

    /// The backend loop `index` runs on (`"mio"`, `"uring"`, ...).
    pub fn backend(&self, index: usize) -> Option<&'static str> {
        self.members.get(index).map(|m| m.backend)
    }

    /// The CPU loop `index` is pinned to, if the group pins.
    pub fn cpu(&self, index: usize) -> Option<usize> {
        self.members.get(index).and_then(|m| m.cpu)
    }

    fn member(&self, index: usize) -> Result<&Member> {
        self.members.get(index).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "loop {index} is out of range: the group has {} loops",
                self.members.len()
            ))
        })
    }

    /// Calls `make()` on loop `index`'s thread and runs the future it
    /// returns there as a task. `make` must be `Send`; the future need not
    /// be. The [`RemoteTask`] gives the task's output, awaited (from any
    /// loop) or waited for (from a plain thread).
    ///
    /// An index past the last loop is [`Error::InvalidArgument`]; a loop
    /// already shut down is [`Error::Closed`].
    pub fn spawn_on<M, Fut>(&self, index: usize, make: M) -> Result<RemoteTask<Fut::Output>>
    where
        M: FnOnce() -> Fut + Send + 'static,
        Fut: Future + 'static,
        Fut::Output: Send + 'static,
    {
        let member = self.member(index)?;
        let (task, sink) = remote_pair();
        post(&member.handle, make, Done::new(move |r| sink.fill(r)))?;
        Ok(task)
    }

    /// Runs `setup(i)` on every loop `i` as a task (the per-loop setup: a
    /// listener, a cache, a connection pool of that loop's own). `setup`
    /// is cloned into each loop. One [`RemoteTask`] per loop, in order.
    pub fn spawn_each<S, Fut>(&self, setup: S) -> Result<Vec<RemoteTask<Fut::Output>>>
    where
        S: Fn(usize) -> Fut + Send + Clone + 'static,
        Fut: Future + 'static,
        Fut::Output: Send + 'static,
    {
        (0..self.len())
            .map(|i| {
                let setup = setup.clone();
                self.spawn_on(i, move || setup(i))
            })
            .collect()
    }

    /// Serves TCP on `addr` from every loop: one listening socket per loop,
    /// each with `SO_REUSEPORT` (and `SO_REUSEADDR`) on, bound to the same
    /// address, and each accepted connection served by `handler(stream)` as
    /// a task on the loop that accepted it (as
    /// [`EventLoop::serve_tcp`]). With port 0 every socket takes the port
    /// picked for the first. Returns the address listened on, once every
    /// loop is accepting.
    ///
    /// The kernel spreads connections over the sockets by a hash of the
    /// peer's address and port. The servers run until the group shuts
    /// down (their accept tasks are cancelled then; live connections'
    /// tasks too). Note that `SO_REUSEPORT` lets any other socket of the
    /// same user bind the port as well.
    ///
    /// Errors: binding (`AddrInUse`, naming the address), a loop shut down
    /// ([`Error::Closed`]), and [`Error::AnotherLoopRunning`] when called
    /// on a thread running a loop (it blocks until every loop listens).
    pub fn serve<H, F>(&self, addr: SocketAddr, handler: H) -> Result<SocketAddr>
    where
        H: Fn(TcpStream) -> F + Send + Clone + 'static,
        F: Future + 'static,
    {
        not_in_a_loop()?;
        let mut bound = addr;
        let mut sockets = Vec::with_capacity(self.len());
        for _ in 0..self.len() {
            let socket = TcpSocket::new_for(&bound)?;
            socket.set_reuseaddr(true)?;
            socket.set_reuseport(true)?;
            socket.bind(bound)?;
            if bound.port() == 0 {
                bound = socket.local_addr()?;
            }
            sockets.push(socket);
        }
        let mut started = Vec::with_capacity(sockets.len());
        for (i, socket) in sockets.into_iter().enumerate() {
            let handler = handler.clone();
            started.push(self.spawn_on(i, move || async move {
                let lp = crate::get_running_loop()?;
                let listener = socket.listen(BACKLOG)?;
                let server = lp.serve_tcp(listener, handler)?;
                // The server lives in this task until the group shuts down.
                lp.create_task(async move {
                    let _ = server.serve_forever().await;
                })?
                .detach();
                Ok::<(), Error>(())
            })?);
        }
        for task in started {
            task.wait()??;
        }
        Ok(bound)
    }

    /// Runs `main(i)` on every loop `i` until all of them have returned,
    /// then shuts the group down and returns their outputs in loop order
    /// (asyncio's `run(main())`, once per loop). If one panics, its
    /// [`Error::Panicked`] is returned and the other loops' tasks are
    /// cancelled by the shutdown. [`Error::AnotherLoopRunning`] when called
    /// on a thread running a loop.
    pub fn run<M, Fut>(self, main: M) -> Result<Vec<Fut::Output>>
    where
        M: Fn(usize) -> Fut + Send + Clone + 'static,
        Fut: Future + 'static,
        Fut::Output: Send + 'static,
    {
        not_in_a_loop()?;
        let n = self.len();
        let (tx, rx) = mpsc::channel::<(usize, Result<Fut::Output>)>();
        for (i, member) in self.members.iter().enumerate() {
            let main = main.clone();
            let tx = tx.clone();
            post(
                &member.handle,
                move || main(i),
                Done::new(move |r| {
                    let _ = tx.send((i, r));
                }),
            )?;
        }
        drop(tx);
        let mut outputs: Vec<Option<Fut::Output>> = (0..n).map(|_| None).collect();
        let mut failure = None;
        let mut left = n;
        while left > 0 && failure.is_none() {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok((i, Ok(v))) => {
                    outputs[i] = Some(v);
                    left -= 1;
                }
                Ok((i, Err(e))) => failure = Some(index_error(i, e)),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    // A loop whose thread died (its loop panicked) cannot
                    // answer: stop waiting, the shutdown reports why.
                    if self
                        .members
                        .iter()
                        .enumerate()
                        .any(|(i, m)| outputs[i].is_none() && m.finished.is_done())
                    {
                        break;
                    }
                }
            }
        }
        let shutdown = self.shutdown();
        if let Some(e) = failure {
            return Err(e);
        }
        shutdown?;
        outputs
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                v.ok_or_else(|| Error::Panicked(format!("loop {i} ended without an answer")))
            })
            .collect()
    }

    /// Stops every loop, cancels its tasks (running their destructors:
    /// connections close), closes it and joins its thread, waiting at most
    /// [`SHUTDOWN_TIMEOUT`] in all. Every failure is in the
    /// [`LoopGroupError`]: a loop thread that panicked
    /// ([`Error::Panicked`]), a loop that failed, one still running at the
    /// deadline ([`Error::TimedOut`]; its thread is left to finish alone).
    pub fn shutdown(self) -> std::result::Result<(), LoopGroupError> {
        self.shutdown_timeout(SHUTDOWN_TIMEOUT)
    }

    /// [`shutdown`](Self::shutdown) with another bound.
    pub fn shutdown_timeout(
        mut self,
        timeout: Duration,
    ) -> std::result::Result<(), LoopGroupError> {
        self.stop_all(timeout)
    }

    fn stop_all(&mut self, timeout: Duration) -> std::result::Result<(), LoopGroupError> {
        if self.joined {
            return Ok(());
        }
        self.joined = true;
        self.stopping.store(true, Ordering::SeqCst);
        for m in &self.members {
            // Err(Closed): that loop is gone already; its join says why.
            let _ = m.handle.stop();
        }
        let me = thread::current().id();
        let deadline = Instant::now() + timeout;
        let mut failures = Vec::new();
        for (i, m) in self.members.iter_mut().enumerate() {
            let Some(join) = m.join.take() else { continue };
            if m.thread == me {
                // Dropped on one of its own loops: that thread cannot join
                // itself; its loop stops once the current callback returns.
                continue;
            }
            if !m.finished.wait_until(deadline) {
                failures.push((i, Error::TimedOut));
                continue; // detached: the thread finishes on its own
            }
            match join.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failures.push((i, e)),
                Err(payload) => failures.push((
                    i,
                    Error::Panicked(format!(
                        "the loop thread panicked: {}",
                        panic_message(&*payload)
                    )),
                )),
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(LoopGroupError { failures })
        }
    }
}

impl Drop for LoopGroup {
    fn drop(&mut self) {
        let _ = self.stop_all(SHUTDOWN_TIMEOUT);
    }
}

/// A blocking wait on a loop thread would stall that loop (or deadlock, if
/// it is the loop waited for).
fn not_in_a_loop() -> Result<()> {
    if crate::get_running_loop().is_ok() {
        return Err(Error::AnotherLoopRunning);
    }
    Ok(())
}

fn index_error(i: usize, e: Error) -> Error {
    match e {
        Error::Panicked(msg) => Error::Panicked(format!("loop {i}: {msg}")),
        other => other,
    }
}

/// One `run_per_core` in a call: a [`LoopGroup`] of one loop per CPU (the
/// default policy's backend) running `main(i)` on every loop `i` until all
/// have returned; their outputs in loop order. See [`LoopGroup::run`].
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
///
/// let names = evloop::run_per_core(|i| async move {
///     let local = Rc::new(Cell::new(i)); // loop-local state need not be Send
///     evloop::sleep(std::time::Duration::from_millis(1)).await;
///     (local.get(), std::thread::current().name().map(str::to_owned))
/// })?;
/// let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
/// assert_eq!(names.len(), cores);
/// assert_eq!(names[0], (0, Some("evloop-group-0".to_owned())));
/// # Ok::<_, evloop::Error>(())
/// ```
pub fn run_per_core<M, Fut>(main: M) -> Result<Vec<Fut::Output>>
where
    M: Fn(usize) -> Fut + Send + Clone + 'static,
    Fut: Future + 'static,
    Fut::Output: Send + 'static,
{
    not_in_a_loop()?;
    LoopGroup::new()?.run(main)
}

/// What [`LoopGroup::shutdown`] reports: each loop that failed, by index.
///
/// Converting it into an [`Error`] (`?` in a function returning
/// [`evloop::Result`](crate::Result)) keeps the first failure, a panic's
/// message prefixed with its loop's index.
#[derive(Debug)]
pub struct LoopGroupError {
    failures: Vec<(usize, Error)>,
}

impl LoopGroupError {
    /// `(loop index, what went wrong)`, in index order.
    pub fn failures(&self) -> &[(usize, Error)] {
        &self.failures
    }

    /// The failures, owned.
    pub fn into_failures(self) -> Vec<(usize, Error)> {
        self.failures
    }
}

impl fmt::Display for LoopGroupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "loop group shutdown: ")?;
        for (k, (i, e)) in self.failures.iter().enumerate() {
            if k > 0 {
                write!(f, "; ")?;
            }
            write!(f, "loop {i}: {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoopGroupError {}

impl From<LoopGroupError> for Error {
    fn from(e: LoopGroupError) -> Error {
        match e.failures.into_iter().next() {
            Some((i, err)) => index_error(i, err),
            None => Error::Closed,
        }
    }
}

/// Runs `make()` on the loop behind `handle` as a task; `done` gets the
/// task's result (or, if it never gets one, [`Error::Cancelled`] when it is
/// dropped: the loop shut down first).
fn post<M, Fut>(handle: &LoopHandle, make: M, done: Done<Fut::Output>) -> Result<()>
where
    M: FnOnce() -> Fut + Send + 'static,
    Fut: Future + 'static,
    Fut::Output: Send + 'static,
{
    handle.call_soon_threadsafe(move || {
        let Ok(lp) = crate::get_running_loop() else {
            return; // `done` drops: Cancelled
        };
        // `make` runs inside the task, so a panic in it is the task's
        // Error::Panicked, as a panic in the future is.
        let Ok(task) = lp.create_task(async move { make().await }) else {
            return;
        };
        if let Ok(waiter) = lp.create_task(async move { done.send(task.await) }) {
            waiter.detach();
        }
    })
}

/// A result sink that answers [`Error::Cancelled`] if dropped unused.
struct Done<T>(Option<Box<dyn FnOnce(Result<T>) + Send>>);

impl<T> Done<T> {
    fn new(f: impl FnOnce(Result<T>) + Send + 'static) -> Self {
        Done(Some(Box::new(f)))
    }

    fn send(mut self, r: Result<T>) {
        if let Some(f) = self.0.take() {
            f(r)
        }
    }
}

impl<T> Drop for Done<T> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f(Err(Error::Cancelled))
        }
    }
}

struct Slot<T> {
    value: Mutex<(Option<Result<T>>, Option<Waker>)>,
    cv: Condvar,
}

struct Sink<T>(Arc<Slot<T>>);

impl<T> Sink<T> {
    fn fill(self, r: Result<T>) {
        let waker = {
            let mut g = lock(&self.0.value);
            g.0 = Some(r);
            g.1.take()
        };
        self.0.cv.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

fn remote_pair<T>() -> (RemoteTask<T>, Sink<T>) {
    let slot = Arc::new(Slot {
        value: Mutex::new((None, None)),
        cv: Condvar::new(),
    });
    (RemoteTask { slot: slot.clone() }, Sink(slot))
}

/// The output of work posted to a group's loop with
/// [`LoopGroup::spawn_on`]: `Send`, awaited from any loop or waited for
/// with [`wait`](Self::wait) from a plain thread.
///
/// The result is the task's output, [`Error::Panicked`] if it panicked
/// (`make` included), or [`Error::Cancelled`] if the loop shut down first.
/// Dropping it does not cancel the task.
pub struct RemoteTask<T> {
    slot: Arc<Slot<T>>,
}

impl<T> fmt::Debug for RemoteTask<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteTask")
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl<T> RemoteTask<T> {
    /// `true` once the result is there.
    pub fn is_finished(&self) -> bool {
        lock(&self.slot.value).0.is_some()
    }

    /// Blocks the calling thread until the task has finished; returns its
    /// result. [`Error::AnotherLoopRunning`] (at once) on a thread running
    /// a loop: await the `RemoteTask` there instead.
    pub fn wait(self) -> Result<T> {
        not_in_a_loop()?;
        let mut g = lock(&self.slot.value);
        loop {
            if let Some(r) = g.0.take() {
                return r;
            }
            g = self.slot.cv.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// [`wait`](Self::wait) for at most `timeout`: [`Error::TimedOut`]
    /// if the task has not finished by then (it keeps running).
    pub fn wait_timeout(&self, timeout: Duration) -> Result<T> {
        not_in_a_loop()?;
        let deadline = Instant::now() + timeout;
        let mut g = lock(&self.slot.value);
        loop {
            if let Some(r) = g.0.take() {
                return r;
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::TimedOut);
            }
            g = match self.slot.cv.wait_timeout(g, deadline - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }
}

impl<T> Future for RemoteTask<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let mut g = lock(&self.slot.value);
        match g.0.take() {
            Some(r) => Poll::Ready(r),
            None => {
                match &g.1 {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => g.1 = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

/// The CPUs this process may run on, in ascending order.
fn allowed_cpus() -> io::Result<Vec<usize>> {
    let mut set = MaybeUninit::<libc::cpu_set_t>::zeroed();
    // SAFETY: `set` is a zeroed cpu_set_t (a valid empty set) and the size
    // passed is its size; the kernel writes at most that many bytes.
    let rc = unsafe {
        libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set.as_mut_ptr())
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: initialised (zeroed, then filled by the kernel).
    let set = unsafe { set.assume_init() };
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE, the bound CPU_ISSET requires.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// Pins the calling thread to `cpu` (one of [`allowed_cpus`]).
fn pin_current_thread(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cpu {cpu} is out of range"),
        ));
    }
    let mut set = MaybeUninit::<libc::cpu_set_t>::zeroed();
    // SAFETY: a zeroed cpu_set_t is a valid empty set; `cpu` is in range
    // (checked above); the size passed is the set's size; pid 0 means the
    // calling thread.
    let rc = unsafe {
        let set = set.as_mut_ptr();
        libc::CPU_SET(cpu, &mut *set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set)
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
