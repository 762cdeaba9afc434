//! The owned-buffer operations every socket type is built from.
//!
//! Each takes the loop, the descriptor, the buffer (by value: it is handed
//! back with the result) and a keep-alive `K` that travels with the
//! operation: the owning `Rc<LoopFd>` for the loop's own sockets, an
//! [`FdUse`](crate::io::borrowed::FdUse) guard for a user's socket. Dropping the
//! returned future cancels the operation.
//!
//! A completion backend may hand `WouldBlock` back for a non-blocking
//! descriptor instead of waiting (io_uring does for some operations); the
//! operations then wait for readiness with a memory-free poll and submit
//! again. Readiness backends never report it: they wait inside.
//!
//! The buffer operations are one hand-written future, [`BufOp`], whose
//! [`BufKind`] says which operation to submit and what its result means:
//! one `poll` goes straight to the loop's slot table, with no `async fn`
//! layers in between moving the buffer and result around.

use std::fmt;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::ops::ControlFlow;
use std::os::fd::{OwnedFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use socket2::SockAddr;

use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::driver::{Op, OpOutput};
use crate::io::fd::LoopFd;
use crate::loop_core::EventLoop;
use crate::op::lifecycle::OpKey;
use crate::op::salvage::{Abandoned, Keep, Kept, Salvaged, Stash};
use crate::op::{OpFuture, Started};

/// One owned-buffer operation on a socket, as a hand-written future: it
/// holds the loop, the descriptor, the buffer with its keep-alive, and the
/// id of what is in the backend, and runs the [`BufKind`]'s operations
/// until the kind is finished with a result. A completion backend's
/// `WouldBlock` is answered with a memory-free readiness poll and a new
/// submission; readiness backends never report it.
///
/// Dropping it while something is in the backend cancels that; if the
/// backend still owns the operation ([`Cancel::Pending`](crate::driver::Cancel)),
/// the buffer and keep-alive move into the loop's slot table until the final
/// completion. A receive's result that arrives for a dropped `BufOp` (at
/// once, or with that final completion) is kept in the descriptor's
/// [`Stash`], and every receive looks there first (see
/// [`crate::op::salvage`]).
pub(crate) struct BufOp<B: 'static, K: Keep, T: BufKind<B>> {
    /// `None` if the loop was already gone when the future was made.
    lp: Option<EventLoop>,
    fd: RawFd,
    phase: Phase,
    /// The buffer and the keep-alive; taken out with the result.
    io: Option<(B, K)>,
    kind: T,
}

/// What a [`BufOp`] has in the backend.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Nothing: the next poll submits the kind's next operation.
    Idle,
    /// The kind's operation, under this key.
    Op(OpKey),
    /// A readiness poll after `WouldBlock`, under this key.
    Wait(OpKey),
}

/// What a [`BufOp`] does: the operations it submits and what their results mean.
///
/// # Safety
/// Every pointer in the operations [`op`](BufKind::op) builds must point
/// into `buf`'s own stable memory (`IoBuf`'s or `IoBufMut`'s contract),
/// within its bounds.
pub(crate) unsafe trait BufKind<B>: 'static {
    /// The result of the whole operation.
    type Output;
    /// Wait for readability (else writability) after a `WouldBlock`.
    const READABLE: bool;
    /// The next operation on `fd`, or the result if there is nothing (more)
    /// to do.
    fn op(&mut self, fd: RawFd, buf: &mut B) -> ControlFlow<io::Result<Self::Output>, Op>;
    /// Takes the result of one operation (never `WouldBlock`): the result
    /// of the whole, or `Continue` to submit the next operation.
    fn done(
        &mut self,
        res: io::Result<OpOutput>,
        buf: &mut B,
    ) -> ControlFlow<io::Result<Self::Output>>;

    /// Receives: kept results are theirs first, and their own results are
    /// kept when their future is gone (see [`crate::op::salvage`]).
    const RECEIVES: bool = false;

    /// Takes a kept result instead of submitting: the result of the whole,
    /// or `None` if this kind cannot use `item` (it is then put back).
    /// What is left of a partly taken item goes back to `stash`.
    fn take(
        &mut self,
        item: Salvaged,
        buf: &mut B,
        stash: &Stash,
    ) -> Option<io::Result<Self::Output>> {
        let _ = buf;
        stash.put_back(item);
        None
    }

    /// What the result of an abandoned operation leaves for the next
    /// receive; `stream`: its descriptor is a byte stream (not datagrams).
    fn salvage(res: io::Result<OpOutput>, buf: &mut B, stream: bool) -> Option<Salvaged> {
        let _ = (res, buf, stream);
        None
    }
}

