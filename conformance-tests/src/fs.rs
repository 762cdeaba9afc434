//! Async files (`loop_api::fs`): the same behaviour whether the backend
//! performs file operations (io_uring) or the loop runs them on its
//! executor (epoll backends, which answer them `Unsupported`).

use std::future::Future;
use std::io::{ErrorKind, Read, Seek, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use loop_api::fs::{self, File, OpenOptions, Stdin, Stdout};
use loop_api::{Error, EventLoop};

use crate::support::{fd_count, new_loop};
use crate::Factory;

#[doc(hidden)]
#[macro_export]
macro_rules! __fs_tests {
    ($f:expr) => {
        $crate::__section!($f, fs: [
            write_then_read_round_trip,
            read_at_and_write_at_use_offsets,
            cursor_reads_in_chunks_then_eof,
            metadata_reports_size_and_kind,
            fsync_and_fdatasync_succeed,
            rename_then_remove,
            create_dir_then_read_dir,
            missing_file_is_not_found,
            directory_opened_for_writing_is_a_typed_error,
            bad_options_and_paths_are_typed_errors,
            stdin_and_stdout_from_fd_accept_regular_files,
        ] exclusive [
            dropped_read_loses_nothing_and_leaks_no_fd,
            dropped_open_leaks_no_fd,
            stdin_redirected_from_a_file_reads_it,
        ]);
    };
}

/// A fresh, empty directory for one test.
fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "evloop-fs-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    dir
}

fn run<T: 'static>(lp: &EventLoop, fut: impl Future<Output = T> + 'static) -> T {
    lp.run_until_complete(fut).unwrap()
}

/// Polls `fut` exactly once (so its operation is submitted), then drops it.
async fn poll_once_then_drop<F: Future>(fut: F) -> bool {
    let mut fut = Box::pin(fut);
    let mut first = true;
    let pending = std::future::poll_fn(|cx| {
        if first {
            first = false;
            return Poll::Ready(fut.as_mut().poll(cx).is_pending());
        }
        Poll::Ready(false)
    })
    .await;
    drop(fut);
    pending
}

/// Runs the loop until `done()` or 10 s have passed.
fn run_until(lp: &EventLoop, done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        run(lp, loop_api::sleep(Duration::from_millis(5)));
    }
    true
}

