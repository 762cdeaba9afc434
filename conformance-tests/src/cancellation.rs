//! Section 19 — cancellation never loses data (CAN-*).
//!
//! A receive, read or accept may be cancelled in four ways: its future is
//! dropped, the task awaiting it is cancelled with [`Task::cancel`],
//! [`wait_for`] times it out, or it is the losing branch of a select. Whatever
//! the kernel had already delivered to it (bytes, a datagram, a connection)
//! must come out of the next operation on that socket, in order, exactly
//! once. The tests race the cancels against a writer *thread* (so data
//! arrives at any moment relative to the loop) and check a numbered stream.
//!
//! Also here: `Task::cancel()` drops a task's future at once; an operation
//! id is never reused while a watcher still refers to it; a closed listener
//! refuses connections at once; a closed pipe's operations never reach a
//! descriptor that reuses its number.
//!
//! [`Task::cancel`]: loop_api::Task::cancel

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::future::{poll_fn, Future};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use loop_api::net::{TcpListener, TcpStream, UdpSocket, UnixStream};
use loop_api::{sleep, wait_for, yield_now, Error, EventLoop, LoopHandle};
use socket2::{Domain, Socket, Type};

use crate::net_support::run_net;
use crate::support::new_loop;
use crate::Factory;

#[doc(hidden)]
#[macro_export]
macro_rules! __cancellation_tests {
    ($f:expr) => {
        $crate::__section!($f, cancellation: [
            tcp_read_dropped_loses_no_byte,
            tcp_read_task_cancelled_loses_no_byte,
            tcp_read_timed_out_loses_no_byte,
            tcp_read_losing_select_branch_loses_no_byte,
            unix_read_cancelled_loses_no_byte,
            sock_recv_cancelled_loses_no_byte,
            sock_recv_into_cancelled_loses_no_byte,
            udp_recv_from_cancelled_loses_no_datagram,
            accept_cancelled_loses_no_connection,
            thousands_of_cancels_every_byte_once,
            task_cancel_drops_parked_future_at_once,
            task_cancel_drops_unstarted_future_at_once,
            removed_reader_never_cancels_a_reused_op_id,
            removed_reader_never_disturbs_a_later_recv,
            closed_listener_refuses_after_dropped_accept,
            closed_listener_refuses_after_cancelled_accept_task,
            closed_listener_refuses_after_timed_out_accept,
            closed_user_listener_refuses_after_remove_reader,
        ] exclusive [
            closed_pipe_read_never_touches_a_reused_fd,
            closed_pipe_write_never_touches_a_reused_fd,
        ]);
    };
}

const LOCAL: &str = "127.0.0.1:0";

/// A small xorshift generator: random pauses and sizes without a dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// How an operation is cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    /// Its future is polled (the operation starts), then dropped without
    /// being polled again.
    Drop,
    /// The task awaiting it is cancelled with `Task::cancel()`.
    TaskCancel,
    /// `wait_for` times it out.
    WaitFor,
    /// It loses a select against a timer (the timer branch is polled first).
    Select,
}

const ALL: [How; 4] = [How::Drop, How::TaskCancel, How::WaitFor, How::Select];

/// A short random wait that makes the loop iterate: nothing, a few
/// iterations with a non-blocking backend poll (1 ns sleeps), a few dozen
/// yields, or (unless `quick`) a real sleep of up to 200 µs.
async fn pause(rng: &mut Rng, quick: bool) {
    match rng.below(if quick { 3 } else { 4 }) {
        0 => {}
        1 => {
            for _ in 0..1 + rng.below(3) {
                sleep(Duration::from_nanos(1)).await;
            }
        }
        2 => {
            for _ in 0..rng.below(80) {
                yield_now().await;
            }
        }
        _ => sleep(Duration::from_micros(rng.below(200))).await,
    }
}

/// A random timeout: zero, 1 ns (one backend poll) or (unless `quick`) up to 200 µs.
fn short(rng: &mut Rng, quick: bool) -> Duration {
    match rng.below(if quick { 2 } else { 3 }) {
        0 => Duration::ZERO,
        1 => Duration::from_nanos(1),
        _ => Duration::from_micros(rng.below(200)),
    }
}

/// Polls `fut` once.
async fn poll_once<F: Future + ?Sized>(fut: Pin<&mut F>) -> Poll<F::Output> {
    let mut fut = fut;
    poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await
}

