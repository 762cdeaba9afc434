//! Section placeholder being written.

#[doc(hidden)]
#[macro_export]
macro_rules! __policy_tests {
    ($f:expr) => {};
}
