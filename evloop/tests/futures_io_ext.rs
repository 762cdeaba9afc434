//! futures-io's `AsyncReadExt`/`AsyncWriteExt` methods (`read(&mut buf)`,
//! `write_all(bytes)`, `read_to_end(&mut vec)`, ...) called as plain method
//! calls on every evloop stream type. Before the owned-buffer methods were
//! named `*_owned`, these calls resolved to the inherent methods and did not
//! compile (E0277 / E0308 / E0061).

use evloop::net::{TcpListener, TcpStream, UnixStream};
use futures::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn tcp_stream_and_halves() {
    evloop::run(async {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let mut client = TcpStream::connect(listener.local_addr()?).await?;
        let (mut server, _) = listener.accept().await?;
        client.write_all(b"one").await?;
        let mut buf = [0u8; 8];
        let n = server.read(&mut buf).await?;
        assert_eq!(&buf[..n], b"one");
        // Owned-buffer and futures-io calls mix on one stream.
        let (res, _) = server.write_all_owned(b"two".to_vec()).await;
        res?;
        let mut two = [0u8; 3];
        client.read_exact(&mut two).await?;
        assert_eq!(&two, b"two");
        let (mut rd, mut wr) = server.into_split();
        client.write_all(b"three").await?;
        client.close().await?;
        let mut all = Vec::new();
        rd.read_to_end(&mut all).await?;
        assert_eq!(all, b"three");
        wr.write_all(b"four").await?;
        wr.close().await?;
        let mut tail = Vec::new();
        client.read_to_end(&mut tail).await?;
        assert_eq!(tail, b"four");
        Ok::<_, evloop::Error>(())
    })
    .unwrap()
    .unwrap();
}

#[test]
fn unix_stream() {
    evloop::run(async {
        let (mut a, mut b) = UnixStream::pair()?;
        a.write_all(b"over unix").await?;
        a.close().await?;
        let mut got = String::new();
        b.read_to_string(&mut got).await?;
        assert_eq!(got, "over unix");
        Ok::<_, evloop::Error>(())
    })
    .unwrap()
    .unwrap();
}

#[test]
fn pipes() {
    evloop::run(async {
        let lp = evloop::get_running_loop()?;
        let (mut r, mut w) = evloop::pipe::pipe(&lp)?;
        w.write_all(b"through a pipe").await?;
        w.close().await?;
        let mut got = Vec::new();
        r.read_to_end(&mut got).await?;
        assert_eq!(got, b"through a pipe");
        Ok::<_, evloop::Error>(())
    })
    .unwrap()
    .unwrap();
}
