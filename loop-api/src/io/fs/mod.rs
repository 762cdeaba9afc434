//! Async files: [`File`], [`OpenOptions`], [`Metadata`] and the path
//! functions ([`read`], [`write`](fn@write), [`metadata`], [`rename`],
//! [`remove_file`], [`remove_dir`], [`create_dir`], [`read_dir`]), plus
//! [`stdin`], [`stdout`] and [`stderr`] that also work when redirected to or
//! from a regular file.
//!
//! # How each operation runs
//!
//! Every operation is first offered to the backend as a file operation of
//! the boundary (`Op::OpenAt`, `ReadAt`, `WriteAt`, `Statx`, `Fsync`,
//! `RenameAt`, `UnlinkAt`, `MkdirAt`):
//! - **io_uring** performs it as a real completion (one SQE: `OPENAT`,
//!   `READ`/`WRITE` with an offset, `STATX`, `FSYNC`, `RENAMEAT`,
//!   `UNLINKAT`, `MKDIRAT`), each opcode probed once; one this kernel lacks
//!   is answered `Unsupported`;
//! - **epoll** (mio, polling) cannot wait on a regular file (it is always
//!   "ready", and epoll refuses to register it), and blocking the loop's
//!   thread is not acceptable, so those backends answer `Unsupported` at
//!   once.
//!
//! An `Unsupported` answer costs no allocation and no syscall; the
//! operation then runs as a [`run_in_executor`](EventLoop::run_in_executor)
//! job doing the same syscall. Buffers never cross to the executor: a read
//! there fills a buffer of its own that is copied into yours on the loop
//! thread, a write copies your bytes first (your buffer type need not be
//! `Send`). [`read_dir`] always runs on the executor: io_uring has no
//! `getdents` opcode (Linux 6.x).
//!
//! # Positions, and what cancelling does
//!
//! A [`File`] has a cursor for [`read_owned`](File::read_owned)/[`write_owned`](File::write_owned),
//! and [`read_at`](File::read_at)/[`write_at`](File::write_at) take an
//! explicit offset; every operation is positional (`pread`/`pwrite`, or the
//! SQE's offset), and the cursor moves only when a result is returned. So a
//! read that is cancelled (its future dropped, its task cancelled, a
//! `wait_for` timeout) loses nothing: the bytes are still in the file at
//! the cursor, and the next read returns them. A cancelled write may or may
//! not have written (as with any cancelled send); the cursor does not move.
//! On an `O_APPEND` file the kernel appends every write whatever the offset,
//! and the cursor still moves by the count written.
//!
//! # Descriptors
//!
//! A `File` keeps its descriptor in an `Arc<OwnedFd>`, and every operation
//! holds a clone until the kernel (or the executor job) is done with it, so
//! the descriptor is closed only after the last one: a number the kernel
//! reuses is never read or written by an old operation. It is an `Arc`, not
//! the `Rc<LoopFd>` of sockets and pipes, because executor jobs hold it on
//! other threads; no backend keeps per-descriptor state for a regular file
//! (epoll never sees it, io_uring needs no registration), so no
//! `release_fd` is needed before the close. A file a cancelled open created
//! is closed when the late result arrives (on io_uring, the orphaned
//! completion; on the executor, the abandoned job's result).
//!
//! # Errors
//!
//! What the kernel refuses is an [`Error::Io`] carrying its [`io::Error`]:
//! a missing file is [`io::ErrorKind::NotFound`], a directory opened for
//! writing [`io::ErrorKind::IsADirectory`] ([`Error::kind`] reads it). A
//! path with a NUL byte, or options that ask for no access, are
//! [`Error::InvalidArgument`]. Nothing panics on bad input.
//!
//! ```
//! # evloop::run(async {
//! use evloop::fs;
//! let dir = std::env::temp_dir().join(format!("evloop-fs-doc-{}", std::process::id()));
//! fs::create_dir(&dir).await?;
//! let path = dir.join("hello.txt");
//! fs::write(&path, b"hello".to_vec()).await?;
//! assert_eq!(fs::read(&path).await?, b"hello");
//! assert_eq!(fs::metadata(&path).await?.len(), 5);
//! let missing = fs::read(dir.join("missing")).await.unwrap_err();
//! assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
//! fs::remove_file(&path).await?;
//! fs::remove_dir(&dir).await?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap().unwrap();
//! ```

mod stdio;

