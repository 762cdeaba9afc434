//! Guides: documentation only, no items.

#[doc = include_str!("../docs/coming_from.md")]
pub mod coming_from {
    // Resolve the guide's short links against the crate root.
    #[allow(unused_imports)]
    use crate::*;
}
