//! Section placeholder being written.

#[doc(hidden)]
#[macro_export]
macro_rules! __threads_tests {
    ($f:expr) => {};
}
