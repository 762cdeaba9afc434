//! Async cleanup, after the talks' async context managers (`async with`,
//! `__aenter__`/`__aexit__`): a connection that is closed properly on every
//! way out of the code using it.
//!
//! Rust has no async `Drop`, so the pattern has two layers:
//! - [`with_connection`] is `async with`: it opens the connection, runs the
//!   body, and *awaits* the polite close (`QUIT`, wait for `BYE`) whether
//!   the body returned `Ok` or `Err`, then hands back the body's result;
//! - `Drop` is the backstop for the exits where no more `.await` can run
//!   (the task was cancelled, or panicked): it closes the socket at once,
//!   synchronously; the peer sees an abrupt end of stream.
//!
//! A small key-value server on 127.0.0.1 (line protocol over evloop's
//! `TcpStream`, read through futures-io's `BufReader`) reports how each
//! connection ended. Three clients take the three ways out: success, an
//! error, and cancellation.
//!
//! ```text
//! cargo run -p examples-ecosystem --example async_cleanup
//! EVLOOP_BACKEND=mio cargo run -p examples-ecosystem --example async_cleanup
//! ```

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use evloop::net::TcpStream;
use futures::io::{AsyncBufReadExt, BufReader};

/// Sends one line (the `\n` is added).
async fn send_line(stream: &TcpStream, line: &str) -> evloop::Result<()> {
    let (res, _) = stream
        .write_all_owned(format!("{line}\n").into_bytes())
        .await;
    res
}

/// Reads one line without its `\n`; `None` at end of stream.
async fn recv_line(reader: &mut BufReader<TcpStream>) -> io::Result<Option<String>> {
    let mut line = String::new();
    if reader.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim_end().to_owned()))
}

// ---------------------------------------------------------------- server

/// How the server's connections ended.
#[derive(Default)]
struct Stats {
    next_id: Cell<u32>,
    clean: Cell<u32>,
    abrupt: Cell<u32>,
}