/// A select of a timer and `fut`, the timer's branch first: `None` (and
/// `fut` dropped) when the timer fires, even if `fut` is ready too.
async fn select_timer_first<F: Future>(
    lp: &EventLoop,
    timeout: Duration,
    fut: F,
) -> Option<F::Output> {
    let mut timer = pin!(lp.sleep(timeout));
    let mut fut = pin!(fut);
    poll_fn(|cx| {
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        fut.as_mut().poll(cx).map(Some)
    })
    .await
}

thread_local! {
    /// Cancels the task of the current `How::TaskCancel` attempt (on the
    /// loop's thread), if there is one.
    static CANCEL_CURRENT: RefCell<Option<Box<dyn Fn()>>> = const { RefCell::new(None) };
}

/// Called from a writer thread right after it wrote: cancels the loop's
/// current reading task, if any. The loop takes such a callback in with
/// the completions of the same wait, ahead of the task they wake, so the
/// cancel meets a receive that has just taken data.
fn cancel_from_thread(h: &LoopHandle) {
    let _ = h.call_soon_threadsafe(|| {
        CANCEL_CURRENT.with(|c| {
            if let Some(cancel) = &*c.borrow() {
                cancel();
            }
        })
    });
}

/// Runs `fut` and cancels it the `how` way after a random short while;
/// its output if it finished before being cancelled.
async fn attempt<T, F>(lp: &EventLoop, how: How, rng: &mut Rng, quick: bool, fut: F) -> Option<T>
where
    T: 'static,
    F: Future<Output = T> + 'static,
{
    match how {
        How::Drop => {
            let mut fut = pin!(fut);
            if let Poll::Ready(v) = poll_once(fut.as_mut()).await {
                return Some(v);
            }
            pause(rng, quick).await;
            None
        }
        How::TaskCancel => {
            // Cancelled after a local pause, or earlier by the writer thread
            // (`cancel_from_thread`), whichever comes first.
            let task = Rc::new(RefCell::new(lp.create_task(fut).unwrap()));
            let t = task.clone();
            CANCEL_CURRENT.with(|c| {
                *c.borrow_mut() = Some(Box::new(move || {
                    t.borrow().cancel();
                }))
            });
            let mut paused = pin!(pause(rng, quick));
            let mut cancelled = false;
            let out = poll_fn(|cx| {
                if !cancelled && paused.as_mut().poll(cx).is_ready() {
                    cancelled = true;
                    task.borrow().cancel();
                }
                Pin::new(&mut *task.borrow_mut()).poll(cx)
            })
            .await;
            CANCEL_CURRENT.with(|c| c.borrow_mut().take());
            match out {
                Ok(v) => Some(v),
                Err(e) if e.is_cancelled() => None,
                Err(e) => panic!("the reading task failed: {e}"),
            }
        }
        How::WaitFor => match wait_for(fut, short(rng, quick)).await {
            Ok(v) => Some(v),
            Err(Error::TimedOut) => None,
            Err(e) => panic!("wait_for failed: {e}"),
        },
        How::Select => select_timer_first(lp, short(rng, quick), fut).await,
    }
}

/// A thread writing the counters 0, 1, 2, ... (u32, little-endian) into
/// `sink` in random chunks with random short sleeps, until `stop` is set;
/// then it closes `sink` and returns how many counters it wrote.
fn counter_writer<W: Write + Send + 'static>(
    lp: &EventLoop,
    mut sink: W,
    stop: Arc<AtomicBool>,
    seed: u64,
) -> JoinHandle<u32> {
    let h = lp.handle();
    std::thread::spawn(move || {
        let mut rng = Rng::new(seed);
        let mut next = 0u32;
        let mut chunk = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            chunk.clear();
            for _ in 0..1 + rng.below(48) {
                chunk.extend_from_slice(&next.to_le_bytes());
                next += 1;
            }
            sink.write_all(&chunk).expect("the writer thread's write");
            if rng.below(2) == 0 {
                cancel_from_thread(&h);
            }
            if rng.below(2) == 0 {
                std::thread::sleep(Duration::from_micros(rng.below(80)));
            }
        }
        drop(sink);
        next
    })
}

/// Panics unless `got` is exactly the counters `0..n`.
fn check_counters(got: &[u8], n: u32, what: &str) {
    for (i, c) in got.chunks(4).enumerate() {
        let want = (i as u32).to_le_bytes();
        assert!(
            c == &want[..c.len()] && i < n as usize,
            "{what}: the byte stream breaks at counter {i} of {n}: got {c:?}, expected {want:?} \
             (bytes lost, duplicated or reordered by a cancellation); {} bytes received, {} sent",
            got.len(),
            n as usize * 4
        );
    }
    assert_eq!(
        got.len(),
        n as usize * 4,
        "{what}: {} bytes received of the {} sent (the tail was lost)",
        got.len(),
        n as usize * 4
    );
}

