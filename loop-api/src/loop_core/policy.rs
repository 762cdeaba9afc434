//! Choosing the loop: asyncio's policy functions and the loop-factory form.
//!
//! A policy makes loops. `set_event_loop_policy` installs one process-wide;
//! `None` goes back to the default policy, which the `evloop` crate installs
//! (it knows which backends are compiled in and reads `EVLOOP_BACKEND`).
//! `run_with(factory, fut)` skips policies altogether, like Python 3.14's
//! `asyncio.run(loop_factory=...)`.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, OnceLock, RwLock};

use crate::loop_core::error::{Error, Result};
use crate::loop_core::{get_running_loop, EventLoop};

/// Makes event loops.
///
/// ```
/// use evloop::{EventLoop, EventLoopPolicy};
/// use std::sync::Arc;
///
/// /// Every loop on epoll through mio, whatever `EVLOOP_BACKEND` says.
/// #[derive(Debug)]
/// struct AlwaysMio;
/// impl EventLoopPolicy for AlwaysMio {
///     fn name(&self) -> String {
///         "always-mio".into()
///     }
///     fn new_event_loop(&self) -> evloop::Result<EventLoop> {
///         evloop::new_event_loop_for("mio")
///     }
/// }
///
/// evloop::set_event_loop_policy(Some(Arc::new(AlwaysMio)));
/// let backend = evloop::run(async { evloop::get_running_loop().unwrap().backend_name() });
/// assert_eq!(backend.unwrap(), "mio");
/// evloop::set_event_loop_policy(None); // back to the default policy
/// ```
pub trait EventLoopPolicy: Send + Sync + 'static {
    /// A short description, e.g. the backend it picks.
    fn name(&self) -> String;

    /// Creates a fresh loop.
    fn new_event_loop(&self) -> Result<EventLoop>;
}

impl fmt::Debug for dyn EventLoopPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventLoopPolicy({})", self.name())
    }
}

/// A policy made from a function, e.g. a backend's `new_event_loop`.
///
/// ```
/// use evloop::{set_event_loop_policy, FactoryPolicy};
/// use std::sync::Arc;
/// // Like asyncio.set_event_loop_policy(uvloop.EventLoopPolicy()):
/// set_event_loop_policy(Some(Arc::new(FactoryPolicy::new("polling", || {
///     evloop::new_event_loop_for("polling")
/// }))));
/// assert_eq!(evloop::get_event_loop_policy().name(), "polling");
/// let lp = evloop::new_event_loop().unwrap();
/// assert_eq!(lp.backend_name(), "polling");
/// lp.close().unwrap();
/// ```
pub struct FactoryPolicy<F> {
    name: String,
    factory: F,
}

impl<F> FactoryPolicy<F>
where
    F: Fn() -> Result<EventLoop> + Send + Sync + 'static,
{
    /// Wraps `factory` as a policy called `name`.
    pub fn new(name: impl Into<String>, factory: F) -> Self {
        FactoryPolicy {
            name: name.into(),
            factory,
        }
    }
}

impl<F> fmt::Debug for FactoryPolicy<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FactoryPolicy")
            .field("name", &self.name)
            .finish()
    }
}

impl<F> EventLoopPolicy for FactoryPolicy<F>
where
    F: Fn() -> Result<EventLoop> + Send + Sync + 'static,
{
    fn name(&self) -> String {
        self.name.clone()
    }

    fn new_event_loop(&self) -> Result<EventLoop> {
        (self.factory)()
    }
}

/// The policy used when no backend crate installed a default.
struct NoBackend;

impl EventLoopPolicy for NoBackend {
    fn name(&self) -> String {
        "none".to_owned()
    }

    fn new_event_loop(&self) -> Result<EventLoop> {
        Err(Error::BackendUnavailable {
            backend: "default".to_owned(),
            reason: "no default policy installed; depend on the `evloop` crate or call \
                     set_event_loop_policy"
                .to_owned(),
        })
    }
}

static CUSTOM: RwLock<Option<Arc<dyn EventLoopPolicy>>> = RwLock::new(None);
static DEFAULT: OnceLock<Arc<dyn EventLoopPolicy>> = OnceLock::new();

/// Installs the policy used when none is set. The first call wins; returns
/// whether this call installed it.
///
/// The `evloop` crate calls this (lazily, on its first `run`,
/// `new_event_loop` or `get_event_loop_policy`) with its default policy;
/// it is re-exported for backend authors as
/// `evloop::backend::install_default_policy`, for a crate that wants its
/// own backend to be the default when the application sets no policy.
/// An application picks its policy with [`set_event_loop_policy`]
/// instead, which always takes precedence.
///
/// ```
/// use evloop::backend::install_default_policy;
/// use evloop::FactoryPolicy;
/// use std::sync::Arc;
///
/// // Before anything else asked for a loop: this default wins ...
/// let mine = FactoryPolicy::new("my-default", || evloop::new_event_loop_for("polling"));
/// assert!(install_default_policy(Arc::new(mine)));
/// // ... and a later one (like evloop's own) is ignored.
/// let other = FactoryPolicy::new("other", || evloop::new_event_loop_for("mio"));
/// assert!(!install_default_policy(Arc::new(other)));
/// assert_eq!(evloop::get_event_loop_policy().name(), "my-default");
/// let backend = evloop::run(async { evloop::get_running_loop().unwrap().backend_name() });
/// assert_eq!(backend?, "polling");
/// # Ok::<_, evloop::Error>(())
/// ```
pub fn install_default_policy(policy: Arc<dyn EventLoopPolicy>) -> bool {
    DEFAULT.set(policy).is_ok()
}