/// Copies as much of `src` as fits into `buf` (replacing its contents);
/// the count copied.
fn copy_into<B: IoBufMut>(buf: &mut B, src: &[u8]) -> usize {
    let n = src.len().min(buf.bytes_total());
    // SAFETY: `stable_mut_ptr()` is valid for `bytes_total() >= n` bytes of
    // writes (IoBufMut's contract) and cannot overlap `src`, which the
    // stash owns; the first `n` bytes are then initialised.
    unsafe {
        std::ptr::copy_nonoverlapping(src.as_ptr(), buf.stable_mut_ptr(), n);
        buf.set_init(n);
    }
    n
}

/// The bytes a receive's result wrote into `buf`, copied out.
fn received<B: IoBufMut>(buf: &mut B, n: usize) -> Vec<u8> {
    // SAFETY: the kernel wrote `n <= bytes_total()` bytes at the start.
    unsafe { buf.set_init(n) };
    buf.as_slice()[..n].to_vec()
}

/// Takes stream bytes (or a datagram) from a kept item into `buf`; what
/// is left of stream bytes goes back to `stash`. `None` for a connection.
fn take_bytes<B: IoBufMut>(
    item: Salvaged,
    buf: &mut B,
    stash: &Stash,
) -> Option<io::Result<usize>> {
    match item {
        Salvaged::Bytes { data, pos } => {
            let n = copy_into(buf, &data[pos..]);
            if pos + n < data.len() {
                stash.put_back(Salvaged::Bytes { data, pos: pos + n });
            }
            Some(Ok(n))
        }
        // One datagram per receive; what does not fit is discarded, as
        // recv(2) does.
        Salvaged::Datagram { data, .. } => Some(Ok(copy_into(buf, &data))),
        Salvaged::Error(e) => Some(Err(e)),
        conn @ Salvaged::Conn(..) => {
            stash.put_back(conn);
            None
        }
    }
}

/// The leftovers of a dropped [`BufOp`] whose operation was in the
/// backend: its buffer and keep-alive, and what its result means.
struct Leftovers<B, K, T> {
    buf: B,
    keep: K,
    fd: RawFd,
    /// Counted as an orphaned receive in the stash.
    orphaned: bool,
    /// Whether `fd` is a byte stream (not a datagram socket), asked while
    /// it surely still is the descriptor the operation ran on (a user may
    /// close a borrowed one before the final completion).
    stream: Option<bool>,
    kind: PhantomData<fn() -> T>,
}

impl<B: 'static, K: Keep, T: BufKind<B>> Abandoned for Leftovers<B, K, T> {
    fn orphaned(&mut self) {
        if let (true, Some(stash)) = (T::RECEIVES, self.keep.stash()) {
            self.keep.keeping();
            stash.orphan_started();
            self.orphaned = true;
            self.stream = Some(!loop_driver::sys::is_datagram_socket(self.fd));
        }
    }

    fn complete(self: Box<Self>, result: io::Result<OpOutput>) {
        let mut this = *self;
        if !T::RECEIVES {
            return;
        }
        let Some(stash) = this.keep.stash() else {
            return;
        };
        let stream = this
            .stream
            .unwrap_or_else(|| !loop_driver::sys::is_datagram_socket(this.fd));
        if let Some(item) = T::salvage(result, &mut this.buf, stream) {
            if !this.orphaned {
                this.keep.keeping();
            }
            stash.push(item);
        }
        if this.orphaned {
            stash.orphan_ended();
        }
    }
}

