//! Section placeholder being written.

#[doc(hidden)]
#[macro_export]
macro_rules! __timers_tests {
    ($f:expr) => {};
}
