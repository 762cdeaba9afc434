//! Runtime-agnostic crates driven by evloop tasks: nothing here knows which
//! loop runs it.
//!
//! 1. a pipeline of `async-channel`s: a producer, three workers, a collector;
//! 2. an `async-lock` `Semaphore` letting at most three "downloads" run at
//!    once, and an `async-lock` `Mutex` held across an `.await`;
//! 3. `futures::join!` and `futures::select!` (a reply racing a timeout);
//! 4. a `futures::Stream`: the channel's receiver, with stream combinators.
//!
//! ```text
//! cargo run -p examples-ecosystem --example smol_crates
//! EVLOOP_BACKEND=mio cargo run -p examples-ecosystem --example smol_crates
//! ```

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop::{sleep, EventLoop};
use futures::{FutureExt, StreamExt};

type BoxError = Box<dyn std::error::Error>;

fn main() -> Result<(), BoxError> {
    evloop::run(async {
        examples_ecosystem::print_backend();
        let lp = evloop::get_running_loop()?;
        pipeline(&lp).await?;
        semaphore(&lp).await?;
        mutex(&lp).await?;
        join_and_select().await;
        stream(&lp).await?;
        Ok(())
    })?
}

/// numbers -> [bounded channel] -> 3 squaring workers -> [channel] -> sum.
async fn pipeline(lp: &EventLoop) -> Result<(), BoxError> {
    println!("== pipeline: producer -> 3 workers -> collector (async-channel)");
    let (numbers_tx, numbers_rx) = async_channel::bounded::<u64>(4);
    let (squares_tx, squares_rx) = async_channel::unbounded::<(usize, u64)>();

    let producer = lp.create_task(async move {
        for n in 1..=20 {
            // A bounded channel: the producer waits while the workers are behind.
            numbers_tx.send(n).await.expect("workers are listening");
        }
        // Dropping the sender closes the channel: the workers' loops end.
    })?;
    let mut workers = Vec::new();
    for id in 0..3 {
        let (rx, tx) = (numbers_rx.clone(), squares_tx.clone());
        workers.push(lp.create_task(async move {
            while let Ok(n) = rx.recv().await {
                sleep(Duration::from_millis(1)).await; // "work"
                tx.send((id, n * n)).await.expect("collector is listening");
            }
        })?);
    }
    // Only the workers hold senders now: the collector's stream ends with them.
    drop((numbers_rx, squares_tx));

    let mut per_worker = [0usize; 3];
    let mut sum = 0;
    // The receiver is a `Stream` too (pinned: it holds an event listener).
    let mut results = std::pin::pin!(squares_rx);
    while let Some((id, square)) = results.next().await {
        per_worker[id] += 1;
        sum += square;
    }
    producer.await?;
    for w in workers {
        w.await?;
    }
    let expected: u64 = (1..=20u64).map(|n| n * n).sum();
    println!("pipeline: sum of squares of 1..=20 = {sum} (expected {expected})");
    println!(
        "pipeline: items handled by the 3 workers: {}",
        per_worker.iter().sum::<usize>()
    );
    Ok(())
}

/// Ten "downloads", at most three at a time.
async fn semaphore(lp: &EventLoop) -> Result<(), BoxError> {
    println!("== semaphore: 10 downloads, at most 3 at once (async-lock)");
    const LIMIT: usize = 3;
    let permits = Rc::new(async_lock::Semaphore::new(LIMIT));
    let in_flight = Rc::new(Cell::new(0usize));
    let peak = Rc::new(Cell::new(0usize));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..10u64 {
        let (permits, in_flight, peak) = (permits.clone(), in_flight.clone(), peak.clone());
        tasks.push(lp.create_task(async move {
            let _permit = permits.acquire().await;
            in_flight.set(in_flight.get() + 1);
            peak.set(peak.get().max(in_flight.get()));
            sleep(Duration::from_millis(5 + i % 3)).await; // the download
            in_flight.set(in_flight.get() - 1);
            // The permit is released here, when `_permit` is dropped.
        })?);
    }
    for t in evloop::gather(tasks).await {
        t?;
    }
    println!(
        "semaphore: peak concurrency {} (limit {LIMIT}), all 10 done in {:.1?}",
        peak.get(),
        start.elapsed()
    );
    Ok(())
}

/// A Mutex held across an `.await`: each writer's lines stay together.
async fn mutex(lp: &EventLoop) -> Result<(), BoxError> {
    println!("== mutex: 4 writers, each writes 3 lines under one lock (async-lock)");
    let log = Rc::new(async_lock::Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for w in 0..4 {
        let log = log.clone();
        tasks.push(lp.create_task(async move {
            let mut guard = log.lock().await;
            for line in 0..3 {
                guard.push(format!("writer {w} line {line}"));
                // Other writers run now, but wait for the lock.
                sleep(Duration::from_millis(1)).await;
            }
        })?);
    }
    for t in evloop::gather(tasks).await {
        t?;
    }
    let log = log.lock().await;
    let together = log.chunks(3).all(|c| c.iter().all(|l| l[..8] == c[0][..8]));
    println!(
        "mutex: {} lines, every writer's lines together: {together}",
        log.len()
    );
    Ok(())
}

async fn answer_after(ms: u64, value: &'static str) -> &'static str {
    sleep(Duration::from_millis(ms)).await;
    value
}

/// `join!` waits for both; `select!` takes whichever finishes first.
async fn join_and_select() {
    println!("== join! and select! (futures)");
    let start = Instant::now();
    let (a, b) = futures::join!(answer_after(20, "left"), answer_after(20, "right"));
    println!(
        "join!: ({a}, {b}) in {:.0?}, not 40 ms: they waited together",
        start.elapsed()
    );

    for (reply_ms, timeout_ms) in [(5, 100), (100, 5)] {
        let reply = answer_after(reply_ms, "pong").fuse();
        let timeout = sleep(Duration::from_millis(timeout_ms)).fuse();
        futures::pin_mut!(reply, timeout);
        futures::select! {
            r = reply => println!("select!: reply in {reply_ms} ms vs timeout {timeout_ms} ms -> got {r}"),
            _ = timeout => println!("select!: reply in {reply_ms} ms vs timeout {timeout_ms} ms -> timed out"),
        }
    }
}

/// A channel's receiver is a `Stream`: combinators work on it as on an iterator.
async fn stream(lp: &EventLoop) -> Result<(), BoxError> {
    println!("== stream: a channel receiver with stream combinators (futures)");
    let (tx, rx) = async_channel::unbounded::<u32>();
    let feeder = lp.create_task(async move {
        for n in 1..=10 {
            tx.send(n).await.expect("receiver alive");
            sleep(Duration::from_millis(1)).await;
        }
    })?;
    let evens: Vec<u32> = rx
        .filter(|n| std::future::ready(n % 2 == 0))
        .map(|n| n * 10)
        .collect()
        .await;
    feeder.await?;
    println!("stream: even numbers times ten: {evens:?}");
    Ok(())
}
