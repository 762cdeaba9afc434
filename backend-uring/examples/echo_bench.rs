//! TCP echo on loopback: the same loop-level server on mio and on io_uring.
//!
//! The server is written against the loop's public operation API
//! (`OpFuture` with owned `Vec` buffers: accept, recv, send, close), so it
//! measures the backend through the whole loop, not the raw driver. The
//! client is one thread of blocking sockets doing ping-pong on every
//! connection (one message outstanding per connection). Runs are
//! interleaved (mio, uring, uring-plain, mio, ...) and report requests/s
//! and the server thread's CPU time per request, which stays meaningful
//! when the client saturates its own core.
//!
//! ```text
//! cargo run --release -p backend-uring --example echo_bench -- [--size 1024] [--conns 10] [--secs 3] [--rounds 3] [--backends mio,uring,uring-plain]
//! ```

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{IntoRawFd, RawFd};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use loop_api::{EventLoop, OpFuture};
use loop_driver::Op;

struct Args {
    size: usize,
    conns: usize,
    secs: f64,
    rounds: usize,
    backends: Vec<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        size: 1024,
        conns: 10,
        secs: 3.0,
        rounds: 3,
        backends: vec!["mio".into(), "uring".into(), "uring-plain".into()],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--size" => args.size = value.parse().expect("--size N"),
            "--conns" => args.conns = value.parse().expect("--conns N"),
            "--secs" => args.secs = value.parse().expect("--secs S"),
            "--rounds" => args.rounds = value.parse().expect("--rounds N"),
            "--backends" => args.backends = value.split(',').map(str::to_owned).collect(),
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

fn new_loop(backend: &str) -> loop_api::Result<EventLoop> {
    match backend {
        "mio" => backend_mio::new_event_loop(),
        "uring" => backend_uring::new_event_loop(),
        "uring-plain" => backend_uring::UringBuilder::plain().new_event_loop(),
        "uring-sqpoll" => backend_uring::UringBuilder::plain()
            .sqpoll(Some(Duration::from_millis(50)))
            .new_event_loop(),
        other => panic!("unknown backend {other}"),
    }
}

fn pin_to_cpu(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET and sched_setaffinity
    // only touch the set we own. Failure (fewer CPUs) is ignored.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

async fn recv(lp: &EventLoop, fd: RawFd, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
    buf.clear();
    let op = Op::Recv {
        fd,
        buf: buf.as_mut_ptr(),
        len: buf.capacity(),
    };
    // SAFETY: the op points into `buf`'s heap memory, owned by the future.
    let (res, mut buf) = unsafe { OpFuture::new(lp, op, buf) }.await;
    match res {
        Ok(out) => {
            // SAFETY: the kernel wrote `out.bytes <= capacity` bytes.
            unsafe { buf.set_len(out.bytes) };
            (Ok(out.bytes), buf)
        }
        Err(e) => (Err(e), buf),
    }
}

async fn send_all(lp: &EventLoop, fd: RawFd, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
    let mut sent = 0;
    let mut buf = buf;
    while sent < buf.len() {
        let op = Op::Send {
            fd,
            // SAFETY: `sent < len`, inside the allocation.
            buf: unsafe { buf.as_ptr().add(sent) },
            len: buf.len() - sent,
        };
        // SAFETY: the op points into `buf`'s heap memory, owned by the future.
        let (res, b) = unsafe { OpFuture::new(lp, op, buf) }.await;
        buf = b;
        match res {
            Ok(out) => sent += out.bytes,
            Err(e) => return (Err(e), buf),
        }
    }
    (Ok(()), buf)
}

async fn close(lp: &EventLoop, fd: RawFd) {
    // SAFETY: Close points into no memory; the descriptor is handed over.
    let _ = unsafe { OpFuture::new(lp, Op::Close { fd }, ()) }.await;
}

async fn serve_conn(lp: EventLoop, fd: RawFd, size: usize) {
    let mut buf = Vec::with_capacity(size.max(64 * 1024));
    loop {
        let (res, b) = recv(&lp, fd, buf).await;
        buf = b;
        match res {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let (res, b) = send_all(&lp, fd, buf).await;
        buf = b;
        if res.is_err() {
            break;
        }
    }
    close(&lp, fd).await;
}

/// Runs one echo server on `backend` until every client connection has
/// ended; returns its thread's CPU time.
fn server(
    backend: String,
    size: usize,
    conns: usize,
    addr_tx: mpsc::Sender<SocketAddr>,
) -> Duration {
    pin_to_cpu(0);
    let lp = new_loop(&backend).expect("backend available");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    addr_tx.send(listener.local_addr().unwrap()).unwrap();
    let lfd = listener.into_raw_fd();
    let lp2 = lp.clone();
    let cpu0 = thread_cpu_time();
    lp.run_until_complete(async move {
        let mut tasks = Vec::new();
        for _ in 0..conns {
            // SAFETY: Accept points into no memory; the listener stays open.
            let (res, ()) = unsafe { OpFuture::new(&lp2, Op::Accept { fd: lfd }, ()) }.await;
            let fd = res
                .expect("accept")
                .accepted
                .expect("an accepted descriptor")
                .into_raw_fd();
            tasks.push(lp2.create_task(serve_conn(lp2.clone(), fd, size)).unwrap());
        }
        for t in tasks {
            let _ = t.await;
        }
        close(&lp2, lfd).await;
    })
    .unwrap();
    let cpu = thread_cpu_time() - cpu0;
    lp.close().unwrap();
    cpu
}

struct Run {
    requests: u64,
    wall: Duration,
    server_cpu: Duration,
}

fn run_once(backend: &str, args: &Args) -> Run {
    let (addr_tx, addr_rx) = mpsc::channel();
    let (b, size, conns) = (backend.to_owned(), args.size, args.conns);
    let srv = std::thread::spawn(move || server(b, size, conns, addr_tx));
    let addr = addr_rx.recv().unwrap();
    pin_to_cpu(1);
    let mut streams: Vec<TcpStream> = (0..args.conns)
        .map(|_| {
            let s = TcpStream::connect(addr).unwrap();
            s.set_nodelay(true).unwrap();
            s
        })
        .collect();
    let msg = vec![0x5a_u8; args.size];
    let mut back = vec![0u8; args.size];
    // Warm-up, then the measured part.
    let mut requests = 0u64;
    let warmup = Instant::now() + Duration::from_millis(300);
    while Instant::now() < warmup {
        ping_all(&mut streams, &msg, &mut back);
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(args.secs);
    while Instant::now() < deadline {
        ping_all(&mut streams, &msg, &mut back);
        requests += streams.len() as u64;
    }
    let wall = start.elapsed();
    for s in &streams {
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
    drop(streams);
    let total_cpu = srv.join().unwrap();
    // The server's CPU time covers warm-up too: scale to the measured share.
    let share = wall.as_secs_f64() / (wall.as_secs_f64() + 0.3);
    Run {
        requests,
        wall,
        server_cpu: total_cpu.mul_f64(share),
    }
}

fn ping_all(streams: &mut [TcpStream], msg: &[u8], back: &mut [u8]) {
    for s in streams.iter_mut() {
        s.write_all(msg).unwrap();
    }
    for s in streams.iter_mut() {
        s.read_exact(back).unwrap();
    }
}

fn main() {
    let args = parse_args();
    println!(
        "echo: {} B messages, {} connections, {} s per run, {} interleaved rounds",
        args.size, args.conns, args.secs, args.rounds
    );
    println!(
        "{:<12} {:>12} {:>16} {:>20}",
        "backend", "req/s", "server µs/req", "req per server-CPU-s"
    );
    let mut totals: Vec<(String, u64, Duration, Duration)> = args
        .backends
        .iter()
        .map(|b| (b.clone(), 0, Duration::ZERO, Duration::ZERO))
        .collect();
    for _ in 0..args.rounds {
        for (i, backend) in args.backends.iter().enumerate() {
            let r = run_once(backend, &args);
            let rps = r.requests as f64 / r.wall.as_secs_f64();
            let us = r.server_cpu.as_secs_f64() * 1e6 / r.requests as f64;
            println!(
                "{:<12} {:>12.0} {:>16.2} {:>20.0}",
                backend,
                rps,
                us,
                1e6 / us
            );
            totals[i].1 += r.requests;
            totals[i].2 += r.wall;
            totals[i].3 += r.server_cpu;
        }
    }
    println!("-- totals");
    for (backend, requests, wall, cpu) in totals {
        let rps = requests as f64 / wall.as_secs_f64();
        let us = cpu.as_secs_f64() * 1e6 / requests as f64;
        println!(
            "{:<12} {:>12.0} {:>16.2} {:>20.0}",
            backend,
            rps,
            us,
            1e6 / us
        );
    }
}
