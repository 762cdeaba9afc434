//! `close()` never frees memory the kernel may still write: when the
//! backend cannot confirm that the kernel let go of a pending receive, the
//! receive's buffer is leaked, never dropped, whether its future outlives
//! the loop or is dropped while the loop closes. When the backend forgets
//! the operation (its cancel answers `Forgotten`), the future ends with an error
//! and the buffer is freed as usual.
//!
//! The backend here is a fake that takes every operation and never
//! completes one; the "kernel" is whatever it holds. The two leaking tests
//! take about 2 s each (`close` waits that long for final completions).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use loop_api::{EventLoop, OpFuture};
use loop_driver::{Cancel, Completion, Driver, Notify, Op, OpId, OpOutput};

/// What the fake backend was asked.
#[derive(Default)]
struct Seen {
    submitted: Vec<OpId>,
    cancelled: Vec<OpId>,
    dropped: bool,
}

/// Takes every operation, completes none; answers cancels with `answer`.
struct HoldingDriver {
    answer: Cancel,
    seen: Rc<RefCell<Seen>>,
}

struct NoNotify;

impl Notify for NoNotify {
    fn notify(&self) {}
}

impl Driver for HoldingDriver {
    fn name(&self) -> &'static str {
        "holding"
    }

    unsafe fn submit(&mut self, id: OpId, _op: Op) -> Poll<io::Result<OpOutput>> {
        self.seen.borrow_mut().submitted.push(id);
        Poll::Pending
    }

    fn cancel(&mut self, id: OpId) -> Cancel {
        self.seen.borrow_mut().cancelled.push(id);
        self.answer
    }

    fn release_fd(&mut self, _fd: std::os::fd::RawFd) {}

    fn wait(&mut self, timeout: Option<Duration>, _done: &mut Vec<Completion>) -> io::Result<()> {
        // Nothing ever completes: sleep through (a slice of) the timeout.
        let nap = timeout
            .unwrap_or(Duration::MAX)
            .min(Duration::from_millis(20));
        std::thread::sleep(nap);
        Ok(())
    }

    fn notifier(&self) -> Arc<dyn Notify> {
        Arc::new(NoNotify)
    }
}

impl Drop for HoldingDriver {
    fn drop(&mut self) {
        self.seen.borrow_mut().dropped = true;
    }
}

/// A receive buffer whose drop is observed.
struct Tracked {
    buf: Vec<u8>,
    freed: Rc<Cell<bool>>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.freed.set(true);
    }
}

fn new_loop(answer: Cancel) -> (EventLoop, Rc<RefCell<Seen>>) {
    let seen = Rc::new(RefCell::new(Seen::default()));
    let driver = HoldingDriver {
        answer,
        seen: seen.clone(),
    };
    (EventLoop::from_driver(Box::new(driver)), seen)
}

/// A receive into a tracked buffer, and the flag its drop sets.
fn recv(lp: &EventLoop) -> (OpFuture<Tracked>, Rc<Cell<bool>>) {
    let freed = Rc::new(Cell::new(false));
    let mut buf = Tracked {
        buf: Vec::with_capacity(64),
        freed: freed.clone(),
    };
    let op = Op::Recv {
        // The fake backend never touches the descriptor.
        fd: -1,
        buf: buf.buf.as_mut_ptr(),
        len: buf.buf.capacity(),
    };
    // SAFETY: `op` points only into `buf.buf`'s heap memory, owned by the
    // keep; the descriptor is never used.
    let fut = unsafe { OpFuture::new(lp, op, buf) };
    (fut, freed)
}

fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    Pin::new(fut).poll(&mut Context::from_waker(Waker::noop()))
}

fn is_closed_error(e: &io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<loop_api::Error>())
        .is_some_and(|inner| matches!(inner, loop_api::Error::Closed))
}

/// The future outlives the loop: the operation becomes stuck, the future
/// never completes, and dropping it leaks the buffer.
#[test]
fn close_leaks_the_buffer_of_a_future_that_outlives_it() {
    let (lp, seen) = new_loop(Cancel::Pending);
    let (mut fut, freed) = recv(&lp);
    assert!(poll_once(&mut fut).is_pending());
    assert_eq!(seen.borrow().submitted.len(), 1);

    lp.close().unwrap();
    let id = seen.borrow().submitted[0];
    assert_eq!(
        seen.borrow().cancelled,
        [id],
        "close asked the backend to cancel"
    );
    assert!(seen.borrow().dropped, "the backend is released");
    assert!(!freed.get());

    // The kernel may still write into the buffer: the future never ends.
    assert!(poll_once(&mut fut).is_pending());
    drop(fut);
    assert!(!freed.get(), "a buffer the kernel may still own was freed");
    drop(lp);
    assert!(!freed.get(), "a buffer the kernel may still own was freed");
}

/// The future is in a task that `close()` drops: the operation becomes an
/// orphan, and its buffer is leaked when the backend does not give it back.
#[test]
fn close_leaks_the_buffer_of_a_task_it_drops() {
    let (lp, seen) = new_loop(Cancel::Pending);
    let (fut, freed) = recv(&lp);
    let ended = Rc::new(Cell::new(false));
    let task = lp
        .create_task({
            let ended = ended.clone();
            async move {
                let (result, buf) = fut.await;
                ended.set(true);
                (result.map(|out| out.bytes), buf.buf.len())
            }
        })
        .unwrap();
    // One iteration: the task submits its receive and waits.
    lp.run_until_complete(async {}).unwrap();
    assert_eq!(seen.borrow().submitted.len(), 1);
    assert!(!task.is_finished());

    drop(task);
    lp.close().unwrap();
    let id = seen.borrow().submitted[0];
    assert_eq!(
        seen.borrow().cancelled,
        [id],
        "the dropped receive was cancelled"
    );
    assert!(seen.borrow().dropped, "the backend is released");
    assert!(!ended.get(), "the task never ran past the receive");
    assert!(!freed.get(), "a buffer the kernel may still own was freed");
    drop(lp);
    assert!(!freed.get(), "a buffer the kernel may still own was freed");
}

/// The backend forgets the operation when cancelled: after `close()` the
/// future ends with `Closed` and hands its buffer back, freed normally.
#[test]
fn close_ends_a_forgotten_operation_and_frees_its_buffer() {
    let (lp, seen) = new_loop(Cancel::Forgotten);
    let (mut fut, freed) = recv(&lp);
    assert!(poll_once(&mut fut).is_pending());

    lp.close().unwrap();
    assert_eq!(seen.borrow().cancelled.len(), 1);
    let Poll::Ready((result, buf)) = poll_once(&mut fut) else {
        panic!("the future of a forgotten operation must end after close");
    };
    let err = result.expect_err("a closed loop's receive fails");
    assert!(is_closed_error(&err), "{err:?}");
    assert!(!freed.get());
    drop(buf);
    assert!(freed.get());
}

/// Same, with the future dropped uncollected: its buffer is freed.
#[test]
fn close_then_drop_frees_the_buffer_of_a_forgotten_operation() {
    let (lp, _seen) = new_loop(Cancel::Forgotten);
    let (mut fut, freed) = recv(&lp);
    assert!(poll_once(&mut fut).is_pending());
    lp.close().unwrap();
    assert!(!freed.get());
    drop(fut);
    assert!(freed.get());
}
