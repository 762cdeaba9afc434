//! Helpers for the networking sections.

use std::future::{poll_fn, Future};
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_io::{AsyncRead, AsyncWrite};
use loop_api::{wait_for, EventLoop};

use crate::support::new_loop;
use crate::Factory;

/// The most any networking test may take before it counts as hung.
pub const HANG: Duration = Duration::from_secs(30);

/// Runs `body(lp)` on a fresh loop (failing the test if it takes longer than
/// [`HANG`]), closes the loop, and returns the body's output.
pub fn run_net<T, Fut>(factory: impl Factory, body: impl FnOnce(EventLoop) -> Fut) -> T
where
    Fut: Future<Output = T> + 'static,
    T: 'static,
{
    let lp = new_loop(factory);
    let fut = body(lp.clone());
    let out = lp
        .run_until_complete(async move { wait_for(fut, HANG).await })
        .expect("the loop runs the test body")
        .expect("the test body finished in time (a hang otherwise)");
    lp.close().unwrap();
    out
}

/// Closes `server` and waits until its connections have ended.
pub async fn close_server(server: &loop_api::net::Server) {
    server.close();
    server.wait_closed().await;
}

/// A path for a Unix socket in the temp directory, unique in this process,
/// with nothing at it.
pub fn temp_socket_path(tag: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("evloop-{}-{tag}-{n}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// `n` bytes of a pattern that changes with position, to check order.
pub fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8 ^ seed).collect()
}

/// futures-io `read_exact`, written against the trait alone.
pub async fn io_read_exact<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        let n = poll_fn(|cx| Pin::new(&mut *r).poll_read(cx, &mut buf[got..])).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        got += n;
    }
    Ok(())
}

/// futures-io `read_to_end`.
pub async fn io_read_to_end<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 1000];
    loop {
        let n = poll_fn(|cx| Pin::new(&mut *r).poll_read(cx, &mut chunk)).await?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

/// futures-io `write_all`.
pub async fn io_write_all<W: AsyncWrite + Unpin>(w: &mut W, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let n = poll_fn(|cx| Pin::new(&mut *w).poll_write(cx, data)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        data = &data[n..];
    }
    poll_fn(|cx| Pin::new(&mut *w).poll_flush(cx)).await
}

/// futures-io `close`.
pub async fn io_close<W: AsyncWrite + Unpin>(w: &mut W) -> io::Result<()> {
    poll_fn(|cx| Pin::new(&mut *w).poll_close(cx)).await
}

/// Awaits both futures concurrently (a two-way `join`).
pub async fn join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let mut a = std::pin::pin!(a);
    let mut b = std::pin::pin!(b);
    let (mut ra, mut rb) = (None, None);
    poll_fn(|cx| {
        if ra.is_none() {
            if let std::task::Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let std::task::Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        if ra.is_some() && rb.is_some() {
            std::task::Poll::Ready((ra.take().unwrap(), rb.take().unwrap()))
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

/// Raises this process's soft `RLIMIT_NOFILE` to at least `want` (up to the
/// hard limit); returns the soft limit now in force.
pub fn raise_fd_limit(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the valid struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    if lim.rlim_cur < want {
        lim.rlim_cur = want.min(lim.rlim_max);
        // SAFETY: setrlimit reads one valid rlimit.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    }
    lim.rlim_cur
}
