//! A service that shuts down cleanly on SIGINT or SIGTERM: its workers
//! finish the job in hand, the listeners are dropped (restoring the default
//! dispositions), the loop closes. One task awaits `signal::ctrl_c()`,
//! another a `signal::signal(SIGTERM)` stream.
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

use evloop::signal::{self, SIGTERM};

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
    let l = lp.clone();
    let s = stop.clone();
    let total: u32 = lp.run_until_complete(async move {
        // Both listeners are installed here, before anything can signal us.
        let ctrl_c = signal::ctrl_c();
        let mut term = signal::signal(SIGTERM)?;
        let (s1, s2) = (s.clone(), s.clone());
        let on_int = l.create_task(async move {
            if ctrl_c.await.is_ok() && s1.get().is_none() {
                println!("received SIGINT: shutting down gracefully");
                s1.set(Some("SIGINT"));
            }
        })?;
        let on_term = l.create_task(async move {
            if term.recv().await.is_some() && s2.get().is_none() {
                println!("received SIGTERM: shutting down gracefully");
                s2.set(Some("SIGTERM"));
            }
        })?;
        println!("service running, pid {}", std::process::id());
        if !wait {
            let l2 = l.clone();
            l.call_later(Duration::from_millis(300), move || {
                println!("(demo) sending myself SIGTERM");
                let pid = std::process::id();
                match l2.subprocess_shell(format!("kill -TERM {pid}")) {
                    Ok(child) => drop(child), // reaped by the loop in the background
                    Err(e) => eprintln!("cannot run kill: {e}"),
                }
            })?;
        }
        let workers: Vec<_> = (1..=2)
            .map(|id| l.create_task(worker(l.clone(), id, s.clone())))
            .collect::<Result<_, _>>()?;
        let mut total = 0;
        for jobs in evloop::gather(workers).await {
            total += jobs?;
        }
        // Dropping the listeners restores the default dispositions.
        on_int.cancel();
        on_term.cancel();
        Ok::<_, evloop::Error>(total)
    })??;
    lp.close()?;
    println!(
        "clean exit after {} ({total} jobs completed)",
        stop.get().unwrap_or("?")
    );
    Ok(())
}
