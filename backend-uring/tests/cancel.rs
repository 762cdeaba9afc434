//! Cancellation seen through the public API: an accept that wins against
//! its cancel, orphaned operations of the loop, and cancelling under traffic.
//
// Where the driver tests live: those that need only the public API (and
// `loop_driver`, `loop_api`) under `tests/`, by topic, with the helpers in
// `tests/common/mod.rs`; those that need the driver's internals (forcing a
// fallback by clearing a probed flag, faking cancels that miss, counting
// targets in transit) in `src/driver/tests.rs`, which includes the same
// helpers. Not a public testing hook: it would put test-only fields and
// branches into every build of the driver.

mod common;

use std::future::Future as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::task::Poll;
use std::time::{Duration, Instant};

use loop_driver::{Cancel, Driver, Op, OpOutput};

use common::*;

#[test]
fn accept_that_completes_despite_cancel_reports_its_descriptor() {
    let _g = shared();
    let mut d = driver();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    // The connection is already queued, so the accept succeeds as it is
    // issued, before the AsyncCancel behind it in the same batch.
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    submit(
        &mut d,
        0,
        Op::Accept {
            fd: listener.as_raw_fd(),
        },
    );
    assert_eq!(d.cancel(0), Cancel::Pending);
    let out: OpOutput = wait_for(&mut d, 0).result.expect("the accept won the race");
    let fd = out
        .accepted
        .as_ref()
        .expect("an accepted descriptor")
        .as_raw_fd();
    assert!(is_open(fd));
    // Dropping the output closes the descriptor; the client sees the
    // connection end.
    drop(out);
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(client.read(&mut byte).unwrap(), 0);
}

#[test]
fn orphaned_accept_through_the_loop_closes_its_descriptor() {
    let _g = shared();
    let lp = backend_uring::new_event_loop().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let lfd = listener.as_raw_fd();
    let lp2 = lp.clone();
    lp.run_until_complete(async move {
        // SAFETY: Accept points into no memory; the listener outlives the loop run.
        let mut fut = unsafe { loop_api::OpFuture::new(&lp2, Op::Accept { fd: lfd }, ()) };
        // Poll once (submitting it), then drop it: the accept is orphaned.
        std::future::poll_fn(|cx| {
            let _ = std::pin::Pin::new(&mut fut).poll(cx);
            Poll::Ready(())
        })
        .await;
        drop(fut);
        loop_api::sleep(Duration::from_millis(20)).await;
    })
    .unwrap();
    // The accept won against its cancellation; the loop closed the new
    // descriptor, so the client sees end of stream.
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(client.read(&mut byte).unwrap(), 0);
    lp.close().unwrap();
}

#[test]
fn cancelling_recvs_under_traffic_is_sound() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let _g = shared();
    let lp = backend_uring::new_event_loop().unwrap();
    let pairs: Vec<(UnixStream, UnixStream)> =
        (0..8).map(|_| UnixStream::pair().unwrap()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<UnixStream> = pairs.iter().map(|(_, b)| b.try_clone().unwrap()).collect();
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            for w in &writers {
                w.set_nonblocking(true).unwrap();
            }
            let chunk = [0xa5u8; 300];
            while !stop.load(Ordering::Relaxed) {
                for mut w in &writers {
                    let _ = w.write(&chunk);
                }
                std::thread::sleep(Duration::from_micros(50));
            }
        })
    };
    let received = std::rc::Rc::new(std::cell::Cell::new(0usize));
    let cancelled = std::rc::Rc::new(std::cell::Cell::new(0usize));
    let mut tasks = Vec::new();
    for (i, (a, _)) in pairs.iter().enumerate() {
        let fd = a.as_raw_fd();
        let (lp2, received, cancelled) = (lp.clone(), received.clone(), cancelled.clone());
        tasks.push(
            lp.create_task(async move {
                let end = Instant::now() + Duration::from_millis(300);
                let mut round = 0u64;
                while Instant::now() < end {
                    round += 1;
                    let mut buf = vec![0u8; 512];
                    let op = Op::Recv {
                        fd,
                        buf: buf.as_mut_ptr(),
                        len: buf.capacity(),
                    };
                    // SAFETY: the op points into `buf`'s heap memory, owned by the future.
                    let fut = unsafe { loop_api::OpFuture::new(&lp2, op, buf) };
                    // Timeouts from 0 to ~70 µs: many recvs are cancelled in
                    // flight, some just as they complete.
                    let timeout = Duration::from_micros((round * 7 + i as u64 * 13) % 70);
                    match loop_api::wait_for(fut, timeout).await {
                        Ok((Ok(out), buf)) => {
                            assert!(buf[..out.bytes].iter().all(|&b| b == 0xa5));
                            received.set(received.get() + out.bytes);
                        }
                        Ok((Err(e), _)) => panic!("recv failed: {e}"),
                        Err(_) => cancelled.set(cancelled.get() + 1),
                    }
                }
            })
            .unwrap(),
        );
    }
    finish_cancel_stress(&lp, tasks, &stop, writer);
    assert!(received.get() > 0, "no data received");
    assert!(cancelled.get() > 0, "nothing was cancelled");
}

#[test]
fn close_frees_orphaned_buffers_only_after_their_final_completion() {
    use std::cell::Cell;
    use std::rc::Rc;

    /// Records when the buffer's owner is dropped.
    struct Freed(Rc<Cell<bool>>);
    impl Drop for Freed {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }

    let _g = shared();
    let lp = backend_uring::new_event_loop().unwrap();
    let (a, _b) = UnixStream::pair().unwrap();
    let freed = Rc::new(Cell::new(false));
    let mut buf = vec![0u8; 256];
    let op = Op::Recv {
        fd: a.as_raw_fd(),
        buf: buf.as_mut_ptr(),
        len: buf.len(),
    };
    // SAFETY: the op points into `buf`'s heap memory, owned by the future.
    let fut = unsafe { loop_api::OpFuture::new(&lp, op, (buf, Freed(freed.clone()))) };
    let task = lp
        .create_task(async move {
            let _ = fut.await;
        })
        .unwrap();
    // One iteration: the task submits the recv, which then waits in the kernel.
    lp.stop();
    lp.run_forever().unwrap();
    drop(task); // detached: still pending
    assert!(!freed.get());
    // close() destroys the pending task: the recv is orphaned and cancelled,
    // and its buffer is freed once the kernel has returned it.
    lp.close().unwrap();
    assert!(
        freed.get(),
        "the orphan's memory was leaked instead of drained"
    );
}