pub use stdio::{stderr, stdin, stdout, Stdin, Stdout};

use std::ffi::{CString, OsString};
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::driver::{Op, OpOutput};
use crate::loop_core::error::{Error, Result};
use crate::loop_core::{get_running_loop, EventLoop};
use crate::op::OpFuture;

/// Size of each chunk [`File::read_to_end_owned`] asks for.
const CHUNK: usize = 64 * 1024;

/// `true` if the backend refused the operation (the boundary's
/// "Unsupported": that kind, with no OS error code), as opposed to the
/// kernel failing it.
fn refused(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Unsupported && e.raw_os_error().is_none()
}

/// Runs `op` on the backend; `None` if the backend refused it (the caller
/// then uses the executor).
///
/// # Safety
/// As [`OpFuture::new`]: every pointer in `op` points into heap memory
/// owned by `keep`, and its descriptors stay open while `keep` lives.
async unsafe fn on_backend<K: 'static>(
    lp: &EventLoop,
    op: Op,
    keep: K,
) -> (Option<io::Result<OpOutput>>, K) {
    // SAFETY: the caller's contract is OpFuture::new's.
    let (result, keep) = unsafe { OpFuture::new(lp, op, keep) }.await;
    match result {
        Err(e) if refused(&e) => (None, keep),
        other => (Some(other), keep),
    }
}

/// Runs the blocking `f` on the loop's executor.
async fn on_executor<T: Send + 'static>(
    lp: &EventLoop,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    match lp.run_in_executor(f).await {
        Ok(result) => result,
        Err(e) => Err(e.into()),
    }
}

/// `path` as the NUL-terminated string the kernel wants.
fn c_path(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::InvalidArgument(format!("path {path:?} contains a NUL byte")))
}

/// Turns a libc return value into an `io::Result`.
fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Turns a libc byte count into an `io::Result`.
fn cvt_len(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

fn running_loop() -> Result<EventLoop> {
    let lp = get_running_loop()?;
    lp.check_open()?;
    Ok(lp)
}

/// How to open a file: the `O_*` flags of `open(2)`, with the builder of
/// [`std::fs::OpenOptions`].
///
/// ```
/// # evloop::run(async {
/// use evloop::fs::OpenOptions;
/// let path = std::env::temp_dir().join(format!("evloop-oo-doc-{}", std::process::id()));
/// let mut file = OpenOptions::new().write(true).create(true).truncate(true).open(&path).await?;
/// let (res, _) = file.write_all_owned(b"abc".to_vec()).await;
/// res?;
/// // A directory opened for writing is a typed error, not a panic:
/// let err = OpenOptions::new().write(true).open(std::env::temp_dir()).await.unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::IsADirectory);
/// evloop::fs::remove_file(&path).await?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap().unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct OpenOptions {
    read: bool,
    write: bool,
    append: bool,
    truncate: bool,
    create: bool,
    create_new: bool,
    mode: libc::mode_t,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions::new()
    }
}

impl OpenOptions {
    /// No access yet (one of `read`, `write`, `append` must be set); new
    /// files get mode `0o666` (before the umask).
    pub fn new() -> OpenOptions {
        OpenOptions {
            read: false,
            write: false,
            append: false,
            truncate: false,
            create: false,
            create_new: false,
            mode: 0o666,
        }
    }

    /// Open for reading.
    pub fn read(&mut self, yes: bool) -> &mut Self {
        self.read = yes;
        self
    }

    /// Open for writing.
    pub fn write(&mut self, yes: bool) -> &mut Self {
        self.write = yes;
        self
    }

    /// Open for appending (implies writing; every write goes to the end).
    pub fn append(&mut self, yes: bool) -> &mut Self {
        self.append = yes;
        self
    }

    /// Truncate the file to length 0 (needs write access).
    pub fn truncate(&mut self, yes: bool) -> &mut Self {
        self.truncate = yes;
        self
    }

    /// Create the file if it does not exist (needs write or append access).
    pub fn create(&mut self, yes: bool) -> &mut Self {
        self.create = yes;
        self
    }

    /// Create the file, failing with `AlreadyExists` if it exists.
    pub fn create_new(&mut self, yes: bool) -> &mut Self {
        self.create_new = yes;
        self
    }

