//! Two countdowns running concurrently on one thread: 3 ticks and 2 ticks
//! take 3 ticks in total, not 5.
//!
//! ```text
//! cargo run -p evloop --example countdown            # 1 s ticks
//! EVLOOP_BACKEND=polling cargo run -p evloop --example countdown -- --tick-ms 100
//! ```

use std::time::{Duration, Instant};

fn tick_from_args() -> Duration {
    let args: Vec<String> = std::env::args().collect();
    let ms = args
        .iter()
        .position(|a| a == "--tick-ms")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    Duration::from_millis(ms)
}

async fn countdown(name: &'static str, mut n: u32, tick: Duration, start: Instant) {
    while n > 0 {
        println!(
            "[{:>5.2}s] {name}: T-minus {n}",
            start.elapsed().as_secs_f64()
        );
        evloop::sleep(tick).await;
        n -= 1;
    }
    println!("[{:>5.2}s] {name}: liftoff", start.elapsed().as_secs_f64());
}

fn main() -> Result<(), evloop::Error> {
    let tick = tick_from_args();
    let lp = evloop::new_event_loop()?;
    println!("backend: {}", lp.backend_name());
    let start = Instant::now();
    let l = lp.clone();
    lp.run_until_complete(async move {
        let a = l.create_task(countdown("A", 3, tick, start))?;
        let b = l.create_task(countdown("B", 2, tick, start))?;
        for r in evloop::gather([a, b]).await {
            r?;
        }
        Ok::<_, evloop::Error>(())
    })??;
    lp.close()?;
    let took = start.elapsed();
    println!(
        "total: {:.2}s for 3 + 2 ticks of {:?} (sequential would be {:.2}s)",
        took.as_secs_f64(),
        tick,
        (tick * 5).as_secs_f64()
    );
    Ok(())
}
