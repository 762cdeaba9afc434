//! Section 13 — pipes (PIP-*), and the pipe part of section 18 (BAD-9).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::time::Duration;

use futures_io::{AsyncRead, AsyncWrite};
use loop_api::pipe::{open_pty, pipe};
use loop_api::{Error, PipeReader, PipeWriter};

use crate::support::{fd_count, new_loop};
use crate::Factory;

#[doc(hidden)]
#[macro_export]
macro_rules! __pipes_tests {
    ($f:expr) => {
        $crate::__section!($f, pipes: [
            read_pipe_gets_chunks_then_eof,
            pty_master_reads_then_eof,
            write_pipe_delivers_then_broken_pipe,
            full_pipe_write_fails_when_reader_closes,
            owned_buffers_move_a_megabyte,
            futures_io_traits_move_a_megabyte,
            futures_io_close_gives_reader_eof,
            bad_regular_file_or_directory_is_rejected,
        ] exclusive [
            dropping_streams_closes_descriptors,
        ]);
    };
}

fn os_pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for two descriptors.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: fresh descriptors owned by nobody else.
    unsafe {
        use std::os::fd::FromRawFd;
        (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
    }
}

/// PIP-1: 1 byte then 4 bytes arrive; closing the write end gives end of
/// stream (0), on every later read too.
pub fn read_pipe_gets_chunks_then_eof(factory: impl Factory) {
    let lp = new_loop(factory);
    let (r, w) = os_pipe();
    let mut reader = lp.connect_read_pipe(r).unwrap();
    let mut w = File::from(w);
    let lp2 = lp.clone();
    lp.run_until_complete(async move {
        w.write_all(b"1").unwrap();
        let (n, buf) = reader.read_owned(Vec::with_capacity(100)).await;
        assert_eq!((n.unwrap(), &buf[..]), (1, &b"1"[..]));
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            w.write_all(b"2345").unwrap();
            w
        });
        let (n, buf) = reader.read_owned(buf).await;
        assert_eq!((n.unwrap(), &buf[..]), (4, &b"2345"[..]));
        let w = writer.join().unwrap();
        lp2.call_later(Duration::from_millis(10), move || drop(w))
            .unwrap();
        for _ in 0..2 {
            let (n, _) = reader.read_owned(Vec::with_capacity(16)).await;
            assert_eq!(n.unwrap(), 0, "end of stream");
        }
    })
    .unwrap();
    lp.close().unwrap();
}

/// PIP-1: a PTY master reads what is written to the slave, then reports
/// end of stream once the slave is closed.
pub fn pty_master_reads_then_eof(factory: impl Factory) {
    let lp = new_loop(factory);
    let (master, slave) = open_pty().unwrap();
    // Raw mode: no echo, no newline translation.
    // SAFETY: zeroed termios is a valid out-parameter; the fd is our slave.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(slave.as_raw_fd(), &mut t), 0);
        libc::cfmakeraw(&mut t);
        assert_eq!(libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &t), 0);
    }
    let mut writer = lp.connect_write_pipe(master.try_clone().unwrap()).unwrap();
    let mut reader = lp.connect_read_pipe(master).unwrap();
    let mut slave = File::from(slave);
    lp.run_until_complete(async move {
        // Master to slave: the terminal's input.
        let (res, _) = writer.write_all_owned(b"typed".to_vec()).await;
        res.unwrap();
        let mut typed = [0u8; 5];
        slave.read_exact(&mut typed).unwrap();
        assert_eq!(&typed, b"typed");
        drop(writer);
        // Slave to master: the terminal's output.
        slave.write_all(b"hello pty").unwrap();
        let mut got = Vec::new();
        while got.len() < 9 {
            let (n, buf) = reader.read_owned(Vec::with_capacity(64)).await;
            assert!(n.unwrap() > 0);
            got.extend_from_slice(&buf);
        }
        assert_eq!(got, b"hello pty");
        drop(slave);
        let (n, _) = reader.read_owned(Vec::with_capacity(64)).await;
        assert_eq!(n.unwrap(), 0, "a closed slave is end of stream");
    })
    .unwrap();
    lp.close().unwrap();
}

/// PIP-2: writes arrive; once the reader is closed every write fails with
/// `BrokenPipe` (and the loop is fine).
pub fn write_pipe_delivers_then_broken_pipe(factory: impl Factory) {
    let lp = new_loop(factory);
    let (r, w) = os_pipe();
    let mut writer = lp.connect_write_pipe(w).unwrap();
    let mut r = File::from(r);
    lp.run_until_complete(async move {
        let (res, _) = writer.write_all_owned(b"abc".to_vec()).await;
        res.unwrap();
        let mut buf = [0u8; 3];
        r.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"abc");
        drop(r);
        for _ in 0..3 {
            let (res, _) = writer.write_owned(b"more".to_vec()).await;
            assert_eq!(res.unwrap_err().kind(), std::io::ErrorKind::BrokenPipe);
        }
    })
    .unwrap();
    lp.close().unwrap();
}

