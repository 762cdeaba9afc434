//! Section placeholder being written.

#[doc(hidden)]
#[macro_export]
macro_rules! __lifecycle_tests {
    ($f:expr) => {};
}