    /// The permission bits of a file this creates (before the umask).
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode as libc::mode_t;
        self
    }

    /// The `open(2)` flags, or why these options make no sense.
    fn flags(&self) -> Result<libc::c_int> {
        let access = match (self.read, self.write || self.append) {
            (true, false) => libc::O_RDONLY,
            (false, true) => libc::O_WRONLY,
            (true, true) => libc::O_RDWR,
            (false, false) => {
                return Err(Error::InvalidArgument(
                    "open options ask for no access (set read, write or append)".to_owned(),
                ))
            }
        };
        let writes = self.write || self.append;
        if (self.truncate || self.create || self.create_new) && !writes {
            return Err(Error::InvalidArgument(
                "truncate, create and create_new need write or append access".to_owned(),
            ));
        }
        let mut flags = access | libc::O_CLOEXEC;
        if self.append {
            flags |= libc::O_APPEND;
        }
        if self.truncate && !self.append {
            flags |= libc::O_TRUNC;
        }
        if self.create_new {
            flags |= libc::O_CREAT | libc::O_EXCL;
        } else if self.create {
            flags |= libc::O_CREAT;
        }
        Ok(flags)
    }

    /// Opens `path` on the running loop.
    pub async fn open(&self, path: impl AsRef<Path>) -> Result<File> {
        let lp = running_loop()?;
        self.open_on(&lp, path.as_ref()).await
    }

    /// Opens `path` on `lp`.
    pub async fn open_on(&self, lp: &EventLoop, path: impl AsRef<Path>) -> Result<File> {
        let path = path.as_ref();
        Error::ctx(self.open_inner(lp, path).await, || {
            format!("open {}", path.display())
        })
    }

    async fn open_inner(&self, lp: &EventLoop, path: &Path) -> Result<File> {
        let flags = self.flags()?;
        let path = c_path(path)?;
        let mode = self.mode;
        let op = Op::OpenAt {
            dirfd: libc::AT_FDCWD,
            path: path.as_ptr(),
            flags,
            mode,
        };
        // SAFETY: the path points into the CString's heap buffer, owned by
        // the keep-alive; no descriptor besides AT_FDCWD.
        let (result, path) = unsafe { on_backend(lp, op, path) }.await;
        let fd = match result {
            Some(result) => result?
                .accepted
                .ok_or_else(|| io::Error::other("the backend's OpenAt returned no descriptor"))?,
            None => {
                on_executor(lp, move || {
                    // SAFETY: a valid NUL-terminated path; the result is a
                    // new descriptor nobody else owns.
                    let fd =
                        cvt(unsafe { libc::open(path.as_ptr(), flags, libc::c_uint::from(mode)) })?;
                    // SAFETY: as above: open returned a fresh descriptor.
                    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
                })
                .await?
            }
        };
        Ok(File::from_fd(lp, fd))
    }
}

/// An open file on a loop, with a cursor (see the module docs).
///
/// Reads and writes take owned buffers and hand them back with the result,
/// as sockets and pipes do.
///
/// ```
/// # evloop::run(async {
/// use evloop::fs::File;
/// let path = std::env::temp_dir().join(format!("evloop-file-doc-{}", std::process::id()));
/// let mut file = File::create(&path).await?;
/// let (res, _) = file.write_all_owned(b"hello world".to_vec()).await;
/// res?;
/// file.sync_all().await?;
/// let mut file = File::open(&path).await?; // create() is write-only
/// let (n, buf) = file.read_at(Vec::with_capacity(5), 6).await;
/// assert_eq!((n?, &buf[..]), (5, &b"world"[..]));
/// assert_eq!(file.read_to_end_owned().await?, b"hello world");
/// evloop::fs::remove_file(&path).await?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap().unwrap();
/// ```
pub struct File {
    lp: EventLoop,
    fd: Arc<OwnedFd>,
    pos: u64,
    /// Keep the open file's own offset at the cursor (a shared standard
    /// stream: see [`stdin`]).
    sync_offset: bool,
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File")
            .field("fd", &self.fd.as_raw_fd())
            .field("pos", &self.pos)
            .finish()
    }
}

impl File {
    /// Opens `path` read-only on the running loop.
    pub async fn open(path: impl AsRef<Path>) -> Result<File> {
        OpenOptions::new().read(true).open(path).await
    }

