//! Async iteration, after the talks' `async for` slides: values consumed
//! as they become ready, before all of them exist.
//!
//! 1. A hand-written `Stream` (Python's `__aiter__`/`__anext__`): a ticker
//!    whose `poll_next` waits on the loop's timer; `None` is
//!    `StopAsyncIteration`.
//! 2. Results of tasks in the order they finish (asyncio's `as_completed`),
//!    through `FuturesUnordered`.
//! 3. An async generator with `stream::unfold`: pages fetched lazily, only
//!    as many as the consumer asks for, with stream combinators.
//!
//! ```text
//! cargo run -p examples-ecosystem --example async_iteration
//! EVLOOP_BACKEND=mio cargo run -p examples-ecosystem --example async_iteration
//! ```

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::stream::{self, FuturesUnordered, Stream, StreamExt};

/// Yields `0, 1, 2, ...` every `period`, `count` times.
struct Ticker {
    period: Duration,
    next: u32,
    count: u32,
    sleep: Option<evloop::Sleep>,
}

impl Ticker {
    fn new(period: Duration, count: u32) -> Self {
        Ticker {
            period,
            next: 0,
            count,
            sleep: None,
        }
    }
}

impl Stream for Ticker {
    type Item = u32;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<u32>> {
        if self.next == self.count {
            return Poll::Ready(None); // StopAsyncIteration
        }
        let period = self.period;
        let sleep = self.sleep.get_or_insert_with(|| evloop::sleep(period));
        // Not ready: the timer will wake this task when the period is over.
        std::task::ready!(Pin::new(sleep).poll(cx));
        self.sleep = None;
        self.next += 1;
        Poll::Ready(Some(self.next - 1))
    }
}

/// A "job" that takes `ms` milliseconds and returns its name.
async fn job(name: &'static str, ms: u64) -> (&'static str, u64) {
    evloop::sleep(Duration::from_millis(ms)).await;
    (name, ms)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    evloop::run(async {
        examples_ecosystem::print_backend();
        let lp = evloop::get_running_loop()?;

        println!("== a hand-written Stream: ticks as the timer fires");
        let start = Instant::now();
        let mut ticks = Ticker::new(Duration::from_millis(5), 4);
        // `while let ... .next().await` is Rust's `async for`.
        while let Some(tick) = ticks.next().await {
            println!("tick {tick} at {:.0?}", start.elapsed());
        }
        println!("ticker exhausted");

        println!("== task results in completion order (as_completed)");
        let spawned = [("slow", 60), ("quick", 10), ("medium", 35), ("brisk", 20)];
        let mut pending = FuturesUnordered::new();
        for (name, ms) in spawned {
            pending.push(lp.create_task(job(name, ms))?);
        }
        println!("spawned: {:?}", spawned.map(|(name, _)| name));
        let mut order = Vec::new();
        while let Some(result) = pending.next().await {
            let (name, ms) = result?;
            println!("ready: {name} ({ms} ms)");
            order.push(name);
        }
        println!("completion order: {order:?}");

        println!("== an async generator (stream::unfold), consumed lazily");
        let fetched = Rc::new(Cell::new(0));
        let pages = stream::unfold(1u32, {
            let fetched = fetched.clone();
            move |page| {
                let fetched = fetched.clone();
                async move {
                    // Fetching a page takes a while; nothing is fetched until asked for.
                    evloop::sleep(Duration::from_millis(2)).await;
                    fetched.set(fetched.get() + 1);
                    let items: Vec<u32> = (0..3).map(|i| page * 10 + i).collect();
                    Some((items, page + 1)) // an endless API: pages 1, 2, 3, ...
                }
            }
        });
        let firsts: Vec<u32> = pages
            .map(stream::iter)
            .flatten()
            .filter(|n| std::future::ready(n % 2 == 0))
            .take(5)
            .collect()
            .await;
        println!(
            "first 5 even items: {firsts:?} (pages fetched: {})",
            fetched.get()
        );
        Ok(())
    })?
}
