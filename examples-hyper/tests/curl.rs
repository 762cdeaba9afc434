//! A client nobody here wrote: `curl` against the `hello_server` example on
//! every backend, over HTTP/1.1 and HTTP/2 (h2c prior knowledge), checking
//! the body and the protocol version curl reports. A missing `curl` is a
//! failure, not a skip (`.ci/run` installs it).

#[path = "../../evloop/tests/common/mod.rs"]
mod runner;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The example server, killed and reaped when dropped (also on a failed assert).
struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `hello_server` on `backend`; returns it and its address.
fn start_server(backend: &str) -> (ServerProcess, String) {
    let path = runner::example_path("hello_server");
    let child = Command::new(&path)
        .env("EVLOOP_BACKEND", backend)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    let mut server = ServerProcess(child);
    let stdout = server.0.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().expect("a first line").unwrap();
    assert_eq!(first, format!("backend: {backend}"));
    let second = lines.next().expect("the address line").unwrap();
    let url = second
        .strip_prefix("listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {second:?}"))
        .to_owned();
    (server, url)
}

/// Runs curl with `args` on `url`; returns (body, the http_version curl reports).
fn curl(args: &[&str], url: &str) -> (String, String) {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "20"])
        .args(["--write-out", "\n%{http_version}"])
        .args(args)
        .arg(url)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run curl ({e}): these tests need it; install it \
                 (`apt-get install -y curl`, as .ci/run does)"
            )
        });
    assert!(
        out.status.success(),
        "curl {args:?} {url} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8 output");
    let (body, version) = text.rsplit_once('\n').expect("the version line");
    (body.to_owned(), version.to_owned())
}

#[test]
fn curl_speaks_http1_and_h2c_to_the_example_server_on_every_backend() {
    let backends = evloop::available_backends();
    assert!(!backends.is_empty());
    for backend in backends {
        let (_server, url) = start_server(backend);
        let (body, version) = curl(&["--http1.1"], &url);
        assert_eq!(body, "Hello, World!", "{backend}, HTTP/1.1");
        assert_eq!(version, "1.1", "{backend}: curl saw HTTP/{version}");
        let (body, version) = curl(&["--http2-prior-knowledge"], &url);
        assert_eq!(body, "Hello, World!", "{backend}, h2c");
        assert_eq!(version, "2", "{backend}: curl saw HTTP/{version}");
        // Several requests on one keep-alive connection. (Not with h2c:
        // curl 7.88 fails to reuse a prior-knowledge HTTP/2 connection,
        // "Error in the HTTP2 framing layer", against tokio + hyper-util
        // too; the hyper client tests cover many streams per connection.)
        let out = Command::new("curl")
            .args(["--silent", "--show-error", "--max-time", "20", "--http1.1"])
            .args([url.as_str(), url.as_str(), url.as_str()])
            .output()
            .expect("curl runs");
        assert!(out.status.success(), "{backend}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "Hello, World!".repeat(3),
            "{backend}"
        );
    }
}
