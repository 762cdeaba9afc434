//! Section 15 — subprocesses (SUB-*), and the subprocess part of section
//! 18 (BAD-10).
//!
//! Child processes (and the SIGCHLD fallback) are process-wide, so every
//! test here is exclusive. Tests that start with `sigchld_` repeat the key
//! behaviours with the SIGCHLD watcher instead of pidfds.

use std::future::Future as _;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use loop_api::process::{Child, ChildWatcher, Command, Stdio};
use loop_api::{gather, wait_for, Error, EventLoop};

use crate::support::{fd_count, new_loop};
use crate::Factory;

#[doc(hidden)]
#[macro_export]
macro_rules! __subprocess_tests {
    ($f:expr) => {
        $crate::__section!($f, subprocess: [] exclusive [
            cat_echoes_stdin_and_exits_zero,
            shell_exit_code,
            communicate_returns_piped_outputs_only,
            communicate_moves_megabytes_both_ways,
            kill_terminate_send_signal_codes,
            reaped_child_is_gone_and_signals_fail,
            exit_before_wait_is_reported_once,
            concurrent_waits_get_the_same_code,
            stderr_merged_into_stdout,
            broken_stdin_errors_but_communicate_ignores_it,
            missing_program_is_not_found,
            spawns_leave_fd_count_unchanged,
            env_clear_env_and_cwd,
            only_pass_fds_reach_the_child,
            our_pipe_ends_are_cloexec_and_nonblocking,
            start_new_session_runs_setsid,
            dropped_child_is_reaped_in_background,
            kill_on_drop_kills_and_reaps,
            loop_close_leaves_no_zombie,
            sigchld_watcher_exit_codes_and_signals,
            sigchld_watcher_reaps_dropped_and_closed,
            bad_subprocess_arguments,
        ]);
    };
}

/// Runs `fut` to completion on `lp`.
fn block<T: 'static, F: std::future::Future<Output = T> + 'static>(lp: &EventLoop, fut: F) -> T {
    lp.run_until_complete(fut).unwrap()
}

fn piped(cmd: &mut Command) -> &mut Command {
    cmd.stdin(Stdio::Piped).stdout(Stdio::Piped)
}

