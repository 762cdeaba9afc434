//! Owned buffers for I/O, and what owned-buffer methods return.
//!
//! Owned-buffer operations (`read_owned`, `write_all_owned`, `recv_from`,
//! `sock_recv`, a file's `read_at`, ...) take their buffer by value and hand
//! it back with the result, because a completion backend (io_uring) writes
//! into the memory after the call returned: the buffer must live until the
//! kernel is done, even if the future awaiting it is dropped. Any
//! [`IoBuf`] (to send) or [`IoBufMut`] (to receive into) will do: `Vec<u8>`,
//! `Box<[u8]>`, `String`, `&'static [u8]`, `&'static str`.
//!
//! The result is a [`BufResult`]: `(Result<T>, B)`, the outcome with the
//! loop's one error type ([`crate::Error`]) and the buffer, whatever
//! happened, so `?` and `futures::try_join!` mix owned-buffer I/O with every
//! other call.
//!
//! ```
//! use evloop::buf::BufResult;
//! use evloop::net::UnixStream;
//!
//! async fn exchange(s: &UnixStream) -> evloop::Result<Vec<u8>> {
//!     let (res, _) = s.write_all_owned(b"ping".as_slice()).await;
//!     res?;
//!     let (res, buf): BufResult<usize, Vec<u8>> = s.read_owned(Vec::with_capacity(16)).await;
//!     res?; // an evloop::Error, like any other call's
//!     Ok(buf) // the bytes read (a Vec's length is set to the count)
//! }
//!
//! evloop::run(async {
//!     let (a, b) = UnixStream::pair()?;
//!     let lp = evloop::get_running_loop()?;
//!     let echo = lp.create_task(async move {
//!         let (res, buf) = b.read_owned(vec![0u8; 4]).await;
//!         res?;
//!         b.write_all_owned(buf).await.0
//!     })?;
//!     assert_eq!(exchange(&a).await?, b"ping");
//!     echo.await??;
//!     Ok::<_, evloop::Error>(())
//! })??;
//! # Ok::<_, evloop::Error>(())
//! ```

pub use loop_driver::buf::{IoBuf, IoBufMut};

/// The result of an owned-buffer operation: the outcome, with the loop's
/// error type, and the buffer (handed back whether it succeeded or not).
///
/// (Backends speak `loop_driver::buf::DriverBufResult`, whose error is a
/// plain `std::io::Error`; the loop converts at the boundary, losing nothing:
/// a failure is [`Error::Io`](crate::Error::Io) with the OS error inside.)
pub type BufResult<T, B> = (crate::Result<T>, B);
