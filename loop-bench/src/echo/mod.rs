//! TCP echo: a contender's server on one core, our load generator on the other.
//!
//! Server CPU is taken from the kernel's accounting (`getrusage`): the
//! process's CPU time over the window minus the load generator thread's own.
//! That is the server thread plus any helper thread it has (smol's
//! async-io thread, io_uring's kernel workers or SQPOLL thread), the fair total.

pub mod client;

use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::runtime::{Runtime, Stopper};
use crate::sample::{Sample, Window};
use crate::sched::{Outcome, HANG_LIMIT};
use crate::sys::Placement;
use crate::watchdog;

/// One cell of the echo matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EchoCell {
    /// Message size in bytes.
    pub size: usize,
    /// Concurrent connections.
    pub conns: usize,
}

impl EchoCell {
    /// `"1KiB x 100"`.
    pub fn label(&self) -> String {
        format!("{} x {}", size_label(self.size), self.conns)
    }
}

/// `64 B`, `1 KiB`, `100 KiB`, `1.5 MiB`.
pub fn size_label(size: usize) -> String {
    const KIB: usize = 1024;
    if size >= KIB * KIB && size.is_multiple_of(KIB * KIB) {
        format!("{}MiB", size / (KIB * KIB))
    } else if size >= KIB && size.is_multiple_of(KIB) {
        format!("{}KiB", size / KIB)
    } else {
        format!("{size}B")
    }
}

/// A listening socket on 127.0.0.1 with room for every connection to queue.
pub fn listen() -> std::io::Result<(TcpListener, SocketAddr)> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    socket.listen(4096)?;
    let listener: TcpListener = socket.into();
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Runs one echo cell against `rt`: its server on the server core, the
/// load generator on the client core.
pub fn measure<R>(rt: &R, cell: EchoCell, win: Window, place: Placement) -> Outcome
where
    R: Runtime + Clone + Send + 'static,
{
    if let Err(reason) = rt.echo_supported() {
        return Outcome::Unavailable(reason);
    }
    let (listener, addr) = match listen() {
        Ok(l) => l,
        Err(e) => return Outcome::Failed(format!("cannot listen on 127.0.0.1: {e}")),
    };
    let (ready_tx, ready_rx) = mpsc::channel::<Stopper>();
    let server_rt = rt.clone();
    let server = watchdog::spawn("bench-server", move || {
        let _ = Placement::pin(place.server);
        server_rt.serve_echo(
            listener,
            Box::new(move |stop| {
                let _ = ready_tx.send(stop);
            }),
        )
    });
    let server = match server {
        Ok(s) => s,
        Err(e) => return Outcome::Failed(e),
    };
    let stop = match ready_rx.recv_timeout(Duration::from_secs(10)) {
        Ok(stop) => stop,
        Err(_) => {
            // The server never got going: it has failed (or hangs).
            return match server.wait(Duration::from_secs(1)) {
                Ok(Err(e)) => Outcome::Failed(e),
                Ok(Ok(())) => Outcome::Failed("the server returned before serving".to_owned()),
                Err(e) => Outcome::Failed(format!("the server did not start: {e}")),
            };
        }
    };
    let client = watchdog::spawn("bench-client", move || {
        let _ = Placement::pin(place.client);
        client::run(addr, cell.conns, cell.size, win)
    });
    // The load generator gives up by itself if the server stalls; the
    // limit covers connecting and a stall on top of the window.
    let load = client.and_then(|c| c.wait(win.warmup + win.measure + HANG_LIMIT));
    stop();
    let served = server.wait(HANG_LIMIT);
    match (load, served) {
        (Ok(Ok(mut load)), Ok(Ok(()))) => Outcome::Ok(
            Sample::new(load.requests, load.elapsed)
                .with_latencies(&mut load.latencies)
                .with_cpu(load.server_cpu, load.client_cpu),
        ),
        (Ok(Err(e)), _) => Outcome::Failed(format!("load generator: {e}")),
        (Err(e), _) => Outcome::Failed(format!("load generator: {e}")),
        (_, Ok(Err(e))) => Outcome::Failed(format!("server: {e}")),
        (_, Err(e)) => Outcome::Failed(format!("server: {e}")),
    }
}
