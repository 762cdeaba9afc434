//! The web scraper demo of "Demystifying Python's async and await
//! Keywords", on evloop, against a local site: the example starts a hyper
//! server on 127.0.0.1 whose every page takes `--think-ms` (20 by default)
//! to produce, then scrapes the titles of 20 episode pages
//!
//! - one by one (the talk's synchronous `requests` version), then
//! - concurrently: one task per page, started all at once, awaited in
//!   order (the talk's `aiohttp` version: `loop.create_task(get_html(n))`).
//!
//! Like the talk's `get_html`, every fetch opens its own connection, checks
//! the status (`raise_for_status`) and reads the body as text.
//!
//! ```text
//! cargo run -p examples-hyper --example web_scraper
//! EVLOOP_BACKEND=uring cargo run -p examples-hyper --example web_scraper -- --think-ms 100
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use examples_hyper::{connect_http1, http_builder, serve, BoxError};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};

const PAGES: u32 = 20;
const TOPICS: &[&str] = &[
    "Python's async and await",
    "Event loops explained",
    "uvloop and libuv",
    "Writing a web scraper",
    "Producers and consumers",
];

fn think_from_args() -> Duration {
    let args: Vec<String> = std::env::args().collect();
    let ms = args
        .iter()
        .position(|a| a == "--think-ms")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    Duration::from_millis(ms)
}

/// The site: `/episodes/N` (N in 1..=20) is an HTML page, after "thinking"; anything else is 404.
async fn page(
    req: Request<Incoming>,
    think: Duration,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let episode = req
        .uri()
        .path()
        .strip_prefix("/episodes/")
        .and_then(|n| n.parse::<usize>().ok());
    Ok(match episode {
        Some(n) if (1..=PAGES as usize).contains(&n) => {
            evloop::sleep(think).await; // a slow page: database, templates ...
            let title = format!("Episode {n}: {}", TOPICS[n % TOPICS.len()]);
            let html = format!(
                "<html><head><title>{title}</title></head>\
                 <body><h1>{title}</h1><p>Show notes.</p></body></html>"
            );
            Response::new(Full::new(Bytes::from(html)))
        }
        _ => {
            let mut res = Response::new(Full::new(Bytes::from_static(b"not found")));
            *res.status_mut() = StatusCode::NOT_FOUND;
            res
        }
    })
}

/// The talk's `get_html`: GET the episode page, fail on a bad status, return the text.
async fn get_html(addr: SocketAddr, episode: u32) -> Result<String, BoxError> {
    println!("Getting HTML for episode {episode}");
    let mut sender = connect_http1::<Empty<Bytes>>(addr).await?;
    let req = Request::get(format!("/episodes/{episode}"))
        .header("host", "localhost")
        .body(Empty::new())?;
    let res = sender.send_request(req).await?;
    if !res.status().is_success() {
        return Err(format!("episode {episode}: HTTP {}", res.status()).into());
    }
    let body = res.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8(body.to_vec())?)
}

/// The talk's `get_title`: the text of `<title>`.
fn get_title(html: &str, episode: u32) -> String {
    let title = html
        .split_once("<title>")
        .and_then(|(_, rest)| rest.split_once("</title>"))
        .map_or("MISSING", |(title, _)| title);
    format!("Title found: {title} (episode {episode})")
}

fn main() -> Result<(), BoxError> {
    let think = think_from_args();
    evloop::run(async move {
        examples_ecosystem::print_backend();
        let lp = evloop::get_running_loop()?;
        let site = serve(
            &lp,
            "127.0.0.1:0",
            http_builder(&lp, Duration::from_secs(10)),
            service_fn(move |req| page(req, think)),
        )?;
        let addr = site.local_addr().ok_or("no internet address")?;
        println!("site: http://{addr}/episodes/N, {think:?} per page");

        println!("== one by one");
        let start = Instant::now();
        for n in 1..=PAGES {
            let html = get_html(addr, n).await?;
            println!("{}", get_title(&html, n));
        }
        let sequential = start.elapsed();

        println!("== concurrently");
        let start = Instant::now();
        let mut tasks = Vec::new();
        for n in 1..=PAGES {
            tasks.push((n, lp.create_task(get_html(addr, n))?));
        }
        for (n, task) in tasks {
            let html = task.await??;
            println!("{}", get_title(&html, n));
        }
        let concurrent = start.elapsed();

        match get_html(addr, PAGES + 1).await {
            Ok(_) => println!("a missing page came back fine?"),
            Err(e) => println!("a missing page is an error: {e}"),
        }
        site.close();
        site.wait_closed().await;

        println!("one by one:   {PAGES} pages in {sequential:.0?}");
        println!("concurrently: {PAGES} pages in {concurrent:.0?}");
        println!(
            "concurrent scraping was {:.1}x faster",
            sequential.as_secs_f64() / concurrent.as_secs_f64().max(1e-9)
        );
        Ok(())
    })?
}
