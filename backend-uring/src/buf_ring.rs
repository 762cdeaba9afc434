//! A provided-buffer ring (`IORING_REGISTER_PBUF_RING`, Linux 5.19): a
//! group of equally sized buffers the kernel picks from when a receive
//! completes, telling us in the CQE which one it filled.
//!
//! Two anonymous mappings back it: the ring of `io_uring_buf` entries
//! (page-aligned, as the kernel requires) and one slab holding every
//! buffer. We give a buffer to the kernel by writing its entry at our tail
//! and publishing the tail; the kernel takes it by moving its head, which
//! we never read: a buffer is ours again when a CQE names it, until we
//! [`BufRing::recycle`] it.
//!
//! The mappings are unmapped only by [`BufRing::release`], which the driver
//! calls once no receive that may select from the ring is left in the
//! kernel; otherwise they are leaked (see the driver's Drop).

use std::io;
use std::ptr;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::IoUring;

/// An anonymous, zeroed, private mapping of `len` bytes.
fn map(len: usize) -> io::Result<*mut u8> {
    // SAFETY: an anonymous private mapping at an address of the kernel's
    // choosing touches no existing memory; failure is MAP_FAILED.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(p.cast())
}

/// The registered buffer group and its memory.
pub(crate) struct BufRing {
    /// The `io_uring_buf` entries (`entries` of them).
    ring: *mut BufRingEntry,
    ring_len: usize,
    /// `entries * buf_size` bytes: buffer `bid` starts at `bid * buf_size`.
    slab: *mut u8,
    slab_len: usize,
    entries: u16,
    buf_size: u32,
    bgid: u16,
    /// Our tail (the next entry to write), published to the kernel.
    tail: u16,
    /// Buffers a CQE handed to us and not yet recycled.
    outstanding: u16,
    /// `false` once unregistered (or never registered).
    registered: bool,
}

impl std::fmt::Debug for BufRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufRing")
            .field("entries", &self.entries)
            .field("buf_size", &self.buf_size)
            .field("outstanding", &self.outstanding)
            .finish_non_exhaustive()
    }
}

