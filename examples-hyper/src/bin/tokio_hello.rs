//! The baseline `bench.sh` races: the same `Hello, World!` server as the
//! `hello_server` example, on tokio's current_thread runtime with
//! hyper-util (`TokioIo`, `TokioExecutor`, `TokioTimer`, the `auto`
//! builder: HTTP/1.1 and h2c), hyper's timer on with the same 10 s
//! `header_read_timeout`.
//!
//! ```text
//! cargo run --release -p examples-hyper --bin tokio_hello -- 127.0.0.1:8080
//! ```

use std::convert::Infallible;
use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(
        b"Hello, World!",
    ))))
}

fn main() -> Result<(), BoxError> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        println!("backend: tokio");
        println!(
            "listening on http://{}/ (HTTP/1.1 and h2c)",
            listener.local_addr()?
        );
        std::io::stdout().flush()?;
        let mut http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        http.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10));
        http.http2().timer(TokioTimer::new());
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let http = http.clone();
            tokio::spawn(async move {
                let _ = http
                    .serve_connection(TokioIo::new(stream), service_fn(hello))
                    .await;
            });
        }
    })
}
