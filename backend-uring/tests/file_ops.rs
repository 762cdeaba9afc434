//! The file operations on the ring: each is a real SQE (`submit` answers
//! `Pending`, never `Unsupported`, on the test machine's kernel) whose CQE
//! carries the syscall's result.

mod common;

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use loop_driver::Op;

use common::*;

fn c(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap()
}

#[test]
fn open_write_read_statx_fsync_rename_unlink_mkdir_are_sqes() {
    let _g = shared();
    let mut d = driver();
    let dir = std::env::temp_dir().join(format!("evloop-uring-file-ops-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();

    // MkdirAt
    let sub = c(&dir.join("sub"));
    submit(
        &mut d,
        0,
        Op::MkdirAt {
            dirfd: libc::AT_FDCWD,
            path: sub.as_ptr(),
            mode: 0o755,
        },
    );
    wait_for(&mut d, 0).result.unwrap();
    assert!(dir.join("sub").is_dir());

    // OpenAt: the new descriptor comes as an OwnedFd.
    let file = c(&dir.join("sub/f"));
    submit(
        &mut d,
        0,
        Op::OpenAt {
            dirfd: libc::AT_FDCWD,
            path: file.as_ptr(),
            flags: libc::O_RDWR | libc::O_CREAT,
            mode: 0o644,
        },
    );
    let fd = wait_for(&mut d, 0).result.unwrap().accepted.unwrap();
    // SAFETY: F_GETFD only reads the descriptor's flags.
    let fd_flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
    assert_eq!(
        fd_flags & libc::FD_CLOEXEC,
        libc::FD_CLOEXEC,
        "close-on-exec"
    );

    // WriteAt at an offset, ReadAt back.
    let data = b"0123456789".to_vec();
    submit(
        &mut d,
        0,
        Op::WriteAt {
            fd: fd.as_raw_fd(),
            buf: data.as_ptr(),
            len: data.len(),
            offset: 5,
        },
    );
    assert_eq!(wait_for(&mut d, 0).result.unwrap().bytes, 10);
    let mut back = vec![0u8; 4];
    submit(
        &mut d,
        0,
        Op::ReadAt {
            fd: fd.as_raw_fd(),
            buf: back.as_mut_ptr(),
            len: back.len(),
            offset: 8,
        },
    );
    assert_eq!(wait_for(&mut d, 0).result.unwrap().bytes, 4);
    assert_eq!(back, b"3456");

    // Fsync, both kinds.
    for (id, datasync) in [(0, false), (1, true)] {
        submit(
            &mut d,
            id,
            Op::Fsync {
                fd: fd.as_raw_fd(),
                datasync,
            },
        );
        wait_for(&mut d, id).result.unwrap();
    }

    // Statx on the descriptor (AT_EMPTY_PATH).
    // SAFETY: an all-zero statx is a valid value.
    let mut stx: Box<libc::statx> = Box::new(unsafe { std::mem::zeroed() });
    let empty = CString::new("").unwrap();
    submit(
        &mut d,
        0,
        Op::Statx {
            dirfd: fd.as_raw_fd(),
            path: empty.as_ptr(),
            flags: libc::AT_EMPTY_PATH,
            mask: libc::STATX_BASIC_STATS,
            buf: &mut *stx,
        },
    );
    wait_for(&mut d, 0).result.unwrap();
    assert_eq!(stx.stx_size, 15);
    drop(fd);

    // RenameAt, then UnlinkAt of the file and the directory.
    let renamed = c(&dir.join("sub/g"));
    submit(
        &mut d,
        0,
        Op::RenameAt {
            olddirfd: libc::AT_FDCWD,
            oldpath: file.as_ptr(),
            newdirfd: libc::AT_FDCWD,
            newpath: renamed.as_ptr(),
        },
    );
    wait_for(&mut d, 0).result.unwrap();
    assert!(dir.join("sub/g").is_file() && !dir.join("sub/f").exists());
    submit(
        &mut d,
        0,
        Op::UnlinkAt {
            dirfd: libc::AT_FDCWD,
            path: renamed.as_ptr(),
            dir: false,
        },
    );
    wait_for(&mut d, 0).result.unwrap();
    submit(
        &mut d,
        0,
        Op::UnlinkAt {
            dirfd: libc::AT_FDCWD,
            path: sub.as_ptr(),
            dir: true,
        },
    );
    wait_for(&mut d, 0).result.unwrap();
    assert!(!dir.join("sub").exists());

    // Failures are the kernel's errors, with their codes.
    submit(
        &mut d,
        0,
        Op::OpenAt {
            dirfd: libc::AT_FDCWD,
            path: file.as_ptr(),
            flags: libc::O_RDONLY,
            mode: 0,
        },
    );
    let err = wait_for(&mut d, 0).result.unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    let dir_c = c(&dir);
    submit(
        &mut d,
        0,
        Op::OpenAt {
            dirfd: libc::AT_FDCWD,
            path: dir_c.as_ptr(),
            flags: libc::O_WRONLY,
            mode: 0,
        },
    );
    let err = wait_for(&mut d, 0).result.unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EISDIR));
    assert_eq!(d.in_flight(), 0);
    std::fs::remove_dir_all(dir).unwrap();
}