/// One byte-stream test: what is read, and how.
struct Plan<'a> {
    /// Names the test in failure messages.
    what: &'a str,
    /// How many cancelled reads.
    cycles: usize,
    /// The ways of cancelling, used in turn.
    hows: &'a [How],
    /// Only pauses of a few loop iterations, no real sleeps.
    quick: bool,
    /// Seeds the random pauses and sizes (of the reader and the writer).
    seed: u64,
}

/// The body of every byte-stream test: a writer thread writes counters
/// into `sink` while the loop makes `plan.cycles` cancelled reads (each
/// way in `plan.hows` in turn, after random pauses, with random small
/// buffers), then plain reads until end of stream; every counter must
/// arrive once, in order.
async fn cancelled_reads_lose_nothing<W, R, Fut>(lp: EventLoop, plan: Plan<'_>, sink: W, read: R)
where
    W: Write + Send + 'static,
    R: Fn(usize) -> Fut,
    Fut: Future<Output = loop_api::Result<Vec<u8>>> + 'static,
{
    let Plan {
        what,
        cycles,
        hows,
        quick,
        seed,
    } = plan;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = counter_writer(&lp, sink, stop.clone(), seed);
    let mut rng = Rng::new(seed);
    let mut got = Vec::new();
    for i in 0..cycles {
        let how = hows[i % hows.len()];
        let cap = 1 + rng.below(61) as usize;
        if let Some(res) = attempt(&lp, how, &mut rng, quick, read(cap)).await {
            let chunk = res.unwrap_or_else(|e| panic!("{what}: a read failed: {e}"));
            assert!(
                !chunk.is_empty(),
                "{what}: end of stream before the writer stopped"
            );
            got.extend_from_slice(&chunk);
        }
    }
    stop.store(true, Ordering::Relaxed);
    loop {
        let chunk = read(64 * 1024)
            .await
            .unwrap_or_else(|e| panic!("{what}: a read failed: {e}"));
        if chunk.is_empty() {
            break;
        }
        got.extend_from_slice(&chunk);
    }
    let n = writer.join().expect("the writer thread");
    check_counters(&got, n, what);
}

/// A loop-side TCP stream and its blocking std peer.
async fn tcp_pair() -> (TcpStream, std::net::TcpStream) {
    let l = std::net::TcpListener::bind(LOCAL).unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    let (peer, _) = l.accept().unwrap();
    (c, peer)
}

/// An owned-buffer read of at most `cap` bytes, as a `'static` future.
fn tcp_read(
    s: &Rc<TcpStream>,
) -> impl Fn(usize) -> Pin<Box<dyn Future<Output = loop_api::Result<Vec<u8>>>>> {
    let s = s.clone();
    move |cap| {
        let s = s.clone();
        Box::pin(async move {
            let (res, mut buf) = s.read_owned(Vec::with_capacity(cap)).await;
            res.map(|n| {
                buf.truncate(n);
                buf
            })
        })
    }
}

fn tcp_cancels(factory: impl Factory, how: How, seed: u64) {
    run_net(factory, move |lp| async move {
        let (c, peer) = tcp_pair().await;
        let c = Rc::new(c);
        let what = format!("TcpStream::read cancelled by {how:?}");
        let plan = Plan {
            what: &what,
            cycles: 400,
            hows: &[how],
            quick: false,
            seed,
        };
        cancelled_reads_lose_nothing(lp, plan, peer, tcp_read(&c)).await;
    });
}

/// CAN-1: `TcpStream::read` futures dropped after they started (hundreds
/// of times, a writer thread racing): no byte lost, none repeated.
pub fn tcp_read_dropped_loses_no_byte(factory: impl Factory) {
    tcp_cancels(factory, How::Drop, 1);
}

/// CAN-1: the task awaiting `TcpStream::read` cancelled with `Task::cancel()`.
pub fn tcp_read_task_cancelled_loses_no_byte(factory: impl Factory) {
    tcp_cancels(factory, How::TaskCancel, 2);
}

/// CAN-1: `TcpStream::read` timed out by `wait_for`.
pub fn tcp_read_timed_out_loses_no_byte(factory: impl Factory) {
    tcp_cancels(factory, How::WaitFor, 3);
}

/// CAN-1: `TcpStream::read` as the losing branch of a select.
pub fn tcp_read_losing_select_branch_loses_no_byte(factory: impl Factory) {
    tcp_cancels(factory, How::Select, 4);
}

/// CAN-1: `UnixStream::read`, cancelled every way.
pub fn unix_read_cancelled_loses_no_byte(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let (ours, peer) = std::os::unix::net::UnixStream::pair().unwrap();
        let s = Rc::new(UnixStream::from_std(ours).unwrap());
        let read = move |cap: usize| {
            let s = s.clone();
            async move {
                let (res, mut buf) = s.read_owned(Vec::with_capacity(cap)).await;
                res.map(|n| {
                    buf.truncate(n);
                    buf
                })
            }
        };
        let plan = Plan {
            what: "UnixStream::read",
            cycles: 400,
            hows: &ALL,
            quick: false,
            seed: 5,
        };
        cancelled_reads_lose_nothing(lp, plan, peer, read).await;
    });
}

