//! Runs every example on every compiled-in backend and checks what it prints
//! (never how fast it ran).

mod common;
use common::*;

use std::process::Command;

#[test]
fn countdown_runs_concurrently_on_every_backend() {
    for backend in evloop::available_backends() {
        let out = run_example("countdown", backend, &["--tick-ms", "50"]);
        assert!(
            out.contains("A: liftoff") && out.contains("B: liftoff"),
            "{out}"
        );
        // B (2 ticks) lifts off before A (3 ticks): they interleave.
        assert!(out.find("B: liftoff") < out.find("A: liftoff"), "{out}");
        assert!(out.find("B: T-minus 1") < out.find("A: T-minus 1"), "{out}");
    }
}

#[test]
fn starvation_demo_shows_the_difference() {
    for backend in evloop::available_backends() {
        let out = run_example("starvation", backend, &[]);
        let ticks = |prefix: &str| -> u32 {
            let line = out.lines().find(|l| l.starts_with(prefix)).expect(prefix);
            let after = line.split("got ").nth(1).unwrap();
            after.split_whitespace().next().unwrap().parse().unwrap()
        };
        let greedy = ticks("greedy");
        let polite = ticks("polite");
        assert!(greedy <= 1, "greedy cruncher must starve the ticker: {out}");
        assert!(polite > greedy, "yielding lets the ticker run: {out}");
    }
}

#[test]
fn unknown_backend_is_a_clear_error() {
    let out = Command::new(example_path("countdown"))
        .args(["--tick-ms", "1"])
        .env("EVLOOP_BACKEND", "bogus")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bogus") && err.contains("unknown backend"),
        "{err}"
    );
}

#[test]
fn new_event_loop_for_names_the_backend_and_reason() {
    match evloop::new_event_loop_for("nonesuch") {
        Err(evloop::Error::BackendUnavailable { backend, reason }) => {
            assert_eq!(backend, "nonesuch");
            assert!(reason.contains("known backends"));
        }
        other => panic!("expected BackendUnavailable, got {other:?}"),
    }
    for name in evloop::available_backends() {
        let lp = evloop::new_event_loop_for(name).unwrap();
        assert_eq!(lp.backend_name(), name);
        lp.close().unwrap();
    }
}

#[test]
fn run_works_with_no_setup() {
    assert_eq!(evloop::run(async { 6 * 7 }).unwrap(), 42);
}

#[test]
fn swap_backend_with_one_policy_call() {
    for backend in evloop::available_backends() {
        let out = Command::new(example_path("swap_backend"))
            .arg(backend)
            .env_remove("EVLOOP_BACKEND")
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("backend: {backend}")
        );
    }
}

#[test]
fn echo_example_echoes_every_line_on_every_backend() {
    for backend in evloop::available_backends() {
        let out = run_example("echo", backend, &[]);
        for line in [
            "hello, evloop",
            "the quick brown fox",
            "jumps over the lazy dog",
        ] {
            assert!(out.contains(&format!("echo: {line}\n")), "{out}");
        }
    }
}

#[test]
fn randint_example_answers_in_range_on_every_backend() {
    for backend in evloop::available_backends() {
        let out = run_example("randint", backend, &[]);
        assert!(out.contains("requests one after another"), "{out}");
        assert!(out.contains("requests concurrently"), "{out}");
        let answers = out
            .lines()
            .find_map(|l| l.strip_prefix("first answers: "))
            .expect("answers printed");
        let answers: Vec<u64> = answers
            .trim_matches(|c| c == '[' || c == ']')
            .split(", ")
            .map(|n| n.parse().unwrap())
            .collect();
        assert_eq!(answers.len(), 10, "{out}");
        assert!(answers.iter().all(|&n| n <= 10), "{out}");
    }
}
