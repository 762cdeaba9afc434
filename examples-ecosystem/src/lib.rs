//! # examples-ecosystem
//!
//! evloop in the ecosystem: runtime-agnostic crates and real libraries
//! running on an evloop loop, and the demos of the asyncio talks written in
//! Rust. The examples live in `examples/` and run on every backend (the
//! tests in `tests/examples.rs` run each with `EVLOOP_BACKEND` set to every
//! backend compiled in, and check what it prints).
//!
//! This library holds the reusable glue the examples share:
//! - [`sqlite`]: an aiosqlite-like async wrapper over `rusqlite`, built on
//!   `run_in_executor`;
//! - [`print_backend`] and [`Rng`]: what every example starts with, and the
//!   small random numbers the demos use (no `rand` dependency).
//!
//! The crate is not published: its dependencies (async-channel, async-lock,
//! futures, rusqlite) are never evloop's, and no tokio is anywhere in its
//! tree (hyper, which depends on tokio, lives in `examples-hyper`).

pub mod sqlite;

/// Prints the first line every example prints, `backend: <name>`, for the
/// loop running on this thread, and returns the name.
///
/// # Panics
/// Outside a running loop.
pub fn print_backend() -> &'static str {
    let name = evloop::get_running_loop()
        .expect("print_backend runs on an evloop loop")
        .backend_name();
    println!("backend: {name}");
    name
}

/// A small xorshift64* generator: the demos' "random" delays and numbers.
/// Not for anything that needs real randomness.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from the clock.
    pub fn from_time() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rng::new(nanos)
    }

    /// A generator with a fixed seed (the same numbers every run).
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15 | 1)
    }

    /// The next number in `[lo, hi]`.
    pub fn randint(&mut self, lo: u64, hi: u64) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        let x = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
        match (hi - lo).checked_add(1) {
            Some(range) => lo + x % range,
            None => x,
        }
    }
}