/// `true` while `pid` exists (as a process or a zombie).
fn pid_exists(pid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

/// Waits (on this thread) up to 10 s for `pid` to be fully gone (reaped).
fn assert_reaped_soon(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while pid_exists(pid) {
        assert!(
            Instant::now() < deadline,
            "pid {pid} was never reaped (zombie?)"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs the loop until `pid` is gone, at most 10 s.
fn run_until_reaped(lp: &EventLoop, pid: u32) {
    let lp2 = lp.clone();
    block(lp, async move {
        let deadline = Instant::now() + Duration::from_secs(10);
        while pid_exists(pid) {
            assert!(Instant::now() < deadline, "pid {pid} was never reaped");
            lp2.sleep(Duration::from_millis(5)).await;
        }
    });
}

/// SUB-1: `cat` returns what it is fed; `returncode` is `None` while it
/// runs, then 0.
pub fn cat_echoes_stdin_and_exits_zero(factory: impl Factory) {
    let lp = new_loop(factory);
    let mut child = piped(&mut Command::new("cat")).spawn(&lp).unwrap();
    let lp2 = lp.clone();
    let (out, code) = block(&lp, async move {
        assert_eq!(child.returncode(), None);
        let mut stdin = child.stdin.take().unwrap();
        let (res, _) = stdin.write_all_owned(b"hello, cat\n".to_vec()).await;
        res.unwrap();
        lp2.sleep(Duration::from_millis(20)).await;
        assert_eq!(
            child.returncode(),
            None,
            "cat still runs while stdin is open"
        );
        drop(stdin);
        let out = child
            .stdout
            .as_mut()
            .unwrap()
            .read_to_end_owned()
            .await
            .unwrap();
        (out, child.wait().await.unwrap())
    });
    assert_eq!(out, b"hello, cat\n");
    assert_eq!(code, 0);
    lp.close().unwrap();
}

/// SUB-1: `sh -c 'exit 7'` gives 7.
pub fn shell_exit_code(factory: impl Factory) {
    let lp = new_loop(factory);
    let child = lp.subprocess_shell("exit 7").unwrap();
    let code = block(&lp, async move { child.wait().await.unwrap() });
    assert_eq!(code, 7);
    lp.close().unwrap();
}

/// SUB-1: `communicate` returns `(stdout, stderr)` with `None` for streams
/// that are not piped, and sets `returncode`.
pub fn communicate_returns_piped_outputs_only(factory: impl Factory) {
    let lp = new_loop(factory);
    let mut child = piped(&mut Command::new("cat")).spawn(&lp).unwrap();
    let (out, err, code) = block(&lp, async move {
        let (out, err) = child.communicate(Some(b"data".to_vec())).await.unwrap();
        (out, err, child.returncode())
    });
    assert_eq!(out.as_deref(), Some(&b"data"[..]));
    assert_eq!(err, None);
    assert_eq!(code, Some(0));

    let mut child = Command::shell("echo out; echo err >&2; exit 3")
        .stdout(Stdio::Piped)
        .stderr(Stdio::Piped)
        .stdin(Stdio::Null)
        .spawn(&lp)
        .unwrap();
    let (out, err, code) = block(&lp, async move {
        let (out, err) = child.communicate(None).await.unwrap();
        (out, err, child.returncode())
    });
    assert_eq!(out.as_deref(), Some(&b"out\n"[..]));
    assert_eq!(err.as_deref(), Some(&b"err\n"[..]));
    assert_eq!(code, Some(3));
    lp.close().unwrap();
}

/// `communicate` moves 4 MiB in and out (stdout and stderr) without deadlock.
pub fn communicate_moves_megabytes_both_ways(factory: impl Factory) {
    let lp = new_loop(factory);
    let data: Vec<u8> = (0..4usize << 20).map(|i| (i % 253) as u8).collect();
    let expected = data.clone();
    // cat's stdout, plus the same bytes copied to stderr by tee.
    let mut child = Command::shell("tee /dev/stderr")
        .stdin(Stdio::Piped)
        .stdout(Stdio::Piped)
        .stderr(Stdio::Piped)
        .spawn(&lp)
        .unwrap();
    let (out, err, code) = block(&lp, async move {
        let (out, err) = child.communicate(Some(data)).await.unwrap();
        (out.unwrap(), err.unwrap(), child.returncode())
    });
    assert_eq!(code, Some(0));
    assert!(
        out == expected,
        "stdout: {} of {} bytes",
        out.len(),
        expected.len()
    );
    assert!(
        err == expected,
        "stderr: {} of {} bytes",
        err.len(),
        expected.len()
    );
    lp.close().unwrap();
}

/// SUB-2: kill → -SIGKILL, terminate → -SIGTERM, send_signal(SIGHUP) → -SIGHUP.
pub fn kill_terminate_send_signal_codes(factory: impl Factory) {
    let lp = new_loop(factory);
    type Sender = fn(&Child) -> loop_api::Result<()>;
    let cases: [(Sender, i32); 3] = [
        (|c| c.kill(), -libc::SIGKILL),
        (|c| c.terminate(), -libc::SIGTERM),
        (|c| c.send_signal(libc::SIGHUP), -libc::SIGHUP),
    ];
    for (send, expected) in cases {
        let child = lp.subprocess_exec("sleep", ["30"]).unwrap();
        let code = block(&lp, async move {
            send(&child).unwrap();
            child.wait().await.unwrap()
        });
        assert_eq!(code, expected);
    }
    lp.close().unwrap();
}

/// SUB-3: once waited for, the child is reaped (kill(pid, 0) fails with
/// ESRCH) and kill/terminate/send_signal fail with `NotFound`.
pub fn reaped_child_is_gone_and_signals_fail(factory: impl Factory) {
    let lp = new_loop(factory);
    let child = lp.subprocess_exec("true", None::<&str>).unwrap();
    let pid = child.pid();
    let child = block(&lp, async move {
        assert_eq!(child.wait().await.unwrap(), 0);
        child
    });
    // SAFETY: signal 0 only checks for existence.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    assert_eq!(rc, -1, "no zombie left");
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::ESRCH)
    );
    for res in [
        child.kill(),
        child.terminate(),
        child.send_signal(libc::SIGHUP),
    ] {
        assert_eq!(res.unwrap_err().kind(), std::io::ErrorKind::NotFound);
    }
    lp.close().unwrap();
}

/// A child that exits before anyone waits is reaped and reported once:
/// `returncode` is set without a wait, and later waits all return it.
pub fn exit_before_wait_is_reported_once(factory: impl Factory) {
    let lp = new_loop(factory);
    let child = lp.subprocess_shell("exit 5").unwrap();
    let pid = child.pid();
    run_until_reaped(&lp, pid);
    assert_eq!(child.returncode(), Some(5), "reaped without anyone waiting");
    let codes = block(&lp, async move {
        let a = child.wait().await.unwrap();
        let b = child.wait().await.unwrap();
        (a, b, child.returncode())
    });
    assert_eq!(codes, (5, 5, Some(5)));
    lp.close().unwrap();
}

/// SUB-6: ten concurrent waits return the same code; a cancelled wait does
/// not disturb the others.
pub fn concurrent_waits_get_the_same_code(factory: impl Factory) {
    let lp = new_loop(factory);
    let child = lp.subprocess_shell("sleep 0.1; exit 3").unwrap();
    let codes = block(&lp, async move {
        let cancelled = wait_for(child.wait(), Duration::from_millis(1)).await;
        assert!(matches!(cancelled, Err(Error::TimedOut)));
        let waits: Vec<_> = (0..10).map(|_| child.wait()).collect();
        gather(waits).await
    });
    assert_eq!(codes.len(), 10);
    for code in codes {
        assert_eq!(code.unwrap(), 3);
    }
    lp.close().unwrap();
}

/// SUB-7: `Stdio::Stdout` on stderr merges it into stdout; `child.stderr`
/// is `None`, as is any stream that is not piped.
pub fn stderr_merged_into_stdout(factory: impl Factory) {
    let lp = new_loop(factory);
    let mut child = Command::shell("echo out; echo err >&2")
        .stdout(Stdio::Piped)
        .stderr(Stdio::Stdout)
        .spawn(&lp)
        .unwrap();
    assert!(child.stderr.is_none());
    assert!(child.stdin.is_none());
    let (out, err) = block(&lp, async move { child.communicate(None).await.unwrap() });
    assert_eq!(out.as_deref(), Some(&b"out\nerr\n"[..]));
    assert_eq!(err, None);
    lp.close().unwrap();
}

/// SUB-9: writing to a child that exited without reading is `BrokenPipe`;
/// `communicate(input)` ignores it.
pub fn broken_stdin_errors_but_communicate_ignores_it(factory: impl Factory) {
    let lp = new_loop(factory);
    let mut child = Command::shell("exit 0")
        .stdin(Stdio::Piped)
        .spawn(&lp)
        .unwrap();
    block(&lp, async move {
        child.wait().await.unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let (res, _) = stdin.write_all_owned(vec![0u8; 1 << 20]).await;
        assert_eq!(res.unwrap_err().kind(), std::io::ErrorKind::BrokenPipe);
    });
    let mut child = Command::shell("exit 4")
        .stdin(Stdio::Piped)
        .spawn(&lp)
        .unwrap();
    let res = block(&lp, async move {
        let res = child.communicate(Some(vec![1u8; 4 << 20])).await;
        (res, child.returncode())
    });
    assert_eq!(res.0.unwrap(), (None, None));
    assert_eq!(res.1, Some(4));
    lp.close().unwrap();
}

/// SUB-10: a missing program is `NotFound`.
pub fn missing_program_is_not_found(factory: impl Factory) {
    let lp = new_loop(factory);
    let err = lp
        .subprocess_exec("/nonexistent/evloop-no-such-program", None::<&str>)
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    let err = piped(&mut Command::new("evloop-no-such-program-in-path"))
        .spawn(&lp)
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    lp.close().unwrap();
}

/// SUB-10: ten spawns, failed or successful, leave the fd count unchanged.
pub fn spawns_leave_fd_count_unchanged(factory: impl Factory) {
    let lp = new_loop(factory);
    // Warm up lazily created loop state (none expected, but be fair).
    let before = fd_count();
    for i in 0..10 {
        if i % 2 == 0 {
            let mut child = Command::new("cat")
                .stdin(Stdio::Piped)
                .stdout(Stdio::Piped)
                .stderr(Stdio::Piped)
                .spawn(&lp)
                .unwrap();
            block(&lp, async move {
                child.communicate(Some(b"x".to_vec())).await.unwrap();
            });
        } else {
            let res = Command::new("/nonexistent/evloop-x")
                .stdin(Stdio::Piped)
                .stdout(Stdio::Piped)
                .spawn(&lp);
            assert!(res.is_err());
        }
    }
    assert_eq!(fd_count(), before);
    lp.close().unwrap();
}

/// SUB-11: an empty environment, an added variable, and the working directory.
pub fn env_clear_env_and_cwd(factory: impl Factory) {
    let lp = new_loop(factory);
    let mut child = Command::new("/usr/bin/env")
        .env_clear()
        .stdout(Stdio::Piped)
        .spawn(&lp)
        .unwrap();
    let (out, _) = block(&lp, async move { child.communicate(None).await.unwrap() });
    assert_eq!(out.unwrap(), b"", "env_clear gives an empty environment");

    let mut child = Command::new("/bin/sh")
        .args(["-c", "echo \"$EVLOOP_TEST_VAR\"; pwd"])
        .env_clear()
        .env("EVLOOP_TEST_VAR", "hello")
        .current_dir("/")
        .stdout(Stdio::Piped)
        .spawn(&lp)
        .unwrap();
    let (out, _) = block(&lp, async move { child.communicate(None).await.unwrap() });
    assert_eq!(out.unwrap(), b"hello\n/\n");
    lp.close().unwrap();
}

/// A pipe whose ends are NOT close-on-exec (as a careless caller might make).
fn inheritable_pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: room for two descriptors; plain pipe(2), no CLOEXEC on purpose.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: fresh descriptors owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// SUB-11: only `pass_fds` reach the child; any other descriptor (even one
/// without close-on-exec) is closed there.
pub fn only_pass_fds_reach_the_child(factory: impl Factory) {
    let lp = new_loop(factory);
    let (pass_r, pass_w) = inheritable_pipe();
    let (other_r, other_w) = inheritable_pipe();
    let script = format!(
        "echo passed >&{p}; if [ -e /proc/self/fd/{o} ]; then echo leaked; else echo closed; fi",
        p = pass_w.as_raw_fd(),
        o = other_w.as_raw_fd()
    );
    let mut child = Command::shell(script)
        .pass_fds([pass_w.as_raw_fd()])
        .stdout(Stdio::Piped)
        .spawn(&lp)
        .unwrap();
    drop(pass_w);
    let (out, _) = block(&lp, async move { child.communicate(None).await.unwrap() });
    assert_eq!(out.unwrap(), b"closed\n");
    let mut reader = lp.connect_read_pipe(pass_r).unwrap();
    let got = block(
        &lp,
        async move { reader.read_to_end_owned().await.unwrap() },
    );
    assert_eq!(got, b"passed\n");
    drop((other_r, other_w));
    lp.close().unwrap();
}

/// SUB-11: our ends of the child's pipes are close-on-exec and non-blocking.
pub fn our_pipe_ends_are_cloexec_and_nonblocking(factory: impl Factory) {
    let lp = new_loop(factory);
    let mut child = Command::new("cat")
        .stdin(Stdio::Piped)
        .stdout(Stdio::Piped)
        .stderr(Stdio::Piped)
        .spawn(&lp)
        .unwrap();
    let fds = [
        child.stdin.as_ref().unwrap().as_raw_fd(),
        child.stdout.as_ref().unwrap().as_raw_fd(),
        child.stderr.as_ref().unwrap().as_raw_fd(),
    ];
    for fd in fds {
        // SAFETY: F_GETFD / F_GETFL on descriptors we own.
        let (fdflags, flflags) = unsafe {
            (
                libc::fcntl(fd, libc::F_GETFD),
                libc::fcntl(fd, libc::F_GETFL),
            )
        };
        assert!(fdflags & libc::FD_CLOEXEC != 0, "fd {fd} is inheritable");
        assert!(flflags & libc::O_NONBLOCK != 0, "fd {fd} is blocking");
    }
    block(&lp, async move {
        child.communicate(None).await.unwrap();
    });
    lp.close().unwrap();
}

/// SUB-11: `start_new_session` puts the child in its own session.
pub fn start_new_session_runs_setsid(factory: impl Factory) {
    let lp = new_loop(factory);
    for new_session in [true, false] {
        let mut child = Command::shell("cat /proc/$$/stat")
            .start_new_session(new_session)
            .stdout(Stdio::Piped)
            .spawn(&lp)
            .unwrap();
        let pid = child.pid();
        let (out, _) = block(&lp, async move { child.communicate(None).await.unwrap() });
        let stat = String::from_utf8(out.unwrap()).unwrap();
        let after_comm = &stat[stat.rfind(')').unwrap() + 1..];
        // state ppid pgrp session ...
        let session: u32 = after_comm
            .split_whitespace()
            .nth(3)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(session == pid, new_session, "session {session}, pid {pid}");
    }
    lp.close().unwrap();
}

/// A `Child` dropped while running is reaped by the loop once it exits.
pub fn dropped_child_is_reaped_in_background(factory: impl Factory) {
    let lp = new_loop(factory);
    let child = lp.subprocess_shell("sleep 0.05").unwrap();
    let pid = child.pid();
    drop(child);
    assert!(pid_exists(pid), "dropping does not kill by default");
    run_until_reaped(&lp, pid);
    lp.close().unwrap();
}

/// `kill_on_drop`: dropping the `Child` kills the process, and it is reaped.
pub fn kill_on_drop_kills_and_reaps(factory: impl Factory) {
    let lp = new_loop(factory);
    let child = Command::new("sleep")
        .arg("30")
        .kill_on_drop(true)
        .spawn(&lp)
        .unwrap();
    let pid = child.pid();
    drop(child);
    run_until_reaped(&lp, pid);
    lp.close().unwrap();
}

/// Closing the loop while a child runs leaves no zombie; a `Child` that
/// outlives its loop still learns its code.
pub fn loop_close_leaves_no_zombie(factory: impl Factory) {
    let lp = new_loop(factory);
    let child = lp.subprocess_shell("sleep 0.1; exit 9").unwrap();
    let pid = child.pid();
    lp.close().unwrap();
    assert_reaped_soon(pid);
    assert_eq!(child.returncode(), Some(9));
    // A wait after close returns the known code.
    let mut wait = std::pin::pin!(child.wait());
    let poll = wait
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()));
    assert!(matches!(poll, std::task::Poll::Ready(Ok(9))));
    // Another one, still running at close and then dropped, with kill_on_drop.
    let lp = new_loop(factory);
    let child = Command::new("sleep")
        .arg("30")
        .kill_on_drop(true)
        .spawn(&lp)
        .unwrap();
    let pid = child.pid();
    lp.close().unwrap();
    drop(child);
    assert_reaped_soon(pid);
}