impl<B: 'static, K: Keep, T: BufKind<B>> BufOp<B, K, T> {
    /// A future running `kind` on `fd` with `buf`; `keep` (or the caller)
    /// keeps `fd` open until it completes or is dropped.
    pub(crate) fn new(lp: Option<EventLoop>, fd: RawFd, buf: B, keep: K, kind: T) -> Self {
        BufOp {
            lp,
            fd,
            phase: Phase::Idle,
            io: Some((buf, keep)),
            kind,
        }
    }

    /// Hands the buffer back with the result, the driver's `io::Error`
    /// turned into the user API's [`crate::Error`] (an `Error::Io` without
    /// context, or the `Error` an `io::Error` was made from).
    fn finish<O>(&mut self, res: io::Result<O>) -> Poll<BufResult<O, B>> {
        let (buf, _keep) = self.io.take().expect("BufOp polled after completion");
        Poll::Ready((res.map_err(crate::Error::from), buf))
    }
}

// Nothing in a `BufOp` is ever pinned: the buffer and keep-alive are moved
// in and out by value (their memory is on the heap, `IoBuf`'s contract).
impl<B: 'static, K: Keep, T: BufKind<B>> Unpin for BufOp<B, K, T> {}

impl<B: 'static, K: Keep, T: BufKind<B>> fmt::Debug for BufOp<B, K, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufOp")
            .field("fd", &self.fd)
            .field("phase", &self.phase)
            .finish()
    }
}

impl<B: 'static, K: Keep, T: BufKind<B>> Future for BufOp<B, K, T> {
    type Output = BufResult<T::Output, B>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let Some(lp) = &this.lp else {
            return this.finish(Err(crate::Error::Closed.into()));
        };
        let inner = &lp.inner;
        loop {
            let res = match this.phase {
                Phase::Idle => {
                    let (buf, keep) = this.io.as_mut().expect("BufOp polled after completion");
                    if T::RECEIVES {
                        if let Some(stash) = keep.stash().filter(|stash| !stash.is_idle()) {
                            let taken = match stash.poll_take(cx) {
                                // A cancelled receive is still in the kernel:
                                // its result comes first.
                                Poll::Pending => return Poll::Pending,
                                Poll::Ready(Some(item)) => this.kind.take(item, buf, stash),
                                Poll::Ready(None) => None,
                            };
                            if let Some(res) = taken {
                                return this.finish(res);
                            }
                        }
                    }
                    let op = match this.kind.op(this.fd, buf) {
                        ControlFlow::Continue(op) => op,
                        ControlFlow::Break(res) => return this.finish(res),
                    };
                    // SAFETY: `BufKind`'s contract: the op points only into
                    // the buffer's stable heap memory, which `this.io` owns
                    // until the result is collected or `Drop` hands it to
                    // `abandon_op`; the keep-alive (or the caller) keeps
                    // `fd` open for as long.
                    match unsafe { inner.start_op_waking(op, Some(cx.waker())) } {
                        Started::Finished(res) => res,
                        Started::Pending(key) => {
                            // Recorded, so a drop from here on cancels; the
                            // waker is registered already (and the result
                            // cannot be there before the loop next waits).
                            this.phase = Phase::Op(key);
                            return Poll::Pending;
                        }
                    }
                }
                Phase::Op(key) => {
                    let res = ready!(inner.poll_op(key, cx));
                    this.phase = Phase::Idle;
                    res
                }
                Phase::Wait(key) => {
                    let res = ready!(inner.poll_op(key, cx));
                    this.phase = Phase::Idle;
                    if let Err(e) = res {
                        return this.finish(Err(e));
                    }
                    continue;
                }
            };
            if matches!(&res, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
                let poll = if T::READABLE {
                    Op::PollReadable { fd: this.fd }
                } else {
                    Op::PollWritable { fd: this.fd }
                };
                // SAFETY: a poll points into no memory; the keep-alive in
                // `this.io` (or the caller) keeps `fd` open.
                match unsafe { inner.start_op(poll) } {
                    Started::Finished(Ok(_)) => {}
                    Started::Finished(Err(e)) => return this.finish(Err(e)),
                    Started::Pending(key) => {
                        // As above: recorded, then the waker on the next turn.
                        this.phase = Phase::Wait(key);
                    }
                }
                continue;
            }
            let (buf, _) = this.io.as_mut().expect("BufOp polled after completion");
            if let ControlFlow::Break(res) = this.kind.done(res, buf) {
                return this.finish(res);
            }
        }
    }
}

