//! A third-party readiness backend, written as an outside crate would write
//! it: only the public `Selector`, `Event` and `Notify` items, in the shape
//! of `backend_readiness::fake::FakeSelector` (an interest per armed
//! descriptor; `select` reports the armed directions that are ready), but
//! with the kernel deciding readiness through `poll(2)`. A loop built on it
//! runs timers, pipe I/O and wake-ups from other threads.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use backend_readiness::{Event, ReadinessDriver, Selector};
use loop_api::EventLoop;
use loop_driver::Notify;

/// `poll(2)` over the armed descriptors and a self-pipe for the notifier.
/// Level-triggered: the interest is exactly the directions with waiters,
/// so a descriptor nobody waits on is not polled (no busy loop).
struct PollSelector {
    interest: BTreeMap<RawFd, (bool, bool)>,
    wake_read: OwnedFd,
    notify: Arc<PipeNotify>,
}

struct PipeNotify(OwnedFd);

impl Notify for PipeNotify {
    fn notify(&self) {
        // A full pipe means a wake-up is pending anyway.
        // SAFETY: one byte from a live buffer.
        unsafe { libc::write(self.0.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
    }
}

impl PollSelector {
    fn new() -> io::Result<Self> {
        let mut fds = [-1; 2];
        let flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
        // SAFETY: room for the two descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), flags) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fresh descriptors nobody else owns.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(PollSelector {
            interest: BTreeMap::new(),
            wake_read: r,
            notify: Arc::new(PipeNotify(w)),
        })
    }
}

impl Selector for PollSelector {
    fn name(&self) -> &'static str {
        "poll"
    }

    fn arm(&mut self, fd: RawFd, read: bool, write: bool, _registered: bool) -> io::Result<()> {
        self.interest.insert(fd, (read, write));
        Ok(())
    }

    fn set_interest(
        &mut self,
        fd: RawFd,
        read: bool,
        write: bool,
        _served_read: bool,
    ) -> io::Result<()> {
        self.interest.insert(fd, (read, write));
        Ok(())
    }

    fn disarm(&mut self, fd: RawFd) {
        self.interest.remove(&fd);
    }

    fn select(&mut self, timeout: Option<Duration>, events: &mut Vec<Event>) -> io::Result<()> {
        let mut pfds = vec![libc::pollfd {
            fd: self.wake_read.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        for (&fd, &(read, write)) in &self.interest {
            let mut ev = 0;
            if read {
                ev |= libc::POLLIN;
            }
            if write {
                ev |= libc::POLLOUT;
            }
            if ev != 0 {
                pfds.push(libc::pollfd {
                    fd,
                    events: ev,
                    revents: 0,
                });
            }
        }
        // Rounded up: a timer must never fire early.
        let ms = timeout.map_or(-1, |t| {
            t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32
        });
        // SAFETY: `pfds` is a valid array of its length.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if pfds[0].revents != 0 {
            let mut sink = [0u8; 64];
            // SAFETY: `sink` is writable; the pipe is non-blocking.
            while unsafe { libc::read(pfds[0].fd, sink.as_mut_ptr().cast(), sink.len()) } > 0 {}
        }
        for p in &pfds[1..] {
            if p.revents == 0 {
                continue;
            }
            let failed = p.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0;
            events.push(Event {
                fd: p.fd,
                readable: p.revents & libc::POLLIN != 0 || failed,
                writable: p.revents & libc::POLLOUT != 0 || failed,
                // Level-triggered: the next poll reports a hang-up again.
                closed: false,
            });
        }
        Ok(())
    }

    fn notifier(&self) -> Arc<dyn Notify> {
        self.notify.clone()
    }
}

fn new_loop() -> EventLoop {
    EventLoop::from_driver(Box::new(ReadinessDriver::new(PollSelector::new().unwrap())))
}

#[test]
fn a_loop_on_a_third_party_selector_runs_pipe_io_and_timers() {
    let lp = new_loop();
    let (mut reader, mut writer) = loop_api::pipe::pipe(&lp).unwrap();
    let l = lp.clone();
    let got = lp
        .run_until_complete(async move {
            // The reader parks on the empty pipe; a timer starts the writer.
            let _writer = l
                .create_task(async move {
                    loop_api::sleep(Duration::from_millis(10)).await;
                    let (res, _) = writer.write_all_owned(&b"hello, poll"[..]).await;
                    res.unwrap();
                })
                .unwrap();
            let (res, buf) = reader.read_owned(Vec::with_capacity(64)).await;
            res.unwrap();
            buf
        })
        .unwrap();
    assert_eq!(got, b"hello, poll");
    lp.close().unwrap();
}

#[test]
fn a_loop_on_a_third_party_selector_wakes_for_other_threads() {
    let lp = new_loop();
    let handle = lp.handle();
    // Nothing is ready and the only timer is far away: the loop blocks in
    // poll(2) until the other thread's callback wakes it through the notifier.
    let far = lp.call_later(Duration::from_secs(30), || {}).unwrap();
    let thread = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        handle
            .call_soon_threadsafe(|| loop_api::get_running_loop().unwrap().stop())
            .unwrap();
    });
    let start = std::time::Instant::now();
    lp.run_forever().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    thread.join().unwrap();
    far.cancel();
    lp.close().unwrap();
}
