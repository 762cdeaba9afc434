//! Multishot receive into the provided-buffer ring (read-ahead streams).
//
// Where the driver tests live: those that need only the public API (and
// `loop_driver`, `loop_api`) under `tests/`, by topic, with the helpers in
// `tests/common/mod.rs`; those that need the driver's internals (forcing a
// fallback by clearing a probed flag, faking cancels that miss, counting
// targets in transit) in `src/driver/tests.rs`, which includes the same
// helpers. Not a public testing hook: it would put test-only fields and
// branches into every build of the driver.

mod common;

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use backend_uring::UringBuilder;
use loop_driver::{Cancel, Driver};

use common::*;

#[test]
fn multishot_data_arriving_before_the_recv_is_delivered_at_submit() {
    let _g = shared();
    let mut d = mshot_driver();
    assert!(d.multishot_recv(), "a 6.x kernel has multishot receive");
    let (server, mut client) = tcp_pair();
    let fd = server.as_raw_fd();
    assert!(d.promise_recv_only(fd));
    client.write_all(b"first").unwrap();
    let mut buf = vec![0u8; 64];
    // The first Recv arms the multishot and waits for its CQE.
    let (n, _) = recv_now_or_later(&mut d, 0, fd, &mut buf);
    assert_eq!(&buf[..n], b"first");
    // Data arriving with no Recv waiting is queued by the multishot ...
    client.write_all(b"second").unwrap();
    settle(&mut d);
    assert_eq!(d.in_flight(), 0);
    // ... and the next Recv completes at submission, without the kernel.
    let (n, at_once) = recv_now_or_later(&mut d, 1, fd, &mut buf);
    assert!(at_once, "queued data completes the Recv at submit");
    assert_eq!(&buf[..n], b"second");
    d.release_fd(fd);
}

#[test]
fn multishot_recv_smaller_than_a_chunk_leaves_the_rest_for_the_next() {
    let _g = shared();
    let mut d = mshot_driver();
    let (server, mut client) = tcp_pair();
    let fd = server.as_raw_fd();
    assert!(d.promise_recv_only(fd));
    let data: Vec<u8> = (0..100u8).collect();
    let mut buf = vec![0u8; 64];
    // Arm it first, then send 100 bytes: one CQE of 100 bytes.
    let (n, _) = {
        let mut tiny = [0u8; 1];
        client.write_all(&data[..1]).unwrap();
        recv_now_or_later(&mut d, 0, fd, &mut tiny)
    };
    assert_eq!(n, 1);
    client.write_all(&data[1..]).unwrap();
    settle(&mut d);
    let mut got = Vec::new();
    let mut small = [0u8; 7];
    while got.len() < 99 {
        let (n, at_once) = recv_now_or_later(&mut d, 1, fd, &mut small);
        assert!(at_once);
        got.extend_from_slice(&small[..n]);
    }
    assert_eq!(&got[..], &data[1..]);
    // Nothing is queued any more: the next Recv waits.
    client.write_all(b"z").unwrap();
    let (n, _) = recv_now_or_later(&mut d, 2, fd, &mut buf);
    assert_eq!(&buf[..n], b"z");
}

#[test]
fn multishot_end_of_stream_comes_after_the_data_and_sticks() {
    let _g = shared();
    let mut d = mshot_driver();
    let (server, mut client) = tcp_pair();
    let fd = server.as_raw_fd();
    assert!(d.promise_recv_only(fd));
    let mut buf = vec![0u8; 64];
    client.write_all(b"x").unwrap();
    let (n, _) = recv_now_or_later(&mut d, 0, fd, &mut buf);
    assert_eq!(n, 1);
    client.write_all(b"tail").unwrap();
    drop(client);
    settle(&mut d);
    let (n, at_once) = recv_now_or_later(&mut d, 1, fd, &mut buf);
    assert!(at_once);
    assert_eq!(&buf[..n], b"tail");
    for id in 2..5 {
        assert_eq!(recv_now_or_later(&mut d, id, fd, &mut buf), (0, true));
    }
}