impl<B: 'static, K: Keep, T: BufKind<B>> Drop for BufOp<B, K, T> {
    fn drop(&mut self) {
        let (Phase::Op(key) | Phase::Wait(key)) = self.phase else {
            return;
        };
        let Some(lp) = &self.lp else { return };
        let io = self.io.take();
        let fd = self.fd;
        let waiting = matches!(self.phase, Phase::Wait(_));
        lp.inner.abandon_op(key, move || match io {
            // The kind's operation: its result may carry what a receive took.
            Some((buf, keep)) if !waiting => Box::new(Leftovers::<B, K, T> {
                buf,
                keep,
                fd,
                orphaned: false,
                stream: None,
                kind: PhantomData,
            }),
            // A readiness poll points into no memory, but the keep-alive
            // still keeps the descriptor open until the backend lets go.
            other => Box::new(Kept(other)),
        });
    }
}

/// `recv` (on a socket) or `read` (on a pipe or other byte stream) into
/// the buffer's whole capacity: the count (0 at end of stream).
#[derive(Debug)]
pub(crate) struct Recv {
    /// `read(2)` rather than `recv(2)`: the descriptor may not be a socket.
    read: bool,
}

impl Recv {
    /// `recv(2)` on a socket.
    pub(crate) const SOCKET: Recv = Recv { read: false };
    /// `read(2)` on a pipe, tty or other non-socket descriptor.
    pub(crate) const FILE: Recv = Recv { read: true };
}

// SAFETY: the op writes at most `bytes_total()` bytes at
// `stable_mut_ptr()`, the buffer's own stable memory (IoBufMut's contract).
unsafe impl<B: IoBufMut> BufKind<B> for Recv {
    type Output = usize;
    const READABLE: bool = true;

    fn op(&mut self, fd: RawFd, buf: &mut B) -> ControlFlow<io::Result<usize>, Op> {
        let (buf, len) = (buf.stable_mut_ptr(), buf.bytes_total());
        ControlFlow::Continue(if self.read {
            Op::Read { fd, buf, len }
        } else {
            Op::Recv { fd, buf, len }
        })
    }

    fn done(&mut self, res: io::Result<OpOutput>, buf: &mut B) -> ControlFlow<io::Result<usize>> {
        ControlFlow::Break(res.map(|out| {
            // SAFETY: the kernel wrote `out.bytes <= bytes_total()` bytes at the start.
            unsafe { buf.set_init(out.bytes) };
            out.bytes
        }))
    }

    const RECEIVES: bool = true;

    fn take(&mut self, item: Salvaged, buf: &mut B, stash: &Stash) -> Option<io::Result<usize>> {
        take_bytes(item, buf, stash)
    }

    fn salvage(res: io::Result<OpOutput>, buf: &mut B, stream: bool) -> Option<Salvaged> {
        Salvaged::from_result(res, |out| {
            let data = received(buf, out.bytes);
            if stream {
                // End of stream repeats by itself: nothing to keep.
                (!data.is_empty()).then_some(Salvaged::Bytes { data, pos: 0 })
            } else {
                Some(Salvaged::Datagram { data, from: None })
            }
        })
    }
}

/// `recvfrom` into the buffer's whole capacity: the count and the sender.
#[derive(Debug)]
pub(crate) struct RecvFrom;

// SAFETY: as for `Recv`.
unsafe impl<B: IoBufMut> BufKind<B> for RecvFrom {
    type Output = (usize, SockAddr);
    const READABLE: bool = true;

    fn op(&mut self, fd: RawFd, buf: &mut B) -> ControlFlow<io::Result<Self::Output>, Op> {
        ControlFlow::Continue(Op::RecvFrom {
            fd,
            buf: buf.stable_mut_ptr(),
            len: buf.bytes_total(),
        })
    }

