//! # loop-bench
//!
//! Races evloop's backends against each other and against tokio
//! (`current_thread`) and smol (`LocalExecutor` on async-io), in one run:
//!
//! - scheduling micro-benchmarks ([`sched`]): a self-rescheduling `call_soon`
//!   chain, timer schedule + cancel, spawn + await, yield switches,
//!   cross-thread wake latency, `run_in_executor` round trips;
//! - TCP echo ([`echo`]): message sizes × connection counts, closed loop, the
//!   server pinned to one core and our own load generator to the other,
//!   with requests/s, p50/p99 latency and server CPU per request;
//! - beside them ([`scale`]): a loop per core (`evloop::LoopGroup`) against
//!   tokio's multi-thread runtime at 1..N threads (`--scaling`), and each
//!   server's memory per idle connection at 10,000 connections (`--rss`);
//! - instead of the race ([`instr`], `--instructions`): each echo server's
//!   user-space instructions per request, counted by callgrind.
//!
//! Every workload is written once over the [`runtime::Runtime`] trait, so
//! each contender runs the same code. Contenders are interleaved and every
//! measurement is repeated ([`run`]); the results go to a terminal table,
//! a JSON file ([`report`]) and an SVG plot ([`plot`]).
//!
//! `cargo run --release -p loop-bench -- --help` lists the options.

pub mod cli;
pub mod contender;
pub mod echo;
pub mod instr;
pub mod plot;
pub mod report;
pub mod run;
pub mod runtime;
pub mod sample;
pub mod scale;
pub mod sched;
pub mod stats;
pub mod sync_prims;
pub mod sys;
pub mod watchdog;