/// PIP-3: a write blocked on a full pipe fails with `BrokenPipe` soon after
/// the reader closes.
pub fn full_pipe_write_fails_when_reader_closes(factory: impl Factory) {
    let lp = new_loop(factory);
    let (r, w) = os_pipe();
    let mut writer = lp.connect_write_pipe(w).unwrap();
    let lp2 = lp.clone();
    lp.run_until_complete(async move {
        let reader = File::from(r);
        let closer = lp2
            .call_later(Duration::from_millis(50), move || drop(reader))
            .unwrap();
        let t0 = std::time::Instant::now();
        let (res, _) = writer.write_all_owned(vec![7u8; 4 << 20]).await;
        assert_eq!(res.unwrap_err().kind(), std::io::ErrorKind::BrokenPipe);
        assert!(t0.elapsed() < Duration::from_secs(20));
        drop(closer);
    })
    .unwrap();
    lp.close().unwrap();
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A megabyte through a pipe with owned buffers, writer and reader in two tasks.
pub fn owned_buffers_move_a_megabyte(factory: impl Factory) {
    let lp = new_loop(factory);
    let (mut reader, mut writer) = pipe(&lp).unwrap();
    let data = pattern(1 << 20);
    let expected = data.clone();
    let lp2 = lp.clone();
    let got = lp
        .run_until_complete(async move {
            let w = lp2
                .create_task(async move {
                    let (res, _) = writer.write_all_owned(data).await;
                    res.unwrap();
                })
                .unwrap();
            let got = reader.read_to_end_owned().await.unwrap();
            w.await.unwrap();
            got
        })
        .unwrap();
    assert!(
        got == expected,
        "{} bytes received, content differs or short",
        got.len()
    );
    lp.close().unwrap();
}

async fn write_all_io(w: &mut PipeWriter, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        let n = std::future::poll_fn(|cx| Pin::new(&mut *w).poll_write(cx, data)).await?;
        data = &data[n..];
    }
    std::future::poll_fn(|cx| Pin::new(&mut *w).poll_flush(cx)).await
}

async fn read_to_end_io(r: &mut PipeReader) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 7000];
    loop {
        let n = std::future::poll_fn(|cx| Pin::new(&mut *r).poll_read(cx, &mut buf)).await?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// A megabyte through a pipe with the futures-io traits.
pub fn futures_io_traits_move_a_megabyte(factory: impl Factory) {
    let lp = new_loop(factory);
    let (mut reader, mut writer) = pipe(&lp).unwrap();
    let data = pattern(1 << 20);
    let expected = data.clone();
    let lp2 = lp.clone();
    let got = lp
        .run_until_complete(async move {
            let w = lp2
                .create_task(async move {
                    write_all_io(&mut writer, &data).await.unwrap();
                })
                .unwrap();
            let got = read_to_end_io(&mut reader).await.unwrap();
            w.await.unwrap();
            got
        })
        .unwrap();
    assert!(
        got == expected,
        "{} bytes received, content differs or short",
        got.len()
    );
    lp.close().unwrap();
}

/// `poll_close` closes the writer's descriptor: the reader sees end of
/// stream while the writer value still exists; later writes fail.
pub fn futures_io_close_gives_reader_eof(factory: impl Factory) {
    let lp = new_loop(factory);
    let (mut reader, mut writer) = pipe(&lp).unwrap();
    lp.run_until_complete(async move {
        write_all_io(&mut writer, b"bye").await.unwrap();
        std::future::poll_fn(|cx| Pin::new(&mut writer).poll_close(cx))
            .await
            .unwrap();
        assert_eq!(read_to_end_io(&mut reader).await.unwrap(), b"bye");
        assert!(write_all_io(&mut writer, b"x").await.is_err());
    })
    .unwrap();
    lp.close().unwrap();
}

/// BAD-9: a regular file or a directory is not a pipe: `InvalidArgument`.
pub fn bad_regular_file_or_directory_is_rejected(factory: impl Factory) {
    let lp = new_loop(factory);
    let file = OwnedFd::from(File::open("/proc/self/exe").unwrap());
    assert!(matches!(
        lp.connect_read_pipe(file),
        Err(Error::InvalidArgument(_))
    ));
    let dir = OwnedFd::from(File::open("/").unwrap());
    assert!(matches!(
        lp.connect_write_pipe(dir),
        Err(Error::InvalidArgument(_))
    ));
    lp.close().unwrap();
}

/// Streams close their descriptors when dropped, whether or not they were used.
pub fn dropping_streams_closes_descriptors(factory: impl Factory) {
    let before = fd_count();
    let lp = new_loop(factory);
    for _ in 0..10 {
        let (mut r, mut w) = pipe(&lp).unwrap();
        lp.run_until_complete(async move {
            let (res, _) = w.write_all_owned(b"x".to_vec()).await;
            res.unwrap();
            let (n, _) = r.read_owned(Vec::with_capacity(4)).await;
            assert_eq!(n.unwrap(), 1);
        })
        .unwrap();
        let (_r, _w) = pipe(&lp).unwrap();
    }
    lp.close().unwrap();
    drop(lp);
    assert_eq!(fd_count(), before);
}
