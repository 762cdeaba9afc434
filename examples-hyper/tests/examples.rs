//! Runs every example of this crate on every compiled-in backend (with
//! `EVLOOP_BACKEND` set) and checks what it prints, never how fast it ran.

#[path = "../../examples-ecosystem/tests/common/mod.rs"]
mod common;
use common::*;

#[test]
fn hyper_json_server_and_client() {
    on_every_backend("hyper_json", &[], |backend, out| {
        let requests = lines_with(out, "request ");
        assert_eq!(requests.len(), 50, "{backend}: {out}");
        assert!(
            requests.iter().all(|l| l.contains("-> 200 OK {\"sum\":")),
            "{backend}: {out}"
        );
        for expected in [
            "request  1: GET /add?a=1&b=2 -> 200 OK {\"sum\":3}",
            "request 49: GET /add?a=49&b=98 -> 200 OK {\"sum\":147}",
            "client: 50/50 correct sums over 5 connections",
            "client: GET /add?a=one&b=2 -> 400 Bad Request",
            "client: GET /sub?a=1&b=2 -> 404 Not Found",
            "server: answered 52 requests",
            "stalled client: the server closed the connection (end of stream)",
            "stalled client: server side ended with a header read timeout: true",
        ] {
            assert!(
                out.contains(expected),
                "{backend}: no {expected:?} in\n{out}"
            );
        }
    });
}

#[test]
fn web_scraper_fetches_every_page_both_ways() {
    on_every_backend("web_scraper", &["--think-ms", "10"], |backend, out| {
        let one_by_one = out.find("== one by one").expect("sequential part");
        let concurrently = out.find("== concurrently").expect("concurrent part");
        for part in [&out[one_by_one..concurrently], &out[concurrently..]] {
            let titles = lines_with(part, "Title found: Episode ");
            assert_eq!(titles.len(), 20, "{backend}: {out}");
            // Printed in episode order both ways (tasks are awaited in order).
            for (i, title) in titles.iter().enumerate() {
                assert!(
                    title.ends_with(&format!("(episode {})", i + 1)),
                    "{backend}: {out}"
                );
            }
        }
        assert!(out.contains("Title found: Episode 1: Event loops explained (episode 1)"));
        assert!(
            out.contains("a missing page is an error: episode 21: HTTP 404 Not Found"),
            "{backend}: {out}"
        );
        assert!(out.contains("concurrent scraping was "), "{backend}: {out}");
    });
}
