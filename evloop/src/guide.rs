//! Guides: documentation only, no items.

// The guides' short links (`[`run`]`, `[`net::TcpSocket`]`) resolve
// against the crate root.
#[allow(unused_imports)]
use crate::*;

#[doc = include_str!("../docs/coming_from.md")]
pub mod coming_from {}