    /// Opens `path` for writing on the running loop, creating it or
    /// truncating it.
    pub async fn create(path: impl AsRef<Path>) -> Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .await
    }

    /// Options to open a file with.
    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }

    /// Wraps an open descriptor (a regular file) for `lp`, cursor at 0.
    pub fn from_fd(lp: &EventLoop, fd: OwnedFd) -> File {
        File {
            lp: lp.clone(),
            fd: Arc::new(fd),
            pos: 0,
            sync_offset: false,
        }
    }

    /// Wraps a [`std::fs::File`] for `lp`; the cursor starts at its current
    /// position.
    pub fn from_std(lp: &EventLoop, file: std::fs::File) -> Result<File> {
        use std::io::Seek;
        let mut file = file;
        let pos = file.stream_position()?;
        let mut f = File::from_fd(lp, file.into());
        f.pos = pos;
        Ok(f)
    }

    fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The cursor: where the next [`read_owned`](Self::read_owned) or
    /// [`write_owned`](Self::write_owned) starts.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Moves the cursor to `pos` (no syscall; past the end is allowed, as
    /// with `lseek`).
    pub fn seek(&mut self, pos: u64) {
        self.pos = pos;
        self.sync_shared_offset();
    }

    fn advance(&mut self, n: usize) {
        self.pos += n as u64;
        self.sync_shared_offset();
    }

    fn sync_shared_offset(&self) {
        if self.sync_offset {
            if let Ok(pos) = libc::off_t::try_from(self.pos) {
                // SAFETY: lseek on a descriptor we hold; it never blocks.
                // A failure only leaves the shared offset where it was.
                unsafe { libc::lseek(self.raw(), pos, libc::SEEK_SET) };
            }
        }
    }

    /// Reads at most `buf.bytes_total()` bytes at `offset` into `buf`
    /// (replacing its contents); `Ok(0)` at end of file. The cursor does
    /// not move.
    pub async fn read_at<B: IoBufMut>(&self, mut buf: B, offset: u64) -> BufResult<usize, B> {
        let len = buf.bytes_total();
        let op = Op::ReadAt {
            fd: self.raw(),
            buf: buf.stable_mut_ptr(),
            len,
            offset,
        };
        // SAFETY: the pointer is `buf`'s stable memory of `len` bytes and
        // the descriptor is held by the `Arc`, both kept by the future.
        let (result, (mut buf, _fd)) =
            unsafe { on_backend(&self.lp, op, (buf, self.fd.clone())) }.await;
        match result {
            Some(Ok(out)) => {
                let n = out.bytes.min(len);
                // SAFETY: the kernel wrote `n <= len` bytes at the start.
                unsafe { buf.set_init(n) };
                (Ok(n), buf)
            }
            Some(Err(e)) => (Err(e.into()), buf),
            None => {
                let fd = self.fd.clone();
                let job = on_executor(&self.lp, move || {
                    let mut data = vec![0u8; len];
                    let n = pread_at(fd.as_raw_fd(), &mut data, offset)?;
                    data.truncate(n);
                    Ok(data)
                });
                match job.await {
                    Ok(data) => {
                        let n = data.len().min(len);
                        // SAFETY: `buf` has `len >= n` writable bytes at its
                        // stable pointer, which `data` does not overlap.
                        unsafe {
                            std::ptr::copy_nonoverlapping(data.as_ptr(), buf.stable_mut_ptr(), n);
                            buf.set_init(n);
                        }
                        (Ok(n), buf)
                    }
                    Err(e) => (Err(e.into()), buf),
                }
            }
        }
    }

    /// Writes at most `buf.bytes_init()` bytes of `buf` at `offset`;
    /// returns how many were written. The cursor does not move.
    pub async fn write_at<B: IoBuf>(&self, buf: B, offset: u64) -> BufResult<usize, B> {
        let len = buf.bytes_init();
        let op = Op::WriteAt {
            fd: self.raw(),
            buf: buf.stable_ptr(),
            len,
            offset,
        };
        // SAFETY: the pointer is `buf`'s stable memory of `len` bytes and
        // the descriptor is held by the `Arc`, both kept by the future.
        let (result, (buf, _fd)) =
            unsafe { on_backend(&self.lp, op, (buf, self.fd.clone())) }.await;
        match result {
            Some(result) => (
                result.map(|out| out.bytes.min(len)).map_err(Error::from),
                buf,
            ),
            None => {
                let fd = self.fd.clone();
                let data = buf.as_slice().to_vec();
                let n = on_executor(&self.lp, move || pwrite_at(fd.as_raw_fd(), &data, offset));
                (n.await.map_err(Error::from), buf)
            }
        }
    }

    /// Writes all of `buf` at `offset` (several writes if the kernel takes
    /// less); a write of 0 bytes is `WriteZero`. The cursor does not move.
    pub async fn write_all_at<B: IoBuf>(&self, buf: B, offset: u64) -> BufResult<(), B> {
        let len = buf.bytes_init();
        let mut done = 0;
        let mut buf = buf;
        while done < len {
            let op = Op::WriteAt {
                fd: self.raw(),
                // SAFETY: `done < len`: inside `buf`'s initialised bytes.
                buf: unsafe { buf.stable_ptr().add(done) },
                len: len - done,
                offset: offset + done as u64,
            };
            // SAFETY: as in `write_at`.
            let (result, (back, _fd)) =
                unsafe { on_backend(&self.lp, op, (buf, self.fd.clone())) }.await;
            buf = back;
            match result {
                Some(Ok(out)) if out.bytes == 0 => {
                    return (Err(io::Error::from(io::ErrorKind::WriteZero).into()), buf)
                }
                Some(Ok(out)) => done += out.bytes.min(len - done),
                Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Some(Err(e)) => return (Err(e.into()), buf),
                None => {
                    // The rest in one executor job.
                    let fd = self.fd.clone();
                    let data = buf.as_slice()[done..].to_vec();
                    let at = offset + done as u64;
                    let job = on_executor(&self.lp, move || {
                        let mut written = 0;
                        while written < data.len() {
                            match pwrite_at(fd.as_raw_fd(), &data[written..], at + written as u64) {
                                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                                Ok(n) => written += n,
                                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                                Err(e) => return Err(e),
                            }
                        }
                        Ok(())
                    });
                    return (job.await.map_err(Error::from), buf);
                }
            }
        }
        (Ok(()), buf)
    }

    /// Reads at the cursor into `buf` and moves the cursor past what was
    /// read; `Ok(0)` at end of file.
    pub async fn read_owned<B: IoBufMut>(&mut self, buf: B) -> BufResult<usize, B> {
        let (result, buf) = self.read_at(buf, self.pos).await;
        if let Ok(n) = result {
            self.advance(n);
        }
        (result, buf)
    }

    /// Writes at the cursor and moves it past what was written.
    pub async fn write_owned<B: IoBuf>(&mut self, buf: B) -> BufResult<usize, B> {
        let (result, buf) = self.write_at(buf, self.pos).await;
        if let Ok(n) = result {
            self.advance(n);
        }
        (result, buf)
    }

    /// Writes all of `buf` at the cursor and moves it past the end of it.
    /// On an error the cursor does not move (part may have been written).
    pub async fn write_all_owned<B: IoBuf>(&mut self, buf: B) -> BufResult<(), B> {
        let len = buf.bytes_init();
        let (result, buf) = self.write_all_at(buf, self.pos).await;
        if result.is_ok() {
            self.advance(len);
        }
        (result, buf)
    }

    /// Reads from the cursor to the end of the file, in 64 KiB reads, and
    /// moves the cursor there.
    pub async fn read_to_end_owned(&mut self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut chunk = Vec::with_capacity(CHUNK);
        loop {
            let op = Op::ReadAt {
                fd: self.raw(),
                buf: chunk.as_mut_ptr(),
                len: CHUNK,
                offset: self.pos,
            };
            // SAFETY: as in `read_at`: the chunk's heap memory of CHUNK
            // bytes and the descriptor are kept by the future.
            let (result, (back, _fd)) =
                unsafe { on_backend(&self.lp, op, (chunk, self.fd.clone())) }.await;
            chunk = back;
            match result {
                Some(Ok(out_op)) if out_op.bytes == 0 => return Ok(out),
                Some(Ok(out_op)) => {
                    let n = out_op.bytes.min(CHUNK);
                    // SAFETY: the kernel wrote `n <= CHUNK` bytes.
                    unsafe { chunk.set_len(n) };
                    out.extend_from_slice(&chunk);
                    chunk.clear();
                    self.advance(n);
                }
                Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Some(Err(e)) => return Err(e.into()),
                None => {
                    // The rest in one executor job.
                    let fd = self.fd.clone();
                    let at = self.pos;
                    let rest = on_executor(&self.lp, move || {
                        let mut rest = Vec::new();
                        let mut buf = vec![0u8; CHUNK];
                        loop {
                            match pread_at(fd.as_raw_fd(), &mut buf, at + rest.len() as u64) {
                                Ok(0) => return Ok(rest),
                                Ok(n) => rest.extend_from_slice(&buf[..n]),
                                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                                Err(e) => return Err(e),
                            }
                        }
                    })
                    .await?;
                    self.advance(rest.len());
                    out.extend_from_slice(&rest);
                    return Ok(out);
                }
            }
        }
    }

    /// The file's metadata (`statx` on the descriptor).
    pub async fn metadata(&self) -> Result<Metadata> {
        statx(
            &self.lp,
            self.raw(),
            c"".to_owned(),
            libc::AT_EMPTY_PATH,
            Some(self.fd.clone()),
        )
        .await
    }

    /// Flushes the file's data and metadata to the device (`fsync`).
    pub async fn sync_all(&self) -> Result<()> {
        self.fsync(false).await
    }

    /// Flushes the file's data to the device (`fdatasync`).
    pub async fn sync_data(&self) -> Result<()> {
        self.fsync(true).await
    }

    async fn fsync(&self, datasync: bool) -> Result<()> {
        let op = Op::Fsync {
            fd: self.raw(),
            datasync,
        };
        // SAFETY: no memory; the descriptor is held by the keep-alive.
        let (result, fd) = unsafe { on_backend(&self.lp, op, self.fd.clone()) }.await;
        match result {
            Some(result) => result.map(drop).map_err(Error::from),
            None => on_executor(&self.lp, move || {
                // SAFETY: fsync/fdatasync on a descriptor the job holds.
                cvt(unsafe {
                    match datasync {
                        true => libc::fdatasync(fd.as_raw_fd()),
                        false => libc::fsync(fd.as_raw_fd()),
                    }
                })
                .map(drop)
            })
            .await
            .map_err(Error::from),
        }
    }

    /// The loop this file belongs to.
    pub fn event_loop(&self) -> &EventLoop {
        &self.lp
    }
}

