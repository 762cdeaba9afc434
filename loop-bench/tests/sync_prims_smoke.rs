//! Every sync workload runs on every contender for a few milliseconds and
//! counts operations; nothing asserts speed.

use std::time::Duration;

use loop_bench::sync_prims::{measure, SyncContender, SyncWorkload};

#[test]
fn every_sync_workload_runs_on_every_contender() {
    for w in SyncWorkload::ALL {
        for c in SyncContender::ALL {
            match measure(c, w, Duration::from_millis(20)) {
                Ok(rate) => assert!(rate > 0.0, "{c:?} {w:?}: no operation"),
                Err(reason) => assert!(
                    c == SyncContender::AsyncChannel
                        && matches!(
                            w,
                            SyncWorkload::LockHandoff
                                | SyncWorkload::SemaphoreHandoff
                                | SyncWorkload::LockUncontended
                        ),
                    "{c:?} {w:?} failed: {reason}"
                ),
            }
        }
    }
}
