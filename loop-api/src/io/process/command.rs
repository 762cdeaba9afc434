//! The [`Command`] builder: what to run and how its standard streams,
//! environment, directory, session and descriptors are set up.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use crate::io::pipe::{PipeReader, PipeWriter};
use crate::loop_core::error::{Error, Result};
use crate::loop_core::EventLoop;
use crate::sys;

use super::child::Child;
use super::watcher::{pidfd_open, pidfd_supported, ChildWatcher, ProcShared, ProcessState, Watch};

/// What a child's standard stream is connected to.
///
/// ```
/// use evloop::process::{Command, Stdio};
///
/// let log = std::env::temp_dir().join(format!("evloop-stdio-{}.log", std::process::id()));
/// let (merged, code) = evloop::run({
///     let log = log.clone();
///     async move {
///         let lp = evloop::get_running_loop()?;
///         // No input; stderr into the same pipe as stdout (asyncio's STDOUT).
///         let (out, _) = Command::shell("echo out; echo err >&2")
///             .stdin(Stdio::Null)
///             .stdout(Stdio::Piped)
///             .stderr(Stdio::Stdout)
///             .spawn(&lp)?
///             .communicate(None)
///             .await?;
///         // Stdout straight into a file of ours.
///         let file = std::fs::File::create(&log)?;
///         let code = Command::new("echo")
///             .arg("to the file")
///             .stdout(Stdio::Fd(file.into()))
///             .spawn(&lp)?
///             .wait()
///             .await?;
///         Ok::<_, evloop::Error>((out, code))
///     }
/// })??;
/// assert_eq!(merged.as_deref(), Some(&b"out\nerr\n"[..]));
/// assert_eq!(code, 0);
/// assert_eq!(std::fs::read_to_string(&log)?, "to the file\n");
/// std::fs::remove_file(&log)?;
/// # Ok::<_, evloop::Error>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Stdio {
    /// The parent's own stream (the default, as in asyncio).
    Inherit,
    /// A new pipe; the parent's end becomes `Child::stdin`/`stdout`/`stderr`.
    Piped,
    /// `/dev/null`.
    Null,
    /// For stderr only: wherever stdout goes (asyncio's `STDOUT`).
    Stdout,
    /// This descriptor (it is duplicated at spawn; the value keeps its own).
    Fd(OwnedFd),
    /// A raw descriptor number, duplicated at spawn: `EBADF` if it is not open.
    RawFd(RawFd),
}

/// A builder for a child process, like `std::process::Command` with
/// asyncio's options. Nothing happens until [`spawn`](Command::spawn).
///
/// Defaults: stdin, stdout and stderr inherited; the parent's environment
/// and directory; every descriptor other than 0, 1, 2 and
/// [`pass_fds`](Command::pass_fds) closed in the child (asyncio's
/// `close_fds=True`); same session; the child keeps running if its `Child`
/// is dropped (see [`kill_on_drop`](Command::kill_on_drop)).
///
/// ```
/// use evloop::process::{Command, Stdio};
/// let (out, err) = evloop::run(async {
///     let lp = evloop::get_running_loop()?;
///     Command::shell("echo \"$GREETING from $(pwd)\"; echo oops >&2")
///         .env("GREETING", "hello")
///         .current_dir("/")
///         .stdout(Stdio::Piped)
///         .stderr(Stdio::Piped)
///         .spawn(&lp)?
///         .communicate(None)
///         .await
/// })
/// .unwrap()
/// .unwrap();
/// assert_eq!(out.unwrap(), b"hello from /\n");
/// assert_eq!(err.unwrap(), b"oops\n");
/// ```
pub struct Command {
    program: OsString,
    args: Vec<OsString>,
    env_clear: bool,
    env: Vec<(OsString, Option<OsString>)>,
    cwd: Option<PathBuf>,
    stdin: Stdio,
    stdout: Stdio,
    stderr: Stdio,
    new_session: bool,
    pass_fds: Vec<RawFd>,
    kill_on_drop: bool,
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("stdin", &self.stdin)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .finish_non_exhaustive()
    }
}

