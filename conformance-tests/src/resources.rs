//! Section placeholder being written.

#[doc(hidden)]
#[macro_export]
macro_rules! __resources_tests {
    ($f:expr) => {};
}
