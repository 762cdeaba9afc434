//! The loop's exception handler: where panics in callbacks and tasks go.

use std::fmt;
use std::rc::Rc;

use crate::loop_core::handle::Handle;
use crate::loop_core::EventLoop;

/// What the loop knows about a failure it reports to the exception handler
/// (asyncio's context dict).
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
/// let lp = evloop::new_event_loop().unwrap();
/// let seen = Rc::new(RefCell::new(Vec::new()));
/// let s = seen.clone();
/// lp.set_exception_handler(Some(Rc::new(move |_lp, ctx: &evloop::ExceptionContext| {
///     s.borrow_mut().push(ctx.payload.clone().unwrap_or_default());
/// })));
/// let task = lp.create_task(async { panic!("boom") }).unwrap();
/// // The loop goes on; the task's awaiter gets Error::Panicked.
/// assert!(matches!(lp.run_until_complete(task).unwrap(), Err(evloop::Error::Panicked(_))));
/// assert_eq!(*seen.borrow(), ["boom"]);
/// lp.close().unwrap();
/// ```
#[derive(Debug, Clone, Default)]
pub struct ExceptionContext {
    /// What happened, e.g. `"Exception in callback"` or `"Task panicked"`.
    pub message: String,
    /// The panic's message, if a panic caused the report.
    pub payload: Option<String>,
    /// The callback that failed, if it was a `call_soon`/`call_later` callback.
    pub handle: Option<Handle>,
    /// The id of the task that failed, if it was a task.
    pub task: Option<u64>,
    /// The context being handled when the exception handler itself failed.
    pub context: Option<Box<ExceptionContext>>,
}

impl fmt::Display for ExceptionContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(task) = self.task {
            write!(f, " (task {task})")?;
        }
        if let Some(payload) = &self.payload {
            write!(f, ": {payload}")?;
        }
        if let Some(inner) = &self.context {
            write!(f, "; while handling: {inner}")?;
        }
        Ok(())
    }
}

/// A custom exception handler, as installed by
/// [`EventLoop::set_exception_handler`] (`None` there restores the
/// default). [`ExceptionContext`]'s example installs one that records
/// panics; a handler that adds to the default one:
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use evloop::{default_exception_handler, ExceptionContext, ExceptionHandler};
///
/// let lp = evloop::new_event_loop()?;
/// let reports = Rc::new(Cell::new(0));
/// let counted = reports.clone();
/// let handler: ExceptionHandler = Rc::new(move |_lp: &evloop::EventLoop, ctx: &ExceptionContext| {
///     counted.set(counted.get() + 1); // e.g. a metric
///     default_exception_handler(ctx); // and the usual line on stderr
/// });
/// lp.set_exception_handler(Some(handler));
/// lp.call_soon(|| panic!("in a callback"))?;
/// lp.run_until_complete(evloop::sleep(std::time::Duration::from_millis(1)))?;
/// assert_eq!(reports.get(), 1);
/// lp.close()?;
/// # Ok::<_, evloop::Error>(())
/// ```
pub type ExceptionHandler = Rc<dyn Fn(&EventLoop, &ExceptionContext)>;

/// The default handler: writes the context to standard error, like
/// asyncio's logger (`evloop: Exception in callback ...: <panic message>`).
/// A custom handler can call it too ([`ExceptionHandler`]'s example);
/// a loop can report something itself:
///
/// ```
/// use evloop::{default_exception_handler, ExceptionContext};
///
/// let ctx = ExceptionContext {
///     message: "Backup failed".into(),
///     payload: Some("disk full".into()),
///     ..ExceptionContext::default()
/// };
/// assert_eq!(ctx.to_string(), "Backup failed: disk full");
/// default_exception_handler(&ctx); // stderr: "evloop: Backup failed: disk full"
/// ```
pub fn default_exception_handler(context: &ExceptionContext) {
    eprintln!("evloop: {context}");
}
