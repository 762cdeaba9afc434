//! A TCP echo server and a client in one program.
//!
//! The server listens on 127.0.0.1 (a free port) and sends every byte back;
//! the client sends a few lines, prints the echoes, and the program exits.
//! Runs on any backend: `EVLOOP_BACKEND=polling cargo run --example echo`.

use std::net::Shutdown;

use evloop::net::TcpStream;

/// Serves one connection: echo until the peer closes its side.
async fn echo(stream: TcpStream) {
    let mut buf = Vec::with_capacity(4096);
    loop {
        let (res, data) = stream.read_owned(buf).await;
        match res {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => {
                eprintln!("server: read failed: {e}");
                return;
            }
        }
        let (res, data) = stream.write_all_owned(data).await;
        if let Err(e) = res {
            eprintln!("server: write failed: {e}");
            return;
        }
        buf = data;
    }
}

async fn client(addr: std::net::SocketAddr) -> evloop::Result<()> {
    let stream = TcpStream::connect(addr).await?;
    for line in [
        "hello, evloop",
        "the quick brown fox",
        "jumps over the lazy dog",
    ] {
        let (res, _) = stream
            .write_all_owned(format!("{line}\n").into_bytes())
            .await;
        res?;
        // Read until the whole line has come back.
        let mut echoed = Vec::new();
        while !echoed.ends_with(b"\n") {
            let (res, buf) = stream.read_owned(Vec::with_capacity(256)).await;
            if res? == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }
            echoed.extend_from_slice(&buf);
        }
        print!("echo: {}", String::from_utf8_lossy(&echoed));
    }
    stream.shutdown(Shutdown::Write)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    evloop::run(async {
        let lp = evloop::get_running_loop()?;
        println!("backend: {}", lp.backend_name());
        // Keep the handle: dropping the last one closes the server.
        let server = lp.create_server("127.0.0.1:0", echo)?;
        let addr = server.local_addr().ok_or("no internet address")?;
        println!("server listening on {addr}");
        client(addr).await?;
        server.close();
        server.wait_closed().await;
        Ok(())
    })?
}
