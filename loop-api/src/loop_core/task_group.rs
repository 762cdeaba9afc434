//! [`TaskGroup`]: asyncio 3.11's structured concurrency, in Rust terms.
//!
//! - A child *fails* when its future returns `Err(e)` or panics (the panic
//!   becomes `E::from(Error::Panicked(message))`, and is still reported to
//!   the loop's exception handler like every task panic).
//! - The first failure cancels every other child with [`Task::cancel`]
//!   (their futures are dropped, their destructors run) from a callback
//!   scheduled with `call_soon`, as asyncio's done callback does: children
//!   that fail in the same loop iteration are all collected. From the first
//!   failure on, `spawn` is refused with [`Error::Cancelled`].
//! - [`TaskGroup::join`] waits until every child has ended, then returns
//!   `Ok(())` or a [`GroupError`] holding every failure in the order they
//!   happened (asyncio's `ExceptionGroup`). Cancelled children are not
//!   failures.
//! - Dropping the group, or the future of its `join`, cancels the children
//!   still running (cancellation is drop: a group inside a task that is
//!   cancelled cancels its own children, so groups nest).
//!
//! Where asyncio also cancels the body of the `async with` block when a
//! child fails, here the code that spawns is not interrupted: it learns of
//! the failure from `spawn` (refused) or from `join`.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use slab::Slab;

use crate::loop_core::error::{panic_message, Error, Result};
use crate::loop_core::task::{Task, TaskRef};
use crate::loop_core::{get_running_loop, EventLoop};

/// What a group shares with its children.
struct GroupState<E> {
    lp: EventLoop,
    /// The children still running; `None` while one is being spawned.
    children: RefCell<Slab<Option<TaskRef>>>,
    /// Every failure, in the order they happened.
    errors: RefCell<Vec<E>>,
    /// Set by the first failure (asyncio's `_aborting`).
    aborting: Cell<bool>,
    /// The `join` waiting for the last child.
    joiner: RefCell<Option<Waker>>,
}

impl<E> GroupState<E> {
    /// Cancels every child but `except`. The references are collected
    /// first: a cancelled child's future is dropped right here, and its
    /// [`Member`] guard then removes it from `children`.
    fn cancel_children(&self, except: Option<usize>) {
        let victims: Vec<TaskRef> = self
            .children
            .borrow()
            .iter()
            .filter(|(key, _)| Some(*key) != except)
            .filter_map(|(_, child)| child.clone())
            .collect();
        for child in victims {
            child.cancel();
        }
    }
}

/// A child's membership: removes the child from its group when its future
/// is dropped (completed, failed, panicked or cancelled), and wakes `join`
/// once the last one is gone.
struct Member<E> {
    group: Weak<GroupState<E>>,
    key: usize,
}

impl<E: 'static> Member<E> {
    /// Records a failure; the first one cancels the siblings.
    fn fail(&self, error: E) {
        let Some(group) = self.group.upgrade() else {
            return;
        };
        group.errors.borrow_mut().push(error);
        if !group.aborting.replace(true) {
            // Next iteration, as asyncio's done callback: siblings failing
            // in this one are collected too.
            let weak = self.group.clone();
            let scheduled = group.lp.call_soon(move || {
                if let Some(group) = weak.upgrade() {
                    group.cancel_children(None);
                }
            });
            if scheduled.is_err() {
                group.cancel_children(Some(self.key));
            }
        }
    }
}

impl<E> Drop for Member<E> {
    fn drop(&mut self) {
        let Some(group) = self.group.upgrade() else {
            return;
        };
        let empty = {
            let mut children = group.children.borrow_mut();
            children.try_remove(self.key);
            children.is_empty()
        };
        if empty {
            let joiner = group.joiner.borrow_mut().take();
            if let Some(waker) = joiner {
                waker.wake();
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The future a child task runs: the user's future, watched for failure.
    struct Child<F, E> {
        #[pin]
        fut: F,
        member: Member<E>,
    }
}

impl<F, T, E> Future for Child<F, E>
where
    F: Future<Output = std::result::Result<T, E>>,
    E: From<Error> + 'static,
{
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.project();
        let fut = this.fut;
        match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(Ok(value))) => Poll::Ready(Some(value)),
            Ok(Poll::Ready(Err(error))) => {
                this.member.fail(error);
                Poll::Ready(None)
            }
            Err(payload) => {
                let message = panic_message(&*payload);
                this.member.fail(E::from(Error::Panicked(message)));
                // The task wrapper reports it and ends the task as panicked.
                resume_unwind(payload)
            }
        }
    }
}

/// A set of tasks that live and fail together (asyncio's `TaskGroup`).
///
/// Children are futures returning `Result<T, E>`. The first child to fail
/// (return `Err`, or panic) cancels all the others; [`join`](Self::join)
/// waits for every child and returns all the failures in a
/// [`GroupError`]. Dropping the group (or its `join` future) cancels the
/// children still running, so a group never outlives its owner.
///
/// `E` is the children's error type (by default [`Error`]); it must take an
/// [`Error`] so that a panic can be recorded as one.
///
/// ```
/// # evloop::run(async {
/// use evloop::{sleep, Error, TaskGroup};
/// use std::time::Duration;
///
/// let group = TaskGroup::<Error>::new()?;
/// let fast = group.spawn(async { Ok(1) })?;
/// group.spawn(async {
///     sleep(Duration::from_millis(10)).await;
///     Ok(2)
/// })?;
/// group.join().await.expect("no child failed");
/// assert_eq!(fast.await?, Some(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap().unwrap();
/// ```
pub struct TaskGroup<E = Error> {
    state: Rc<GroupState<E>>,
}

