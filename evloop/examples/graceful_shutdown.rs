//! A service that shuts down cleanly on SIGINT or SIGTERM: its workers
//! finish the job in hand, the handlers are removed, the loop closes.
//!
//! Run without arguments it sends itself SIGTERM after a short delay (via a
//! `kill` child process), so it ends by itself; with `--wait` it runs until
//! you press Ctrl-C or `kill` it.
//!
//! ```text
//! cargo run -p evloop --example graceful_shutdown
//! cargo run -p evloop --example graceful_shutdown -- --wait
//! ```

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

/// SIGINT and SIGTERM on Linux.
const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

async fn worker(lp: evloop::EventLoop, id: u32, stop: Rc<Cell<Option<&'static str>>>) -> u32 {
    let mut jobs = 0;
    while stop.get().is_none() {
        // One "job": it is never interrupted halfway.
        lp.sleep(Duration::from_millis(40 + 15 * id as u64)).await;
        jobs += 1;
        println!("worker {id}: finished job {jobs}");
    }
    println!("worker {id}: stopping after {jobs} jobs");
    jobs
}

fn main() -> Result<(), evloop::Error> {
    let wait = std::env::args().any(|a| a == "--wait");
    let lp = evloop::new_event_loop()?;
    println!("backend: {}", lp.backend_name());
    let stop: Rc<Cell<Option<&'static str>>> = Rc::new(Cell::new(None));
    for (sig, name) in [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM")] {
        let stop = stop.clone();
        lp.add_signal_handler(sig, move || {
            if stop.get().is_none() {
                println!("received {name}: shutting down gracefully");
                stop.set(Some(name));
            }
        })?;
    }
    println!("service running, pid {}", std::process::id());
    if !wait {
        let l = lp.clone();
        lp.call_later(Duration::from_millis(300), move || {
            println!("(demo) sending myself SIGTERM");
            let pid = std::process::id();
            match l.subprocess_shell(format!("kill -TERM {pid}")) {
                Ok(child) => drop(child), // reaped by the loop in the background
                Err(e) => eprintln!("cannot run kill: {e}"),
            }
        })?;
    }
    let l = lp.clone();
    let s = stop.clone();
    let total: u32 = lp.run_until_complete(async move {
        let workers: Vec<_> = (1..=2)
            .map(|id| l.create_task(worker(l.clone(), id, s.clone())))
            .collect::<Result<_, _>>()?;
        let mut total = 0;
        for jobs in evloop::gather(workers).await {
            total += jobs?;
        }
        Ok::<_, evloop::Error>(total)
    })??;
    for sig in [SIGINT, SIGTERM] {
        lp.remove_signal_handler(sig)?;
    }
    lp.close()?;
    println!(
        "clean exit after {} ({total} jobs completed)",
        stop.get().unwrap_or("?")
    );
    Ok(())
}
