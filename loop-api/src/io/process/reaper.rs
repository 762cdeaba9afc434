//! The process-wide reaper: children still running when their loop closed.
//!
//! A closed loop can no longer watch its children, yet none may be left a
//! zombie. They are handed to one background thread, `evloop-reaper`, that
//! polls their pidfds (or, without pidfds, simply wakes every 100 ms), reaps
//! each with `waitpid(pid, WNOHANG)` and ends when none is left. A `Child`
//! handle that outlives its loop sees its `returncode()` filled in by it.

use std::sync::{Arc, Mutex};
use std::thread;

use super::watcher::ProcShared;

/// How long the reaper sleeps between looks (its poll timeout).
const TICK_MS: libc::c_int = 100;

#[derive(Default)]
struct Reaper {
    orphans: Vec<Arc<ProcShared>>,
    running: bool,
}

static REAPER: Mutex<Option<Reaper>> = Mutex::new(None);

fn with_reaper<R>(f: impl FnOnce(&mut Reaper) -> R) -> R {
    let mut guard = REAPER.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(Reaper::default))
}

/// Takes over reaping `child`.
pub(crate) fn adopt(child: Arc<ProcShared>) {
    let start = with_reaper(|r| {
        r.orphans.push(child);
        !std::mem::replace(&mut r.running, true)
    });
    if start {
        let spawned = thread::Builder::new()
            .name("evloop-reaper".to_owned())
            .spawn(run);
        if spawned.is_err() {
            // No thread: try again at the next adoption. The children stay
            // zombies until then (or until this process exits).
            with_reaper(|r| r.running = false);
        }
    }
}

fn run() {
    loop {
        let orphans = with_reaper(|r| r.orphans.clone());
        let mut reaped = Vec::new();
        for child in &orphans {
            if child.try_reap(None).is_some() {
                reaped.push(child.pid);
            }
        }
        let done = with_reaper(|r| {
            r.orphans.retain(|c| !reaped.contains(&c.pid));
            if r.orphans.is_empty() {
                r.running = false;
                true
            } else {
                false
            }
        });
        if done {
            return;
        }
        // Only this thread reaps adopted children, so their pidfds stay
        // open until it closes them itself.
        let mut fds: Vec<libc::pollfd> = orphans
            .iter()
            .filter(|c| !reaped.contains(&c.pid))
            .filter_map(|c| c.pidfd_raw())
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a valid array of `fds.len()` pollfds (possibly
        // empty: then poll just sleeps for the timeout).
        unsafe {
            libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, TICK_MS);
        }
    }
}