impl Command {
    /// Runs `program` (looked up in `PATH` if it has no slash).
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env_clear: false,
            env: Vec::new(),
            cwd: None,
            stdin: Stdio::Inherit,
            stdout: Stdio::Inherit,
            stderr: Stdio::Inherit,
            new_session: false,
            pass_fds: Vec::new(),
            kill_on_drop: false,
        }
    }

    /// Runs `command` with `/bin/sh -c` (asyncio's `create_subprocess_shell`).
    pub fn shell(command: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(command);
        cmd
    }

    /// Adds one argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Command {
        self.env
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Sets several environment variables.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (k, v) in vars {
            self.env(k, v);
        }
        self
    }

    /// Removes an inherited environment variable.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }

    /// Starts from an empty environment (asyncio's `env={}`).
    pub fn env_clear(&mut self) -> &mut Command {
        self.env_clear = true;
        self.env.clear();
        self
    }

    /// The child's working directory.
    pub fn current_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Command {
        self.cwd = Some(dir.into());
        self
    }

    /// Connects the child's stdin.
    pub fn stdin(&mut self, cfg: Stdio) -> &mut Command {
        self.stdin = cfg;
        self
    }

    /// Connects the child's stdout.
    pub fn stdout(&mut self, cfg: Stdio) -> &mut Command {
        self.stdout = cfg;
        self
    }

    /// Connects the child's stderr ([`Stdio::Stdout`] merges it into stdout).
    pub fn stderr(&mut self, cfg: Stdio) -> &mut Command {
        self.stderr = cfg;
        self
    }

    /// Runs the child in a new session (`setsid()`, asyncio's `start_new_session`).
    pub fn start_new_session(&mut self, on: bool) -> &mut Command {
        self.new_session = on;
        self
    }

    /// Descriptors the child inherits, under the same numbers (asyncio's
    /// `pass_fds`). They must be open at spawn (`EBADF` otherwise); every
    /// other descriptor above 2 is closed in the child.
    pub fn pass_fds(&mut self, fds: impl IntoIterator<Item = RawFd>) -> &mut Command {
        self.pass_fds.extend(fds);
        self
    }

    /// Sends `SIGKILL` to the child if its [`Child`] is dropped while it
    /// still runs. Either way the loop reaps it in the background.
    pub fn kill_on_drop(&mut self, on: bool) -> &mut Command {
        self.kill_on_drop = on;
        self
    }

    /// Starts the child on `lp`.
    ///
    /// Errors: [`Error::Closed`] on a closed loop; a missing program is an
    /// [`Error::Io`] of kind [`io::ErrorKind::NotFound`]; an unopened
    /// [`Stdio::RawFd`] or pass_fd is `EBADF`; [`Stdio::Stdout`] anywhere but
    /// stderr is [`Error::InvalidArgument`]. Nothing is left behind on failure.
    pub fn spawn(&mut self, lp: &EventLoop) -> Result<Child> {
        lp.check_open()?;
        for &fd in &self.pass_fds {
            // SAFETY: F_GETFD takes no pointer; an invalid fd gives EBADF.
            sys::cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
        }
        // Child ends (None: inherit) and our ends of the standard streams.
        let (stdin_child, stdin_ours) = child_end(&self.stdin, true, None)?;
        let (stdout_child, stdout_ours) = child_end(&self.stdout, false, None)?;
        let (stderr_child, stderr_ours) =
            child_end(&self.stderr, false, Some(stdout_child.as_ref()))?;
        let stdin = stdin_ours.map(|fd| PipeWriter::new(lp, fd)).transpose()?;
        let stdout = stdout_ours.map(|fd| PipeReader::new(lp, fd)).transpose()?;
        let stderr = stderr_ours.map(|fd| PipeReader::new(lp, fd)).transpose()?;

        let state = ProcessState::get(lp);
        let use_pidfd = match state.watcher.get() {
            ChildWatcher::Auto => pidfd_supported(),
            ChildWatcher::Pidfd => true,
            ChildWatcher::Sigchld => false,
        };
        if !use_pidfd {
            // Before the spawn, so no SIGCHLD is missed.
            state.ensure_sigchld(lp)?;
        }

        let mut cmd = std::process::Command::new(&self.program);
        cmd.args(&self.args);
        if self.env_clear {
            cmd.env_clear();
        }
        for (k, v) in &self.env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        cmd.stdin(std_stdio(stdin_child));
        cmd.stdout(std_stdio(stdout_child));
        cmd.stderr(std_stdio(stderr_child));
        let new_session = self.new_session;
        let pass_fds: Arc<[RawFd]> = self.pass_fds.clone().into();
        // SAFETY: the closure runs in the child between fork and exec and
        // only makes async-signal-safe syscalls (setsid, close_range, fcntl),
        // allocating nothing.
        unsafe {
            cmd.pre_exec(move || child_setup(new_session, &pass_fds));
        }
        let spawned = cmd.spawn();
        // Drop order matters: the child's ends of the pipes live in `cmd`;
        // closing them here is what lets our readers see end of stream.
        drop(cmd);
        let child = Error::ctx(spawned, || {
            format!("spawn `{}`", self.program.to_string_lossy())
        })?;
        let pid = child.id() as libc::pid_t;
        // std's handle holds no descriptors here (every stream was given
        // explicitly) and does not wait on drop: we reap the pid ourselves.
        drop(child);

        let pidfd = if use_pidfd {
            match pidfd_open(pid) {
                Ok(fd) => Some(fd),
                Err(e) => {
                    // Cannot watch it as asked: do not leave it running unwatched.
                    // SAFETY: the pid is our unreaped child.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    let mut status = 0;
                    // SAFETY: waits for our own child, which was just killed.
                    unsafe { libc::waitpid(pid, &mut status, 0) };
                    return Err(Error::from(e));
                }
            }
        } else {
            None
        };
        let watch = Rc::new(Watch::new(Arc::new(ProcShared::new(pid, pidfd))));
        state.adopt(lp, watch.clone());
        Ok(Child::new(
            lp,
            watch,
            stdin,
            stdout,
            stderr,
            self.kill_on_drop,
        ))
    }
}

