//! Child processes: spawn, pipe to and from them, signal, wait.
//!
//! ```
//! use evloop::process::{Command, Stdio};
//! let (out, _err) = evloop::run(async {
//!     let lp = evloop::get_running_loop()?;
//!     let mut child = Command::new("sort")
//!         .stdin(Stdio::Piped)
//!         .stdout(Stdio::Piped)
//!         .spawn(&lp)?;
//!     child.communicate(Some(b"b\na\n".to_vec())).await
//! })
//! .unwrap()
//! .unwrap();
//! assert_eq!(out.unwrap(), b"a\nb\n");
//! ```
//!
//! - Spawning uses `std::process::Command` (fork/exec with close-on-exec
//!   descriptors, exec errors reported back: a missing program is
//!   [`std::io::ErrorKind::NotFound`]). In the child, every descriptor above
//!   2 is marked close-on-exec except [`Command::pass_fds`].
//! - The parent's pipe ends are non-blocking, close-on-exec
//!   [`PipeReader`](crate::PipeReader)/[`PipeWriter`](crate::PipeWriter) streams.
//! - Exit is learnt through a pidfd polled by the backend, or a SIGCHLD
//!   self-pipe where pidfds are unavailable (see [`ChildWatcher`]); the child is
//!   reaped as soon as it exits, by the loop, whether or not anyone waits.
//! - Nothing leaks: a dropped `Child` is reaped in the background (and
//!   killed first if [`Command::kill_on_drop`] is set); children still
//!   running when their loop closes are reaped by a background thread.

mod child;
mod command;
mod reaper;
mod watcher;

pub use child::{Child, ChildStderr, ChildStdin, ChildStdout, Wait};
pub use command::{Command, Stdio};
pub use watcher::ChildWatcher;
