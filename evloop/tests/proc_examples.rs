//! Runs the executor, subprocess and signal examples on every compiled-in
//! backend and checks what they print (never how fast they ran).

mod common;
use common::*;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

/// The number after `prefix` ... `during the call: ` on the line starting with `prefix`.
fn ticks_during(out: &str, prefix: &str) -> u32 {
    let line = out.lines().find(|l| l.starts_with(prefix)).expect(prefix);
    line.rsplit(": ").next().unwrap().trim().parse().unwrap()
}

#[test]
fn executor_example_keeps_the_loop_ticking() {
    for backend in evloop::available_backends() {
        let out = run_example("executor", backend, &["--work-ms", "300"]);
        let on_loop = ticks_during(&out, "on the loop");
        let in_executor = ticks_during(&out, "in the executor");
        assert_eq!(on_loop, 0, "a blocking call freezes the loop: {out}");
        assert!(
            in_executor > 0,
            "the loop ticks during run_in_executor: {out}"
        );
    }
}

#[test]
fn sort_example_sorts_through_a_child() {
    for backend in evloop::available_backends() {
        let out = run_example("sort", backend, &[]);
        let sorted: Vec<&str> = out
            .lines()
            .filter_map(|l| l.strip_prefix("sorted: "))
            .collect();
        assert_eq!(
            sorted,
            ["apple", "banana", "cherry", "date", "fig", "grape", "kiwi", "pear"],
            "{out}"
        );
        assert!(out.contains("sort exited with 0"), "{out}");
    }
}

#[test]
fn graceful_shutdown_example_stops_on_its_own_sigterm() {
    for backend in evloop::available_backends() {
        let out = run_example("graceful_shutdown", backend, &[]);
        assert!(out.contains("received SIGTERM"), "{out}");
        assert!(
            out.contains("worker 1: stopping") && out.contains("worker 2: stopping"),
            "{out}"
        );
        assert!(out.contains("clean exit after SIGTERM"), "{out}");
    }
}

#[test]
fn graceful_shutdown_example_stops_on_sigint_with_wait() {
    for backend in evloop::available_backends() {
        let mut child = Command::new(example_path("graceful_shutdown"))
            .arg("--wait")
            .env("EVLOOP_BACKEND", backend)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Once it says it is running, its handlers are installed: interrupt it.
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut seen = String::new();
        while !seen.contains("service running") {
            let mut line = String::new();
            assert!(
                reader.read_line(&mut line).unwrap() > 0,
                "exited early: {seen}"
            );
            seen.push_str(&line);
        }
        let status = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        reader.read_to_string(&mut seen).unwrap();
        let mut out = child.wait_with_output().unwrap();
        out.stdout = seen.into_bytes();
        let stdout = check("graceful_shutdown", backend, out);
        assert!(stdout.contains("received SIGINT"), "{stdout}");
        assert!(stdout.contains("clean exit after SIGINT"), "{stdout}");
    }
}