/// The SIGCHLD watcher: exit codes, signals, concurrent waits, `communicate`.
pub fn sigchld_watcher_exit_codes_and_signals(factory: impl Factory) {
    let lp = new_loop(factory);
    lp.set_child_watcher(ChildWatcher::Sigchld).unwrap();
    let mut cat = piped(&mut Command::new("cat")).spawn(&lp).unwrap();
    let shell = lp.subprocess_shell("sleep 0.05; exit 6").unwrap();
    let sleeper = lp.subprocess_exec("sleep", ["30"]).unwrap();
    let exited = lp.subprocess_shell("exit 2").unwrap();
    let exited_pid = exited.pid();
    run_until_reaped(&lp, exited_pid);
    assert_eq!(exited.returncode(), Some(2));
    let (out, codes, killed) = block(&lp, async move {
        let (out, _) = cat
            .communicate(Some(b"via sigchld".to_vec()))
            .await
            .unwrap();
        let codes = gather((0..5).map(|_| shell.wait())).await;
        sleeper.terminate().unwrap();
        let killed = sleeper.wait().await.unwrap();
        assert_eq!(
            sleeper.kill().unwrap_err().kind(),
            std::io::ErrorKind::NotFound
        );
        (out.unwrap(), codes, killed)
    });
    assert_eq!(out, b"via sigchld");
    assert!(codes.into_iter().all(|c| c.unwrap() == 6));
    assert_eq!(killed, -libc::SIGTERM);
    lp.close().unwrap();
    // The fallback's SIGCHLD handler is gone with the loop.
    // SAFETY: zeroed sigaction out-parameter; a null new action only queries.
    let handler = unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGCHLD, std::ptr::null(), &mut old);
        old.sa_sigaction
    };
    assert_eq!(handler, libc::SIG_DFL);
}