/// `PUT key value` -> `OK`; `GET key` -> `VALUE v` or `ERR ...`; `QUIT` -> `BYE`.
async fn serve(stream: TcpStream, store: Rc<RefCell<HashMap<String, String>>>, stats: Rc<Stats>) {
    let id = stats.next_id.get() + 1;
    stats.next_id.set(id);
    println!("server: connection #{id} opened");
    let mut reader = BufReader::new(stream);
    loop {
        let line = match recv_line(&mut reader).await {
            Ok(Some(line)) => line,
            Ok(None) | Err(_) => {
                stats.abrupt.set(stats.abrupt.get() + 1);
                println!("server: connection #{id} dropped without QUIT (end of stream)");
                return;
            }
        };
        let words: Vec<&str> = line.splitn(3, ' ').collect();
        let reply = match words.as_slice() {
            ["PUT", key, value] => {
                store
                    .borrow_mut()
                    .insert(key.to_string(), value.to_string());
                "OK".to_owned()
            }
            ["GET", key] => match store.borrow().get(*key) {
                Some(value) => format!("VALUE {value}"),
                None => format!("ERR no such key: {key}"),
            },
            ["QUIT"] => {
                let _ = send_line(reader.get_ref(), "BYE").await;
                stats.clean.set(stats.clean.get() + 1);
                println!("server: connection #{id} closed cleanly (QUIT)");
                return;
            }
            _ => format!("ERR bad command: {line}"),
        };
        if send_line(reader.get_ref(), &reply).await.is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------- client

/// A client connection: `close()` is the polite async goodbye, `Drop` the
/// synchronous backstop.
struct Connection {
    name: &'static str,
    /// `None` once closed.
    stream: Option<BufReader<TcpStream>>,
}

impl Connection {
    /// `__aenter__`.
    async fn open(addr: SocketAddr, name: &'static str) -> io::Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        println!("client {name}: connected");
        Ok(Connection {
            name,
            stream: Some(BufReader::new(stream)),
        })
    }

    /// One request, one reply; an `ERR` reply is an error.
    async fn request(&mut self, line: &str) -> io::Result<String> {
        let reader = self.stream.as_mut().ok_or(io::ErrorKind::NotConnected)?;
        send_line(reader.get_ref(), line).await?;
        let reply = recv_line(reader)
            .await?
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        match reply.strip_prefix("ERR ") {
            Some(err) => Err(io::Error::other(err.to_owned())),
            None => Ok(reply),
        }
    }

    /// `__aexit__`: says goodbye and waits for the server's, then closes.
    async fn close(mut self) -> io::Result<()> {
        let Some(mut reader) = self.stream.take() else {
            return Ok(());
        };
        send_line(reader.get_ref(), "QUIT").await?;
        let bye = recv_line(&mut reader).await?;
        println!(
            "client {}: closed politely (server said {})",
            self.name,
            bye.as_deref().unwrap_or("nothing")
        );
        Ok(()) // `reader` (and the socket) dropped here
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Only if `close()` never ran: no await is possible here, so the
        // socket is simply closed (dropping the stream closes it).
        if self.stream.take().is_some() {
            println!(
                "client {}: dropped without close(); Drop closed the socket",
                self.name
            );
        }
    }
}

/// `async with Connection(addr) as conn: return await body(conn)`.
///
/// The connection is closed politely after `body`, whether it succeeded or
/// failed; the body's result comes first, then a close error if any. If
/// this future is dropped midway (cancelled task, panic), `Drop` closes the
/// socket instead.
async fn with_connection<T>(
    addr: SocketAddr,
    name: &'static str,
    body: impl AsyncFnOnce(&mut Connection) -> io::Result<T>,
) -> io::Result<T> {
    let mut conn = Connection::open(addr, name).await?;
    let result = body(&mut conn).await;
    let closed = conn.close().await;
    let value = result?;
    closed?;
    Ok(value)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    evloop::run(async {
        examples_ecosystem::print_backend();
        let lp = evloop::get_running_loop()?;
        let store = Rc::new(RefCell::new(HashMap::new()));
        let stats = Rc::new(Stats::default());
        let server = lp.create_server("127.0.0.1:0", {
            let stats = stats.clone();
            move |stream| serve(stream, store.clone(), stats.clone())
        })?;
        let addr = server.local_addr().ok_or("no internet address")?;

        println!("== success: the body returns Ok");
        let got = with_connection(addr, "A", async |conn| {
            conn.request("PUT greeting hello").await?;
            conn.request("GET greeting").await
        })
        .await;
        println!("success path result: {got:?}");

        println!("== error: the body fails with `?`");
        let got = with_connection(addr, "B", async |conn| {
            let value = conn.request("GET missing").await?; // fails here
            println!("never printed: {value}");
            Ok(value)
        })
        .await;
        println!(
            "error path result: {}",
            got.map_or_else(|e| format!("Err({e})"), |v| format!("Ok({v})"))
        );

        println!("== cancellation: the task is cancelled mid-body");
        let (in_body, reached) = futures::channel::oneshot::channel();
        let task = lp.create_task(with_connection(addr, "C", async move |conn| {
            conn.request("PUT job running").await?;
            let _ = in_body.send(());
            evloop::sleep(Duration::from_secs(10)).await; // a long wait, cut short
            Ok(())
        }))?;
        // Cancel once the body is in its long wait.
        let _ = reached.await;
        task.cancel();
        let outcome = task.await;
        println!("cancellation path result: {outcome:?}");

        // Wait until the server has seen every connection end.
        server.close();
        server.wait_closed().await;
        println!(
            "server: {} connections, {} closed cleanly, {} dropped, {} still open",
            stats.next_id.get(),
            stats.clean.get(),
            stats.abrupt.get(),
            server.connection_count()
        );
        Ok(())
    })?
}
