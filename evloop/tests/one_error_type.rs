//! Owned-buffer results carry `evloop::Error` like every other call, so an
//! owned read, `create_connection` and a file open mix in one `?` chain and
//! in `futures::try_join!`. While `BufResult` was `(io::Result<T>, B)`,
//! these functions did not compile (`try_join!` needs one error type).

use std::io::ErrorKind;

use evloop::buf::BufResult;
use evloop::net::{TcpListener, TcpStream, UdpSocket};
use evloop::EventLoop;

/// The loop running this task.
fn running() -> evloop::Result<EventLoop> {
    evloop::get_running_loop()
}

/// An owned read as an `evloop::Result`, with no conversion in sight.
async fn read_some(s: &TcpStream, cap: usize) -> evloop::Result<Vec<u8>> {
    let (res, buf): BufResult<usize, Vec<u8>> = s.read_owned(Vec::with_capacity(cap)).await;
    res?;
    Ok(buf)
}

/// A listener whose accepted connections are each sent `greeting`.
fn greeter(greeting: &'static [u8]) -> evloop::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    running()?
        .create_task(async move {
            while let Ok((s, _)) = listener.accept().await {
                let (res, _) = s.write_all_owned(greeting).await;
                res.expect("write the greeting");
            }
        })?
        .detach();
    Ok(addr)
}

#[test]
fn try_join_mixes_owned_read_and_create_connection() {
    evloop::run(async {
        let lp = running()?;
        let addr = greeter(b"hello")?;
        let first = lp.create_connection(addr).await?;
        // One owned read on the first connection and a second connection,
        // raced: both branches have the error type `evloop::Error`.
        let (got, second) = futures::try_join!(read_some(&first, 16), lp.create_connection(addr))?;
        assert_eq!(got, b"hello");
        assert_eq!(read_some(&second, 16).await?, b"hello");
        Ok::<_, evloop::Error>(())
    })
    .unwrap()
    .unwrap();
}

#[test]
fn try_join_returns_the_failing_branchs_error_with_its_context() {
    evloop::run(async {
        let lp = running()?;
        let addr = greeter(b"hi")?;
        let s = lp.create_connection(addr).await?;
        // A port nobody listens on (bound, then closed).
        let dead = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let pending_read = async {
            // Nothing more ever arrives after the greeting: the second
            // read waits until try_join! drops it.
            let first = read_some(&s, 2).await?;
            let second = read_some(&s, 2).await?;
            Ok::<_, evloop::Error>((first, second))
        };
        let err = futures::try_join!(pending_read, lp.create_connection(dead)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
        assert_eq!(
            err.context(),
            Some(&*format!("connect to {dest}", dest = dead))
        );
        Ok::<_, evloop::Error>(())
    })
    .unwrap()
    .unwrap();
}

/// Every kind of owned-buffer call in one `?` chain with the rest of the
/// API (connect, bind, files, pipes, `sock_*`).
async fn everything(dir: &std::path::Path) -> evloop::Result<Vec<Vec<u8>>> {
    let lp = running()?;
    let mut out = Vec::new();

    let s = lp.create_connection(greeter(b"tcp")?).await?;
    out.push(read_some(&s, 8).await?);

    let a = UdpSocket::bind("127.0.0.1:0")?;
    let b = UdpSocket::bind("127.0.0.1:0")?;
    a.send_to(b"udp".as_slice(), b.local_addr()?).await.0?;
    let (res, buf) = b.recv_from(Vec::with_capacity(8)).await;
    let (_, from) = res?;
    assert_eq!(from, a.local_addr()?);
    out.push(buf);

    let path = dir.join("f");
    evloop::fs::write(&path, b"file".as_slice()).await?;
    let f = evloop::fs::File::open(&path).await?;
    let (res, buf) = f.read_at(Vec::with_capacity(8), 0).await;
    res?;
    out.push(buf);

    let (mut r, mut w) = evloop::pipe::pipe(&lp)?;
    w.write_all_owned(b"pipe".as_slice()).await.0?;
    let (res, buf) = r.read_owned(Vec::with_capacity(8)).await;
    res?;
    out.push(buf);

    let (x, y) = std::os::unix::net::UnixStream::pair()?;
    x.set_nonblocking(true)?;
    y.set_nonblocking(true)?;
    lp.sock_sendall(&x, b"sock".as_slice()).await.0?;
    let (res, buf) = lp.sock_recv_into(&y, Vec::with_capacity(8)).await;
    res?;
    out.push(buf);

    // And a failure from an owned-buffer call is an `evloop::Error` of the
    // OS's kind: a pipe whose reader is gone.
    drop(r);
    let (res, _) = w.write_all_owned(b"x".as_slice()).await;
    let err: evloop::Error = res.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BrokenPipe, "{err}");
    assert!(
        err.raw_os_error().is_some(),
        "the OS error is kept: {err:?}"
    );
    Ok(out)
}

#[test]
fn one_question_mark_chain_across_owned_buffer_calls() {
    let dir = std::env::temp_dir().join(format!("evloop-one-error-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let got = evloop::run({
        let dir = dir.clone();
        async move { everything(&dir).await }
    })
    .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let got = got.unwrap();
    let want: [&[u8]; 5] = [b"tcp", b"udp", b"file", b"pipe", b"sock"];
    assert_eq!(got, want);
}
