//! The objects users do I/O with, built on the operation layer (`op`):
//! sockets (`net`), pipes, subprocesses, signals, readiness callbacks
//! (`watch`), the descriptors the loop owns (`fd`) or borrows from the user
//! (`borrowed`), and the futures-io adapters (`ready_wait`).

pub(crate) mod borrowed;
pub(crate) mod fd;
pub mod fs;
pub mod net;
pub mod pipe;
pub mod process;
pub(crate) mod ready_wait;
pub mod signal;
pub(crate) mod watch;