fn pread_at(fd: RawFd, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let offset = libc::off_t::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset out of range"))?;
    // SAFETY: `buf` is writable for its length; the caller holds `fd`.
    cvt_len(unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), offset) })
}

fn pwrite_at(fd: RawFd, buf: &[u8], offset: u64) -> io::Result<usize> {
    let offset = libc::off_t::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset out of range"))?;
    // SAFETY: `buf` is readable for its length; the caller holds `fd`.
    cvt_len(unsafe { libc::pwrite(fd, buf.as_ptr().cast(), buf.len(), offset) })
}

/// A file's metadata, from `statx(2)`: [`metadata`] or
/// [`File::metadata`]. Example: [`read_dir`]'s.
#[derive(Clone, Copy)]
pub struct Metadata {
    stx: libc::statx,
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metadata")
            .field("len", &self.len())
            .field("mode", &format_args!("{:o}", self.mode()))
            .finish()
    }
}

impl Metadata {
    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.stx.stx_size
    }

    /// `true` for an empty file.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The file type and permission bits (`st_mode`).
    pub fn mode(&self) -> u32 {
        u32::from(self.stx.stx_mode)
    }

    fn kind(&self) -> u32 {
        self.mode() & libc::S_IFMT
    }

    /// A regular file.
    pub fn is_file(&self) -> bool {
        self.kind() == libc::S_IFREG
    }

    /// A directory.
    pub fn is_dir(&self) -> bool {
        self.kind() == libc::S_IFDIR
    }

    /// A symbolic link (only from a call that does not follow links).
    pub fn is_symlink(&self) -> bool {
        self.kind() == libc::S_IFLNK
    }

    /// Last modification time.
    pub fn modified(&self) -> SystemTime {
        let t = self.stx.stx_mtime;
        let since = Duration::new(t.tv_sec.unsigned_abs(), t.tv_nsec);
        if t.tv_sec >= 0 {
            SystemTime::UNIX_EPOCH + since
        } else {
            SystemTime::UNIX_EPOCH - since
        }
    }
}

