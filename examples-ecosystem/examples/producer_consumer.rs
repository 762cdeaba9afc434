//! The producer/consumer demo of "Demystifying Python's async and await
//! Keywords", in Rust on evloop, with the talk's time scaled down (one
//! "talk second" is `--unit-ms` milliseconds, 10 by default).
//!
//! - **Synchronous** (the talk's `sync_producer.py`): one thread generates
//!   20 items (each takes 0.5–1.5 units), *then* processes them (0.5 units
//!   each). Every item waits for all the generating to finish.
//! - **Asynchronous** (the talk's async version): two producers and one
//!   consumer run as tasks on one loop, joined by `evloop::sync::Queue`
//!   (asyncio's `Queue`, with `task_done` and `join` as the talk uses them).
//!   The consumer picks each item up as soon as it is made.
//!
//! Each processed item prints its latency (time from generated to
//! processed); the summary prints both averages and their ratio (the talk
//! saw 60x). The ratio is not asserted: it depends on the machine. The
//! gain comes from *concurrency*, not from async itself: two threads joined
//! by a blocking queue would also have a low latency, at the cost of a
//! thread per producer.
//!
//! ```text
//! cargo run -p examples-ecosystem --example producer_consumer
//! EVLOOP_BACKEND=mio cargo run -p examples-ecosystem --example producer_consumer -- --unit-ms 100
//! ```

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop::sync::Queue;
use examples_ecosystem::Rng;

/// Items per producer.
const ITEMS: u64 = 20;

fn unit_from_args() -> Duration {
    let args: Vec<String> = std::env::args().collect();
    let ms = args
        .iter()
        .position(|a| a == "--unit-ms")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    Duration::from_millis(ms)
}

/// `random.random() + .5` talk-seconds: 0.5 to 1.5 units.
fn generate_time(rng: &mut Rng, unit: Duration) -> Duration {
    unit.mul_f64(0.5 + rng.randint(0, 1000) as f64 / 1000.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Average latency of a run, printed as its summary line.
fn summary(label: &str, latencies: &[Duration], total: Duration) -> Duration {
    let avg = latencies.iter().sum::<Duration>() / latencies.len().max(1) as u32;
    println!(
        "{label}: {} items, total time {:.1} ms, average latency {:.2} ms",
        latencies.len(),
        ms(total),
        ms(avg)
    );
    avg
}

/// Generate everything, then process everything, on one thread.
fn synchronous(unit: Duration) -> Duration {
    println!("== synchronous: generate {ITEMS} items, then process them");
    let start = Instant::now();
    let mut rng = Rng::new(1);
    let mut data = std::collections::VecDeque::new();
    for idx in 1..=ITEMS {
        data.push_back((idx * idx, Instant::now()));
        println!(" -- generated item {idx}");
        std::thread::sleep(generate_time(&mut rng, unit));
    }
    let mut latencies = Vec::new();
    while let Some((value, made)) = data.pop_front() {
        let latency = made.elapsed();
        latencies.push(latency);
        println!(" +++ Processed value {value} after {:.2} ms", ms(latency));
        std::thread::sleep(unit / 2);
    }
    summary("sync", &latencies, start.elapsed())
}

/// Two producer tasks and one consumer task on an asyncio-style queue,
/// as the talk writes it: producers `put`, the consumer `get`s and marks
/// each item `task_done`, the main task waits for the producers, then for
/// the queue to be `join`ed, then cancels the consumer.
async fn asynchronous(unit: Duration) -> Result<Duration, evloop::Error> {
    println!("== asynchronous: 2 producers and 1 consumer on an evloop::sync::Queue");
    let lp = evloop::get_running_loop()?;
    let start = Instant::now();
    let queue = Queue::<(u64, Instant)>::new(0); // maxsize 0: unbounded, as in asyncio
    let mut producers = Vec::new();
    for (name, seed) in [("A", 2), ("B", 3)] {
        let queue = queue.clone();
        producers.push(lp.create_task(async move {
            let mut rng = Rng::new(seed);
            for idx in 1..=ITEMS {
                queue
                    .put((idx * idx, Instant::now()))
                    .await
                    .expect("the queue is never shut down here");
                println!(" -- generated item {idx} ({name})");
                evloop::sleep(generate_time(&mut rng, unit)).await;
            }
        })?);
    }
    let latencies = Rc::new(RefCell::new(Vec::new()));
    let consumer = lp.create_task({
        let latencies = latencies.clone();
        let queue = queue.clone();
        async move {
            while let Ok((value, made)) = queue.get().await {
                let latency = made.elapsed();
                latencies.borrow_mut().push(latency);
                println!(" +++ Processed value {value} after {:.2} ms", ms(latency));
                evloop::sleep(unit / 2).await;
                queue.task_done().expect("one task_done per get");
            }
        }
    })?;
    // asyncio.gather(*producers); await q.join(); consumer.cancel()
    for p in producers {
        p.await?;
    }
    queue.join().await;
    consumer.cancel();
    let latencies = latencies.borrow();
    Ok(summary("async", &latencies, start.elapsed()))
}

fn main() -> Result<(), evloop::Error> {
    let unit = unit_from_args();
    let lp = evloop::new_event_loop()?;
    println!("backend: {}", lp.backend_name());
    println!("one talk-second is {unit:?} here");
    let sync_latency = synchronous(unit);
    let async_latency = lp.run_until_complete(asynchronous(unit))??;
    lp.close()?;
    let ratio = sync_latency.as_secs_f64() / async_latency.as_secs_f64().max(1e-9);
    println!("latency ratio: {ratio:.0}x lower with async (the talk saw 60x)");
    Ok(())
}