    fn done(
        &mut self,
        res: io::Result<OpOutput>,
        buf: &mut B,
    ) -> ControlFlow<io::Result<Self::Output>> {
        ControlFlow::Break(res.map(|out| {
            // SAFETY: the kernel wrote `out.bytes <= bytes_total()` bytes at the start.
            unsafe { buf.set_init(out.bytes) };
            let addr = out.addr.map_or_else(unnamed, |addr| normalize(*addr));
            (out.bytes, addr)
        }))
    }

    const RECEIVES: bool = true;

    fn take(
        &mut self,
        item: Salvaged,
        buf: &mut B,
        stash: &Stash,
    ) -> Option<io::Result<Self::Output>> {
        match item {
            Salvaged::Datagram { data, from } => {
                Some(Ok((copy_into(buf, &data), from.unwrap_or_else(unnamed))))
            }
            other => take_bytes(other, buf, stash).map(|res| res.map(|n| (n, unnamed()))),
        }
    }

    fn salvage(res: io::Result<OpOutput>, buf: &mut B, _stream: bool) -> Option<Salvaged> {
        Salvaged::from_result(res, |out| {
            let from = out.addr.map(|addr| normalize(*addr));
            let data = received(buf, out.bytes);
            Some(Salvaged::Datagram { data, from })
        })
    }
}

/// `accept4`: the new (non-blocking, close-on-exec) descriptor and the peer.
#[derive(Debug)]
pub(crate) struct Accept;

// SAFETY: the op points into no memory.
unsafe impl BufKind<()> for Accept {
    type Output = (OwnedFd, SockAddr);
    const READABLE: bool = true;

    fn op(&mut self, fd: RawFd, _buf: &mut ()) -> ControlFlow<io::Result<Self::Output>, Op> {
        ControlFlow::Continue(Op::Accept { fd })
    }

    fn done(
        &mut self,
        res: io::Result<OpOutput>,
        _buf: &mut (),
    ) -> ControlFlow<io::Result<Self::Output>> {
        ControlFlow::Break(res.and_then(|out| {
            let fd = out.accepted.ok_or_else(|| {
                io::Error::other("the backend reported an accept without a descriptor")
            })?;
            Ok((fd, out.addr.map_or_else(unnamed, |addr| normalize(*addr))))
        }))
    }

    const RECEIVES: bool = true;

    fn take(
        &mut self,
        item: Salvaged,
        _buf: &mut (),
        stash: &Stash,
    ) -> Option<io::Result<Self::Output>> {
        match item {
            Salvaged::Conn(fd, addr) => Some(Ok((fd, addr))),
            other => {
                stash.put_back(other);
                None
            }
        }
    }

    /// A connection the kernel accepted for a dropped accept is the next
    /// accept's; an accept error (`EMFILE`, `ECONNABORTED`) is not
    /// repeated.
    fn salvage(res: io::Result<OpOutput>, _buf: &mut (), _stream: bool) -> Option<Salvaged> {
        let out = res.ok()?;
        let fd = out.accepted?;
        Some(Salvaged::Conn(
            fd,
            out.addr.map_or_else(unnamed, |addr| normalize(*addr)),
        ))
    }
}

/// One `send` of the whole buffer: the count sent (possibly fewer bytes).
#[derive(Debug)]
pub(crate) struct SendOnce;

// SAFETY: the op reads the buffer's `bytes_init()` bytes at `stable_ptr()`,
// its own stable memory (IoBuf's contract).
unsafe impl<B: IoBuf> BufKind<B> for SendOnce {
    type Output = usize;
    const READABLE: bool = false;

    fn op(&mut self, fd: RawFd, buf: &mut B) -> ControlFlow<io::Result<usize>, Op> {
        ControlFlow::Continue(Op::Send {
            fd,
            buf: buf.stable_ptr(),
            len: buf.bytes_init(),
        })
    }

