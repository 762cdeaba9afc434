//! A LoopGroup leaves nothing behind: no thread, no descriptor. Alone in
//! its test binary, so no other test's threads or sockets come and go
//! while it counts.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use evloop::net::TcpStream;
use evloop::LoopGroup;

fn count(dir: &str) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

/// Counts settle after a shutdown: a thread's entry leaves /proc shortly
/// after it is joined.
fn settles_to(dir: &str, want: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n = count(dir);
        if n <= want || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn shutdown_leaks_no_thread_and_no_descriptor_on_any_backend() {
    for &backend in &evloop::available_backends() {
        let threads = count("/proc/self/task");
        let fds = count("/proc/self/fd");
        let group = LoopGroup::builder()
            .threads(3)
            .backend(backend)
            .build()
            .unwrap();
        assert_eq!(count("/proc/self/task"), threads + 3, "{backend}");
        let addr = group
            .serve(
                "127.0.0.1:0".parse().unwrap(),
                |conn: TcpStream| async move {
                    let (n, buf) = conn.read_owned(Vec::with_capacity(64)).await;
                    if let Ok(n) = n {
                        let _ = conn.write_all_owned(buf[..n].to_vec()).await;
                    }
                    evloop::sleep(Duration::from_secs(3600)).await; // still open at shutdown
                },
            )
            .unwrap();
        let mut clients = Vec::new();
        for _ in 0..20 {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.write_all(b"hi").unwrap();
            let mut back = [0u8; 2];
            c.read_exact(&mut back).unwrap();
            clients.push(c);
        }
        group.shutdown().unwrap();
        drop(clients);
        assert_eq!(
            settles_to("/proc/self/task", threads),
            threads,
            "{backend}: threads"
        );
        assert_eq!(
            settles_to("/proc/self/fd", fds),
            fds,
            "{backend}: descriptors"
        );
    }
}
