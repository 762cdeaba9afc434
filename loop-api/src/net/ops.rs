//! The owned-buffer operations every socket type is built from.
//!
//! Each takes the loop, the descriptor, the buffer (by value: it is handed
//! back with the result) and a keep-alive `K` that travels with the
//! operation: the owning `Rc<SockFd>` for the loop's own sockets, an
//! [`FdUse`](crate::borrowed::FdUse) guard for a user's socket. Dropping the
//! returned future cancels the operation.
//!
//! A completion backend may hand `WouldBlock` back for a non-blocking
//! descriptor instead of waiting (io_uring does for some operations); the
//! operations then wait for readiness with a memory-free poll and submit
//! again ([`submit`]). Readiness backends never report it: they wait inside.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use socket2::SockAddr;

use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::driver::{Op, OpOutput};
use crate::event_loop::EventLoop;
use crate::net::socket::SockFd;
use crate::op::OpFuture;

/// Submits the operation `make(&mut keep)` builds on `fd` until it does
/// not report `WouldBlock`, waiting for `fd` to become readable
/// (`readable`) or writable in between.
///
/// # Safety
/// Every pointer in the operations `make` builds must point into heap
/// memory owned by `keep` (as [`OpFuture::new`] requires), and `keep` (or
/// the caller) must keep `fd` open until the returned future completes or
/// is dropped.
async unsafe fn submit<K: 'static>(
    lp: &EventLoop,
    fd: RawFd,
    readable: bool,
    mut keep: K,
    make: impl Fn(&mut K) -> Op,
) -> (io::Result<OpOutput>, K) {
    loop {
        let op = make(&mut keep);
        // SAFETY: the caller's contract: the op points into `keep`, which
        // the OpFuture owns, and `fd` stays open.
        let (res, k) = unsafe { OpFuture::new(lp, op, keep) }.await;
        keep = k;
        match res {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let poll = if readable {
                    Op::PollReadable { fd }
                } else {
                    Op::PollWritable { fd }
                };
                // SAFETY: a poll points into no memory; `keep`, held across
                // this await, keeps `fd` open.
                let (res, ()) = unsafe { OpFuture::new(lp, poll, ()) }.await;
                if let Err(e) = res {
                    return (Err(e), keep);
                }
            }
            other => return (other, keep),
        }
    }
}

/// Runs the receive-type operation `make(ptr, len)` into `buf`'s whole
/// capacity and marks the bytes the kernel wrote as initialised.
async fn receive<B: IoBufMut, K: 'static>(
    lp: &EventLoop,
    fd: RawFd,
    buf: B,
    keep: K,
    make: impl Fn(*mut u8, usize) -> Op,
) -> BufResult<OpOutput, B> {
    // SAFETY: the pointer and length describe `buf`'s own stable memory
    // (IoBufMut's contract), and `buf` travels in the keep-alive; `keep`
    // keeps the descriptor open (an owned socket's Rc) or the caller does
    // (a borrowed one) until the future completes or is dropped.
    let (res, (mut buf, _keep)) = unsafe {
        submit(lp, fd, true, (buf, keep), |(buf, _)| {
            make(buf.stable_mut_ptr(), buf.bytes_total())
        })
    }
    .await;
    if let Ok(out) = &res {
        // SAFETY: the kernel wrote `out.res <= bytes_total()` bytes at the start.
        unsafe { buf.set_init(out.res) };
    }
    (res, buf)
}

/// `recv` into `buf`'s whole capacity; the count read (0 at end of stream).
pub(crate) async fn recv<B: IoBufMut, K: 'static>(
    lp: &EventLoop,
    fd: RawFd,
    buf: B,
    keep: K,
) -> BufResult<usize, B> {
    let (res, buf) = receive(lp, fd, buf, keep, |buf, len| Op::Recv { fd, buf, len }).await;
    (res.map(|out| out.res), buf)
}

/// One `send` of `buf[from..]`; the count sent.
async fn send_from<B: IoBuf, K: 'static>(
    lp: &EventLoop,
    fd: RawFd,
    buf: B,
    from: usize,
    keep: K,
) -> (io::Result<usize>, B, K) {
    // SAFETY: the op reads `buf[from..]`, `buf`'s own stable memory
    // (`from <= bytes_init()` keeps the offset inside it), and `buf`
    // travels in the keep-alive; the descriptor stays open as in `receive`.
    let (res, (buf, keep)) = unsafe {
        submit(lp, fd, false, (buf, keep), |(buf, _)| Op::Send {
            fd,
            buf: buf.stable_ptr().add(from),
            len: buf.bytes_init() - from,
        })
    }
    .await;
    (res.map(|out| out.res), buf, keep)
}

