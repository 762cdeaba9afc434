//! Can io_uring run here? The opcode probe and readable reasons for refusal.

use std::io;

use io_uring::types::{CancelBuilder, Timespec};
use io_uring::{opcode, IoUring, Probe};

/// Every opcode the driver submits, with the kernel version that added it.
/// `Close` is not here: without it the driver closes synchronously. Nor is
/// `WaitId` (6.7): without it `Op::ChildExit` polls the pidfd instead.
pub(crate) const REQUIRED_OPCODES: &[(u8, &str)] = &[
    (opcode::Accept::CODE, "Accept (5.5)"),
    (opcode::Connect::CODE, "Connect (5.5)"),
    (opcode::Recv::CODE, "Recv (5.6)"),
    (opcode::Send::CODE, "Send (5.6)"),
    (opcode::Read::CODE, "Read (5.6)"),
    (opcode::Write::CODE, "Write (5.6)"),
    (opcode::RecvMsg::CODE, "RecvMsg (5.3)"),
    (opcode::SendMsg::CODE, "SendMsg (5.3)"),
    (opcode::PollAdd::CODE, "PollAdd (5.1)"),
    (opcode::AsyncCancel::CODE, "AsyncCancel (5.5)"),
];

/// The opcodes behind the file operations (`Op::is_file_op`), with the
/// kernel version that added each. None is required: an operation whose
/// opcode this kernel lacks is answered `Unsupported`, and the loop runs
/// it on its executor. (`ReadAt`/`WriteAt` are `Read`/`Write` with an
/// offset, required anyway.)
pub(crate) const FILE_OPCODES: &[(u8, &str)] = &[
    (opcode::OpenAt::CODE, "OpenAt (5.6)"),
    (opcode::Statx::CODE, "Statx (5.6)"),
    (opcode::Fsync::CODE, "Fsync (5.1)"),
    (opcode::RenameAt::CODE, "RenameAt (5.11)"),
    (opcode::UnlinkAt::CODE, "UnlinkAt (5.11)"),
    (opcode::MkDirAt::CODE, "MkDirAt (5.15)"),
];

/// Which file opcodes the kernel has (see [`FILE_OPCODES`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FileSupport {
    /// `IORING_OP_OPENAT`.
    pub(crate) openat: bool,
    /// `IORING_OP_STATX`.
    pub(crate) statx: bool,
    /// `IORING_OP_FSYNC`.
    pub(crate) fsync: bool,
    /// `IORING_OP_RENAMEAT`.
    pub(crate) renameat: bool,
    /// `IORING_OP_UNLINKAT`.
    pub(crate) unlinkat: bool,
    /// `IORING_OP_MKDIRAT`.
    pub(crate) mkdirat: bool,
}

impl FileSupport {
    fn probe(probe: &Probe) -> FileSupport {
        FileSupport {
            openat: probe.is_supported(opcode::OpenAt::CODE),
            statx: probe.is_supported(opcode::Statx::CODE),
            fsync: probe.is_supported(opcode::Fsync::CODE),
            renameat: probe.is_supported(opcode::RenameAt::CODE),
            unlinkat: probe.is_supported(opcode::UnlinkAt::CODE),
            mkdirat: probe.is_supported(opcode::MkDirAt::CODE),
        }
    }

    /// The opcode `op` needs, if it is a file operation this kernel lacks.
    pub(crate) fn missing(&self, op: &loop_driver::Op) -> Option<&'static str> {
        use loop_driver::Op;
        let (have, name) = match op {
            Op::OpenAt { .. } => (self.openat, FILE_OPCODES[0].1),
            Op::Statx { .. } => (self.statx, FILE_OPCODES[1].1),
            Op::Fsync { .. } => (self.fsync, FILE_OPCODES[2].1),
            Op::RenameAt { .. } => (self.renameat, FILE_OPCODES[3].1),
            Op::UnlinkAt { .. } => (self.unlinkat, FILE_OPCODES[4].1),
            Op::MkdirAt { .. } => (self.mkdirat, FILE_OPCODES[5].1),
            _ => return None,
        };
        (!have).then_some(name)
    }
}