/// A connected AF_UNIX stream pair of user sockets: ours non-blocking, the
/// writer's blocking.
fn user_pair() -> (Rc<Socket>, Socket) {
    let (ours, peer) = Socket::pair(Domain::UNIX, Type::STREAM, None).unwrap();
    ours.set_nonblocking(true).unwrap();
    (Rc::new(ours), peer)
}

/// CAN-1: `sock_recv` on a user socket, cancelled every way.
pub fn sock_recv_cancelled_loses_no_byte(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let (ours, peer) = user_pair();
        let l = lp.clone();
        let read = move |cap: usize| {
            let (lp, s) = (l.clone(), ours.clone());
            async move { lp.sock_recv(&*s, cap).await }
        };
        let plan = Plan {
            what: "sock_recv",
            cycles: 400,
            hows: &ALL,
            quick: false,
            seed: 6,
        };
        cancelled_reads_lose_nothing(lp, plan, peer, read).await;
    });
}

/// CAN-1: `sock_recv_into` on a user socket, cancelled every way.
pub fn sock_recv_into_cancelled_loses_no_byte(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let (ours, peer) = user_pair();
        let l = lp.clone();
        let read = move |cap: usize| {
            let (lp, s) = (l.clone(), ours.clone());
            async move {
                let (res, mut buf) = lp.sock_recv_into(&*s, Vec::with_capacity(cap)).await;
                res.map(|n| {
                    buf.truncate(n);
                    buf
                })
            }
        };
        let plan = Plan {
            what: "sock_recv_into",
            cycles: 400,
            hows: &ALL,
            quick: false,
            seed: 7,
        };
        cancelled_reads_lose_nothing(lp, plan, peer, read).await;
    });
}

/// CAN-1 stress: 3,000 cancel/re-read cycles on a TCP stream, every way in
/// turn, with pauses of a few loop iterations: every byte arrives once.
pub fn thousands_of_cancels_every_byte_once(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let (c, peer) = tcp_pair().await;
        let c = Rc::new(c);
        let plan = Plan {
            what: "3,000 cancelled reads",
            cycles: 3000,
            hows: &ALL,
            quick: true,
            seed: 8,
        };
        cancelled_reads_lose_nothing(lp, plan, peer, tcp_read(&c)).await;
    });
}

/// How many datagrams or connections a sender thread may be ahead of the
/// receiver (so no queue ever overflows).
const WINDOW: u32 = 16;

/// Blocks the sender thread until the receiver has taken all but `WINDOW`
/// of the first `i` items; `false` after a generous deadline (the receiver
/// lost some and will fail).
fn wait_for_room(i: u32, taken: &AtomicU32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while i >= taken.load(Ordering::Relaxed) + WINDOW {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_micros(50));
    }
    true
}

