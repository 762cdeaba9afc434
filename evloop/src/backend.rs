//! For backend authors: the boundary a backend implements, and how to plug
//! one in. Nothing here is needed to *use* evloop.
//!
//! A backend is a [`Driver`]: an operation-submission (proactor) interface.
//! The loop hands it an [`Op`] (accept, connect, receive, send, read,
//! write, wait for a child, open a file ...) under an [`OpId`], and the
//! driver either finishes it at once or reports a [`Completion`] from a
//! later [`Driver::wait`]; [`Driver::cancel`] answers [`Cancel`]. The whole
//! contract (what the loop promises about memory and descriptors, what it
//! relies on) is written on the [`Driver`] trait. Operations point into
//! owned buffers ([`crate::buf`]: `IoBuf`, `IoBufMut`), which users pass
//! too, so that module stays at the crate root.
//!
//! Steps:
//! 1. Implement [`Driver`], or, for a readiness mechanism (kqueue, poll,
//!    another epoll crate), only `backend_readiness::Selector` (five
//!    methods) and wrap it in `backend_readiness::ReadinessDriver`, which
//!    emulates completion on readiness (the crate `backend-readiness` of
//!    this workspace, used by the mio and polling backends below).
//! 2. Build a loop around it with [`from_driver`] and offer a
//!    `new_event_loop()` factory, as the three backends do.
//! 3. Run the shared suites from the `conformance-tests` crate as two
//!    integration tests of your crate:
//!    `conformance_tests::driver_suite!(mine, my_backend::driver);` checks the
//!    driver against the contract, and
//!    `conformance_tests::conformance_suite!(mine, my_backend::new_event_loop);`
//!    runs the whole loop's suite (the ones the built-in backends pass).
//! 4. Users pick it with [`run_with`](crate::run_with) or a
//!    [`FactoryPolicy`](crate::FactoryPolicy); `EVLOOP_BACKEND` knows only
//!    the built-in names.
//!
//! A driver that wraps the mio backend's and counts submissions, plugged
//! into a loop:
//!
//! ```
//! use evloop::backend::{Cancel, Completion, Driver, Notify, Op, OpId, OpOutput};
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::sync::Arc;
//! use std::task::Poll;
//! use std::time::Duration;
//!
//! struct Counting<D> {
//!     inner: D,
//!     submitted: Arc<AtomicUsize>,
//! }
//!
//! impl<D: Driver> Driver for Counting<D> {
//!     fn name(&self) -> &'static str {
//!         "counting-mio"
//!     }
//!     unsafe fn submit(&mut self, id: OpId, op: Op) -> Poll<std::io::Result<OpOutput>> {
//!         self.submitted.fetch_add(1, Ordering::Relaxed);
//!         // SAFETY: our caller keeps `submit`'s contract, which we pass on unchanged.
//!         unsafe { self.inner.submit(id, op) }
//!     }
//!     fn cancel(&mut self, id: OpId) -> Cancel {
//!         self.inner.cancel(id)
//!     }
//!     fn release_fd(&mut self, fd: std::os::fd::RawFd) {
//!         self.inner.release_fd(fd)
//!     }
//!     fn wait(&mut self, t: Option<Duration>, done: &mut Vec<Completion>) -> std::io::Result<()> {
//!         self.inner.wait(t, done)
//!     }
//!     fn notifier(&self) -> Arc<dyn Notify> {
//!         self.inner.notifier()
//!     }
//! }
//!
//! let submitted = Arc::new(AtomicUsize::new(0));
//! let driver = Counting {
//!     inner: evloop::backend::mio::driver().unwrap(),
//!     submitted: submitted.clone(),
//! };
//! let lp = evloop::backend::from_driver(Box::new(driver));
//! assert_eq!(lp.backend_name(), "counting-mio");
//! let text = lp
//!     .run_until_complete(async {
//!         let lp = evloop::get_running_loop().unwrap();
//!         let (mut r, mut w) = evloop::pipe::pipe(&lp).unwrap();
//!         lp.create_task(async move {
//!             evloop::sleep(Duration::from_millis(5)).await; // the reader waits meanwhile
//!             futures::io::AsyncWriteExt::write_all(&mut w, b"hi").await.unwrap();
//!         })
//!         .unwrap()
//!         .detach();
//!         let mut s = String::new();
//!         futures::io::AsyncReadExt::read_to_string(&mut r, &mut s).await.unwrap();
//!         s
//!     })
//!     .unwrap();
//! assert_eq!(text, "hi");
//! assert!(submitted.load(Ordering::Relaxed) > 0); // the pipe waited through the driver
//! lp.close().unwrap();
//! ```
//!
//! The operation futures the loop's own I/O objects are built on are
//! [`OpFuture`] (awaiting one raw operation, for backend tests). A backend
//! crate can make its loops the default, when the application sets no
//! policy, with [`install_default_policy`].

/// For a crate that wants its backend to be the default when the
/// application installs no policy (evloop installs its own default
/// lazily, and the first installed wins).
#[doc(inline)]
pub use loop_api::install_default_policy;
pub use loop_api::OpFuture;
pub use loop_driver::{sys, Cancel, Completion, Driver, Notify, Op, OpId, OpOutput};

use loop_api::EventLoop;

/// Builds an event loop on `driver` (what each backend's
/// `new_event_loop()` does). The loop owns the driver from here on and
/// drops it when it is closed.
pub fn from_driver(driver: Box<dyn Driver>) -> EventLoop {
    EventLoop::from_driver(driver)
}

/// The mio backend (epoll through mio): its driver and loop factory.
#[cfg(feature = "backend-mio")]
pub use backend_mio as mio;
/// The polling backend (level-triggered epoll through polling): its
/// driver and loop factory.
#[cfg(feature = "backend-polling")]
pub use backend_polling as polling;
/// The io_uring backend: its driver, loop factory and `UringBuilder` for
/// ring options.
#[cfg(feature = "backend-uring")]
pub use backend_uring as uring;