/// `statx(dirfd, path, flags)`; `hold` keeps `dirfd` open for the operation.
async fn statx(
    lp: &EventLoop,
    dirfd: RawFd,
    path: CString,
    flags: libc::c_int,
    hold: Option<Arc<OwnedFd>>,
) -> Result<Metadata> {
    // SAFETY: an all-zero statx is a valid value of this plain C struct.
    let mut stx: Box<libc::statx> = Box::new(unsafe { std::mem::zeroed() });
    let op = Op::Statx {
        dirfd,
        path: path.as_ptr(),
        flags,
        mask: libc::STATX_BASIC_STATS,
        buf: &mut *stx,
    };
    // SAFETY: the path and the statx buffer are heap memory owned by the
    // keep-alive; `hold` keeps the descriptor open.
    let (result, (stx, path, hold)) = unsafe { on_backend(lp, op, (stx, path, hold)) }.await;
    match result {
        Some(result) => {
            result?;
            Ok(Metadata { stx: *stx })
        }
        None => {
            let stx = on_executor(lp, move || {
                let _hold = hold;
                // SAFETY: as above, zeroed statx is valid.
                let mut stx: libc::statx = unsafe { std::mem::zeroed() };
                // SAFETY: a valid path and an out-buffer of the right type.
                cvt(unsafe {
                    libc::statx(
                        dirfd,
                        path.as_ptr(),
                        flags,
                        libc::STATX_BASIC_STATS,
                        &mut stx,
                    )
                })?;
                Ok(stx)
            })
            .await?;
            Ok(Metadata { stx })
        }
    }
}