/// CAN-1: a datagram taken by a cancelled `UdpSocket::recv_from` comes out
/// of the next one, with its sender. 400 numbered datagrams from two
/// senders, cancelled receives every way: each arrives once, in order,
/// from the right address.
pub fn udp_recv_from_cancelled_loses_no_datagram(factory: impl Factory) {
    const N: u32 = 400;
    run_net(factory, |lp| async move {
        let rx = Rc::new(UdpSocket::bind(LOCAL).unwrap());
        let to = rx.local_addr().unwrap();
        let senders = [
            std::net::UdpSocket::bind(LOCAL).unwrap(),
            std::net::UdpSocket::bind(LOCAL).unwrap(),
        ];
        let from: Vec<SocketAddr> = senders.iter().map(|s| s.local_addr().unwrap()).collect();
        let taken = Arc::new(AtomicU32::new(0));
        let (t, h) = (taken.clone(), lp.handle());
        let writer = std::thread::spawn(move || {
            let mut rng = Rng::new(9);
            for i in 0..N {
                if !wait_for_room(i, &t) {
                    return;
                }
                let who = rng.below(2) as usize;
                let mut msg = i.to_le_bytes().to_vec();
                msg.push(who as u8);
                senders[who].send_to(&msg, to).unwrap();
                if rng.below(2) == 0 {
                    cancel_from_thread(&h);
                }
                if rng.below(2) == 0 {
                    std::thread::sleep(Duration::from_micros(rng.below(80)));
                }
            }
        });
        let mut rng = Rng::new(9);
        let mut next = 0u32;
        let check = |res: loop_api::Result<(Vec<u8>, SocketAddr)>, next: &mut u32| {
            let (msg, addr) = res.expect("recv_from");
            assert_eq!(msg.len(), 5, "a whole datagram");
            let seq = u32::from_le_bytes(msg[..4].try_into().unwrap());
            assert_eq!(
                seq, *next,
                "datagram {next} was lost (or reordered) by a cancelled recv_from: got {seq}"
            );
            assert_eq!(
                addr, from[msg[4] as usize],
                "datagram {seq} with its sender's address"
            );
            *next += 1;
            taken.store(*next, Ordering::Relaxed);
        };
        let recv = |rx: &Rc<UdpSocket>| {
            let rx = rx.clone();
            async move {
                let (res, mut buf) = rx.recv_from(Vec::with_capacity(64)).await;
                res.map(|(n, addr)| {
                    buf.truncate(n);
                    (buf, addr)
                })
            }
        };
        let mut i = 0;
        while !writer.is_finished() {
            if let Some(res) = attempt(&lp, ALL[i % 4], &mut rng, false, recv(&rx)).await {
                check(res, &mut next);
            }
            i += 1;
        }
        while next < N {
            let res = wait_for(recv(&rx), Duration::from_secs(1)).await;
            let res = res.unwrap_or_else(|_| {
                panic!("datagrams {next}.. of {N} never arrived (lost by a cancelled recv_from)")
            });
            check(res, &mut next);
        }
        writer.join().unwrap();
    });
}

/// Reads exactly `n` bytes with plain reads.
async fn read_exact(s: &TcpStream, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < n {
        let (res, buf) = s.read_owned(Vec::with_capacity(n - out.len())).await;
        assert!(res.unwrap() > 0, "early end of stream");
        out.extend_from_slice(&buf);
    }
    out
}

/// CAN-1: a connection taken by a cancelled accept comes out of the next
/// `accept` on that listener. 150 clients, each sending its number, while
/// accepts are cancelled every way: each is accepted once, in order.
pub fn accept_cancelled_loses_no_connection(factory: impl Factory) {
    const N: u32 = 150;
    run_net(factory, |lp| async move {
        let l = Rc::new(TcpListener::bind(LOCAL).unwrap());
        let addr = l.local_addr().unwrap();
        let taken = Arc::new(AtomicU32::new(0));
        let (t, h) = (taken.clone(), lp.handle());
        let clients = std::thread::spawn(move || {
            let mut rng = Rng::new(10);
            for i in 0..N {
                if !wait_for_room(i, &t) {
                    return;
                }
                let mut c = std::net::TcpStream::connect(addr).unwrap();
                c.write_all(&i.to_le_bytes()).unwrap();
                if rng.below(2) == 0 {
                    cancel_from_thread(&h);
                }
                if rng.below(2) == 0 {
                    std::thread::sleep(Duration::from_micros(rng.below(80)));
                }
            }
        });
        let mut rng = Rng::new(10);
        let mut next = 0u32;
        let accept = |l: &Rc<TcpListener>| {
            let l = l.clone();
            async move { l.accept().await }
        };
        let mut i = 0;
        loop {
            let accepted = if clients.is_finished() {
                if next == N {
                    break;
                }
                let res = wait_for(accept(&l), Duration::from_secs(1)).await;
                Some(res.unwrap_or_else(|_| {
                    panic!(
                        "connections {next}.. of {N} never accepted (lost by a cancelled accept)"
                    )
                }))
            } else {
                i += 1;
                attempt(&lp, ALL[i % 4], &mut rng, false, accept(&l)).await
            };
            if let Some(res) = accepted {
                let (s, peer) = res.expect("accept");
                assert!(peer.ip().is_loopback());
                let id = u32::from_le_bytes(read_exact(&s, 4).await.try_into().unwrap());
                assert_eq!(
                    id, next,
                    "connection {next} was lost (or reordered) by a cancelled accept: got {id}"
                );
                next += 1;
                taken.store(next, Ordering::Relaxed);
            }
        }
        clients.join().unwrap();
    });
}