#[test]
fn multishot_a_dropped_recv_loses_no_bytes() {
    let _g = shared();
    let mut d = mshot_driver();
    let (server, mut client) = tcp_pair();
    let fd = server.as_raw_fd();
    assert!(d.promise_recv_only(fd));
    let mut buf = vec![0u8; 64];
    submit_recv(&mut d, 0, fd, &mut buf);
    settle(&mut d);
    // A waiting Recv never lent its buffer to the kernel: forgotten at once.
    assert_eq!(d.cancel(0), Cancel::Forgotten);
    assert_eq!(d.in_flight(), 0);
    drop(buf);
    client.write_all(b"kept").unwrap();
    settle(&mut d);
    let mut buf = vec![0u8; 64];
    let (n, at_once) = recv_now_or_later(&mut d, 0, fd, &mut buf);
    assert!(at_once);
    assert_eq!(&buf[..n], b"kept");
}

#[test]
fn multishot_recovers_when_the_buffers_run_out() {
    let _g = shared();
    // Two buffers of 64 bytes: the multishot stops (ENOBUFS) after 128.
    let mut d = UringBuilder::new()
        .multishot_recv(true)
        .recv_buffers(2, 64)
        .build()
        .unwrap();
    let (server, mut client) = tcp_pair();
    let (other, mut other_client) = tcp_pair();
    let fd = server.as_raw_fd();
    assert!(d.promise_recv_only(fd));
    assert!(d.promise_recv_only(other.as_raw_fd()));
    let data: Vec<u8> = (0..4000u32).map(|i| (i % 251) as u8).collect();
    let mut buf = vec![0u8; 16];
    client.write_all(&data[..1]).unwrap();
    assert_eq!(recv_now_or_later(&mut d, 0, fd, &mut buf).0, 1);
    client.write_all(&data[1..]).unwrap();
    settle(&mut d);
    // Both buffers are queued for `fd`: the other socket's Recv is a
    // one-shot into its own buffer and still works.
    other_client.write_all(b"other").unwrap();
    let mut obuf = vec![0u8; 16];
    let (n, _) = recv_now_or_later(&mut d, 1, other.as_raw_fd(), &mut obuf);
    assert_eq!(&obuf[..n], b"other");
    // Reading `fd` frees the buffers and re-arms: every byte, in order.
    let mut got = data[..1].to_vec();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < data.len() {
        assert!(Instant::now() < deadline, "stuck at {} bytes", got.len());
        let (n, _) = recv_now_or_later(&mut d, 2, fd, &mut buf);
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, data);
}

#[test]
fn multishot_release_and_close_leak_no_descriptor_and_do_not_hang() {
    let _g = exclusive();
    let before = fd_count();
    {
        let mut d = mshot_driver();
        let mut peers = Vec::new();
        for i in 0..4 {
            let (server, mut client) = tcp_pair();
            let fd = server.as_raw_fd();
            assert!(d.promise_recv_only(fd));
            client.write_all(b"q").unwrap();
            let mut buf = [0u8; 8];
            assert_eq!(recv_now_or_later(&mut d, i, fd, &mut buf).0, 1);
            // Armed, with bytes queued on some of them.
            if i % 2 == 0 {
                client.write_all(b"queued").unwrap();
            }
            settle(&mut d);
            // The loop's order: release, then close.
            d.release_fd(fd);
            drop(server);
            peers.push(client);
        }
        // The next iteration submits the cancels: the sockets really close.
        settle(&mut d);
        for mut client in peers {
            client
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut byte = [0u8; 1];
            // End of stream (or a reset, if our queued bytes went unread).
            assert!(matches!(client.read(&mut byte), Ok(0) | Err(_)));
        }
        // A multishot left armed at Drop is cancelled there too.
        let (server, mut client) = tcp_pair();
        assert!(d.promise_recv_only(server.as_raw_fd()));
        client.write_all(b"y").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(
            recv_now_or_later(&mut d, 9, server.as_raw_fd(), &mut buf).0,
            1
        );
        let t = Instant::now();
        drop(d);
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "drop took {:?}",
            t.elapsed()
        );
    }
    assert_eq!(fd_count(), before);
}

