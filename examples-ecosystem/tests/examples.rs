//! Runs every example of this crate on every compiled-in backend (with
//! `EVLOOP_BACKEND` set) and checks what it prints, never how fast it ran.

use std::path::PathBuf;
use std::process::Command;

/// Where cargo put the example binaries (built by `cargo test` alongside the tests).
fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    profile_dir.join("examples").join(name)
}

/// Runs an example with `EVLOOP_BACKEND=backend`; checks that it succeeded
/// and printed `backend: <backend>` first; returns its stdout.
fn run_example(name: &str, backend: &str, args: &[&str]) -> String {
    let path = example_path(name);
    let out = Command::new(&path)
        .args(args)
        .env("EVLOOP_BACKEND", backend)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name} on {backend} failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().next(),
        Some(format!("backend: {backend}").as_str()),
        "{name} must print its backend first:\n{stdout}"
    );
    stdout
}

/// Runs `check` on the output of `name` on every backend.
fn on_every_backend(name: &str, args: &[&str], check: impl Fn(&str, &str)) {
    let backends = evloop::available_backends();
    assert!(!backends.is_empty());
    for backend in backends {
        let out = run_example(name, backend, args);
        check(backend, &out);
    }
}

/// The lines of `out` that start with `prefix`.
fn lines_with<'a>(out: &'a str, prefix: &str) -> Vec<&'a str> {
    out.lines().filter(|l| l.starts_with(prefix)).collect()
}

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
fn hyper_json_server_and_client() {
    on_every_backend("hyper_json", &[], |backend, out| {
        let requests = lines_with(out, "request ");
        assert_eq!(requests.len(), 50, "{backend}: {out}");
        assert!(
            requests.iter().all(|l| l.contains("-> 200 OK {\"sum\":")),
            "{backend}: {out}"
        );
        for expected in [
            "request  1: GET /add?a=1&b=2 -> 200 OK {\"sum\":3}",
            "request 49: GET /add?a=49&b=98 -> 200 OK {\"sum\":147}",
            "client: 50/50 correct sums over 5 connections",
            "client: GET /add?a=one&b=2 -> 400 Bad Request",
            "client: GET /sub?a=1&b=2 -> 404 Not Found",
            "server: answered 52 requests",
            "stalled client: the server closed the connection (end of stream)",
            "stalled client: server side ended with a header read timeout: true",
        ] {
            assert!(
                out.contains(expected),
                "{backend}: no {expected:?} in\n{out}"
            );
        }
    });
}

#[test]
fn web_scraper_fetches_every_page_both_ways() {
    on_every_backend("web_scraper", &["--think-ms", "10"], |backend, out| {
        let one_by_one = out.find("== one by one").expect("sequential part");
        let concurrently = out.find("== concurrently").expect("concurrent part");
        for part in [&out[one_by_one..concurrently], &out[concurrently..]] {
            let titles = lines_with(part, "Title found: Episode ");
            assert_eq!(titles.len(), 20, "{backend}: {out}");
            // Printed in episode order both ways (tasks are awaited in order).
            for (i, title) in titles.iter().enumerate() {
                assert!(
                    title.ends_with(&format!("(episode {})", i + 1)),
                    "{backend}: {out}"
                );
            }
        }
        assert!(out.contains("Title found: Episode 1: Event loops explained (episode 1)"));
        assert!(
            out.contains("a missing page is an error: episode 21: HTTP 404 Not Found"),
            "{backend}: {out}"
        );
        assert!(out.contains("concurrent scraping was "), "{backend}: {out}");
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