/// Sets its flag when dropped.
struct DropGuard(Rc<Cell<bool>>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// CAN-2: `Task::cancel()` on a task parked on a sleep drops its future
/// before returning (no loop iteration in between); the awaiter gets
/// `Cancelled`.
pub fn task_cancel_drops_parked_future_at_once(factory: impl Factory) {
    let lp = new_loop(factory);
    let l = lp.clone();
    lp.run_until_complete(async move {
        let dropped = Rc::new(Cell::new(false));
        let guard = DropGuard(dropped.clone());
        let task = l
            .create_task(async move {
                let _guard = guard;
                sleep(Duration::from_secs(3600)).await;
            })
            .unwrap();
        sleep(Duration::from_millis(5)).await;
        assert!(!dropped.get(), "the task is parked");
        assert!(task.cancel());
        assert!(
            dropped.get(),
            "cancel() of a task that is not running drops its future at once"
        );
        let res = task.await;
        assert!(matches!(res, Err(ref e) if e.is_cancelled()), "{res:?}");
    })
    .unwrap();
    lp.close().unwrap();
}

/// CAN-2: the same for a task that never ran (cancelled before its first
/// step), cancelled from outside the loop.
pub fn task_cancel_drops_unstarted_future_at_once(factory: impl Factory) {
    let lp = new_loop(factory);
    let dropped = Rc::new(Cell::new(false));
    let guard = DropGuard(dropped.clone());
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let task = lp
        .create_task(async move {
            let _guard = guard;
            r.set(true);
        })
        .unwrap();
    assert!(task.cancel());
    assert!(
        dropped.get(),
        "cancel() of a task that is not running drops its future at once"
    );
    let res = lp.run_until_complete(task).unwrap();
    assert!(matches!(res, Err(ref e) if e.is_cancelled()), "{res:?}");
    assert!(!ran.get());
    lp.close().unwrap();
}

/// Runs exactly one loop iteration.
fn iterate(lp: &EventLoop) {
    lp.stop();
    lp.run_forever().unwrap();
}

/// A connected, non-blocking std AF_UNIX stream pair.
fn std_pair() -> (
    std::os::unix::net::UnixStream,
    std::os::unix::net::UnixStream,
) {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

/// Sets up the window of CAN-3 on `lp` and runs `in_window` in it: a
/// reader on a fresh socket whose readiness the backend delivers in an
/// iteration whose first callback (queued before) is `in_window`, so the
/// reader's own callback has not run yet; `in_window` gets the reader's
/// fd and starts another operation, and the reader is then removed. The
/// removed reader's callback must never run. Returns the reader's socket
/// pair, to be closed by the caller afterwards.
fn in_reader_window(
    lp: &EventLoop,
    in_window: impl FnOnce() + 'static,
) -> (
    std::os::unix::net::UnixStream,
    std::os::unix::net::UnixStream,
) {
    let (a, mut b) = std_pair();
    let fd = a.as_raw_fd();
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    lp.add_reader(fd, move || f.set(true)).unwrap();
    // The poll reaches the backend and waits (the socket is not readable).
    iterate(lp);
    iterate(lp);
    b.write_all(b"x").unwrap();
    let l = lp.clone();
    lp.call_soon(move || {
        in_window();
        assert!(l.remove_reader(fd), "the reader was registered");
    })
    .unwrap();
    iterate(lp);
    iterate(lp);
    assert!(!fired.get(), "a removed reader's callback never runs");
    (a, b)
}

/// CAN-3: an operation id is not reused while a watcher refers to it. A
/// reader whose readiness was delivered but whose callback has not run is
/// removed right after another reader was added in that window (which may
/// take the same internal slot): the other reader is unaffected and fires.
pub fn removed_reader_never_cancels_a_reused_op_id(factory: impl Factory) {
    let lp = new_loop(factory);
    for attempt in 0..30 {
        let (c, mut d) = std_pair();
        let fired = Rc::new(Cell::new(0u32));
        let (f, l, cfd) = (fired.clone(), lp.clone(), c.as_raw_fd());
        let first = in_reader_window(&lp, move || {
            l.add_reader(cfd, move || f.set(f.get() + 1)).unwrap();
        });
        d.write_all(b"y").unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while fired.get() == 0 {
            assert!(
                Instant::now() < deadline,
                "attempt {attempt}: the other reader never fired (its operation was cancelled \
                 by removing a reader whose id it reused)"
            );
            lp.call_later(Duration::from_millis(1), || {}).unwrap();
            iterate(&lp);
        }
        assert!(lp.remove_reader(cfd));
        drop(first);
    }
    lp.close().unwrap();
}

/// CAN-3, with an awaited operation in the window: a `sock_recv` started
/// (polled once) there is not disturbed by removing the reader.
pub fn removed_reader_never_disturbs_a_later_recv(factory: impl Factory) {
    type Recv = Pin<Box<dyn Future<Output = loop_api::Result<Vec<u8>>>>>;
    let lp = new_loop(factory);
    for attempt in 0..30 {
        let (c, d) = Socket::pair(Domain::UNIX, Type::STREAM.nonblocking(), None).unwrap();
        let c = Rc::new(c);
        let slot: Rc<RefCell<Option<Recv>>> = Rc::new(RefCell::new(None));
        let (s, l, sock) = (slot.clone(), lp.clone(), c.clone());
        let first = in_reader_window(&lp, move || {
            let mut recv: Recv = Box::pin(async move { l.sock_recv(&*sock, 16).await });
            let mut cx = Context::from_waker(Waker::noop());
            // Nothing to receive yet: it is pending.
            let _ = recv.as_mut().poll(&mut cx);
            *s.borrow_mut() = Some(recv);
        });
        (&d).write_all(b"intact").unwrap();
        let recv = slot.borrow_mut().take().expect("the window ran");
        let got = lp
            .run_until_complete(wait_for(recv, Duration::from_secs(5)))
            .unwrap()
            .unwrap_or_else(|_| panic!("attempt {attempt}: the recv never completed"));
        assert_eq!(got.unwrap(), b"intact", "attempt {attempt}");
        drop(first);
    }
    lp.close().unwrap();
}

/// Connects to `addr` at once (a blocking std connect, no loop iteration)
/// and asserts it is refused.
fn assert_refused_now(addr: SocketAddr, what: &str) {
    match std::net::TcpStream::connect(addr) {
        Ok(_) => panic!("{what}: a connect to the closed listener succeeded (still listening)"),
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{what}: {e}"),
    }
}

/// CAN-4: a `TcpListener` dropped right after an accept future on it was
/// dropped while pending: connects are refused at once.
pub fn closed_listener_refuses_after_dropped_accept(factory: impl Factory) {
    run_net(factory, |_lp| async move {
        for _ in 0..5 {
            let l = TcpListener::bind(LOCAL).unwrap();
            let addr = l.local_addr().unwrap();
            {
                let mut accept = pin!(l.accept());
                assert!(poll_once(accept.as_mut()).await.is_pending());
                // Let the accept reach the backend.
                sleep(Duration::from_millis(2)).await;
            }
            drop(l);
            assert_refused_now(addr, "accept future dropped");
        }
    });
}

/// CAN-4: the same with the accepting task cancelled (and awaited).
pub fn closed_listener_refuses_after_cancelled_accept_task(factory: impl Factory) {
    run_net(factory, |lp| async move {
        for _ in 0..5 {
            let l = Rc::new(TcpListener::bind(LOCAL).unwrap());
            let addr = l.local_addr().unwrap();
            let l2 = l.clone();
            let task = lp
                .create_task(async move { l2.accept().await.map(drop) })
                .unwrap();
            sleep(Duration::from_millis(2)).await;
            assert!(task.cancel());
            assert!(task.await.unwrap_err().is_cancelled());
            drop(l);
            assert_refused_now(addr, "accepting task cancelled");
        }
    });
}

/// CAN-4: the same with the accept timed out by `wait_for`.
pub fn closed_listener_refuses_after_timed_out_accept(factory: impl Factory) {
    run_net(factory, |_lp| async move {
        for _ in 0..5 {
            let l = TcpListener::bind(LOCAL).unwrap();
            let addr = l.local_addr().unwrap();
            let res = wait_for(l.accept(), Duration::from_millis(2)).await;
            assert!(matches!(res, Err(Error::TimedOut)), "{res:?}");
            drop(l);
            assert_refused_now(addr, "accept timed out");
        }
    });
}

/// CAN-4: a user's listening socket watched with `add_reader`, then
/// `remove_reader` and closed: connects are refused at once.
pub fn closed_user_listener_refuses_after_remove_reader(factory: impl Factory) {
    run_net(factory, |lp| async move {
        for _ in 0..5 {
            let l = Socket::new(Domain::IPV4, Type::STREAM.nonblocking(), None).unwrap();
            l.bind(&LOCAL.parse::<SocketAddr>().unwrap().into())
                .unwrap();
            l.listen(16).unwrap();
            let addr = l.local_addr().unwrap().as_socket().unwrap();
            lp.add_reader(l.as_raw_fd(), || {}).unwrap();
            // Let the watcher's poll reach the backend.
            sleep(Duration::from_millis(2)).await;
            assert!(lp.remove_reader(l.as_raw_fd()));
            drop(l);
            assert_refused_now(addr, "watched listener removed and closed");
        }
    });
}

fn os_pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for two descriptors.
    let ret = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) };
    assert_eq!(ret, 0);
    // SAFETY: fresh descriptors owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Everything readable now from a non-blocking pipe end.