/// One `send` of the whole of `buf`; the count sent (possibly fewer bytes).
pub(crate) async fn send<B: IoBuf, K: 'static>(
    lp: &EventLoop,
    fd: RawFd,
    buf: B,
    keep: K,
) -> BufResult<usize, B> {
    let (res, buf, _keep) = send_from(lp, fd, buf, 0, keep).await;
    (res, buf)
}

/// Sends every byte of `buf`. If the future is dropped midway, a prefix of
/// `buf` may have been sent.
pub(crate) async fn send_all<B: IoBuf, K: 'static>(
    lp: &EventLoop,
    fd: RawFd,
    mut buf: B,
    mut keep: K,
) -> BufResult<(), B> {
    let total = buf.bytes_init();
    let mut sent = 0;
    while sent < total {
        let (res, b, k) = send_from(lp, fd, buf, sent, keep).await;
        (buf, keep) = (b, k);
        match res {
            Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
            Ok(n) => sent += n,
            Err(e) => return (Err(e), buf),
        }
    }
    (Ok(()), buf)
}

/// `recvfrom` into `buf`'s whole capacity: the count and the sender.
pub(crate) async fn recv_from<B: IoBufMut, K: 'static>(
    lp: &EventLoop,
    fd: RawFd,
    buf: B,
    keep: K,
) -> BufResult<(usize, SockAddr), B> {
    let (res, buf) = receive(lp, fd, buf, keep, |buf, len| Op::RecvFrom { fd, buf, len }).await;
    let res = res.map(|out| {
        (
            out.res,
            out.addr.map_or_else(unnamed, |addr| normalize(*addr)),
        )
    });
    (res, buf)
}

/// `sendto(addr)` of the whole of `buf` as one datagram: the count sent.
///
/// To an IP address this is one backend operation (`Op::SendTo`: a real
/// `SendMsg` on io_uring), retried after a writability wait on `EAGAIN`.
///
/// To an AF_UNIX address it is made directly (a non-blocking `sendto` on the
/// owned buffer, on every backend); only when the socket or the receiver's
/// queue is full does it wait, with a memory-free writability poll and one
/// loop iteration (an unconnected AF_UNIX sender reports writable even while
/// its receiver is full, so the retry may spin once per iteration until the
/// receiver drains), and try again. The reason: as an io_uring `SendMsg`,
/// Linux 6.18 retries a send refused by a full AF_UNIX receiver from an
/// iterator the refused attempt already consumed, delivering an empty
/// datagram.
pub(crate) async fn send_to<B: IoBuf, K: 'static>(
    lp: &EventLoop,
    fd: RawFd,
    buf: B,
    addr: SockAddr,
    keep: K,
) -> BufResult<usize, B> {
    if addr.family() != libc::AF_UNIX as libc::sa_family_t {
        // SAFETY: the op reads `buf`'s own stable memory (IoBuf's contract),
        // and `buf` travels in the keep-alive; `keep` keeps the descriptor
        // open; the address travels inside the op.
        let (res, (buf, _keep)) = unsafe {
            submit(lp, fd, false, (buf, keep), |(buf, _)| Op::SendTo {
                fd,
                buf: buf.stable_ptr(),
                len: buf.bytes_init(),
                addr: Box::new(addr.clone()),
            })
        }
        .await;
        return (res.map(|out| out.res), buf);
    }
    // Held until the send is done: keeps the descriptor open.
    let _keep = keep;
    loop {
        match crate::io::send_to_now(fd, buf.as_slice(), &addr) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let poll = Op::PollWritable { fd };
                // SAFETY: a poll points into no memory; `_keep`, owned by
                // this future across the await, keeps `fd` open.
                let (res, ()) = unsafe { OpFuture::new(lp, poll, ()) }.await;
                if let Err(e) = res {
                    return (Err(e), buf);
                }
                // Let the rest of the loop (the receiver, perhaps) run.
                crate::yield_now().await;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return (other, buf),
        }
    }
}

