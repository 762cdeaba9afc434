//! Which stream sockets a one-shot `Recv` has just drained, so that the
//! next `Recv` on them waits for data before trying
//! (`IORING_RECVSEND_POLL_FIRST`, Linux 5.19).
//!
//! A `Recv` on an empty socket is first tried inside the kernel, fails with
//! `EAGAIN`, and only then arms an internal poll. A stream `recv` that
//! returned fewer bytes than asked (but not 0) emptied the receive queue,
//! so the next one would fail that first try: with the flag, the kernel
//! arms the poll at once and skips the try. This is only a hint, never a
//! correctness matter: if data arrived in between, the armed poll finds
//! the socket readable at once and the receive runs. Datagram sockets are
//! never marked (a short datagram says nothing about the queue); the
//! socket type is asked once per descriptor and forgotten with it.

use std::os::fd::RawFd;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Hint {
    /// Not seen yet (type unknown).
    #[default]
    Unknown,
    /// A stream socket whose last receive filled its buffer (or none yet).
    Stream,
    /// A stream socket whose last receive was short: its queue is empty.
    Drained,
    /// Not a stream socket: never marked.
    Other,
}

/// The per-descriptor hints of one driver.
#[derive(Debug, Default)]
pub(crate) struct RecvHints {
    /// Off when the kernel predates the flag.
    enabled: bool,
    fds: Vec<Hint>,
}

impl RecvHints {
    /// Hints that are used only if `enabled` (the kernel knows the flag).
    pub(crate) fn new(enabled: bool) -> Self {
        RecvHints {
            enabled,
            fds: Vec::new(),
        }
    }

    /// Whether the next `Recv` on `fd` should wait for data before trying.
    pub(crate) fn poll_first(&self, fd: RawFd) -> bool {
        self.enabled && fd >= 0 && self.fds.get(fd as usize) == Some(&Hint::Drained)
    }

    /// Notes the result `res` of a one-shot `Recv` of `len` bytes on `fd`.
    pub(crate) fn note(&mut self, fd: RawFd, len: usize, res: i32) {
        if !self.enabled || fd < 0 {
            return;
        }
        let idx = fd as usize;
        if idx >= self.fds.len() {
            self.fds.resize(idx + 1, Hint::Unknown);
        }
        let short = res > 0 && (res as usize) < len;
        let hint = &mut self.fds[idx];
        if *hint == Hint::Unknown {
            if !short {
                // Decide the type only when it matters.
                return;
            }
            *hint = if loop_api::driver::is_stream_socket(fd) {
                Hint::Stream
            } else {
                Hint::Other
            };
        }
        if *hint != Hint::Other {
            *hint = if short { Hint::Drained } else { Hint::Stream };
        }
    }

    /// The loop stops using `fd` (its number may come back as another file).
    pub(crate) fn forget(&mut self, fd: RawFd) {
        if let Some(hint) = self.fds.get_mut(fd as usize) {
            *hint = Hint::Unknown;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_short_stream_receive_marks_and_a_full_one_clears() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let fd = a.as_raw_fd();
        let mut hints = RecvHints::new(true);
        assert!(!hints.poll_first(fd));
        hints.note(fd, 64, 64);
        assert!(!hints.poll_first(fd), "a full receive says nothing");
        hints.note(fd, 64, 10);
        assert!(hints.poll_first(fd), "a short one drained the queue");
        hints.note(fd, 64, 64);
        assert!(!hints.poll_first(fd));
        hints.note(fd, 64, 10);
        hints.note(fd, 64, 0);
        assert!(!hints.poll_first(fd), "end of stream: try at once");
        hints.note(fd, 64, 10);
        hints.forget(fd);
        assert!(!hints.poll_first(fd));
    }

    #[test]
    fn datagram_sockets_and_old_kernels_are_never_marked() {
        let (a, _b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let fd = a.as_raw_fd();
        let mut hints = RecvHints::new(true);
        hints.note(fd, 64, 10);
        assert!(!hints.poll_first(fd));
        let (s, _t) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut old = RecvHints::new(false);
        old.note(s.as_raw_fd(), 64, 10);
        assert!(!old.poll_first(s.as_raw_fd()));
    }
}
