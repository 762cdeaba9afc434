//! Keeps the file I/O benchmark from rotting: `fs_bench --smoke` runs every
//! workload on tiny sizes on every contender, and the JSON must have a row
//! for each with positive rates. This never asserts anything about speed.

use std::process::Command;

use serde_json::Value;

const WORKLOADS: &[&str] = &["write", "read", "create", "read_small", "remove"];

#[test]
fn smoke_runs_every_workload_on_every_contender() {
    let dir = std::env::temp_dir().join(format!("fs-bench-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("fs.json");
    let out = Command::new(env!("CARGO_BIN_EXE_fs_bench"))
        .arg("--smoke")
        .arg("--dir")
        .arg(&dir)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run fs_bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "fs_bench --smoke failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("| workload |"),
        "no table printed:\n{stdout}"
    );

    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(doc["settings"]["smoke"], Value::Bool(true));
    // The smoke run leaves the page cache alone.
    assert_eq!(doc["settings"]["page_cache_dropped"], Value::Bool(false));
    let contenders: Vec<String> = doc["contenders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    let mut required = vec!["mio", "polling", "tokio", "run_in_executor"];
    // CI says io_uring works there (.ci/run); elsewhere it may be forbidden,
    // and must then be listed as unavailable with a reason.
    if std::env::var("EVLOOP_REQUIRE_URING").is_ok_and(|v| v == "1") {
        required.push("uring");
    }
    for must in required {
        assert!(
            contenders.iter().any(|c| c == must),
            "{must} missing: {contenders:?}"
        );
    }
    let unavailable = doc["unavailable"].as_array().unwrap();
    for u in unavailable {
        assert!(!u["reason"].as_str().unwrap().is_empty(), "{u}");
    }
    assert_eq!(contenders.len() + unavailable.len(), 5, "{doc}");

    let rows = doc["rows"].as_array().unwrap();
    for contender in &contenders {
        for workload in WORKLOADS {
            let row = rows
                .iter()
                .find(|r| r["contender"] == contender.as_str() && r["workload"] == *workload)
                .unwrap_or_else(|| panic!("no {workload} row for {contender}"));
            let samples = row["samples"].as_array().unwrap();
            assert_eq!(samples.len(), 1, "{row}");
            for s in samples {
                assert!(s.as_f64().unwrap() > 0.0, "{row}");
            }
            assert!(row["summary"]["median"].as_f64().unwrap() > 0.0, "{row}");
        }
    }

    // Everything the benchmark wrote is gone; only the JSON is left.
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("fs.json")]);
    std::fs::remove_dir_all(&dir).unwrap();
}
