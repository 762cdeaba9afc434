//! Runs every example of this crate on every compiled-in backend (with
//! `EVLOOP_BACKEND` set) and checks what it prints, never how fast it ran.

mod common;
use common::*;

#[test]
fn smol_crates_pipeline_locks_select_stream() {
    on_every_backend("smol_crates", &[], |backend, out| {
        for expected in [
            "pipeline: sum of squares of 1..=20 = 2870 (expected 2870)",
            "pipeline: items handled by the 3 workers: 20",
            "semaphore: peak concurrency 3 (limit 3)",
            "mutex: 12 lines, every writer's lines together: true",
            "join!: (left, right) in",
            "select!: reply in 5 ms vs timeout 100 ms -> got pong",
            "select!: reply in 100 ms vs timeout 5 ms -> timed out",
            "stream: even numbers times ten: [20, 40, 60, 80, 100]",
        ] {
            assert!(
                out.contains(expected),
                "{backend}: no {expected:?} in\n{out}"
            );
        }
    });
}

#[test]
fn sqlite_inserts_from_tasks_and_reads_back() {
    on_every_backend("sqlite", &[], |backend, out| {
        assert_eq!(
            lines_with(out, "inserted row id ").len(),
            3,
            "{backend}: {out}"
        );
        for expected in [
            "inserted rows [4, 5] in one transaction",
            "bad statement refused: no such table: nowhere",
            "slow query counted 100000 rows",
            "from Bob to Alice: I need your help.",
            "from Janet to Nina: What time is the developer sync?",
            "from Nina to Janet: I think it's after the design review.",
            "row #4 from Jack to Jill: I'm out of water.",
            "row #5 from Jack to Terry: Do you know where my pail is?",
        ] {
            assert!(
                out.contains(expected),
                "{backend}: no {expected:?} in\n{out}"
            );
        }
        assert_eq!(lines_with(out, "row #").len(), 5, "{backend}: {out}");
    });
}

#[test]
fn producer_consumer_prints_every_latency_and_the_ratio() {
    on_every_backend("producer_consumer", &["--unit-ms", "4"], |backend, out| {
        let sync = out.find("== synchronous").expect("sync part");
        let asyn = out.find("== asynchronous").expect("async part");
        let (sync_part, async_part) = (&out[sync..asyn], &out[asyn..]);
        assert_eq!(lines_with(sync_part, " +++ Processed value").len(), 20);
        assert_eq!(lines_with(async_part, " +++ Processed value").len(), 40);
        assert_eq!(lines_with(async_part, " -- generated item").len(), 40);
        assert!(sync_part.contains("sync: 20 items"), "{backend}: {out}");
        assert!(async_part.contains("async: 40 items"), "{backend}: {out}");
        assert!(out.contains("latency ratio: "), "{backend}: {out}");
    });
}

#[test]
fn async_iteration_yields_values_as_they_become_ready() {
    on_every_backend("async_iteration", &[], |backend, out| {
        assert_eq!(lines_with(out, "tick ").len(), 4, "{backend}: {out}");
        for expected in [
            "ticker exhausted",
            r#"completion order: ["quick", "brisk", "medium", "slow"]"#,
            "first 5 even items: [10, 12, 20, 22, 30] (pages fetched: 3)",
        ] {
            assert!(
                out.contains(expected),
                "{backend}: no {expected:?} in\n{out}"
            );
        }
    });
}

#[test]
fn async_cleanup_closes_the_connection_on_every_path() {
    on_every_backend("async_cleanup", &[], |backend, out| {
        for expected in [
            "success path result: Ok(\"VALUE hello\")",
            "client A: closed politely (server said BYE)",
            "error path result: Err(no such key: missing)",
            "client B: closed politely (server said BYE)",
            "client C: dropped without close(); Drop closed the socket",
            "cancellation path result: Err(Cancelled)",
            "server: connection #3 dropped without QUIT (end of stream)",
            "server: 3 connections, 2 closed cleanly, 1 dropped, 0 still open",
        ] {
            assert!(
                out.contains(expected),
                "{backend}: no {expected:?} in\n{out}"
            );
        }
        assert!(!out.contains("never printed"), "{backend}: {out}");
        assert_eq!(
            lines_with(out, "server: connection #").len(),
            6,
            "{backend}: {out}"
        );
    });
}