/// What the probe found.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Support {
    /// The kernel has the Close opcode (5.6).
    pub(crate) close: bool,
    /// The kernel has the WaitId opcode (6.7): `Op::ChildExit` reaps in the kernel.
    pub(crate) waitid: bool,
    /// `IORING_REGISTER_SYNC_CANCEL` (6.0) works on this ring, which is not
    /// an SQPOLL ring: `cancel` can wait until the kernel lets go.
    pub(crate) sync_cancel: bool,
    /// The file opcodes this kernel has.
    pub(crate) files: FileSupport,
}

/// Probes `ring` for every opcode and feature the driver needs.
pub(crate) fn check(ring: &IoUring) -> Result<Support, String> {
    let params = ring.params();
    if !params.is_feature_ext_arg() {
        return Err(
            "the kernel lacks IORING_FEAT_EXT_ARG (Linux 5.11), needed for timed waits".into(),
        );
    }
    if !params.is_feature_nodrop() {
        return Err(
            "the kernel lacks IORING_FEAT_NODROP (Linux 5.5): completions could be lost".into(),
        );
    }
    if !params.is_feature_rw_cur_pos() {
        return Err(
            "the kernel lacks IORING_FEAT_RW_CUR_POS (Linux 5.6), needed to read pipes".into(),
        );
    }
    let mut probe = Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| format!("IORING_REGISTER_PROBE failed (Linux 5.6 needed): {e}"))?;
    let missing: Vec<&str> = REQUIRED_OPCODES
        .iter()
        .filter(|(code, _)| !probe.is_supported(*code))
        .map(|(_, name)| *name)
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the kernel lacks io_uring opcodes: {}",
            missing.join(", ")
        ));
    }
    Ok(Support {
        close: probe.is_supported(opcode::Close::CODE),
        waitid: probe.is_supported(opcode::WaitId::CODE),
        sync_cancel: sync_cancel_works(ring),
        files: FileSupport::probe(&probe),
    })
}

/// Whether `IORING_REGISTER_SYNC_CANCEL` (Linux 6.0) is usable on `ring`:
/// a cancel of a user data nothing carries (the ring is new and empty)
/// must find nothing (`ENOENT`); an older kernel refuses the opcode
/// (`EINVAL`), a policy may refuse it otherwise. Not used on an SQPOLL
/// ring: there the kernel's thread, not the caller's `io_uring_enter`,
/// takes the submissions in, so "submit, then cancel" could not be
/// made synchronous.
fn sync_cancel_works(ring: &IoUring) -> bool {
    if ring.params().is_setup_sqpoll() {
        return false;
    }
    let probe = CancelBuilder::user_data(u64::MAX);
    match ring
        .submitter()
        .register_sync_cancel(Some(Timespec::new()), probe)
    {
        Ok(()) => true,
        Err(e) => e.raw_os_error() == Some(libc::ENOENT),
    }
}

/// `kernel.io_uring_disabled` (Linux 6.6+): 0 allowed, 1 only for the
/// `io_uring_group` and CAP_SYS_ADMIN, 2 disabled for everyone.
fn disabled_sysctl() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Why `io_uring_setup` failed, in words.
pub(crate) fn setup_error_reason(e: &io::Error) -> String {
    let sysctl = disabled_sysctl();
    let sysctl_note = match sysctl.as_deref() {
        Some("0") | None => String::new(),
        Some(v) => format!(" (kernel.io_uring_disabled = {v})"),
    };
    match e.raw_os_error() {
        Some(libc::ENOSYS) => format!("io_uring_setup is not implemented by this kernel (ENOSYS){sysctl_note}"),
        Some(libc::EPERM) => format!(
            "io_uring_setup was refused (EPERM): io_uring is disabled by sysctl or a seccomp/container policy{sysctl_note}"
        ),
        Some(libc::EACCES) => format!("io_uring_setup was refused (EACCES) by a security policy{sysctl_note}"),
        Some(libc::ENOMEM) => "io_uring_setup failed (ENOMEM): locked-memory limit (RLIMIT_MEMLOCK) too low?".to_owned(),
        _ => format!("io_uring_setup failed: {e}{sysctl_note}"),
    }
}
