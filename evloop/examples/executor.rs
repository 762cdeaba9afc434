//! A blocking call freezes the loop; the same call through
//! `run_in_executor` does not. A ticker task counts how many times it got
//! to run while each call was in progress.
//!
//! ```text
//! cargo run -p evloop --example executor
//! EVLOOP_BACKEND=mio cargo run -p evloop --example executor -- --work-ms 1000
//! ```

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

fn work_from_args() -> Duration {
    let args: Vec<String> = std::env::args().collect();
    let ms = args
        .iter()
        .position(|a| a == "--work-ms")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    Duration::from_millis(ms)
}

/// Stands for any blocking call: file I/O, a C library, DNS, hashing...
fn blocking_work(d: Duration) -> &'static str {
    std::thread::sleep(d);
    "done"
}

fn main() -> Result<(), evloop::Error> {
    let work = work_from_args();
    let lp = evloop::new_event_loop()?;
    println!("backend: {}", lp.backend_name());
    let ticks = Rc::new(Cell::new(0u32));
    let l = lp.clone();
    let t = ticks.clone();
    lp.run_until_complete(async move {
        let ticker = l.create_task({
            let (l, t) = (l.clone(), t.clone());
            async move {
                loop {
                    l.sleep(Duration::from_millis(50)).await;
                    t.set(t.get() + 1);
                    println!("  tick {}", t.get());
                }
            }
        })?;
        l.sleep(Duration::from_millis(120)).await;

        println!("calling blocking_work({work:?}) on the loop thread...");
        let before = t.get();
        let result = blocking_work(work);
        println!(
            "on the loop: {result}, ticks during the call: {}",
            t.get() - before
        );

        println!("calling blocking_work({work:?}) through run_in_executor...");
        let before = t.get();
        let result = l.run_in_executor(move || blocking_work(work)).await?;
        println!(
            "in the executor: {result}, ticks during the call: {}",
            t.get() - before
        );

        ticker.cancel();
        let _ = ticker.await;
        l.shutdown_default_executor().await
    })??;
    lp.close()?;
    Ok(())
}