fn drain_now(r: &OwnedFd) -> Vec<u8> {
    let mut f = File::from(r.try_clone().unwrap());
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match f.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return out,
            Err(e) => panic!("reading the new pipe: {e}"),
        }
    }
}

/// CAN-4 (pipes): `start` starts an owned-buffer operation on a stream of
/// a fresh pipe (polled once, pending), drops it, closes both ends; a new
/// pipe that gets the same numbers must hold exactly what is written into
/// it, however long the loop runs.
fn pipe_reuse(
    factory: impl Factory,
    what: &str,
    start: impl Fn(&EventLoop, OwnedFd, OwnedFd) -> Pin<Box<dyn Future<Output = ()>>>,
) {
    let lp = new_loop(factory);
    let mut reused = 0;
    for _ in 0..20 {
        let (r, w) = os_pipe();
        let fds = (r.as_raw_fd(), w.as_raw_fd());
        let fut = start(&lp, r, w);
        lp.run_until_complete(fut).unwrap();
        // The old pipe is closed now; the new one probably gets its numbers.
        let (r2, w2) = os_pipe();
        if (r2.as_raw_fd(), w2.as_raw_fd()) != fds {
            continue;
        }
        reused += 1;
        File::from(w2.try_clone().unwrap())
            .write_all(b"intact")
            .unwrap();
        lp.run_until_complete(sleep(Duration::from_millis(10)))
            .unwrap();
        assert_eq!(
            drain_now(&r2),
            b"intact",
            "{what}: a pipe reusing the numbers of a closed one holds what was written to it"
        );
    }
    assert!(reused > 0, "no new pipe reused the descriptor numbers");
    lp.close().unwrap();
}