/// The SIGCHLD watcher also reaps dropped children and those left at close.
pub fn sigchld_watcher_reaps_dropped_and_closed(factory: impl Factory) {
    let lp = new_loop(factory);
    lp.set_child_watcher(ChildWatcher::Sigchld).unwrap();
    let dropped = lp.subprocess_shell("sleep 0.05").unwrap();
    let pid = dropped.pid();
    drop(dropped);
    run_until_reaped(&lp, pid);
    let running = lp.subprocess_shell("sleep 0.1").unwrap();
    let pid = running.pid();
    lp.close().unwrap();
    drop(running);
    assert_reaped_soon(pid);
}

/// BAD-10: an unopened descriptor for a standard stream or in `pass_fds`
/// is `EBADF`; `Stdio::Stdout` for stdin is `InvalidArgument`; a NUL in the
/// program is an error; a closed loop is `Closed`. Nothing is spawned.
pub fn bad_subprocess_arguments(factory: impl Factory) {
    let lp = new_loop(factory);
    let before = fd_count();
    for bad in [-1, 1_000_000] {
        let err = Command::new("true")
            .stdin(Stdio::RawFd(bad))
            .spawn(&lp)
            .unwrap_err();
        assert!(
            matches!(&err, Error::Io { source: e, .. } if e.raw_os_error() == Some(libc::EBADF)),
            "stdin fd {bad}: {err:?}"
        );
        let err = Command::new("true").pass_fds([bad]).spawn(&lp).unwrap_err();
        assert!(
            matches!(&err, Error::Io { source: e, .. } if e.raw_os_error() == Some(libc::EBADF)),
            "pass_fd {bad}: {err:?}"
        );
    }
    let err = Command::new("true")
        .stdout(Stdio::Stdout)
        .spawn(&lp)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    assert!(Command::new("tr\0ue").spawn(&lp).is_err());
    assert_eq!(fd_count(), before, "failed spawns leave nothing open");
    lp.close().unwrap();
    assert!(matches!(
        lp.subprocess_exec("true", None::<&str>),
        Err(Error::Closed)
    ));
}