impl<E: From<Error> + 'static> TaskGroup<E> {
    /// A group on the running loop; [`Error::NoRunningLoop`] outside one.
    pub fn new() -> Result<Self> {
        Ok(Self::with_loop(&get_running_loop()?))
    }

    /// A group whose children run on `lp`.
    pub fn with_loop(lp: &EventLoop) -> Self {
        TaskGroup {
            state: Rc::new(GroupState {
                lp: lp.clone(),
                children: RefCell::new(Slab::new()),
                errors: RefCell::new(Vec::new()),
                aborting: Cell::new(false),
                joiner: RefCell::new(None),
            }),
        }
    }

    /// Starts `fut` as a child task (asyncio's `tg.create_task`).
    ///
    /// The returned handle gives `Some(value)` when the child succeeded,
    /// `None` when it returned `Err` (the error went to the group),
    /// [`Error::Cancelled`] if the group cancelled it, or
    /// [`Error::Panicked`]. Dropping the handle does not detach the child
    /// from the group.
    ///
    /// Refused with [`Error::Cancelled`] once a child has failed (the group
    /// is cancelling its children), and with [`Error::Closed`] on a closed
    /// loop.
    pub fn spawn<F, T>(&self, fut: F) -> Result<Task<Option<T>>>
    where
        F: Future<Output = std::result::Result<T, E>> + 'static,
        T: 'static,
    {
        if self.state.aborting.get() {
            return Err(Error::Cancelled);
        }
        let key = self.state.children.borrow_mut().insert(None);
        let child = Child {
            fut,
            member: Member {
                group: Rc::downgrade(&self.state),
                key,
            },
        };
        // On error the child is dropped unpolled and its guard removes `key`.
        let task = self.state.lp.create_task(child)?;
        if let Some(slot) = self.state.children.borrow_mut().get_mut(key) {
            *slot = Some(task.task_ref());
        }
        Ok(task)
    }

    /// Number of children still running.
    pub fn len(&self) -> usize {
        self.state.children.borrow().len()
    }

    /// `true` when no child is running.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `true` once a child has failed and the group is cancelling the rest.
    pub fn is_aborting(&self) -> bool {
        self.state.aborting.get()
    }

    /// Waits until every child has ended (asyncio's `async with` exit).
    /// `Ok(())` if none failed, else every failure in a [`GroupError`].
    /// Dropping the returned future cancels the children still running.
    pub fn join(self) -> Join<E> {
        Join { group: self }
    }
}

impl<E> Drop for TaskGroup<E> {
    fn drop(&mut self) {
        self.state.cancel_children(None);
    }
}

impl<E> fmt::Debug for TaskGroup<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskGroup")
            .field("children", &self.state.children.borrow().len())
            .field("failures", &self.state.errors.borrow().len())
            .field("aborting", &self.state.aborting.get())
            .finish()
    }
}

/// The future returned by [`TaskGroup::join`]: `Ok(())`, or every
/// failure in a [`GroupError`] (whose example shows both).
#[derive(Debug)]
pub struct Join<E = Error> {
    group: TaskGroup<E>,
}

impl<E> Future for Join<E> {
    type Output = std::result::Result<(), GroupError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let state = &self.group.state;
        if !state.children.borrow().is_empty() {
            *state.joiner.borrow_mut() = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let errors = std::mem::take(&mut *state.errors.borrow_mut());
        if errors.is_empty() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Ready(Err(GroupError { errors }))
        }
    }
}

/// The failures of a [`TaskGroup`]'s children, in the order they happened
/// (asyncio's `ExceptionGroup`). Never empty.
///
/// ```
/// use evloop::{sleep, Error, TaskGroup};
/// use std::time::Duration;
///
/// evloop::run(async {
///     let group = TaskGroup::<Error>::new()?;
///     let sleeper = group.spawn(async {
///         sleep(Duration::from_secs(60)).await;
///         Ok(())
///     })?;
///     group.spawn(async { Err::<(), _>(Error::InvalidArgument("bad input".into())) })?;
///     // The failure cancels the sleeper; join() returns what failed.
///     let failed = group.join().await.unwrap_err();
///     assert_eq!(failed.errors().len(), 1);
///     assert_eq!(failed.to_string(), "1 task(s) of the group failed; the first: invalid argument: bad input");
///     assert!(sleeper.await.unwrap_err().is_cancelled());
///     Ok::<_, Error>(())
/// })??;
/// # Ok::<_, evloop::Error>(())
/// ```
#[derive(Debug)]
pub struct GroupError<E = Error> {
    errors: Vec<E>,
}

impl<E> GroupError<E> {
    /// Every failure, first one first.
    pub fn errors(&self) -> &[E] {
        &self.errors
    }

    /// Takes the failures out.
    pub fn into_errors(self) -> Vec<E> {
        self.errors
    }
}

impl<E: fmt::Display> fmt::Display for GroupError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} task(s) of the group failed", self.errors.len())?;
        if let Some(first) = self.errors.first() {
            write!(f, "; the first: {first}")?;
        }
        Ok(())
    }
}

impl<E: std::error::Error + 'static> std::error::Error for GroupError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.errors
            .first()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