/// Sets the process-wide policy; `None` restores the default (asyncio's
/// `set_event_loop_policy`). Examples: [`FactoryPolicy`] (a policy from a
/// function, as for uvloop) and [`EventLoopPolicy`] (a policy type of
/// your own); here, every loop of this process on one backend:
///
/// ```
/// use evloop::{set_event_loop_policy, FactoryPolicy};
/// use std::sync::Arc;
///
/// set_event_loop_policy(Some(Arc::new(FactoryPolicy::new("mio everywhere", || {
///     evloop::new_event_loop_for("mio")
/// }))));
/// let on = evloop::run(async { evloop::get_running_loop().unwrap().backend_name() })?;
/// assert_eq!(on, "mio");
/// set_event_loop_policy(None); // the default policy again
/// assert!(evloop::get_event_loop_policy().name().starts_with("default("));
/// # Ok::<_, evloop::Error>(())
/// ```
pub fn set_event_loop_policy(policy: Option<Arc<dyn EventLoopPolicy>>) {
    let mut slot = CUSTOM.write().unwrap_or_else(|e| e.into_inner());
    *slot = policy;
}

/// The policy in force: the one set with [`set_event_loop_policy`], else the default.
pub fn get_event_loop_policy() -> Arc<dyn EventLoopPolicy> {
    let custom = CUSTOM.read().unwrap_or_else(|e| e.into_inner()).clone();
    custom.unwrap_or_else(|| match DEFAULT.get() {
        Some(p) => p.clone(),
        None => Arc::new(NoBackend),
    })
}

/// A new loop from the policy in force.
pub fn new_event_loop() -> Result<EventLoop> {
    get_event_loop_policy().new_event_loop()
}

thread_local! {
    static CURRENT: RefCell<Option<EventLoop>> = const { RefCell::new(None) };
}

/// Sets this thread's current (not necessarily running) loop; `None` clears it.
///
/// ```
/// let lp = evloop::new_event_loop().unwrap();
/// evloop::set_event_loop(Some(lp.clone()));
/// // Code with no loop argument finds it (asyncio.get_event_loop()):
/// let current = evloop::get_event_loop().unwrap();
/// assert_eq!(current.run_until_complete(async { 1 + 1 }).unwrap(), 2);
/// evloop::set_event_loop(None);
/// assert!(matches!(evloop::get_event_loop(), Err(evloop::Error::NoRunningLoop)));
/// lp.close().unwrap();
/// ```
pub fn set_event_loop(lp: Option<EventLoop>) {
    CURRENT.with(|c| *c.borrow_mut() = lp);
}

/// The running loop if there is one, else this thread's current loop set
/// with [`set_event_loop`] (whose example shows that case), else
/// [`Error::NoRunningLoop`] (unlike old asyncio, it never makes a loop).
///
/// ```
/// // Inside a task: the running loop.
/// let running = evloop::run(async { Ok::<_, evloop::Error>(evloop::get_event_loop()?.is_running()) })??;
/// assert!(running);
/// // Outside, with no current loop set: a typed error.
/// assert!(matches!(evloop::get_event_loop(), Err(evloop::Error::NoRunningLoop)));
/// # Ok::<_, evloop::Error>(())
/// ```
pub fn get_event_loop() -> Result<EventLoop> {
    if let Ok(lp) = get_running_loop() {
        return Ok(lp);
    }
    CURRENT
        .with(|c| c.borrow().clone())
        .ok_or(Error::NoRunningLoop)
}

/// Creates a loop with `factory`, runs `fut` to completion on it, cancels
/// the tasks still pending, and closes the loop (asyncio's `run` with a
/// `loop_factory`).
///
/// ```
/// // Python 3.14's asyncio.run(main(), loop_factory=...):
/// let name = evloop::run_with(
///     || evloop::new_event_loop_for("mio"),
///     async { evloop::get_running_loop().unwrap().backend_name() },
/// );
/// assert_eq!(name.unwrap(), "mio");
/// // A factory that fails is the caller's error, not a panic:
/// let err = evloop::run_with(|| evloop::new_event_loop_for("kqueue"), async {}).unwrap_err();
/// assert!(matches!(err, evloop::Error::BackendUnavailable { .. }));
/// ```
pub fn run_with<L, F>(factory: L, fut: F) -> Result<F::Output>
where
    L: FnOnce() -> Result<EventLoop>,
    F: Future + 'static,
    F::Output: 'static,
{
    if get_running_loop().is_ok() {
        return Err(Error::AnotherLoopRunning);
    }
    let lp = factory()?;
    let result = lp.run_until_complete(fut);
    let shutdown = lp.shutdown_tasks();
    let closed = lp.close();
    let value = result?;
    shutdown?;
    closed?;
    Ok(value)
}

/// [`run_with`] on a loop from the policy in force.
pub fn run<F>(fut: F) -> Result<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    run_with(new_event_loop, fut)
}
