//! Section 7 — exception handling (EXC-*).

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use loop_api::{EventLoop, ExceptionContext};

use crate::support::{capture_exceptions, new_loop, Log};
use crate::Factory;

#[doc(hidden)]
#[macro_export]
macro_rules! __exceptions_tests {
    ($f:expr) => {
        $crate::__section!($f, exceptions: [
            panicking_callback_does_not_stop_loop,
            panicking_timer_callback_is_reported,
            panicking_threadsafe_callback_is_reported,
            handler_get_set_and_reset,
            panicking_handler_falls_back_to_default,
        ]);
    };
}

/// EXC-1: a panic in a call_soon callback is reported once, with its handle; later callbacks run.
pub fn panicking_callback_does_not_stop_loop(factory: impl Factory) {
    let lp = new_loop(factory);
    let reports = capture_exceptions(&lp);
    let log = Log::new();
    let h = lp.call_soon(|| panic!("callback boom")).unwrap();
    let lg = log.clone();
    lp.call_soon(move || lg.push("after")).unwrap();
    lp.stop();
    lp.run_forever().unwrap();
    assert_eq!(log.get(), vec!["after"]);
    let reports = reports.get();
    assert_eq!(reports.len(), 1);
    assert!(reports[0].message.contains("Exception in callback"));
    assert!(reports[0]
        .payload
        .as_deref()
        .unwrap()
        .contains("callback boom"));
    let reported = reports[0].handle.as_ref().expect("handle in context");
    assert!(reported.has_run() && h.has_run());
    lp.close().unwrap();
}

/// EXC-1: the same for call_later.
pub fn panicking_timer_callback_is_reported(factory: impl Factory) {
    let lp = new_loop(factory);
    let reports = capture_exceptions(&lp);
    lp.call_later(Duration::from_millis(1), || panic!("timer boom"))
        .unwrap();
    lp.run_until_complete(lp.sleep(Duration::from_millis(20)))
        .unwrap();
    let reports = reports.get();
    assert_eq!(reports.len(), 1);
    assert!(reports[0]
        .payload
        .as_deref()
        .unwrap()
        .contains("timer boom"));
    lp.close().unwrap();
}

/// A panic in a callback sent from another thread is reported too.
pub fn panicking_threadsafe_callback_is_reported(factory: impl Factory) {
    let lp = new_loop(factory);
    let reports = capture_exceptions(&lp);
    let h = lp.handle();
    std::thread::spawn(move || h.call_soon_threadsafe(|| panic!("remote boom")).unwrap())
        .join()
        .unwrap();
    lp.run_until_complete(lp.sleep(Duration::from_millis(5)))
        .unwrap();
    let reports = reports.get();
    assert_eq!(reports.len(), 1);
    assert!(reports[0]
        .payload
        .as_deref()
        .unwrap()
        .contains("remote boom"));
    lp.close().unwrap();
}

/// EXC-2: set/get the handler; None restores the default; call_exception_handler reaches it.
pub fn handler_get_set_and_reset(factory: impl Factory) {
    let lp = new_loop(factory);
    assert!(lp.get_exception_handler().is_none());
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    let handler: loop_api::ExceptionHandler =
        Rc::new(move |_lp: &EventLoop, _ctx: &ExceptionContext| c.set(c.get() + 1));
    lp.set_exception_handler(Some(handler.clone()));
    assert!(Rc::ptr_eq(&lp.get_exception_handler().unwrap(), &handler));
    lp.call_exception_handler(ExceptionContext {
        message: "custom".into(),
        ..Default::default()
    });
    assert_eq!(calls.get(), 1);
    lp.set_exception_handler(None);
    assert!(lp.get_exception_handler().is_none());
    lp.call_exception_handler(ExceptionContext {
        message: "to the default handler (expected in test output)".into(),
        ..Default::default()
    });
    assert_eq!(calls.get(), 1);
    lp.close().unwrap();
}

/// EXC-3: a handler that panics does not kill the loop; the default handler reports it.
pub fn panicking_handler_falls_back_to_default(factory: impl Factory) {
    let lp = new_loop(factory);
    lp.set_exception_handler(Some(Rc::new(|_lp: &EventLoop, _ctx: &ExceptionContext| {
        panic!("handler boom")
    })));
    let log = Log::new();
    lp.call_soon(|| panic!("callback boom")).unwrap();
    let lg = log.clone();
    lp.call_soon(move || lg.push("still running")).unwrap();
    lp.stop();
    lp.run_forever().unwrap();
    assert_eq!(log.get(), vec!["still running"]);
    lp.close().unwrap();
}
