//! The load generator: one thread, edge-triggered epoll through mio, the
//! same for every contender.
//!
//! Closed loop: each connection sends a message, waits until the whole echo
//! is back, records the round trip, and sends the next. It reads while it
//! writes (a 100 KiB message comes back while it is still being sent), and
//! it skips the extra `read`/`write` that would only return `WouldBlock`:
//! with edge-triggered readiness, a short read or write means the socket is
//! drained (or full) and a new edge will come.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::sample::Window;
use crate::sys::{self, CpuTime};

/// How long the load generator waits for any progress before it declares
/// the server stalled.
const STALL: Duration = Duration::from_secs(5);

/// What the load generator measured over its window.
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// Round trips completed within the window.
    pub requests: u64,
    /// The window's length.
    pub elapsed: Duration,
    /// Every round trip's latency in nanoseconds.
    pub latencies: Vec<u64>,
    /// CPU time of everything in the process but the load generator
    /// (i.e. the server thread and any helper threads it has) over the window.
    pub server_cpu: CpuTime,
    /// CPU time of the load generator's own thread over the window.
    pub client_cpu: CpuTime,
}

struct Conn {
    stream: TcpStream,
    /// Bytes of the current message sent.
    written: usize,
    /// Bytes of its echo received.
    read: usize,
    /// When the current message started.
    started: Instant,
    /// Whether a round trip has completed on this connection yet.
    served: bool,
    /// Round trips still to make ([`run_count`]); `u64::MAX` for a timed run.
    remaining: u64,
}

struct Snapshot {
    at: Instant,
    process: CpuTime,
    thread: CpuTime,
}

fn snapshot() -> io::Result<Snapshot> {
    Ok(Snapshot {
        process: sys::process_cpu()?,
        thread: sys::thread_cpu()?,
        at: Instant::now(),
    })
}

/// Opens `conns` non-blocking, NODELAY connections to `addr`, registered
/// with `poll` (token = index) for both directions, each with `remaining`
/// round trips to make.
fn connect_all(
    poll: &Poll,
    addr: SocketAddr,
    conns: usize,
    remaining: u64,
) -> io::Result<Vec<Conn>> {
    let mut all = Vec::with_capacity(conns);
    for i in 0..conns {
        let std = std::net::TcpStream::connect(addr)?;
        std.set_nodelay(true)?;
        std.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(std);
        poll.registry().register(
            &mut stream,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        all.push(Conn {
            stream,
            written: 0,
            read: 0,
            started: Instant::now(),
            served: false,
            remaining,
        });
    }
    Ok(all)
}

/// Runs `conns` closed-loop connections of `size`-byte messages against
/// `addr` for `win`, on the calling thread.
pub fn run(addr: SocketAddr, conns: usize, size: usize, win: Window) -> io::Result<LoadResult> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let message = vec![0x5au8; size.max(1)];
    let mut scratch = vec![0u8; 64 * 1024];
    let mut all = connect_all(&poll, addr, conns, u64::MAX)?;

    let mut latencies: Vec<u64> = Vec::with_capacity(1 << 16);
    let mut recording = false;
    let mut unserved = all.len();
    let mut requests = 0u64;
    let mut last_progress = Instant::now();
    for conn in all.iter_mut() {
        conn.started = Instant::now();
        drive(conn, &message, &mut scratch, &mut |_| {})?;
    }

    let warm_end = Instant::now() + win.warmup;
    let mut start: Option<Snapshot> = None;
    let mut end_at = warm_end + win.measure;
    loop {
        poll.poll(&mut events, Some(Duration::from_millis(50)))?;
        let now = Instant::now();
        if events.is_empty() {
            if now - last_progress > STALL {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no echo for {STALL:?}: the server stalled"),
                ));
            }
        } else {
            last_progress = now;
        }
        for event in events.iter() {
            let conn = &mut all[event.token().0];
            let mut first = false;
            drive(conn, &message, &mut scratch, &mut |ns| {
                if recording {
                    latencies.push(ns);
                    requests += 1;
                }
                first = true;
            })?;
            if first && !conn.served {
                conn.served = true;
                unserved -= 1;
            }
        }
        // Warm-up ends when its time is up and every connection has had a
        // round trip, so accepting (1,000 connections take a while) is
        // never inside the window.
        if start.is_none() && now >= warm_end && (unserved == 0 || now - warm_end > STALL) {
            let s = snapshot()?;
            end_at = s.at + win.measure;
            start = Some(s);
            recording = true;
        } else if let Some(s) = &start {
            // The window closes on time, but not before one round trip has
            // completed in it (100 KiB x 1000 connections in a tiny --smoke
            // window would otherwise count nothing), up to a limit.
            if now >= end_at && (requests > 0 || now >= end_at + STALL) {
                let e = snapshot()?;
                let process = e.process.since(&s.process);
                let thread = e.thread.since(&s.thread);
                return Ok(LoadResult {
                    requests,
                    elapsed: e.at - s.at,
                    latencies,
                    server_cpu: process.since(&thread),
                    client_cpu: thread,
                });
            }
        }
    }
}

/// Moves one connection as far as it can go without blocking; `done(ns)`
/// is called for every completed round trip.
fn drive(
    conn: &mut Conn,
    message: &[u8],
    scratch: &mut [u8],
    done: &mut dyn FnMut(u64),
) -> io::Result<()> {
    let size = message.len();
    loop {
        if conn.remaining == 0 {
            return Ok(());
        }
        let mut progressed = false;
        if conn.written < size {
            match conn.stream.write(&message[conn.written..]) {
                Ok(n) => {
                    progressed = n == size - conn.written;
                    conn.written += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if conn.read < conn.written {
            match conn.stream.read(scratch) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed a connection",
                    ))
                }
                Ok(n) => {
                    conn.read += n;
                    if conn.read > size {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "the server echoed more than was sent",
                        ));
                    }
                    if conn.read == size {
                        let now = Instant::now();
                        done((now - conn.started).as_nanos() as u64);
                        conn.started = now;
                        conn.written = 0;
                        conn.read = 0;
                        conn.remaining -= 1;
                        progressed = true;
                    } else if n == scratch.len() {
                        // Possibly more queued: read again.
                        progressed = true;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if !progressed {
            return Ok(());
        }
    }
}

/// Runs `conns` closed-loop connections of `size`-byte messages against
/// `addr`, each making exactly `per_conn` round trips, then closes them;
/// gives the number of round trips made (`conns * per_conn`). For counting
/// the server's instructions ([`crate::instr`]), where the count, not the
/// time, must be fixed. `stall` bounds the wait for any progress.
pub fn run_count(
    addr: SocketAddr,
    conns: usize,
    size: usize,
    per_conn: u64,
    stall: Duration,
) -> io::Result<u64> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let message = vec![0x5au8; size.max(1)];
    let mut scratch = vec![0u8; 64 * 1024];
    let mut all = connect_all(&poll, addr, conns, per_conn)?;
    let mut done = 0u64;
    let target = per_conn * conns as u64;
    for conn in all.iter_mut() {
        drive(conn, &message, &mut scratch, &mut |_| done += 1)?;
    }
    let mut last_progress = Instant::now();
    while done < target {
        poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        if events.is_empty() {
            if last_progress.elapsed() > stall {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no echo for {stall:?} ({done} of {target} round trips made)"),
                ));
            }
            continue;
        }
        last_progress = Instant::now();
        for event in events.iter() {
            let conn = &mut all[event.token().0];
            drive(conn, &message, &mut scratch, &mut |_| done += 1)?;
        }
    }
    Ok(done)
}