/// Prepares the child's descriptors after std has set up 0, 1 and 2.
fn child_setup(new_session: bool, pass_fds: &[RawFd]) -> io::Result<()> {
    if new_session {
        // SAFETY: setsid is async-signal-safe and takes no arguments.
        if unsafe { libc::setsid() } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // Mark every descriptor above 2 close-on-exec (not closed: std reports
    // exec failures through one of them). Linux 5.11+; older kernels rely
    // on every descriptor Rust and evloop create being close-on-exec already.
    // SAFETY: close_range takes three integers.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
    }
    for &fd in pass_fds {
        // SAFETY: F_SETFD with an integer argument on a descriptor the
        // parent checked was open.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn std_stdio(fd: Option<OwnedFd>) -> std::process::Stdio {
    match fd {
        Some(fd) => std::process::Stdio::from(fd),
        None => std::process::Stdio::inherit(),
    }
}

fn dev_null() -> io::Result<OwnedFd> {
    // std opens with O_CLOEXEC.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    Ok(OwnedFd::from(file))
}

/// The child's end (None: inherit) and our end (for `Piped`) of one stream.
/// `stdout` is `Some(stdout's child end)` when building stderr.
fn child_end(
    cfg: &Stdio,
    input: bool,
    stdout: Option<Option<&OwnedFd>>,
) -> Result<(Option<OwnedFd>, Option<OwnedFd>)> {
    Ok(match cfg {
        Stdio::Inherit => (None, None),
        Stdio::Null => (Some(dev_null()?), None),
        Stdio::Piped => {
            let (r, w) = sys::pipe_cloexec()?;
            if input {
                (Some(r), Some(w))
            } else {
                (Some(w), Some(r))
            }
        }
        Stdio::Fd(fd) => (Some(fd.try_clone()?), None),
        Stdio::RawFd(fd) => (Some(sys::dup_cloexec(*fd)?), None),
        Stdio::Stdout => match stdout {
            Some(Some(fd)) => (Some(fd.try_clone()?), None),
            Some(None) => (Some(sys::dup_cloexec(libc::STDOUT_FILENO)?), None),
            None => {
                return Err(Error::InvalidArgument(
                    "Stdio::Stdout is only valid for stderr".to_owned(),
                ))
            }
        },
    })
}

impl EventLoop {
    /// Starts `program` with `args` (asyncio's `subprocess_exec`), its
    /// standard streams inherited; use [`Command`] for pipes and options.
    pub fn subprocess_exec<I, S>(&self, program: impl AsRef<OsStr>, args: I) -> Result<Child>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Command::new(program).args(args).spawn(self)
    }

    /// Runs `command` with `/bin/sh -c` (asyncio's `subprocess_shell`), its
    /// standard streams inherited; use [`Command::shell`] for pipes and options.
    pub fn subprocess_shell(&self, command: impl AsRef<OsStr>) -> Result<Child> {
        Command::shell(command).spawn(self)
    }

    /// Chooses how this loop learns that its children exited, for children
    /// spawned from now on (see [`ChildWatcher`]).
    pub fn set_child_watcher(&self, watcher: ChildWatcher) -> Result<()> {
        self.check_open()?;
        ProcessState::get(self).watcher.set(watcher);
        Ok(())
    }
}
