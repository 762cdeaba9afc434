//! evloop's synchronization primitives against async-channel and
//! tokio::sync: `cargo run --release -p loop-bench --example sync_prims [-- MS [REPS]]`.
//!
//! Each cell is the median of REPS (default 5) windows of MS (default 300)
//! milliseconds, contenders interleaved; the spread is half the range.

use std::time::Duration;

use loop_bench::sync_prims::{measure, SyncContender, SyncWorkload};

fn main() {
    let mut args = std::env::args().skip(1);
    let ms: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(300);
    let reps: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let window = Duration::from_millis(ms);
    println!(
        "| workload | {} |",
        SyncContender::ALL.map(|c| c.name()).join(" | ")
    );
    println!("|---|{}", "---|".repeat(SyncContender::ALL.len()));
    for w in SyncWorkload::ALL {
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); SyncContender::ALL.len()];
        let mut unavailable = vec![None; SyncContender::ALL.len()];
        for rep in 0..reps {
            for k in 0..SyncContender::ALL.len() {
                let i = (k + rep) % SyncContender::ALL.len();
                match measure(SyncContender::ALL[i], w, window) {
                    Ok(rate) => samples[i].push(rate),
                    Err(reason) => unavailable[i] = Some(reason),
                }
            }
        }
        let cells: Vec<String> = samples
            .iter_mut()
            .zip(&unavailable)
            .map(|(s, u)| {
                if u.is_some() || s.is_empty() {
                    return "n/a".to_owned();
                }
                s.sort_by(f64::total_cmp);
                let med = s[s.len() / 2];
                let spread = (s[s.len() - 1] - s[0]) / 2.0 / med * 100.0;
                format!("{:.2}M ±{spread:.0}%", med / 1e6)
            })
            .collect();
        println!("| {} | {} |", w.describe(), cells.join(" | "));
    }
}
