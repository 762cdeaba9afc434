//! Cooperative multitasking: a task that never awaits starves the others;
//! one that yields now and then does not.
//!
//! ```text
//! cargo run -p evloop --example starvation
//! ```

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Burns CPU for `busy`, yielding to the loop every `slice` if `cooperative`.
async fn cruncher(busy: Duration, cooperative: bool) {
    let slice = Duration::from_millis(10);
    let start = Instant::now();
    let mut last = start;
    while start.elapsed() < busy {
        std::hint::spin_loop();
        if cooperative && last.elapsed() >= slice {
            evloop::yield_now().await;
            last = Instant::now();
        }
    }
}

/// Ticks every 20 ms until told to stop; returns how many ticks it got in.
async fn ticker(stop: Rc<Cell<bool>>) -> u32 {
    let mut ticks = 0;
    while !stop.get() {
        evloop::sleep(Duration::from_millis(20)).await;
        ticks += 1;
    }
    ticks
}

fn round(cooperative: bool) -> Result<u32, evloop::Error> {
    evloop::run(async move {
        let lp = evloop::get_running_loop()?;
        let stop = Rc::new(Cell::new(false));
        let tick_task = lp.create_task(ticker(stop.clone()))?;
        // Let the ticker start before the cruncher takes the thread.
        evloop::yield_now().await;
        cruncher(Duration::from_millis(300), cooperative).await;
        stop.set(true);
        tick_task.await
    })?
}

fn main() -> Result<(), evloop::Error> {
    let lp = evloop::new_event_loop()?;
    println!("backend: {}", lp.backend_name());
    lp.close()?;
    let greedy = round(false)?;
    println!("greedy cruncher (never awaits): ticker got {greedy} ticks in 300 ms  <- starved");
    let polite = round(true)?;
    println!("polite cruncher (yields every 10 ms): ticker got {polite} ticks in 300 ms");
    Ok(())
}