#[test]
fn multishot_cancelled_stream_reads_under_traffic_lose_and_reorder_nothing() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let _g = shared();
    let lp = UringBuilder::new()
        .multishot_recv(true)
        .new_event_loop()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    let mut tasks = Vec::new();
    let received = std::rc::Rc::new(std::cell::Cell::new(0usize));
    let cancelled = std::rc::Rc::new(std::cell::Cell::new(0usize));
    for i in 0..6u64 {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        theirs.set_nonblocking(true).unwrap();
        writers.push(theirs);
        let (received, cancelled) = (received.clone(), cancelled.clone());
        tasks.push(
            lp.create_task(async move {
                // Built inside the loop: the stream reads ahead (multishot).
                let stream = loop_api::net::UnixStream::from_std(ours).unwrap();
                let end = Instant::now() + Duration::from_millis(300);
                let (mut next, mut round) = (0u8, 0u64);
                while Instant::now() < end {
                    round += 1;
                    let timeout = Duration::from_micros((round * 7 + i * 13) % 70);
                    match loop_api::wait_for(stream.read_owned(Vec::with_capacity(300)), timeout)
                        .await
                    {
                        Ok((Ok(n), buf)) => {
                            // The writer sends 0, 1, ..., 250, 0, 1, ...:
                            // a lost or reordered byte breaks the sequence.
                            for &b in &buf[..n] {
                                assert_eq!(b, next, "byte lost or reordered");
                                next = if next == 250 { 0 } else { next + 1 };
                            }
                            received.set(received.get() + n);
                        }
                        Ok((Err(e), _)) => panic!("read failed: {e}"),
                        Err(_) => cancelled.set(cancelled.get() + 1),
                    }
                }
            })
            .unwrap(),
        );
    }
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let pattern: Vec<u8> = (0..251u8).collect();
            let mut pos = vec![0usize; writers.len()];
            while !stop.load(Ordering::Relaxed) {
                for (w, p) in writers.iter_mut().zip(pos.iter_mut()) {
                    let chunk: Vec<u8> = (0..97).map(|k| pattern[(*p + k) % 251]).collect();
                    if let Ok(n) = w.write(&chunk) {
                        *p = (*p + n) % 251;
                    }
                }
                std::thread::sleep(Duration::from_micros(50));
            }
        })
    };
    finish_cancel_stress(&lp, tasks, &stop, writer);
    assert!(received.get() > 0, "no data received");
    assert!(cancelled.get() > 0, "nothing was cancelled");
}

/// A completion the driver queued outside `wait` (here: a waiting receive
/// failed by `release_fd`) belongs to its operation only: once that
/// operation is cancelled, the next operation given the same id must not
/// receive it.
#[test]
fn a_cancelled_ops_queued_completion_never_reaches_its_ids_next_op() {
    let _g = shared();
    let mut d = mshot_driver();
    let (server, _client) = tcp_pair();
    let fd = server.as_raw_fd();
    assert!(d.promise_recv_only(fd));
    let mut buf = vec![0u8; 64];
    submit_recv(&mut d, 4, fd, &mut buf);
    d.release_fd(fd);
    assert_eq!(d.cancel(4), Cancel::Forgotten);

    let (other, mut peer) = tcp_pair();
    peer.write_all(b"fresh").unwrap();
    let mut buf2 = vec![0u8; 64];
    let (n, _) = recv_now_or_later(&mut d, 4, other.as_raw_fd(), &mut buf2);
    assert_eq!(&buf2[..n], b"fresh");
    drop(server);
}