/// `fs::write` then `fs::read` give back the bytes (a megabyte, several
/// reads), and `File::read_to_end` the same.
pub fn write_then_read_round_trip(factory: impl Factory) {
    let lp = new_loop(factory);
    let dir = scratch("round-trip");
    let path = dir.join("data");
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let expected = data.clone();
    let p = path.clone();
    run(&lp, async move {
        fs::write(&p, data).await.unwrap();
        assert_eq!(fs::read(&p).await.unwrap(), expected);
        let mut file = File::open(&p).await.unwrap();
        assert_eq!(file.read_to_end_owned().await.unwrap(), expected);
        assert_eq!(file.position(), expected.len() as u64);
        assert!(file.read_to_end_owned().await.unwrap().is_empty(), "at end");
    });
    assert_eq!(std::fs::read(&path).unwrap().len(), 1_000_000);
    lp.close().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

/// `write_at` writes where it is told and `read_at` reads from there; the
/// cursor is not moved by either.
pub fn read_at_and_write_at_use_offsets(factory: impl Factory) {
    let lp = new_loop(factory);
    let dir = scratch("at");
    let path = dir.join("f");
    let p = path.clone();
    run(&lp, async move {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .open(&p)
            .await
            .unwrap();
        let (res, _) = file.write_all_at(b"0123456789".to_vec(), 0).await;
        res.unwrap();
        let (n, _) = file.write_at(&b"abc"[..], 4).await;
        assert_eq!(n.unwrap(), 3);
        let (n, buf) = file.read_at(Vec::with_capacity(4), 3).await;
        assert_eq!((n.unwrap(), &buf[..]), (4, &b"3abc"[..]));
        let (n, buf) = file.read_at(Vec::with_capacity(4), 100).await;
        assert_eq!((n.unwrap(), buf.len()), (0, 0), "past the end");
        assert_eq!(file.position(), 0);
    });
    assert_eq!(std::fs::read(&path).unwrap(), b"0123abc789");
    lp.close().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

/// `read` at the cursor returns the file in order, chunk by chunk, then 0.
pub fn cursor_reads_in_chunks_then_eof(factory: impl Factory) {
    let lp = new_loop(factory);
    let dir = scratch("cursor");
    let path = dir.join("f");
    std::fs::write(&path, b"hello world").unwrap();
    let p = path.clone();
    run(&lp, async move {
        let mut file = File::open(&p).await.unwrap();
        let mut got = Vec::new();
        loop {
            let (n, buf) = file.read_owned(Vec::with_capacity(4)).await;
            let n = n.unwrap();
            if n == 0 {
                break;
            }
            assert!(n <= 4);
            got.extend_from_slice(&buf);
        }
        assert_eq!(got, b"hello world");
        file.seek(6);
        let (n, buf) = file.read_owned(Vec::with_capacity(16)).await;
        assert_eq!((n.unwrap(), &buf[..]), (5, &b"world"[..]));
    });
    lp.close().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

/// Metadata by path and by descriptor: size, file or directory.
pub fn metadata_reports_size_and_kind(factory: impl Factory) {
    let lp = new_loop(factory);
    let dir = scratch("meta");
    let path = dir.join("f");
    std::fs::write(&path, vec![7u8; 12345]).unwrap();
    let (p, d) = (path.clone(), dir.clone());
    run(&lp, async move {
        let m = fs::metadata(&p).await.unwrap();
        assert_eq!(m.len(), 12345);
        assert!(m.is_file() && !m.is_dir());
        let m = fs::metadata(&d).await.unwrap();
        assert!(m.is_dir() && !m.is_file());
        let mut file = OpenOptions::new().append(true).open(&p).await.unwrap();
        let (res, _) = file.write_all_owned(b"tail".to_vec()).await;
        res.unwrap();
        let m = file.metadata().await.unwrap();
        assert_eq!(m.len(), 12349, "the append went to the end");
        assert!(m.modified() > std::time::SystemTime::UNIX_EPOCH);
    });
    lp.close().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

/// `sync_all` and `sync_data` succeed on a written file.
pub fn fsync_and_fdatasync_succeed(factory: impl Factory) {
    let lp = new_loop(factory);
    let dir = scratch("fsync");
    let path = dir.join("f");
    let p = path.clone();
    run(&lp, async move {
        let mut file = File::create(&p).await.unwrap();
        let (res, _) = file.write_all_owned(b"durable".to_vec()).await;
        res.unwrap();
        file.sync_data().await.unwrap();
        file.sync_all().await.unwrap();
    });
    assert_eq!(std::fs::read(&path).unwrap(), b"durable");
    lp.close().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

/// `rename` moves a file (replacing the target); `remove_file` removes
/// it, and removing it again is `NotFound`.
pub fn rename_then_remove(factory: impl Factory) {
    let lp = new_loop(factory);
    let dir = scratch("rename");
    let (a, b) = (dir.join("a"), dir.join("b"));
    std::fs::write(&a, b"A").unwrap();
    std::fs::write(&b, b"old").unwrap();
    let (a2, b2) = (a.clone(), b.clone());
    run(&lp, async move {
        fs::rename(&a2, &b2).await.unwrap();
        assert!(!a2.exists());
        assert_eq!(std::fs::read(&b2).unwrap(), b"A");
        fs::remove_file(&b2).await.unwrap();
        assert!(!b2.exists());
        let err = fs::remove_file(&b2).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        let err = fs::rename(&a2, &b2).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    });
    lp.close().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

/// `create_dir` makes a directory `read_dir` lists with its files;
/// `remove_dir` refuses a non-empty one and removes an empty one.
pub fn create_dir_then_read_dir(factory: impl Factory) {
    let lp = new_loop(factory);
    let dir = scratch("mkdir");
    let sub = dir.join("sub");
    let s = sub.clone();
    run(&lp, async move {
        fs::create_dir(&s).await.unwrap();
        let err = fs::create_dir(&s).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
        fs::write(s.join("x"), b"1".to_vec()).await.unwrap();
        fs::create_dir(s.join("y")).await.unwrap();
        let mut names: Vec<(String, bool)> = fs::read_dir(&s)
            .await
            .unwrap()
            .iter()
            .map(|e| {
                assert_eq!(e.path(), s.join(e.file_name()));
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.file_type().is_dir(),
                )
            })
            .collect();
        names.sort();
        assert_eq!(names, [("x".to_owned(), false), ("y".to_owned(), true)]);
        let err = fs::remove_dir(&s).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DirectoryNotEmpty, "{err}");
        fs::remove_dir(s.join("y")).await.unwrap();
        fs::remove_file(s.join("x")).await.unwrap();
        fs::remove_dir(&s).await.unwrap();
        assert!(!s.exists());
        let err = fs::read_dir(&s).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    });
    lp.close().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

/// A missing file: open, read and metadata fail with `Error::Io` of kind
/// `NotFound`.
pub fn missing_file_is_not_found(factory: impl Factory) {
    let lp = new_loop(factory);
    let dir = scratch("missing");
    let path = dir.join("nope");
    run(&lp, async move {
        match File::open(&path).await {
            Err(Error::Io { source: e, .. }) => assert_eq!(e.kind(), ErrorKind::NotFound),
            other => panic!("expected NotFound, got {other:?}"),
        }
        assert_eq!(
            fs::read(&path).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            fs::metadata(&path).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
    });
    lp.close().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

/// Opening a directory for writing is `IsADirectory`; reading one opened
/// read-only is `IsADirectory` too.
pub fn directory_opened_for_writing_is_a_typed_error(factory: impl Factory) {
    let lp = new_loop(factory);
    let dir = scratch("dir-write");
    let d = dir.clone();
    run(&lp, async move {
        match OpenOptions::new().write(true).open(&d).await {
            Err(Error::Io { source: e, .. }) => assert_eq!(e.kind(), ErrorKind::IsADirectory),
            other => panic!("expected IsADirectory, got {other:?}"),
        }
        let mut file = File::open(&d).await.unwrap();
        let (n, _) = file.read_owned(Vec::with_capacity(8)).await;
        assert_eq!(n.unwrap_err().kind(), ErrorKind::IsADirectory);
    });
    lp.close().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

/// Options that ask for no access, `create` without write access, a path
/// with a NUL byte: `InvalidArgument`; outside a loop: `NoRunningLoop`.
pub fn bad_options_and_paths_are_typed_errors(factory: impl Factory) {
    let lp = new_loop(factory);
    let dir = scratch("bad");
    let d = dir.clone();
    run(&lp, async move {
        let err = OpenOptions::new().open(d.join("f")).await.unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
        let err = OpenOptions::new()
            .read(true)
            .create(true)
            .open(d.join("f"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
        let err = fs::read(d.join("a\0b")).await.unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
        let err = fs::create_dir("").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err:?}");
    });
    // No running loop: a typed error, not a panic.
    let outside = lp.run_until_complete(async { 0 }).unwrap();
    assert_eq!(outside, 0);
    let err = futures_lite_block_on(fs::metadata(&dir)).unwrap_err();
    assert!(matches!(err, Error::NoRunningLoop), "{err:?}");
    lp.close().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

/// Polls a future that must finish at its first poll (no loop needed).
fn futures_lite_block_on<T>(fut: impl Future<Output = T>) -> T {
    let mut fut = Box::pin(fut);
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("expected an immediate result"),
    }
}

/// `Stdin::from_fd` and `Stdout::from_fd` take a regular file (which the
/// pipe path refuses) and read or write it from its current offset,
/// moving the shared offset along.
pub fn stdin_and_stdout_from_fd_accept_regular_files(factory: impl Factory) {
    let lp = new_loop(factory);
    let dir = scratch("stdio-fd");
    let path = dir.join("in");
    std::fs::write(&path, b"skip|the rest of the input").unwrap();
    let mut std_in = std::fs::File::open(&path).unwrap();
    let mut skip = [0u8; 5];
    std_in.read_exact(&mut skip).unwrap();
    // The pipe path refuses it...
    let refused = lp.connect_read_pipe(std_in.try_clone().unwrap().into());
    assert!(matches!(refused, Err(Error::InvalidArgument(_))));
    // ...the standard-stream path takes it, from the current offset.
    let mut stdin = Stdin::from_fd(&lp, std_in.try_clone().unwrap().into()).unwrap();
    assert!(stdin.is_file());
    let out_path = dir.join("out");
    let mut std_out = std::fs::File::create(&out_path).unwrap();
    std_out.write_all(b"first ").unwrap();
    let mut stdout = Stdout::from_fd(&lp, std_out.try_clone().unwrap().into()).unwrap();
    assert!(stdout.is_file());
    run(&lp, async move {
        assert_eq!(
            stdin.read_to_end_owned().await.unwrap(),
            b"the rest of the input"
        );
        let (res, _) = stdout.write_all_owned(b"second ".to_vec()).await;
        res.unwrap();
    });
    // The shared offsets moved along: synchronous I/O continues after.
    assert_eq!(std_in.stream_position().unwrap(), 26);
    std_out.write_all(b"third").unwrap();
    assert_eq!(std::fs::read(&out_path).unwrap(), b"first second third");
    // A pipe still goes the pipe way.
    let (r, _w) = std::io::pipe().unwrap();
    let stdin = Stdin::from_fd(&lp, OwnedFd::from(r)).unwrap();
    assert!(!stdin.is_file());
    lp.close().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

/// Standard input redirected from a regular file (descriptor 0 replaced
/// for the test, as `prog < file` does): `evloop::stdin()` reads it.
pub fn stdin_redirected_from_a_file_reads_it(factory: impl Factory) {
    let lp = new_loop(factory);
    let dir = scratch("stdin");
    let path = dir.join("in");
    let content: Vec<u8> = (0..200_000u32).map(|i| (i % 13) as u8 + b'a').collect();
    std::fs::write(&path, &content).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    // SAFETY: dup/dup2 on descriptors this test owns; fd 0 is restored below.
    let saved = unsafe { libc::dup(0) };
    assert!(saved >= 0);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::dup2(file.as_raw_fd(), 0) }, 0);
    let got = lp.run_until_complete(async move {
        let mut stdin = fs::stdin()?;
        assert!(stdin.is_file());
        stdin.read_to_end_owned().await
    });
    // SAFETY: put the original standard input back, close the copy.
    unsafe {
        libc::dup2(saved, 0);
        libc::close(saved);
    }
    assert_eq!(got.unwrap().unwrap(), content);
    lp.close().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

/// A read dropped after it was submitted (a cancelled task, a lost
/// `select!` branch) loses nothing: the next read at the cursor returns
/// every byte from the start; and once the file is dropped, every
/// descriptor is closed.
pub fn dropped_read_loses_nothing_and_leaks_no_fd(factory: impl Factory) {
    let lp = new_loop(factory);
    let dir = scratch("drop-read");
    let path = dir.join("f");
    let content: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
    std::fs::write(&path, &content).unwrap();
    // The executor's threads are created on first use; let them exist first.
    run(&lp, {
        let p = path.clone();
        async move { fs::metadata(&p).await.unwrap() }
    });
    let before = fd_count();
    let p = path.clone();
    let expected = content.clone();
    run(&lp, async move {
        let mut file = File::open(&p).await.unwrap();
        for _ in 0..20 {
            poll_once_then_drop(file.read_owned(Vec::with_capacity(4096))).await;
        }
        assert_eq!(
            file.position(),
            0,
            "a dropped read does not move the cursor"
        );
        assert_eq!(file.read_to_end_owned().await.unwrap(), expected);
    });
    assert!(
        run_until(&lp, || fd_count() <= before),
        "descriptors leaked: {} before, {} after",
        before,
        fd_count()
    );
    lp.close().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

/// An open dropped after it was submitted leaks no descriptor: the file
/// it may have opened is closed when its late result arrives.
pub fn dropped_open_leaks_no_fd(factory: impl Factory) {
    let lp = new_loop(factory);
    let dir = scratch("drop-open");
    let path = dir.join("f");
    std::fs::write(&path, b"x").unwrap();
    run(&lp, {
        let p = path.clone();
        async move { fs::metadata(&p).await.unwrap() }
    });
    let before = fd_count();
    let p = path.clone();
    let submitted = run(&lp, async move {
        let mut pending = 0;
        for _ in 0..50 {
            pending += usize::from(poll_once_then_drop(File::open(&p)).await);
        }
        pending
    });
    assert!(submitted > 0, "no open was still pending at its first poll");
    assert!(
        run_until(&lp, || fd_count() <= before),
        "descriptors leaked: {} before, {} after",
        before,
        fd_count()
    );
    lp.close().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}
