//! Section placeholder being written.

#[doc(hidden)]
#[macro_export]
macro_rules! __tasks_tests {
    ($f:expr) => {};
}
