//! Section placeholder being written.

#[doc(hidden)]
#[macro_export]
macro_rules! __exceptions_tests {
    ($f:expr) => {};
}
