//! # examples-hyper
//!
//! hyper 1.x on evloop, through hyper's own runtime traits: an I/O adapter
//! over any futures-io stream, an executor over `create_task`, and a timer
//! over the loop's timers ([`hyper_rt`]). The examples (`hyper_json`,
//! `web_scraper`) run on every backend; `tests/` runs them.
//!
//! This is a separate crate from `examples-ecosystem` because hyper 1.x
//! depends on tokio (its `sync` feature only: no runtime is built or run),
//! and the smol-rs examples promise a tree without tokio.

pub mod hyper_rt;