/// `accept4`: the new (non-blocking, close-on-exec) descriptor and the peer.
pub(crate) async fn accept<K: 'static>(
    lp: &EventLoop,
    fd: RawFd,
    keep: K,
) -> io::Result<(OwnedFd, SockAddr)> {
    // SAFETY: the op points into no memory; `keep` (or the caller) keeps
    // the listening descriptor open.
    let (res, _keep) = unsafe { submit(lp, fd, true, keep, |_| Op::Accept { fd }) }.await;
    let out = res?;
    // SAFETY: a successful accept returns a new descriptor that nobody else
    // owns; from here the OwnedFd closes it on every path.
    let fd = unsafe { OwnedFd::from_raw_fd(out.res as RawFd) };
    Ok((fd, out.addr.map_or_else(unnamed, |addr| normalize(*addr))))
}

/// `connect`, completing once the connection is established or has failed.
pub(crate) async fn connect<K: 'static>(
    lp: &EventLoop,
    fd: RawFd,
    addr: SockAddr,
    keep: K,
) -> io::Result<()> {
    let op = Op::Connect {
        fd,
        addr: Box::new(addr),
    };
    // SAFETY: the op points into no memory (the address travels inside it);
    // `keep` (or the caller) keeps the descriptor open.
    let (res, _keep) = unsafe { OpFuture::new(lp, op, keep) }.await;
    res.map(drop)
}

/// The address of an unnamed socket (what a Unix socketpair peer reports).
pub(crate) fn unnamed() -> SockAddr {
    SockAddr::unix("").expect("an empty Unix path always fits")
}

/// `addr` as reported by the kernel, with the empty address a Unix
/// socketpair peer gives (length 0) turned into the unnamed Unix address.
pub(crate) fn normalize(addr: SockAddr) -> SockAddr {
    if addr.len() == 0 {
        unnamed()
    } else {
        addr
    }
}

/// The same operations on a socket the loop owns: the socket's `Rc` is the
/// keep-alive, and a loop that is gone is an error rather than a panic.
impl SockFd {
    pub(crate) async fn recv<B: IoBufMut>(self: &Rc<Self>, buf: B) -> BufResult<usize, B> {
        match self.event_loop() {
            Ok(lp) => recv(&lp, self.fd(), buf, self.clone()).await,
            Err(e) => (Err(e), buf),
        }
    }

    pub(crate) async fn send<B: IoBuf>(self: &Rc<Self>, buf: B) -> BufResult<usize, B> {
        match self.event_loop() {
            Ok(lp) => send(&lp, self.fd(), buf, self.clone()).await,
            Err(e) => (Err(e), buf),
        }
    }

    pub(crate) async fn send_all<B: IoBuf>(self: &Rc<Self>, buf: B) -> BufResult<(), B> {
        match self.event_loop() {
            Ok(lp) => send_all(&lp, self.fd(), buf, self.clone()).await,
            Err(e) => (Err(e), buf),
        }
    }

    pub(crate) async fn recv_from<B: IoBufMut>(
        self: &Rc<Self>,
        buf: B,
    ) -> BufResult<(usize, SockAddr), B> {
        match self.event_loop() {
            Ok(lp) => recv_from(&lp, self.fd(), buf, self.clone()).await,
            Err(e) => (Err(e), buf),
        }
    }

    pub(crate) async fn send_to<B: IoBuf>(
        self: &Rc<Self>,
        buf: B,
        addr: SockAddr,
    ) -> BufResult<usize, B> {
        match self.event_loop() {
            Ok(lp) => send_to(&lp, self.fd(), buf, addr, self.clone()).await,
            Err(e) => (Err(e), buf),
        }
    }

    pub(crate) async fn accept(self: &Rc<Self>) -> io::Result<(Rc<SockFd>, SockAddr)> {
        let lp = self.event_loop()?;
        let (fd, addr) = accept(&lp, self.fd(), self.clone()).await?;
        Ok((SockFd::new(&lp, socket2::Socket::from(fd)), addr))
    }

    pub(crate) async fn connect(self: &Rc<Self>, addr: SockAddr) -> io::Result<()> {
        let lp = self.event_loop()?;
        connect(&lp, self.fd(), addr, self.clone()).await
    }
}