/// One path operation that only succeeds or fails.
async fn path_op(
    lp: &EventLoop,
    op: Op,
    keep: (CString, Option<CString>),
    blocking: impl FnOnce(&CString, Option<&CString>) -> io::Result<()> + Send + 'static,
) -> Result<()> {
    // SAFETY: the caller builds `op` from the CStrings in `keep` (heap
    // buffers that stay put) and AT_FDCWD.
    let (result, keep) = unsafe { on_backend(lp, op, keep) }.await;
    match result {
        Some(result) => result.map(drop).map_err(Error::from),
        None => on_executor(lp, move || blocking(&keep.0, keep.1.as_ref()))
            .await
            .map_err(Error::from),
    }
}

/// The metadata of `path` (following symbolic links), on the running loop.
/// Examples: the [module docs](self), [`read_dir`].
pub async fn metadata(path: impl AsRef<Path>) -> Result<Metadata> {
    let lp = running_loop()?;
    let shown = path.as_ref();
    let path = c_path(shown)?;
    Error::ctx(statx(&lp, libc::AT_FDCWD, path, 0, None).await, || {
        format!("metadata of {}", shown.display())
    })
}

/// Reads the whole file at `path`, on the running loop. Examples: the
/// [module docs](self), [`read_dir`].
pub async fn read(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    let mut file = File::open(path).await?;
    file.read_to_end_owned().await
}

/// Writes `contents` to `path`, creating or truncating it, on the running
/// loop. Examples: the [module docs](self), [`read_dir`].
pub async fn write(path: impl AsRef<Path>, contents: impl IoBuf) -> Result<()> {
    let mut file = File::create(path).await?;
    let (result, _) = file.write_all_owned(contents).await;
    result
}

/// Renames `from` to `to` (replacing `to` if it exists), on the running
/// loop. Example: [`read_dir`]'s.
pub async fn rename(from: impl AsRef<Path>, to: impl AsRef<Path>) -> Result<()> {
    let lp = running_loop()?;
    let (shown_from, shown_to) = (from.as_ref(), to.as_ref());
    let from = c_path(shown_from)?;
    let to = c_path(shown_to)?;
    let op = Op::RenameAt {
        olddirfd: libc::AT_FDCWD,
        oldpath: from.as_ptr(),
        newdirfd: libc::AT_FDCWD,
        newpath: to.as_ptr(),
    };
    let renamed = path_op(&lp, op, (from, Some(to)), |from, to| {
        let to = to.expect("rename has two paths");
        // SAFETY: two valid NUL-terminated paths.
        cvt(unsafe { libc::rename(from.as_ptr(), to.as_ptr()) }).map(drop)
    });
    Error::ctx(renamed.await, || {
        format!("rename {} to {}", shown_from.display(), shown_to.display())
    })
}

async fn unlink(shown: &Path, dir: bool) -> Result<()> {
    let lp = running_loop()?;
    let path = c_path(shown)?;
    let op = Op::UnlinkAt {
        dirfd: libc::AT_FDCWD,
        path: path.as_ptr(),
        dir,
    };
    let removed = path_op(&lp, op, (path, None), move |path, _| {
        let flags = if dir { libc::AT_REMOVEDIR } else { 0 };
        // SAFETY: a valid NUL-terminated path.
        cvt(unsafe { libc::unlinkat(libc::AT_FDCWD, path.as_ptr(), flags) }).map(drop)
    })
    .await;
    let what = if dir { "remove directory" } else { "remove" };
    Error::ctx(removed, || format!("{what} {}", shown.display()))
}

