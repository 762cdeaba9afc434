//! [`Child`]: a running (or finished) child process, asyncio's `Process`.

use std::fmt;
use std::future::Future;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::pin::{pin, Pin};
use std::process::ExitStatus;
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::io::pipe::{PipeReader, PipeWriter};
use crate::loop_core::error::{Error, Result};
use crate::loop_core::EventLoop;

use super::watcher::Watch;

/// The parent's end of a child's piped stdin.
pub type ChildStdin = PipeWriter;
/// The parent's end of a child's piped stdout.
pub type ChildStdout = PipeReader;
/// The parent's end of a child's piped stderr.
pub type ChildStderr = PipeReader;

/// A child process started by [`Command::spawn`](super::Command::spawn),
/// [`EventLoop::subprocess_exec`] or [`EventLoop::subprocess_shell`].
///
/// The loop learns of the child's exit on its own and reaps it at once,
/// whether or not anyone waits: [`returncode`](Child::returncode) becomes
/// `Some` then, every [`wait`](Child::wait) (any number, concurrently)
/// returns the same code, and signals fail with
/// [`io::ErrorKind::NotFound`] instead of reaching a recycled pid.
///
/// Dropping a `Child` does not kill the process (unless
/// [`Command::kill_on_drop`](super::Command::kill_on_drop) was set): the
/// loop keeps watching it and reaps it when it exits. Children still
/// running when the loop closes are reaped by a background thread. No
/// zombie is left behind either way.
///
/// ```
/// use evloop::process::{Command, Stdio};
/// evloop::run(async {
///     let lp = evloop::get_running_loop().unwrap();
///     // asyncio's create_subprocess_exec, then wait:
///     let done = lp.subprocess_exec("true", [] as [&str; 0]).unwrap();
///     assert_eq!(done.wait().await.unwrap(), 0);
///     // Stop a child that would run for a minute; the code is -signal.
///     let sleeper = Command::new("sleep").arg("60").stdout(Stdio::Null).spawn(&lp).unwrap();
///     sleeper.terminate().unwrap();
///     assert_eq!(sleeper.wait().await.unwrap(), -libc::SIGTERM);
///     assert_eq!(sleeper.returncode(), Some(-libc::SIGTERM));
///     // A missing program is a typed error, not a panic:
///     let err = lp.subprocess_exec("/no/such/program", ["x"]).unwrap_err();
///     assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
/// })
/// .unwrap();
/// ```
pub struct Child {
    /// The parent's end of the child's stdin, if it was [`Stdio::Piped`](super::Stdio::Piped).
    pub stdin: Option<ChildStdin>,
    /// The parent's end of the child's stdout, if it was piped.
    pub stdout: Option<ChildStdout>,
    /// The parent's end of the child's stderr, if it was piped.
    pub stderr: Option<ChildStderr>,
    lp: EventLoop,
    watch: Rc<Watch>,
    kill_on_drop: bool,
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("pid", &self.pid())
            .field("returncode", &self.returncode())
            .finish_non_exhaustive()
    }
}

/// asyncio's `returncode`: the exit code, or `-signal` if a signal killed it.
fn returncode_of(status: libc::c_int) -> i32 {
    if libc::WIFSIGNALED(status) {
        -libc::WTERMSIG(status)
    } else {
        libc::WEXITSTATUS(status)
    }
}

impl Child {
    pub(crate) fn new(
        lp: &EventLoop,
        watch: Rc<Watch>,
        stdin: Option<ChildStdin>,
        stdout: Option<ChildStdout>,
        stderr: Option<ChildStderr>,
        kill_on_drop: bool,
    ) -> Child {
        Child {
            stdin,
            stdout,
            stderr,
            lp: lp.clone(),
            watch,
            kill_on_drop,
        }
    }

    /// The process id. It stays the same after the child exits, but then
    /// no longer names it: use this type's methods to signal it.
    pub fn pid(&self) -> u32 {
        self.watch.shared.pid as u32
    }

    /// `None` while the child runs (or has exited but the loop has not yet
    /// noticed); then its exit code, or `-N` if signal `N` killed it.
    pub fn returncode(&self) -> Option<i32> {
        self.watch.shared.status().map(returncode_of)
    }

