//! Keeps the benchmark from rotting: `--smoke` runs every workload for a
//! moment on every contender, and the JSON must have a row for each with
//! positive counts. This never asserts anything about speed.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// Workloads evloop cannot run yet, because the API they need is still
/// being built on another branch. The row must then say so ("unavailable",
/// with a reason). Empty this list as the APIs land.
const EVLOOP_PENDING: &[&str] = &[];

const WORKLOADS: &[&str] = &[
    "call_soon",
    "timer",
    "spawn_await",
    "yield",
    "cross_thread",
    "executor",
    "echo",
];

fn out_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("loop-bench-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn smoke_runs_every_workload_on_every_contender() {
    let dir = out_dir();
    let json = dir.join("results.json");
    let svg = dir.join("results.svg");
    let out = Command::new(env!("CARGO_BIN_EXE_loop-bench"))
        .arg("--smoke")
        .arg("--quiet")
        .arg("--json")
        .arg(&json)
        .arg("--plot")
        .arg(&svg)
        .output()
        .expect("run loop-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "loop-bench --smoke failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("call_soon"), "no table printed:\n{stdout}");

    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(doc["settings"]["smoke"], Value::Bool(true));
    let contenders: Vec<String> = doc["contenders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    let mut required = vec!["mio", "tokio", "smol"];
    // CI says io_uring works there (.ci/run); elsewhere it may be forbidden.
    if std::env::var("EVLOOP_REQUIRE_URING").is_ok_and(|v| v == "1") {
        required.push("uring");
    }
    for must in required {
        assert!(
            contenders.iter().any(|c| c == must),
            "{must} missing: {contenders:?}"
        );
    }
    let rows = doc["rows"].as_array().unwrap();
    for contender in &contenders {
        for workload in WORKLOADS {
            let mine: Vec<&Value> = rows
                .iter()
                .filter(|r| r["contender"] == contender.as_str() && r["workload"] == *workload)
                .collect();
            assert!(!mine.is_empty(), "no {workload} row for {contender}");
            for row in mine {
                let evloop = row["evloop"].as_bool().unwrap();
                match row["status"].as_str().unwrap() {
                    "ok" => {
                        assert!(
                            row["ops_total"].as_u64().unwrap() > 0,
                            "{workload} on {contender}: no operations: {row}"
                        );
                        let samples = row["samples"].as_array().unwrap();
                        assert!(!samples.is_empty(), "{workload} on {contender}: no sample");
                        for s in samples {
                            assert!(s["ops"].as_u64().unwrap() > 0, "{row}");
                            assert!(s["rate"].as_f64().unwrap() > 0.0, "{row}");
                            if *workload == "echo" {
                                assert!(s["p99_ns"].as_u64().unwrap() > 0, "{row}");
                                assert!(s["cpu_ns_per_op"].as_f64().unwrap() > 0.0, "{row}");
                            }
                        }
                    }
                    "unavailable" if evloop && EVLOOP_PENDING.contains(workload) => {
                        assert!(
                            !row["reason"].as_str().unwrap_or("").is_empty(),
                            "unavailable without a reason: {row}"
                        );
                    }
                    other => panic!("{workload} on {contender}: status {other}: {row}"),
                }
            }
        }
    }

    // The side races ran small: a LoopGroup per backend and tokio's
    // multi-thread runtime at 1..N threads, and memory per connection.
    let scaling = doc["scaling"].as_array().unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for contender in contenders
        .iter()
        .filter(|c| !["tokio", "smol"].contains(&c.as_str()))
        .map(String::as_str)
        .chain(["tokio-mt"])
    {
        for threads in 1..=cores {
            let row = scaling
                .iter()
                .find(|r| r["contender"] == contender && r["threads"] == threads)
                .unwrap_or_else(|| panic!("no scaling row for {contender} x {threads}"));
            assert_eq!(row["status"], "ok", "{row}");
            assert!(row["samples"][0]["ops"].as_u64().unwrap() > 0, "{row}");
        }
    }
    assert!(stdout.contains("Scaling: echo 64B x 10"), "{stdout}");
    let rss = doc["rss"].as_array().unwrap();
    for contender in contenders.iter().filter(|c| c.as_str() != "smol") {
        let row = rss
            .iter()
            .find(|r| r["contender"] == contender.as_str())
            .unwrap_or_else(|| panic!("no rss row for {contender}"));
        assert_eq!(row["status"], "ok", "{row}");
        assert_eq!(row["conns"], 200, "{row}");
        assert!(row["after_kib"].as_u64().unwrap() > 0, "{row}");
    }
    assert!(
        stdout.contains("Memory: server RSS per idle connection at 200"),
        "{stdout}"
    );

    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(plot.starts_with("<svg") && plot.trim_end().ends_with("</svg>"));
    assert!(plot.contains("relative to tokio"), "no paired panels");

    // The same tables and plot again from the JSON alone.
    let again = dir.join("again.svg");
    let out = Command::new(env!("CARGO_BIN_EXE_loop-bench"))
        .arg("--replot")
        .arg(&json)
        .arg("--plot")
        .arg(&again)
        .output()
        .expect("run loop-bench --replot");
    let replot_stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "--replot failed: {replot_stdout}");
    let table = |text: &str| -> String {
        text.lines()
            .skip_while(|l| !l.starts_with("Scheduling"))
            .take_while(|l| !l.starts_with("JSON:") && !l.starts_with("Plot:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(!table(&stdout).is_empty(), "no tables:\n{stdout}");
    assert_eq!(
        table(&replot_stdout),
        table(&stdout),
        "--replot printed other tables"
    );
    assert_eq!(
        std::fs::read_to_string(&again).unwrap(),
        plot,
        "--replot drew another plot"
    );
    assert!(
        replot_stdout.contains("Scaling: echo 64B x 10"),
        "{replot_stdout}"
    );

    // A file written before the scaling and memory races still replots.
    let mut old = doc.clone();
    old.as_object_mut().unwrap().remove("scaling");
    old.as_object_mut().unwrap().remove("rss");
    let old_json = dir.join("old.json");
    std::fs::write(&old_json, serde_json::to_string(&old).unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_loop-bench"))
        .arg("--replot")
        .arg(&old_json)
        .arg("--plot")
        .arg(dir.join("old.svg"))
        .output()
        .expect("run loop-bench --replot");
    let old_stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "--replot of an old file failed: {old_stdout}"
    );
    assert!(!old_stdout.contains("Scaling:"), "{old_stdout}");
    assert!(table(&old_stdout).starts_with("Scheduling"), "{old_stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn replot_of_a_missing_file_is_an_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_loop-bench"))
        .args(["--replot", "/nonexistent/results.json"])
        .output()
        .expect("run loop-bench");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot read the results"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_input_is_a_usage_error_not_a_panic() {
    for args in [
        &["--reps", "0"][..],
        &["--sizes", "lots"],
        &["--conns", "0"],
        &["--workloads", "nope"],
        &["--sched-ms", "-5"],
        &["--busy-threshold", "nan"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_loop-bench"))
            .args(args)
            .output()
            .expect("run loop-bench");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn unknown_backend_is_skipped_with_a_reason() {
    let dir = out_dir().join("unknown");
    let out = Command::new(env!("CARGO_BIN_EXE_loop-bench"))
        .args([
            "--smoke",
            "--quiet",
            "--backends",
            "nope,tokio",
            "--workloads",
            "call_soon",
        ])
        .arg("--json")
        .arg(dir.join("r.json"))
        .arg("--plot")
        .arg(dir.join("r.svg"))
        .output()
        .expect("run loop-bench");
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("skipping nope"), "{stderr}");
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("r.json")).unwrap()).unwrap();
    assert_eq!(doc["skipped"][0]["name"], "nope");
    assert_eq!(doc["contenders"], serde_json::json!(["tokio"]));
    let _ = std::fs::remove_dir_all(&dir);
}
