//! The smallest real server: hyper on evloop answering `Hello, World!` over
//! HTTP/1.1 and HTTP/2 cleartext (h2c, prior knowledge) on one port, with
//! hyper's timer on (a 10 s `header_read_timeout`). Runs until killed; the
//! tests point `curl` at it and `bench.sh` points `wrk` and `h2load` at it.
//!
//! ```text
//! EVLOOP_BACKEND=uring cargo run -p examples-hyper --example hello_server -- 127.0.0.1:8080
//! curl http://127.0.0.1:8080/                          # HTTP/1.1
//! curl --http2-prior-knowledge http://127.0.0.1:8080/  # HTTP/2
//! ```

use std::convert::Infallible;
use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use examples_hyper::{http_builder, serve, BoxError};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(
        b"Hello, World!",
    ))))
}

fn main() -> Result<(), BoxError> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    evloop::run(async move {
        examples_ecosystem::print_backend();
        let lp = evloop::get_running_loop()?;
        let http = http_builder(&lp, Duration::from_secs(10));
        let server = serve(&lp, &addr, http, service_fn(hello))?;
        let addr = server.local_addr().ok_or("no internet address")?;
        println!("listening on http://{addr}/ (HTTP/1.1 and h2c)");
        std::io::stdout().flush()?;
        server.serve_forever().await?;
        Ok(())
    })?
}