/// Removes the file (or symbolic link) at `path`, on the running loop.
/// Examples: the [module docs](self), [`read_dir`].
pub async fn remove_file(path: impl AsRef<Path>) -> Result<()> {
    unlink(path.as_ref(), false).await
}

/// Removes the empty directory at `path`, on the running loop. Examples:
/// the [module docs](self), [`read_dir`].
pub async fn remove_dir(path: impl AsRef<Path>) -> Result<()> {
    unlink(path.as_ref(), true).await
}

/// Creates the directory `path` (mode `0o777` before the umask; its
/// parent must exist), on the running loop. Examples: the
/// [module docs](self), [`read_dir`].
pub async fn create_dir(path: impl AsRef<Path>) -> Result<()> {
    let lp = running_loop()?;
    let shown = path.as_ref();
    let path = c_path(shown)?;
    let op = Op::MkdirAt {
        dirfd: libc::AT_FDCWD,
        path: path.as_ptr(),
        mode: 0o777,
    };
    let made = path_op(&lp, op, (path, None), |path, _| {
        // SAFETY: a valid NUL-terminated path.
        cvt(unsafe { libc::mkdir(path.as_ptr(), 0o777) }).map(drop)
    })
    .await;
    Error::ctx(made, || format!("create directory {}", shown.display()))
}

/// One entry of a directory listing ([`read_dir`], whose example uses it).
#[derive(Debug, Clone)]
pub struct DirEntry {
    path: PathBuf,
    file_name: OsString,
    file_type: std::fs::FileType,
}

impl DirEntry {
    /// The directory's path joined with the entry's name.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entry's name.
    pub fn file_name(&self) -> &std::ffi::OsStr {
        &self.file_name
    }

    /// The entry's type (not following symbolic links).
    pub fn file_type(&self) -> std::fs::FileType {
        self.file_type
    }
}

/// The entries of the directory `path` (without `.` and `..`, in the
/// order the file system gives), read by one executor job on every
/// backend: io_uring has no `getdents` opcode.
///
/// A small tour of the free functions, [`DirEntry`] and [`Metadata`]:
///
/// ```
/// use evloop::fs;
///
/// evloop::run(async {
///     let dir = std::env::temp_dir().join(format!("evloop-read-dir-{}", std::process::id()));
///     fs::create_dir(&dir).await?;
///     fs::create_dir(dir.join("sub")).await?;
///     fs::write(dir.join("draft.txt"), b"v1".as_slice()).await?;
///     fs::rename(dir.join("draft.txt"), dir.join("final.txt")).await?;
///
///     let mut names = Vec::new();
///     for entry in fs::read_dir(&dir).await? {
///         let kind = if entry.file_type().is_dir() { "dir" } else { "file" };
///         names.push(format!("{} ({kind})", entry.file_name().to_string_lossy()));
///     }
///     names.sort();
///     assert_eq!(names, ["final.txt (file)", "sub (dir)"]);
///
///     let meta = fs::metadata(dir.join("final.txt")).await?;
///     assert!(meta.is_file() && !meta.is_dir());
///     assert_eq!(meta.len(), 2);
///     assert!(fs::metadata(dir.join("sub")).await?.is_dir());
///     assert_eq!(fs::read(dir.join("final.txt")).await?, b"v1");
///
///     fs::remove_file(dir.join("final.txt")).await?;
///     fs::remove_dir(dir.join("sub")).await?;
///     fs::remove_dir(&dir).await?;
///     Ok::<_, evloop::Error>(())
/// })??;
/// # Ok::<_, evloop::Error>(())
/// ```
pub async fn read_dir(path: impl AsRef<Path>) -> Result<Vec<DirEntry>> {
    let lp = running_loop()?;
    let shown = path.as_ref();
    let path = shown.to_owned();
    let listed = on_executor(&lp, move || {
        std::fs::read_dir(&path)?
            .map(|entry| {
                let entry = entry?;
                Ok(DirEntry {
                    path: entry.path(),
                    file_name: entry.file_name(),
                    file_type: entry.file_type()?,
                })
            })
            .collect()
    })
    .await;
    Error::ctx(listed, || format!("read directory {}", shown.display()))
}