    fn done(&mut self, res: io::Result<OpOutput>, _buf: &mut B) -> ControlFlow<io::Result<usize>> {
        ControlFlow::Break(res.map(|out| out.bytes))
    }
}

/// `send`s until every byte of the buffer is sent (none for an empty
/// one); a send of 0 bytes is `WriteZero`.
#[derive(Debug, Default)]
pub(crate) struct SendAll {
    /// Bytes sent so far; never more than the buffer's `bytes_init()`.
    sent: usize,
}

// SAFETY: the op reads `buf[sent..bytes_init()]`, inside the buffer's own
// stable memory (IoBuf's contract): `sent <= bytes_init()` always, as it
// grows only by counts the kernel sent out of that range.
unsafe impl<B: IoBuf> BufKind<B> for SendAll {
    type Output = ();
    const READABLE: bool = false;

    fn op(&mut self, fd: RawFd, buf: &mut B) -> ControlFlow<io::Result<()>, Op> {
        let len = buf.bytes_init() - self.sent;
        if len == 0 {
            return ControlFlow::Break(Ok(()));
        }
        ControlFlow::Continue(Op::Send {
            fd,
            // SAFETY: `sent < bytes_init()` keeps the offset inside the buffer.
            buf: unsafe { buf.stable_ptr().add(self.sent) },
            len,
        })
    }

    fn done(&mut self, res: io::Result<OpOutput>, _buf: &mut B) -> ControlFlow<io::Result<()>> {
        match res {
            Ok(out) if out.bytes == 0 => ControlFlow::Break(Err(io::ErrorKind::WriteZero.into())),
            Ok(out) => {
                self.sent += out.bytes;
                ControlFlow::Continue(())
            }
            Err(e) => ControlFlow::Break(Err(e)),
        }
    }
}

/// One `sendto` of the whole buffer as a datagram to an IP address: the
/// count sent.
#[derive(Debug)]
pub(crate) struct SendTo {
    addr: SockAddr,
}

// SAFETY: as for `SendOnce`; the address travels inside the op.
unsafe impl<B: IoBuf> BufKind<B> for SendTo {
    type Output = usize;
    const READABLE: bool = false;

    fn op(&mut self, fd: RawFd, buf: &mut B) -> ControlFlow<io::Result<usize>, Op> {
        ControlFlow::Continue(Op::SendTo {
            fd,
            buf: buf.stable_ptr(),
            len: buf.bytes_init(),
            addr: Box::new(self.addr.clone()),
        })
    }

    fn done(&mut self, res: io::Result<OpOutput>, _buf: &mut B) -> ControlFlow<io::Result<usize>> {
        ControlFlow::Break(res.map(|out| out.bytes))
    }
}

/// `recv` into `buf`'s whole capacity; the count read (0 at end of stream).
pub(crate) fn recv<B: IoBufMut, K: Keep>(
    lp: &EventLoop,
    fd: RawFd,
    buf: B,
    keep: K,
) -> BufOp<B, K, Recv> {
    BufOp::new(Some(lp.clone()), fd, buf, keep, Recv::SOCKET)
}

/// Sends every byte of `buf`. If the future is dropped midway, a prefix of
/// `buf` may have been sent.
pub(crate) fn send_all<B: IoBuf, K: Keep>(
    lp: &EventLoop,
    fd: RawFd,
    buf: B,
    keep: K,
) -> BufOp<B, K, SendAll> {
    BufOp::new(Some(lp.clone()), fd, buf, keep, SendAll::default())
}

