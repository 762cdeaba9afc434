//! One clock for `loop.time()` and the timers: `Instant` (CLOCK_MONOTONIC,
//! the clock of Python's `time.monotonic()`), mapped to and from float
//! seconds through one base pair taken when the loop is created.

use std::time::{Duration, Instant};

/// A NaN deadline (Python: `ValueError`).
#[derive(Debug, Clone, Copy)]
pub struct NanDeadline;

/// `Instant` <-> seconds on CLOCK_MONOTONIC.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Instant,
    base_secs: f64,
}

impl Clock {
    /// Takes the base pair now.
    pub fn new() -> Clock {
        let base = Instant::now();
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        let base_secs = if rc == 0 {
            ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
        } else {
            0.0
        };
        Clock { base, base_secs }
    }

    /// The current time in seconds (what `loop.time()` returns).
    pub fn now(&self) -> f64 {
        self.base_secs + self.base.elapsed().as_secs_f64()
    }

    /// The instant for a deadline in seconds: `None` when it lies beyond
    /// what `Instant` can hold (an infinite or huge deadline: never due); a
    /// deadline in the past is due at once. NaN is an error.
    pub fn instant(&self, when: f64) -> Result<Option<Instant>, NanDeadline> {
        if when.is_nan() {
            return Err(NanDeadline);
        }
        let offset = when - self.base_secs;
        if offset >= 0.0 {
            Ok(Duration::try_from_secs_f64(offset)
                .ok()
                .and_then(|d| self.base.checked_add(d)))
        } else {
            Ok(Some(
                Duration::try_from_secs_f64(-offset)
                    .ok()
                    .and_then(|d| self.base.checked_sub(d))
                    .unwrap_or(self.base),
            ))
        }
    }
}