impl BufRing {
    /// Maps `entries` (a power of two, at most 32768) buffers of
    /// `buf_size` bytes and registers them with `ring` as group `bgid`,
    /// every buffer given to the kernel.
    pub(crate) fn new(ring: &IoUring, entries: u16, buf_size: u32, bgid: u16) -> io::Result<Self> {
        if !entries.is_power_of_two() || entries > 1 << 15 || buf_size == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a buffer ring needs a power-of-two count (at most 32768) of non-empty buffers",
            ));
        }
        let ring_len = usize::from(entries) * std::mem::size_of::<BufRingEntry>();
        let slab_len = usize::from(entries) * buf_size as usize;
        let ring_mem = map(ring_len)?;
        let slab = match map(slab_len) {
            Ok(s) => s,
            Err(e) => {
                // SAFETY: `ring_mem` is our own fresh mapping of `ring_len`
                // bytes, never registered with the kernel.
                unsafe { libc::munmap(ring_mem.cast(), ring_len) };
                return Err(e);
            }
        };
        let mut this = BufRing {
            ring: ring_mem.cast(),
            ring_len,
            slab,
            slab_len,
            entries,
            buf_size,
            bgid,
            tail: 0,
            outstanding: 0,
            registered: false,
        };
        // SAFETY: the ring memory is a page-aligned mapping of `entries`
        // entries that stays mapped until `release`, which unregisters
        // first (or is leaked while the kernel may still use it).
        let registered = unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(ring_mem as u64, entries, bgid, 0)
        };
        if let Err(e) = registered {
            // SAFETY: the kernel refused the group, so it never saw either
            // mapping: both are ours alone to unmap.
            unsafe { this.release(ring) };
            return Err(e);
        }
        this.registered = true;
        for bid in 0..entries {
            this.give(bid);
        }
        this.publish();
        // They were never handed to us; `give` does not count.
        Ok(this)
    }

    /// The buffer group id to put in a receive's SQE.
    pub(crate) fn bgid(&self) -> u16 {
        self.bgid
    }

    /// Size of each buffer.
    pub(crate) fn buf_size(&self) -> u32 {
        self.buf_size
    }

    /// `true` if the kernel has at least one buffer to pick.
    pub(crate) fn has_free(&self) -> bool {
        self.outstanding < self.entries
    }

    /// Number of buffers in the group.
    pub(crate) fn entries(&self) -> u16 {
        self.entries
    }

    /// Writes buffer `bid`'s entry at our tail (not yet published).
    fn give(&mut self, bid: u16) {
        let index = usize::from(self.tail & (self.entries - 1));
        // SAFETY: `index < entries`, inside the ring mapping; the kernel
        // reads only entries between its head and the published tail, and
        // this one is past the published tail, so nobody else accesses it.
        let entry = unsafe { &mut *self.ring.add(index) };
        // `bid < entries`, so the buffer lies inside the slab.
        entry.set_addr(self.slab as u64 + u64::from(bid) * u64::from(self.buf_size));
        entry.set_len(self.buf_size);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes every entry written by `give` visible to the kernel.
    fn publish(&self) {
        // SAFETY: the tail is the `resv` field of the first entry (the
        // kernel's `io_uring_buf_ring` layout), a 2-byte aligned u16 inside
        // the mapping; the kernel only reads it, and AtomicU16 has the
        // layout of u16. The release store orders our entry writes before it.
        unsafe {
            let tail = BufRingEntry::tail(self.ring).cast_mut();
            (*tail.cast::<AtomicU16>()).store(self.tail, Ordering::Release);
        }
    }

    /// Takes note that a CQE handed us buffer `bid`; `None` if no such
    /// buffer exists (a kernel that broke its contract: ignored).
    pub(crate) fn taken(&mut self, bid: u16) -> Option<u16> {
        if bid >= self.entries {
            return None;
        }
        self.outstanding = self.outstanding.saturating_add(1);
        Some(bid)
    }

    /// The first `len` bytes of buffer `bid`, as the kernel wrote them.
    ///
    /// # Safety
    /// A CQE handed `bid` to us with at least `len` bytes, and it has not
    /// been recycled since (so the kernel does not write to it).
    pub(crate) unsafe fn data(&self, bid: u16, off: u32, len: u32) -> *const u8 {
        debug_assert!(bid < self.entries && off + len <= self.buf_size);
        // SAFETY: inside the slab (`bid < entries`, `off + len <= buf_size`).
        unsafe {
            self.slab
                .add(usize::from(bid) * self.buf_size as usize + off as usize)
        }
    }

    /// Gives buffer `bid` back to the kernel.
    pub(crate) fn recycle(&mut self, bid: u16) {
        self.give(bid);
        self.publish();
        self.outstanding = self.outstanding.saturating_sub(1);
    }

    /// Unregisters the group and unmaps its memory.
    ///
    /// # Safety
    /// No request that may select a buffer from this group is in the
    /// kernel any more (every multishot receive has posted its final CQE).
    pub(crate) unsafe fn release(mut self, ring: &IoUring) {
        if self.registered {
            // An error means the group is gone already: nothing to undo.
            let _ = ring.submitter().unregister_buf_ring(self.bgid);
            self.registered = false;
        }
        // SAFETY: both are our own mappings of exactly these lengths, and
        // (caller's contract, and unregistered above) the kernel no longer
        // writes to or reads from them.
        unsafe {
            libc::munmap(self.ring.cast(), self.ring_len);
            libc::munmap(self.slab.cast(), self.slab_len);
        }
        std::mem::forget(self);
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // Only reached without `release`: the kernel may still write into
        // the buffers, so the mappings are leaked, never unmapped.
    }
}