/// `recvfrom` into `buf`'s whole capacity: the count and the sender.
pub(crate) fn recv_from<B: IoBufMut, K: Keep>(
    lp: &EventLoop,
    fd: RawFd,
    buf: B,
    keep: K,
) -> BufOp<B, K, RecvFrom> {
    BufOp::new(Some(lp.clone()), fd, buf, keep, RecvFrom)
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
pub(crate) async fn send_to<B: IoBuf, K: Keep>(
    lp: &EventLoop,
    fd: RawFd,
    buf: B,
    addr: SockAddr,
    keep: K,
) -> BufResult<usize, B> {
    if addr.family() != libc::AF_UNIX as libc::sa_family_t {
        return BufOp::new(Some(lp.clone()), fd, buf, keep, SendTo { addr }).await;
    }
    // Held until the send is done: keeps the descriptor open.
    let _keep = keep;
    loop {
        match crate::io::ready_wait::send_to_now(fd, buf.as_slice(), &addr) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let poll = Op::PollWritable { fd };
                // SAFETY: a poll points into no memory; `_keep`, owned by
                // this future across the await, keeps `fd` open.
                let (res, ()) = unsafe { OpFuture::new(lp, poll, ()) }.await;
                if let Err(e) = res {
                    return (Err(e.into()), buf);
                }
                // Let the rest of the loop (the receiver, perhaps) run.
                crate::yield_now().await;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return (other.map_err(crate::Error::from), buf),
        }
    }
}

/// `accept4`: the new (non-blocking, close-on-exec) descriptor and the
/// peer. A connection taken by a dropped accept is the next accept's.
pub(crate) async fn accept<K: Keep>(
    lp: &EventLoop,
    fd: RawFd,
    keep: K,
) -> io::Result<(OwnedFd, SockAddr)> {
    // Back to the `io::Error` the operation produced (lossless: an
    // `Error::Io` without context is that `io::Error`).
    BufOp::new(Some(lp.clone()), fd, (), keep, Accept)
        .await
        .0
        .map_err(io::Error::from)
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
impl LoopFd {
    /// `kind` on this socket, with a clone of its `Rc` as the keep-alive.
    fn buf_op<B: 'static, T: BufKind<B>>(
        self: &Rc<Self>,
        buf: B,
        kind: T,
    ) -> BufOp<B, Rc<LoopFd>, T> {
        BufOp::new(self.loop_if_open(), self.fd(), buf, self.clone(), kind)
    }

    pub(crate) fn recv<B: IoBufMut>(self: &Rc<Self>, buf: B) -> BufOp<B, Rc<LoopFd>, Recv> {
        self.buf_op(buf, Recv::SOCKET)
    }

    pub(crate) fn send<B: IoBuf>(self: &Rc<Self>, buf: B) -> BufOp<B, Rc<LoopFd>, SendOnce> {
        self.buf_op(buf, SendOnce)
    }

    pub(crate) fn send_all<B: IoBuf>(self: &Rc<Self>, buf: B) -> BufOp<B, Rc<LoopFd>, SendAll> {
        self.buf_op(buf, SendAll::default())
    }

    pub(crate) fn recv_from<B: IoBufMut>(
        self: &Rc<Self>,
        buf: B,
    ) -> BufOp<B, Rc<LoopFd>, RecvFrom> {
        self.buf_op(buf, RecvFrom)
    }

    /// `sendto` an IP address (see [`send_to`] for AF_UNIX ones).
    pub(crate) fn send_to_inet<B: IoBuf>(
        self: &Rc<Self>,
        buf: B,
        addr: SockAddr,
    ) -> BufOp<B, Rc<LoopFd>, SendTo> {
        debug_assert_ne!(addr.family(), libc::AF_UNIX as libc::sa_family_t);
        self.buf_op(buf, SendTo { addr })
    }

    pub(crate) async fn send_to<B: IoBuf>(
        self: &Rc<Self>,
        buf: B,
        addr: SockAddr,
    ) -> BufResult<usize, B> {
        match self.event_loop() {
            Ok(lp) => send_to(&lp, self.fd(), buf, addr, self.clone()).await,
            Err(e) => (Err(e.into()), buf),
        }
    }

    pub(crate) async fn accept(self: &Rc<Self>) -> io::Result<(Rc<LoopFd>, SockAddr)> {
        let lp = self.event_loop()?;
        let (fd, addr) = self.buf_op((), Accept).await.0?;
        Ok((LoopFd::new(&lp, socket2::Socket::from(fd)), addr))
    }

    pub(crate) async fn connect(self: &Rc<Self>, addr: SockAddr) -> io::Result<()> {
        let lp = self.event_loop()?;
        connect(&lp, self.fd(), addr, self.clone()).await
    }
}