/// CAN-4: closing a `PipeReader` while an owned-buffer read on it is in
/// flight (its future dropped) never reads from a new pipe that reuses
/// the descriptor number.
pub fn closed_pipe_read_never_touches_a_reused_fd(factory: impl Factory) {
    pipe_reuse(factory, "PipeReader", |lp, r, w| {
        let mut reader = lp.connect_read_pipe(r).unwrap();
        let fut = async move {
            {
                let mut read = pin!(reader.read_owned(Vec::with_capacity(64)));
                assert!(poll_once(read.as_mut()).await.is_pending());
            }
            drop(reader);
            drop(w);
        };
        Box::pin(fut)
    });
}

/// CAN-4: the same for a `PipeWriter` whose owned-buffer write waits on a
/// full pipe: nothing is ever written into the new pipe.
pub fn closed_pipe_write_never_touches_a_reused_fd(factory: impl Factory) {
    pipe_reuse(factory, "PipeWriter", |lp, r, w| {
        // Fill the pipe, so the write has to wait.
        let mut f = File::from(w.try_clone().unwrap());
        while f.write(&[0u8; 4096]).is_ok() {}
        drop(f);
        let mut writer = lp.connect_write_pipe(w).unwrap();
        let fut = async move {
            {
                let mut write = pin!(writer.write_owned(vec![0xEE; 100]));
                assert!(poll_once(write.as_mut()).await.is_pending());
            }
            drop(writer);
            drop(r);
        };
        Box::pin(fut)
    });
}