    /// The exit status in std's form, once known.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.watch.shared.status().map(ExitStatus::from_raw)
    }

    /// Waits for the child to exit and returns its [`returncode`](Self::returncode).
    /// Dropping the future cancels only this wait. On a closed loop it
    /// fails with [`Error::Closed`] unless the code is already known.
    pub fn wait(&self) -> Wait<'_> {
        Wait {
            child: self,
            key: None,
        }
    }

    /// Sends signal `sig`. After the child was reaped this fails with
    /// [`io::ErrorKind::NotFound`] (asyncio's `ProcessLookupError`) and
    /// sends nothing.
    pub fn send_signal(&self, sig: i32) -> Result<()> {
        self.watch.shared.send_signal(sig)
    }

    /// Sends `SIGTERM`.
    pub fn terminate(&self) -> Result<()> {
        self.send_signal(libc::SIGTERM)
    }

    /// Sends `SIGKILL`.
    pub fn kill(&self) -> Result<()> {
        self.send_signal(libc::SIGKILL)
    }

    /// Feeds `input` to stdin (then closes it), reads stdout and stderr to
    /// the end, all concurrently, and waits for the child to exit. Returns
    /// `(stdout, stderr)`, `None` for a stream that is not piped.
    ///
    /// Moves any amount of data both ways without deadlocking. A child that
    /// exits without reading its input is not an error (broken pipe and
    /// connection reset on stdin are ignored). Stdin is closed even when
    /// `input` is `None`; `input` is ignored if stdin is not piped.
    pub async fn communicate(
        &mut self,
        input: Option<Vec<u8>>,
    ) -> Result<(Option<Vec<u8>>, Option<Vec<u8>>)> {
        let stdin = self.stdin.take();
        let stdout = self.stdout.take();
        let stderr = self.stderr.take();
        let feed = async move {
            if let (Some(mut w), Some(data)) = (stdin, input) {
                let (res, _) = w.write_all_owned(data).await;
                match res {
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                        ) => {}
                    other => other?,
                }
            }
            Ok::<(), io::Error>(())
        };
        let out = read_all(stdout);
        let err = read_all(stderr);
        let (fed, out, err) = join3(feed, out, err).await;
        fed?;
        let (out, err) = (out?, err?);
        self.wait().await?;
        Ok((out, err))
    }
}

async fn read_all(reader: Option<PipeReader>) -> Result<Option<Vec<u8>>> {
    match reader {
        Some(mut r) => r.read_to_end_owned().await.map(Some),
        None => Ok(None),
    }
}

/// Runs three futures concurrently and returns all three outputs.
async fn join3<A: Future, B: Future, C: Future>(
    a: A,
    b: B,
    c: C,
) -> (A::Output, B::Output, C::Output) {
    let (mut a, mut b, mut c) = (pin!(a), pin!(b), pin!(c));
    let (mut ra, mut rb, mut rc) = (None, None, None);
    std::future::poll_fn(|cx| {
        if ra.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        if rc.is_none() {
            if let Poll::Ready(v) = c.as_mut().poll(cx) {
                rc = Some(v);
            }
        }
        match (ra.take(), rb.take(), rc.take()) {
            (Some(x), Some(y), Some(z)) => Poll::Ready((x, y, z)),
            (x, y, z) => {
                (ra, rb, rc) = (x, y, z);
                Poll::Pending
            }
        }
    })
    .await
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.kill_on_drop && self.watch.shared.status().is_none() {
            // Already gone is fine: the loop (or the reaper) reaps it.
            let _ = self.watch.shared.send_signal(libc::SIGKILL);
        }
    }
}

/// The future returned by [`Child::wait`].
pub struct Wait<'a> {
    child: &'a Child,
    key: Option<usize>,
}

impl fmt::Debug for Wait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wait")
            .field("pid", &self.child.pid())
            .finish()
    }
}

impl Future for Wait<'_> {
    type Output = Result<i32>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<i32>> {
        let child = self.child;
        if let Some(code) = child.returncode() {
            if let Some(key) = self.key.take() {
                child.watch.unregister(key);
            }
            return Poll::Ready(Ok(code));
        }
        if child.lp.is_closed() {
            return Poll::Ready(Err(Error::Closed));
        }
        let key = child.watch.register(self.key, cx.waker());
        self.key = Some(key);
        Poll::Pending
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.child.watch.unregister(key);
        }
    }
}
