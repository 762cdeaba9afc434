//! Section 16 — policy (POL-*).

use std::sync::Arc;

use loop_api::{
    get_event_loop, get_event_loop_policy, new_event_loop, set_event_loop, set_event_loop_policy,
    EventLoopPolicy, FactoryPolicy,
};

use crate::support::new_loop;
use crate::Factory;

#[doc(hidden)]
#[macro_export]
macro_rules! __policy_tests {
    ($f:expr) => {
        $crate::__section!($f, policy: [
            set_event_loop_and_get_event_loop,
        ] exclusive [
            custom_policy_makes_the_loops,
        ]);
    };
}

/// POL-1: after set_event_loop_policy(custom), new_event_loop() uses it and
/// get_event_loop_policy() returns it; None restores the previous default.
pub fn custom_policy_makes_the_loops(factory: impl Factory) {
    let before = get_event_loop_policy();
    let custom: Arc<dyn EventLoopPolicy> = Arc::new(FactoryPolicy::new("conformance", factory));
    set_event_loop_policy(Some(custom.clone()));
    assert!(Arc::ptr_eq(&get_event_loop_policy(), &custom));
    assert_eq!(get_event_loop_policy().name(), "conformance");
    let lp = new_event_loop().unwrap();
    let expected = new_loop(factory);
    assert_eq!(lp.backend_name(), expected.backend_name());
    assert_eq!(lp.run_until_complete(async { 5 }).unwrap(), 5);
    lp.close().unwrap();
    expected.close().unwrap();
    set_event_loop_policy(None);
    assert!(!Arc::ptr_eq(&get_event_loop_policy(), &custom));
    assert_eq!(get_event_loop_policy().name(), before.name());
}

/// POL-2: set_event_loop / get_event_loop per thread; the running loop wins.
pub fn set_event_loop_and_get_event_loop(factory: impl Factory) {
    std::thread::spawn(move || {
        assert!(get_event_loop().is_err());
        let lp = new_loop(factory);
        set_event_loop(Some(lp.clone()));
        assert_eq!(get_event_loop().unwrap().backend_name(), lp.backend_name());
        set_event_loop(None);
        assert!(get_event_loop().is_err());
        let inside = lp
            .run_until_complete(async { get_event_loop().is_ok() })
            .unwrap();
        assert!(inside, "inside a running loop get_event_loop returns it");
        lp.close().unwrap();
    })
    .join()
    .unwrap();
}
