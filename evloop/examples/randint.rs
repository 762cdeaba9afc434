//! "randint as a service", after the asyncio talk: a TCP server that reads
//! an upper bound `k`, thinks for a few milliseconds, and answers a random
//! integer in `[0, k]`; a client that sends many requests one after another,
//! then all at once, and prints how long each way took.
//!
//! The point: while the server "thinks" (sleeps), the loop serves everyone
//! else, so concurrent requests take about as long as one.
//! Runs on any backend: `EVLOOP_BACKEND=polling cargo run --example randint`.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use evloop::net::TcpStream;

/// How many requests the client makes each way.
const REQUESTS: usize = 100;
/// How long the server "thinks" before answering.
const THINK: Duration = Duration::from_millis(5);

thread_local! {
    static RNG: Cell<u64> = Cell::new(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0x9e37_79b9_7f4a_7c15, |d| d.as_nanos() as u64)
            | 1,
    );
}

/// A random integer in `[0, k]` from a xorshift64 generator.
fn randint(k: u64) -> u64 {
    RNG.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        match k.checked_add(1) {
            Some(range) => x % range,
            None => x,
        }
    })
}

/// Reads one `\n`-terminated line (without the newline); `None` at end of stream.
async fn read_line(stream: &TcpStream) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    loop {
        let (res, buf) = stream.read_owned(Vec::with_capacity(64)).await;
        if res? == 0 {
            return Ok(None);
        }
        line.extend_from_slice(&buf);
        if line.ends_with(b"\n") {
            line.pop();
            return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
        }
    }
}

/// The service: one request per line, one answer per line.
async fn serve(stream: TcpStream) {
    while let Ok(Some(line)) = read_line(&stream).await {
        let answer = match line.trim().parse::<u64>() {
            Ok(k) => {
                evloop::sleep(THINK).await;
                format!("{}\n", randint(k))
            }
            Err(_) => "error: send an unsigned integer\n".to_owned(),
        };
        let (res, _) = stream.write_all_owned(answer.into_bytes()).await;
        if res.is_err() {
            return;
        }
    }
}

/// One request on a connection of its own.
async fn request(addr: SocketAddr, k: u64) -> io::Result<u64> {
    let stream = TcpStream::connect(addr).await?;
    let (res, _) = stream.write_all_owned(format!("{k}\n").into_bytes()).await;
    res?;
    let line = read_line(&stream)
        .await?
        .ok_or(io::ErrorKind::UnexpectedEof)?;
    line.parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("bad answer {line:?}")))
}

async fn client(lp: &evloop::EventLoop, addr: SocketAddr) -> io::Result<()> {
    let start = Instant::now();
    let mut sequential = Vec::new();
    for _ in 0..REQUESTS {
        sequential.push(request(addr, 10).await?);
    }
    let one_by_one = start.elapsed();

    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..REQUESTS {
        tasks.push(lp.create_task(request(addr, 10)).map_err(io::Error::from)?);
    }
    let mut concurrent = Vec::new();
    for task in evloop::gather(tasks).await {
        concurrent.push(task.map_err(io::Error::from)??);
    }
    let all_at_once = start.elapsed();

    assert!(sequential.iter().chain(&concurrent).all(|&n| n <= 10));
    println!("first answers: {:?}", &concurrent[..10]);
    println!("{REQUESTS} requests one after another: {one_by_one:.2?}");
    println!("{REQUESTS} requests concurrently:      {all_at_once:.2?}");
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    evloop::run(async {
        let lp = evloop::get_running_loop()?;
        println!(
            "backend: {}, thinking time {THINK:?} per request",
            lp.backend_name()
        );
        let server = lp.create_server("127.0.0.1:0", serve)?;
        let addr = server.local_addr().ok_or("no internet address")?;
        client(&lp, addr).await?;
        server.close();
        server.wait_closed().await;
        Ok(())
    })?
}
